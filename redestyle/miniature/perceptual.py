"""The miniature world's perceptual network: what ImageNet VGG16 is to LPIPS in ``ffhq1024``.

LPIPS (the baseline's perceptual term, and a reconstruction measure) compares the unit-normalised
activations of five stages of an ImageNet-trained VGG16. Offline there is no ImageNet VGG16, so the
``mini`` profile trains its own VGG-like trunk on the world (``python -m redestyle.miniature.train
perceptual``): five stages of two 3x3 convolutions each (batch-normalised ReLUs, max-pooling
between stages, as VGG16's relu1_2 ... relu5_3 taps), taught to read the world's parameters from
photo and portrait renders (the analogue of ImageNet classification; the head is dropped after
training). It is a network separate from the oracle, which stays the judge only.

The distance is LPIPS' own computation on these taps, with uniform channel weights (the "lin"
layers of LPIPS v0.1 were fitted to human 2AFC judgments, which this world does not have):
``d(x, y) = sum_l mean_hw sum_c (n(f_l(x)) - n(f_l(y)))^2``, n normalising each position's channel
vector to unit length (LPIPS' ``lpips=False`` variant).

The same trunk stands in for ImageNet VGG19 in DualStyleGAN's fine-tuning losses on ``mini``
(:class:`TrunkFeatures`: contextual, feature-matching and perceptual terms), as it stands in for
VGG16 in LPIPS: a random VGG19 reads nothing of the world's faces.
"""

from __future__ import annotations

import torch
from torch import nn

#: Stage widths of the trunk (VGG16: 64, 128, 256, 512, 512).
WIDTHS = (16, 32, 64, 96, 128)
#: Outputs of the training head: 20 continuous parameters, 5 hair styles, 1 glasses logit
#: (the oracle's targets, :func:`~redestyle.miniature.oracle.attribute_loss`).
HEAD_OUTPUTS = (20, 5, 1)


def _stage(cin: int, cout: int, *, pool: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.MaxPool2d(2)] if pool else []
    for c in (cin, cout):
        layers += [nn.Conv2d(c, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]
    return nn.Sequential(*layers)


class Trunk(nn.Module):
    """[B, 3, S, S] in [-1, 1] -> the five stage outputs (S, S/2, ..., S/16) and, with the head, the
    attribute predictions used only in training (``head``)."""

    def __init__(self, widths: tuple[int, ...] = WIDTHS) -> None:
        super().__init__()
        cins = (3, *widths[:-1])
        self.stages = nn.ModuleList(_stage(a, b, pool=i > 0) for i, (a, b) in enumerate(zip(cins, widths)))
        self.head = nn.Linear(widths[-1], sum(HEAD_OUTPUTS))

    def taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for stage in self.stages:
            x = stage(x)
            out.append(x)
        return out

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Attribute predictions (continuous [B, 20], hair logits [B, 5], glasses logit [B])."""
        pooled = self.taps(x)[-1].mean((2, 3))
        cont, hair, glasses = self.head(pooled).split(HEAD_OUTPUTS, dim=1)
        return cont, hair, glasses.squeeze(1)


def _unit(f: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    return f / (f.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)  # LPIPS' normalize_tensor


class WorldLPIPS(nn.Module):
    """The LPIPS distance on a trained :class:`Trunk` (module docstring), frozen.

    ``forward(pred, target)``: images [B, 3, S, S] in [-1, 1] -> per-pair distance [B], the interface
    of :class:`redestyle.losses.LPIPS`.
    """

    def __init__(self, trunk: Trunk) -> None:
        super().__init__()
        self.trunk = trunk.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> WorldLPIPS:
        super().train(mode)
        self.trunk.eval()  # a fixed loss network: its BatchNorm statistics never move
        return self

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        total = pred.new_zeros(pred.shape[0])
        for a, b in zip(self.trunk.taps(pred), self.trunk.taps(target)):
            total = total + (_unit(a) - _unit(b)).pow(2).sum(dim=1).mean((1, 2))
        return total


#: VGG19 layer name -> trunk stage whose output stands in for it (same resolution: S, S/2, ... S/16).
VGG19_STAGES = {"relu1_1": 0, "relu2_1": 1, "relu3_1": 2, "relu4_1": 3, "relu5_1": 4}


class TrunkFeatures(nn.Module):
    """A trained :class:`Trunk` behind ``losses.VGG19Features``' interface, frozen (module docstring).

    layers: VGG19 layer names (``VGG19_STAGES``); only the stages up to the deepest one run.
    forward: images [B, 3, S, S] in [-1, 1] -> the stage outputs standing in for ``layers``, in that
    order ([B, WIDTHS[k], S / 2**k, S / 2**k]; ReLU outputs, as VGG19's relu<k>_1).
    """

    def __init__(self, trunk: Trunk, *, layers: tuple[str, ...] = ("relu2_1", "relu3_1")) -> None:
        super().__init__()
        unknown = [name for name in layers if name not in VGG19_STAGES]
        if unknown:
            raise ValueError(f"unknown VGG19 layers {unknown}; the trunk stands in for {list(VGG19_STAGES)}")
        if max(VGG19_STAGES[name] for name in layers) >= len(trunk.stages):
            raise ValueError(f"the trunk has {len(trunk.stages)} stages, too few for layers {list(layers)}")
        self.layers = tuple(layers)
        self.trunk = trunk.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> TrunkFeatures:
        super().train(mode)
        self.trunk.eval()  # a fixed loss network: its BatchNorm statistics never move
        return self

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        want = [VGG19_STAGES[name] for name in self.layers]
        out = []
        for stage in self.trunk.stages[: max(want) + 1]:
            x = stage(x)
            out.append(x)
        return [out[k] for k in want]
