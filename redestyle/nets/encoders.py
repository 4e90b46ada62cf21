"""Image -> W+ encoders of pSp, e4e and ReStyle (official state-dict keys).

Every encoder maps an image batch [B, input_nc, S, S] (S = 256 for the FFHQ models, values in
[-1, 1]) to codes [B, n_styles, style_dim] (18 x 512 for a 1024 generator). The codes never
include ``latent_avg``: adding it (pSp/e4e with ``start_from_latent_avg``, ReStyle's first
iteration) or the previous latent (later ReStyle iterations) is the caller's job.

| class | official name | trunk | heads |
|---|---|---|---|
| ``GradualStyleEncoder`` | pSp (also DualStyleGAN's z+ / W+ encoders) | IR-SE50 + FPN | 18 map2style |
| ``Encoder4Editing`` | e4e | IR-SE50 + FPN | w0 + 17 deltas |
| ``BackboneEncoder`` | ReStyle-pSp (FFHQ) | IR-SE50, 6 ch | 18 map2style on 16x16 |
| ``ProgressiveBackboneEncoder`` | ReStyle-e4e (FFHQ) | IR-SE50, 6 ch | w0 + 17 deltas on 16x16 |
| ``ResNetBackboneEncoder`` | ReStyle-pSp (other domains) | ResNet34, 6 ch | 18 map2style |
| ``ResNetProgressiveBackboneEncoder`` | ReStyle-e4e (other domains) | ResNet34, 6 ch | w0 + 17 deltas |

Constructors take plain numbers; ``input_size`` (256 officially) fixes how many stride-2
convolutions each map2style head needs, and ``widths``/``style_dim`` shrink the network for the
``tiny`` profile.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .irse import (
    IRSE_WIDTHS,
    init_from_irse,
    make_body,
    make_input_layer,
    stage_ends,
    widen_input_layer,
)
from .stylegan2 import EqualLinear

__all__ = [
    "GradualStyleBlock",
    "GradualStyleEncoder",
    "Encoder4Editing",
    "BackboneEncoder",
    "ProgressiveBackboneEncoder",
    "ResNetBackboneEncoder",
    "ResNetProgressiveBackboneEncoder",
    "init_from_irse",
    "make_resnet34_trunk",
    "n_styles_for",
    "widen_input_layer",
]

#: pSp/e4e split of the 18 styles over the feature pyramid (``psp_encoders.py``):
#: styles [0, 3) read the 1/16 map, [3, 7) the 1/8 map, [7, n) the 1/4 map.
COARSE_END, MIDDLE_END = 3, 7

#: ResNet34 blocks per stage (torchvision ``resnet34``: layer1..layer4).
RESNET34_UNITS = (3, 4, 6, 3)


def n_styles_for(size: int) -> int:
    """Number of W+ entries of a StyleGAN2 generator of resolution ``size``: 2 log2(size) - 2 (18 at 1024)."""
    log_size = size.bit_length() - 1
    if size < 4 or 1 << log_size != size:
        raise ValueError(f"generator size must be a power of two >= 4, got {size}")
    return 2 * log_size - 2


def _log2_exact(value: int, what: str) -> int:
    log = value.bit_length() - 1
    if value < 1 or 1 << log != value:
        raise ValueError(f"{what} must be a power of two, got {value}")
    return log


class GradualStyleBlock(nn.Module):
    """pSp's map2style head: log2(spatial) stride-2 3x3 convs (+LeakyReLU 0.01) to 1x1, then EqualLinear.

    [B, in_channels, spatial, spatial] -> [B, out_channels]. Keys: ``convs.0``, ``convs.2``, ...
    (the activations sit at the odd indices) and ``linear``.
    """

    def __init__(self, in_channels: int, out_channels: int, spatial: int) -> None:
        super().__init__()
        self.out_channels = out_channels
        layers: list[nn.Module] = []
        for i in range(_log2_exact(spatial, "map2style input size")):
            # nn.LeakyReLU() with its default slope 0.01, as in psp_encoders.py (not StyleGAN's 0.2).
            layers += [
                nn.Conv2d(in_channels if i == 0 else out_channels, out_channels, 3, 2, 1),
                nn.LeakyReLU(),
            ]
        self.convs = nn.Sequential(*layers)
        self.linear = EqualLinear(out_channels, out_channels, lr_mul=1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.convs(x)
        if x.shape[-2:] != (1, 1):
            raise ValueError(
                f"map2style expected to reach 1x1, got {tuple(x.shape[-2:])}: wrong input_size?"
            )
        return self.linear(x.flatten(1))


def _codes_from_heads(styles: nn.ModuleList, feature_for: Callable[[int], Tensor]) -> Tensor:
    """pSp-style codes: head i reads ``feature_for(i)``; -> [B, n_styles, style_dim]."""
    return torch.stack([head(feature_for(i)) for i, head in enumerate(styles)], dim=1)


def _progressive_codes(
    styles: nn.ModuleList, feature_for: Callable[[int], Tensor], stage: int
) -> Tensor:
    """e4e-style codes: entry 0 is w0 = head 0, entry i is w0 + head i for 1 <= i <= stage, else w0.

    ``stage = n_styles - 1`` is e4e's ``ProgressiveStage.Inference`` (all deltas); heads beyond
    ``stage`` are not evaluated (nor are the features only they read).
    """
    w0 = styles[0](feature_for(0))
    zero = torch.zeros_like(w0)
    deltas = [zero] + [
        styles[i](feature_for(i)) if i <= stage else zero for i in range(1, len(styles))
    ]
    return w0.unsqueeze(1) + torch.stack(deltas, dim=1)


class _IRSEEncoder(nn.Module):
    """IR-SE trunk shared by the pSp/e4e/ReStyle encoders: ``input_layer`` + ``body``."""

    def __init__(
        self,
        num_layers: int,
        mode: str,
        input_nc: int,
        n_styles: int,
        style_dim: int,
        input_size: int,
        widths: Sequence[int] | None,
    ) -> None:
        super().__init__()
        self.widths = tuple(IRSE_WIDTHS if widths is None else widths)
        self.input_nc = input_nc
        self.n_styles = n_styles
        self.style_dim = style_dim
        self.input_size = input_size
        if input_size % 16:
            raise ValueError(f"input_size must be a multiple of 16, got {input_size}")
        self.input_layer = make_input_layer(input_nc, self.widths[0])
        self.body = make_body(num_layers, mode, self.widths)
        self._taps = stage_ends(num_layers)[1:]  # ends of stages 2, 3, 4

    def _check_input(self, x: Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.input_nc:
            raise ValueError(
                f"{type(self).__name__} expects [B, {self.input_nc}, H, W], got {tuple(x.shape)}"
            )

    def _features(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """c1 (1/4, widths[1]), c2 (1/8, widths[2]), c3 (1/16, widths[3]) body outputs."""
        self._check_input(x)
        x = self.input_layer(x)
        taps = []
        for i, unit in enumerate(self.body):
            x = unit(x)
            if i in self._taps:
                taps.append(x)
        return taps[0], taps[1], taps[2]


class _PyramidEncoder(_IRSEEncoder):
    """pSp/e4e FPN: c3 -> p2 = up(c3) + latlayer1(c2) -> p1 = up(p2) + latlayer2(c1)."""

    def __init__(
        self,
        num_layers: int,
        mode: str,
        input_nc: int,
        n_styles: int,
        style_dim: int,
        input_size: int,
        widths: Sequence[int] | None,
    ) -> None:
        super().__init__(num_layers, mode, input_nc, n_styles, style_dim, input_size, widths)
        top = self.widths[3]
        self.styles = nn.ModuleList()
        for i in range(n_styles):
            # styles read the 1/16, 1/8 or 1/4 map (16, 32, 64 for a 256 input)
            spatial = input_size // (16 if i < COARSE_END else 8 if i < MIDDLE_END else 4)
            self.styles.append(GradualStyleBlock(top, style_dim, spatial))
        self.latlayer1 = nn.Conv2d(self.widths[2], top, 1)
        self.latlayer2 = nn.Conv2d(self.widths[1], top, 1)

    @staticmethod
    def _upsample_add(x: Tensor, lateral: Tensor) -> Tensor:
        # psp_encoders.py _upsample_add: bilinear with align_corners=True to the lateral's size.
        return (
            F.interpolate(x, size=lateral.shape[-2:], mode="bilinear", align_corners=True) + lateral
        )

    def _pyramid(self, x: Tensor) -> Callable[[int], Tensor]:
        """Run the trunk; return style index -> feature map, building p2/p1 only when first read."""
        c1, c2, c3 = self._features(x)
        cache: dict[str, Tensor] = {}

        def feature_for(i: int) -> Tensor:
            if i < COARSE_END:
                return c3
            if "p2" not in cache:
                cache["p2"] = self._upsample_add(c3, self.latlayer1(c2))
            if i < MIDDLE_END:
                return cache["p2"]
            if "p1" not in cache:
                cache["p1"] = self._upsample_add(cache["p2"], self.latlayer2(c1))
            return cache["p1"]

        return feature_for


class GradualStyleEncoder(_PyramidEncoder):
    """pSp encoder (``psp_ffhq_encode.pt``; DualStyleGAN's ``encoder.pt`` z+ and ``encoder_wplus.pt``).

    Args:
        num_layers, mode: IR trunk depth (50/100/152) and ``"ir_se"``/``"ir"``.
        input_nc: input channels (3).
        n_styles: W+ entries (``n_styles_for(1024)`` = 18).
        style_dim: code width (512).
        input_size: input resolution (256); map2style heads need 1/16, 1/8, 1/4 of it as powers of two.
        widths: IR stage widths (default 64, 128, 256, 512).

    forward: [B, input_nc, S, S] in [-1, 1] -> [B, n_styles, style_dim], without latent_avg.
    """

    def __init__(
        self,
        num_layers: int = 50,
        mode: str = "ir_se",
        *,
        input_nc: int = 3,
        n_styles: int = 18,
        style_dim: int = 512,
        input_size: int = 256,
        widths: Sequence[int] | None = None,
    ) -> None:
        super().__init__(num_layers, mode, input_nc, n_styles, style_dim, input_size, widths)

    def forward(self, x: Tensor) -> Tensor:
        return _codes_from_heads(self.styles, self._pyramid(x))


class Encoder4Editing(_PyramidEncoder):
    """e4e encoder (``e4e_ffhq_encode.pt``): same modules as pSp, codes = w0 + per-entry deltas.

    Same arguments as ``GradualStyleEncoder``. ``progressive_stage`` (attribute) is the number of
    deltas in use, e4e's progressive training schedule; the default ``n_styles - 1`` is its
    ``Inference`` stage (all deltas), the one every released checkpoint runs with.

    forward: [B, input_nc, S, S] -> [B, n_styles, style_dim] (entry i = w0 + delta_i).
    """

    def __init__(
        self,
        num_layers: int = 50,
        mode: str = "ir_se",
        *,
        input_nc: int = 3,
        n_styles: int = 18,
        style_dim: int = 512,
        input_size: int = 256,
        widths: Sequence[int] | None = None,
    ) -> None:
        super().__init__(num_layers, mode, input_nc, n_styles, style_dim, input_size, widths)
        self.progressive_stage = n_styles - 1

    def forward(self, x: Tensor) -> Tensor:
        return _progressive_codes(self.styles, self._pyramid(x), self.progressive_stage)


class _FinalMapEncoder(_IRSEEncoder):
    """ReStyle's IR-SE encoders: every map2style head reads the final 1/16 map (no FPN)."""

    def __init__(
        self,
        num_layers: int,
        mode: str,
        input_nc: int,
        n_styles: int,
        style_dim: int,
        input_size: int,
        widths: Sequence[int] | None,
    ) -> None:
        super().__init__(num_layers, mode, input_nc, n_styles, style_dim, input_size, widths)
        self.styles = nn.ModuleList(
            GradualStyleBlock(self.widths[3], style_dim, input_size // 16) for _ in range(n_styles)
        )

    def _final(self, x: Tensor) -> Tensor:
        self._check_input(x)
        return self.body(self.input_layer(x))


class BackboneEncoder(_FinalMapEncoder):
    """ReStyle-pSp encoder (``restyle_psp_ffhq_encode.pt``): IR-SE50 on [target, current] (6 channels).

    Same arguments as ``GradualStyleEncoder`` but ``input_nc`` defaults to 6.
    forward: [B, input_nc, S, S] -> residual codes [B, n_styles, style_dim].
    """

    def __init__(
        self,
        num_layers: int = 50,
        mode: str = "ir_se",
        *,
        input_nc: int = 6,
        n_styles: int = 18,
        style_dim: int = 512,
        input_size: int = 256,
        widths: Sequence[int] | None = None,
    ) -> None:
        super().__init__(num_layers, mode, input_nc, n_styles, style_dim, input_size, widths)

    def forward(self, x: Tensor) -> Tensor:
        feat = self._final(x)
        return _codes_from_heads(self.styles, lambda i: feat)


class ProgressiveBackboneEncoder(_FinalMapEncoder):
    """ReStyle-e4e encoder (``restyle_e4e_ffhq_encode.pt``): ``BackboneEncoder`` with e4e's w0 + deltas.

    ``progressive_stage`` as in ``Encoder4Editing`` (default: all deltas).
    forward: [B, input_nc, S, S] -> residual codes [B, n_styles, style_dim].
    """

    def __init__(
        self,
        num_layers: int = 50,
        mode: str = "ir_se",
        *,
        input_nc: int = 6,
        n_styles: int = 18,
        style_dim: int = 512,
        input_size: int = 256,
        widths: Sequence[int] | None = None,
    ) -> None:
        super().__init__(num_layers, mode, input_nc, n_styles, style_dim, input_size, widths)
        self.progressive_stage = n_styles - 1

    def forward(self, x: Tensor) -> Tensor:
        feat = self._final(x)
        return _progressive_codes(self.styles, lambda i: feat, self.progressive_stage)


class BasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock (same keys): relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))."""

    def __init__(self, in_channels: int, channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride, bias=False), nn.BatchNorm2d(channels)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(out + shortcut)


def make_resnet34_trunk(input_nc: int, widths: Sequence[int]) -> tuple[nn.Module, nn.Module, nn.Module, nn.Sequential]:
    """ReStyle/HyperStyle's ResNet34 trunk: (conv1 7x7/2, bn1, relu = PReLU, body).

    ``body`` is torchvision resnet34's layer1..layer4 flattened into 16 BasicBlocks (keys
    ``body.0..15``), without the max-pool; it reduces the input 16x to ``widths[3]`` channels.
    """
    conv1 = nn.Conv2d(input_nc, widths[0], 7, 2, 3, bias=False)
    blocks, in_channels = [], widths[0]
    for stage, (channels, count) in enumerate(zip(widths, RESNET34_UNITS)):
        for i in range(count):
            # torchvision: layer1 keeps the resolution, layers 2-4 halve it in their first block.
            blocks.append(BasicBlock(in_channels, channels, 2 if i == 0 and stage > 0 else 1))
            in_channels = channels
    return conv1, nn.BatchNorm2d(widths[0]), nn.PReLU(widths[0]), nn.Sequential(*blocks)


class _ResNetEncoder(nn.Module):
    """ReStyle's ResNet34 trunk: conv7x7/2 + BN + PReLU (no max-pool), layer1..4 flattened as ``body.0..15``."""

    def __init__(
        self,
        input_nc: int,
        n_styles: int,
        style_dim: int,
        input_size: int,
        widths: Sequence[int] | None,
    ) -> None:
        super().__init__()
        widths = tuple(IRSE_WIDTHS if widths is None else widths)  # resnet34 uses the same 64..512
        if len(widths) != 4:
            raise ValueError(f"widths must be four stage widths, got {widths}")
        if input_size % 16:
            raise ValueError(f"input_size must be a multiple of 16, got {input_size}")
        self.input_nc = input_nc
        self.n_styles = n_styles
        self.style_dim = style_dim
        self.input_size = input_size
        self.conv1, self.bn1, self.relu, self.body = make_resnet34_trunk(input_nc, widths)
        self.styles = nn.ModuleList(
            GradualStyleBlock(widths[3], style_dim, input_size // 16) for _ in range(n_styles)
        )

    def _final(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.input_nc:
            raise ValueError(
                f"{type(self).__name__} expects [B, {self.input_nc}, H, W], got {tuple(x.shape)}"
            )
        return self.body(self.relu(self.bn1(self.conv1(x))))


class ResNetBackboneEncoder(_ResNetEncoder):
    """ReStyle-pSp encoder for non-face domains (ResNet34 trunk, ImageNet-initialised officially).

    forward: [B, input_nc, S, S] -> [B, n_styles, style_dim]; the 1/16 map feeds every head.
    """

    def __init__(
        self,
        *,
        input_nc: int = 6,
        n_styles: int = 18,
        style_dim: int = 512,
        input_size: int = 256,
        widths: Sequence[int] | None = None,
    ) -> None:
        super().__init__(input_nc, n_styles, style_dim, input_size, widths)

    def forward(self, x: Tensor) -> Tensor:
        feat = self._final(x)
        return _codes_from_heads(self.styles, lambda i: feat)


class ResNetProgressiveBackboneEncoder(_ResNetEncoder):
    """ReStyle-e4e encoder for non-face domains: ``ResNetBackboneEncoder`` with w0 + deltas.

    ``progressive_stage`` as in ``Encoder4Editing`` (default: all deltas).
    """

    def __init__(
        self,
        *,
        input_nc: int = 6,
        n_styles: int = 18,
        style_dim: int = 512,
        input_size: int = 256,
        widths: Sequence[int] | None = None,
    ) -> None:
        super().__init__(input_nc, n_styles, style_dim, input_size, widths)
        self.progressive_stage = n_styles - 1

    def forward(self, x: Tensor) -> Tensor:
        feat = self._final(x)
        return _progressive_codes(self.styles, lambda i: feat, self.progressive_stage)
