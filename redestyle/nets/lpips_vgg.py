"""LPIPS v0.1 with a VGG16 backbone: the destylization baseline's perceptual distance network.

The network of the ``lpips`` package (Zhang et al. 2018; its keys and v0.1 linear heads), as
pSp / e4e / DualStyleGAN's ``criteria/lpips`` use it; the loss terms built on it live in
:mod:`redestyle.losses` and :mod:`redestyle.destylize`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import torch
import torch.nn as nn


class LPIPS(nn.Module):
    """LPIPS v0.1 with a VGG16 backbone (the baseline's ``PerceptualLoss(net="vgg")``).

    The linear heads are the v0.1 ``vgg.pth`` shipped in the ``lpips`` package (the same file as
    DualStyleGAN's copy). The VGG16 backbone needs ImageNet weights, which cannot be downloaded
    here: pass a torchvision ``vgg16`` state dict (``vgg16-397923af.pth``) as ``vgg16_state_dict``;
    without it the backbone is random, drawn from a private RNG seeded with ``seed`` (the same
    network in every process; fine for the tiny profile, labelled there).
    """

    def __init__(self, vgg16_state_dict: Mapping[str, torch.Tensor] | None = None, *, seed: int = 0):
        super().__init__()
        import lpips  # imported lazily: it pulls in torchvision models

        # lpips builds torchvision's vgg16 with its default init from the global RNG: fork it, so a
        # random backbone is reproducible across processes and the caller's RNG is untouched.
        with warnings.catch_warnings(), torch.random.fork_rng(devices=[]):
            warnings.simplefilter("ignore", UserWarning)  # lpips passes torchvision's deprecated ``pretrained=``
            torch.manual_seed(seed)
            self.net = lpips.LPIPS(net="vgg", version="0.1", pretrained=True, pnet_rand=True, verbose=False)
        self.pretrained_backbone = vgg16_state_dict is not None
        if vgg16_state_dict is not None:
            self._load_backbone(vgg16_state_dict)
        self.eval().requires_grad_(False)

    def _load_backbone(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Copy torchvision ``features.<i>.*`` tensors into LPIPS' slices (same indices)."""
        backbone = self.net.net
        for k in range(1, 6):  # slices end at relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
            part = getattr(backbone, f"slice{k}")
            wanted = part.state_dict().keys()  # e.g. "0.weight", "2.bias"
            missing = [f"features.{n}" for n in wanted if f"features.{n}" not in state_dict]
            if missing:
                raise KeyError(f"VGG16 state dict lacks {missing[:3]} (expected torchvision vgg16 keys)")
            part.load_state_dict({n: state_dict[f"features.{n}"] for n in wanted}, strict=True)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-pair distance [N] of images [N, 3, H, W] in [-1, 1]."""
        return self.net(pred, target, normalize=False).view(-1)
