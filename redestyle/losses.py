"""Losses shared by inversion, destylization and training: ID, regularizers, LR schedules.

The loss networks themselves are networks (layer 0): LPIPS-VGG in :mod:`redestyle.nets.lpips_vgg`,
the IR-SE50 ID features in :mod:`redestyle.nets.irse`. Nothing here opens files: weights arrive
as state dicts from ``redestyle.checkpoints``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F


def id_loss(embed: Callable[[torch.Tensor], torch.Tensor], y_hat: torch.Tensor, y: torch.Tensor, *,
            per_image: bool = False) -> torch.Tensor:
    """DualStyleGAN's IDLoss: mean over the batch of 1 - cos(F(y_hat), F(y)), F(y) detached.

    embed: images [B, 3, 256, 256] in [-1, 1] -> l2-normalised [B, 512] (``irse.IDFeatures``).
    ``per_image``: return the [B] terms instead of their mean (an image's term, and its gradient,
    then do not depend on the other images of the batch).
    """
    with torch.no_grad():
        target = embed(y)
    terms = 1 - (embed(y_hat) * target).sum(dim=1)
    return terms if per_image else terms.mean()


def noise_regularize(noises: Sequence[torch.Tensor], *, per_image: bool = False) -> torch.Tensor:
    """rosinality projector's multi-scale autocorrelation penalty on noise maps [B, 1, r, r].

    Each level adds mean(n * roll(n, 1, x))^2 + mean(n * roll(n, 1, y))^2, then 2x2-averages n and
    repeats while the map is larger than 8 (the 8x8 level included). The means run over the whole
    batch (the official scalar); ``per_image`` takes them per image and returns [B] (for B = 1 the
    same value).
    """
    dims = (1, 2, 3) if per_image else (0, 1, 2, 3)
    loss = noises[0].new_zeros(noises[0].shape[:1] if per_image else ())
    for noise in noises:
        size = noise.shape[2]
        while True:
            loss = (loss + (noise * torch.roll(noise, shifts=1, dims=3)).mean(dim=dims).pow(2)
                    + (noise * torch.roll(noise, shifts=1, dims=2)).mean(dim=dims).pow(2))
            if size <= 8:
                break
            noise = F.avg_pool2d(noise, 2)
            size //= 2
    return loss


@torch.no_grad()
def noise_normalize_(noises: Sequence[torch.Tensor], *, per_image: bool = False) -> None:
    """Renormalise every noise tensor [B, 1, r, r] in place to zero mean, unit (unbiased) std.

    Over the whole tensor, as rosinality's projector; ``per_image``: per image (for B = 1 the same).
    """
    for noise in noises:
        if per_image:
            flat = noise.flatten(1)
            shape = (-1,) + (1,) * (noise.ndim - 1)
            mean, std = flat.mean(dim=1).view(shape), flat.std(dim=1).view(shape)
        else:
            mean, std = noise.mean(), noise.std()
        noise.sub_(mean).div_(std)


def latent_std_loss(latent: torch.Tensor, *, per_image: bool = False) -> torch.Tensor:
    """destylize.py's regularizer: mean over batch and channels of the std across the layers.

    latent: [B, n_latent, D]; unbiased std over dim 1, as the official ``latent.std(dim=1).mean()``.
    ``per_image``: the mean over channels only, [B].
    """
    std = latent.std(dim=1)
    return std.mean(dim=1) if per_image else std.mean()


def lr_ramp(t: float, lr: float, *, rampdown: float = 0.25, rampup: float = 0.05) -> float:
    """rosinality ``get_lr``: linear ramp-up over ``rampup``, cosine ramp-down over the last ``rampdown``.

    t: progress in [0, 1]. Note lr(0) = 0.
    """
    ramp = min(1.0, (1.0 - t) / rampdown)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    return lr * ramp * min(1.0, t / rampup)


# ---------------------------------------------------------------------------------------------
# DualStyleGAN training losses: VGG19 features and the contextual loss (losses.md §3-4)

#: torchvision ``vgg19().features`` index of each ReLU DualStyleGAN reads (model/vgg.py slices
#: 0-1, 2-6, 7-11, 12-20, 21-29).
VGG19_LAYERS = {"relu1_1": 1, "relu2_1": 6, "relu3_1": 11, "relu4_1": 20, "relu5_1": 29}
#: torchvision VGG19 configuration "E": conv widths per block ("M" = 2x2 max pool).
_VGG19_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class VGG19Features(nn.Module):
    """Frozen VGG19 ReLU features of DualStyleGAN's ``model/vgg.py`` (relu1_1 ... relu5_1).

    ``features`` has torchvision's layout and key names (``features.<i>.weight``), truncated after
    the deepest requested layer, so a torchvision ``vgg19`` state dict (``vgg19-dcbb9e9d.pth``)
    loads into it. ``state_dict=None`` keeps seeded random weights (tiny profile; labelled there).
    ``width_divisor`` narrows every conv (tiny profile only; no official weights fit then).

    forward: images [B, 3, H, W] in [-1, 1] -> list of the requested features, in ``layers`` order.
    The input is normalised as ImageNet-normalised ``(x + 1) / 2`` (the official mean ``2m - 1``,
    std ``2s``).
    """

    def __init__(
        self,
        state_dict: Mapping[str, torch.Tensor] | None = None,
        *,
        layers: Sequence[str] = tuple(VGG19_LAYERS),
        width_divisor: int = 1,
    ) -> None:
        super().__init__()
        unknown = [name for name in layers if name not in VGG19_LAYERS]
        if unknown:
            raise ValueError(f"unknown VGG19 layers {unknown}; known: {list(VGG19_LAYERS)}")
        if state_dict is not None and width_divisor != 1:
            raise ValueError("pretrained VGG19 weights need width_divisor=1")
        self.layers = tuple(layers)
        self.pretrained = state_dict is not None
        last = max(VGG19_LAYERS[name] for name in self.layers)
        modules: list[nn.Module] = []
        in_ch = 3
        for item in _VGG19_CFG:
            if item == "M":
                modules.append(nn.MaxPool2d(2, 2))
            else:
                out_ch = max(item // width_divisor, 1)
                modules += [nn.Conv2d(in_ch, out_ch, 3, padding=1), nn.ReLU(inplace=False)]
                in_ch = out_ch
        self.features = nn.Sequential(*modules[: last + 1])
        if state_dict is not None:
            own = self.features.state_dict()
            wanted = {f"features.{k}": k for k in own}
            missing = [k for k in wanted if k not in state_dict]
            if missing:
                raise KeyError(f"VGG19 state dict lacks {missing[:3]} (expected torchvision vgg19 keys)")
            self.features.load_state_dict({v: state_dict[k] for k, v in wanted.items()}, strict=True)
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1) * 2 - 1, persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1) * 2, persistent=False)
        self.eval().requires_grad_(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x: [B, 3, H, W] in [-1, 1] -> features [B, C_k, H_k, W_k] of ``self.layers``."""
        want = {VGG19_LAYERS[name]: name for name in self.layers}
        found: dict[str, torch.Tensor] = {}
        h = (x - self.mean) / self.std
        for index, module in enumerate(self.features):
            h = module(h)
            if index in want:
                found[want[index]] = h
        return [found[name] for name in self.layers]


def contextual_loss(x: torch.Tensor, y: torch.Tensor, *, band_width: float = 0.2) -> torch.Tensor:
    """Cosine contextual loss of DualStyleGAN's ``model/contextual_loss`` (losses.md §3) -> scalar.

    x: generated features [N, C, H, W]; y: exemplar features [N, C, H', W'] (the target).
    Both are centred on y's channel mean (over N, H, W) and unit-normalised per position; the
    relative cosine distances d / (min_j d + 1e-5) become affinities exp((1 - d~) / h), normalised
    over y's positions; loss = mean_n -log(mean_j max_i cx + 1e-5). Memory: an [N, HW, H'W'] matrix.
    """
    mu = y.mean(dim=(0, 2, 3), keepdim=True)
    xs = F.normalize((x - mu).flatten(2), p=2, dim=1)  # [N, C, HW]
    ys = F.normalize((y - mu).flatten(2), p=2, dim=1)
    dist = 1 - torch.bmm(xs.transpose(1, 2), ys)  # [N, HW_x, HW_y]
    rel = dist / (dist.min(dim=2, keepdim=True).values + 1e-5)
    cx = F.softmax((1 - rel) / band_width, dim=2)  # exp(.) / sum_j exp(.), numerically safe
    cx_n = cx.max(dim=1).values.mean(dim=1)  # max over x positions, mean over y positions
    return -torch.log(cx_n + 1e-5).mean()
