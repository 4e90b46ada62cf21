"""HyperStyle (Alaluf et al., CVPR 2022): a hypernetwork that refines the generator, not the latent.

An image is first inverted by a frozen W encoder (``WEncoder``, HyperStyle's
``faces_w_encoder.pt``); the latent then stays fixed. Each of ``n_iters`` iterations feeds
``[target, current reconstruction]`` (6 channels) to ``HyperNetwork``, which predicts one
multiplicative offset per tuned generator convolution (a tuned layer uses ``weight * (1 + delta)``);
the offsets are summed over iterations and decoded through the StyleGAN2 ``Generator``'s
``weights_deltas`` hook. This module holds the networks; the iteration loop is
:func:`redestyle.inversion.hyperstyle_invert`.

Key names follow the official code (yuval-alaluf/hyperstyle ``models/hypernetworks/*.py``,
``models/encoders/w_encoder.py``), so ``hyperstyle_ffhq.pt`` (``hypernet.*``) and
``faces_w_encoder.pt`` (``encoder.*``) load strictly. One quirk of that format: the shared
hypernetwork is one module registered under ``shared_weight_hypernet`` *and* inside every shared
refinement block, so its four tensors appear under ten keys each; here too they are one module, so
every alias loads into (and always reads back) the same tensor.

Output index -> generator layer (26 outputs for 1024 px): 0 ``conv1``, 1 ``to_rgb1``, then for
block k: ``2 + 3k`` ``convs[2k]`` (up-sampling), ``3 + 3k`` ``convs[2k + 1]``, ``4 + 3k``
``to_rgbs[k]``. The released model tunes every non-ToRGB layer and shares one hypernetwork among
the 512 -> 512 convolutions up to 64 px.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn

from .encoders import make_resnet34_trunk
from .irse import IRSE_WIDTHS, make_body, make_input_layer
from .stylegan2 import EqualLinear, default_channels

__all__ = [
    "LAYERS_TO_TUNE",
    "SHARED_LAYERS",
    "HyperNetwork",
    "HyperRefinementBlock",
    "LayerShape",
    "RefinementBlock",
    "SharedWeightsHypernet",
    "WEncoder",
    "layer_shapes_from_channels",
    "layer_shapes_of",
    "tuned_convs",
]

#: Layers the released ``hyperstyle_ffhq.pt`` tunes (its ``opts.layers_to_tune``): every non-ToRGB conv.
LAYERS_TO_TUNE: tuple[int, ...] = (0, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 23, 24)

#: Layers served by the shared hypernetwork (``hypernetwork.py``: the 512 -> 512 3x3 convs up to 64 px).
SHARED_LAYERS: tuple[int, ...] = (0, 2, 3, 5, 6, 8, 9, 11, 12)


class LayerShape(NamedTuple):
    """One modulated conv as (kernel_size, in, out), HyperStyle's ``PARAMETERS`` order; its weight is [out, in, k, k]."""

    kernel_size: int
    in_channels: int
    out_channels: int


def layer_shapes_from_channels(
    channels: Mapping[int, int], *, rgb_channels: int = 3
) -> tuple[LayerShape, ...]:
    """Shapes of a generator's modulated convs in hypernetwork output order.

    ``channels``: resolution -> width for 4, 8, ..., size (rosinality's table). For the config-f
    table this reproduces HyperStyle's ``refinement_blocks.PARAMETERS`` (26 entries).
    """
    sizes = sorted(channels)
    if sizes[0] != 4 or any(b != 2 * a for a, b in zip(sizes, sizes[1:])):
        raise ValueError(
            f"channels must cover 4, 8, ..., size without gaps, got resolutions {sizes}"
        )
    shapes = [LayerShape(3, channels[4], channels[4]), LayerShape(1, channels[4], rgb_channels)]
    for low, high in zip(sizes, sizes[1:]):
        shapes += [
            LayerShape(3, channels[low], channels[high]),  # up-sampling conv
            LayerShape(3, channels[high], channels[high]),
            LayerShape(1, channels[high], rgb_channels),  # ToRGB
        ]
    return tuple(shapes)


def tuned_convs(generator: nn.Module) -> list[nn.Module]:
    """The ``ModulatedConv2d`` of every layer a hypernetwork can tune, in output-index order.

    ``generator``: a ``redestyle.nets.stylegan2.Generator`` (rosinality layout).
    """
    convs = [generator.conv1.conv, generator.to_rgb1.conv]
    for k, to_rgb in enumerate(generator.to_rgbs):
        convs += [generator.convs[2 * k].conv, generator.convs[2 * k + 1].conv, to_rgb.conv]
    return convs


def layer_shapes_of(generator: nn.Module) -> tuple[LayerShape, ...]:
    """``layer_shapes_from_channels`` read off a built generator (its conv weights [1, out, in, k, k])."""
    return tuple(
        LayerShape(int(c.weight.shape[-1]), int(c.weight.shape[2]), int(c.weight.shape[1]))
        for c in tuned_convs(generator)
    )


def _log2_exact(value: int, what: str) -> int:
    log = int(math.log2(value)) if value > 0 else -1
    if log < 0 or 1 << log != value:
        raise ValueError(f"{what} must be a power of two, got {value}")
    return log


def _conv_stack(
    in_channels: int, inner: int, out_channels: int, strides: Sequence[int]
) -> nn.Sequential:
    """conv3x3 + LeakyReLU(0.01) per stride: in -> inner -> ... -> inner -> out (keys 0, 2, 4, ...)."""
    widths = [in_channels] + [inner] * (len(strides) - 1) + [out_channels]
    layers: list[nn.Module] = []
    for c_in, c_out, stride in zip(widths, widths[1:], strides):
        # nn.LeakyReLU() with torch's default slope 0.01, as in refinement_blocks.py.
        layers += [nn.Conv2d(c_in, c_out, 3, stride, 1), nn.LeakyReLU()]
    return nn.Sequential(*layers)


class SharedWeightsHypernet(nn.Module):
    """HyperStyle's shared hypernetwork: code [B, z_dim] -> weight delta [B, out, in, k, k].

    Two linear maps (``shared_weights_hypernet.py``): ``h = code @ w2 + b2`` gives one z_dim-vector
    per input channel ([B, in, z_dim]); ``h @ w1 + b1`` turns each into ``out * k * k`` values.
    The [B, in, out * k * k] result is *reinterpreted* (a view, not a transpose) as
    [B, out, in, k, k], exactly as the official code does.
    """

    def __init__(
        self,
        *,
        z_dim: int = 512,
        in_channels: int = 512,
        out_channels: int = 512,
        kernel_size: int = 3,
    ) -> None:
        super().__init__()
        self.z_dim, self.in_channels, self.out_channels = z_dim, in_channels, out_channels
        self.kernel_size = kernel_size
        taps = out_channels * kernel_size * kernel_size
        self.w1 = nn.Parameter(torch.empty(z_dim, taps))
        self.b1 = nn.Parameter(torch.empty(taps))
        self.w2 = nn.Parameter(torch.empty(z_dim, in_channels * z_dim))
        self.b2 = nn.Parameter(torch.empty(in_channels * z_dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The official init: fmod(N(0, 1) / 40, 2) for all four tensors."""
        with torch.no_grad():
            for p in (self.w1, self.b1, self.w2, self.b2):
                p.copy_(torch.fmod(torch.randn_like(p) / 40, 2))

    def forward(self, code: Tensor) -> Tensor:
        """[B, z_dim] -> [B, out, in, k, k]."""
        batch = code.shape[0]
        h = (code @ self.w2 + self.b2).view(batch, self.in_channels, self.z_dim)
        kernel = h @ self.w1 + self.b1  # [B, in, out * k * k]
        k = self.kernel_size
        return kernel.view(batch, self.out_channels, self.in_channels, k, k)


class HyperRefinementBlock(nn.Module):
    """Head of a shared layer: features [B, n_channels, S, S] -> code [B, code_dim] -> shared hypernet.

    ``convs``: one stride-1 conv to ``inner``, then log2(S) stride-2 convs down to 1x1 (the last one
    to ``code_dim``); ``linear``: EqualLinear(code_dim, code_dim). ``hypernet`` is the shared
    module (registered here too, hence the aliased keys).
    """

    def __init__(
        self,
        hypernet: SharedWeightsHypernet,
        *,
        n_channels: int = 512,
        inner: int = 128,
        code_dim: int = 512,
        spatial: int = 16,
    ) -> None:
        super().__init__()
        if hypernet.z_dim != code_dim:
            raise ValueError(f"shared hypernet z_dim {hypernet.z_dim} != code_dim {code_dim}")
        n_down = max(_log2_exact(spatial, "spatial"), 1)
        self.convs = _conv_stack(n_channels, inner, code_dim, [1] + [2] * n_down)
        self.linear = EqualLinear(code_dim, code_dim)
        self.hypernet = hypernet

    def forward(self, features: Tensor) -> Tensor:
        """[B, n_channels, S, S] -> delta [B, out, in, k, k]."""
        code = self.linear(self.convs(features).flatten(1))
        return self.hypernet(code)


class RefinementBlock(nn.Module):
    """Head of a non-shared layer: features [B, n_channels, S, S] -> delta [B, out, in, k, k].

    3x3 layers: stride-2 convs down to 2x2, ``output`` = [global average pool, 1x1 conv to
    in * out]; one value per (out, in) pair, repeated over the k x k taps. ToRGB (1x1) layers: one
    more stride-2 conv down to 1x1 and ``output`` = [1x1 conv] (``refinement_blocks.py``).
    """

    def __init__(
        self,
        shape: LayerShape,
        *,
        n_channels: int = 512,
        inner: int = 256,
        code_dim: int = 512,
        spatial: int = 16,
    ) -> None:
        super().__init__()
        self.shape = LayerShape(*shape)
        self.to_rgb = self.shape.kernel_size == 1
        n_down = _log2_exact(spatial, "spatial") - (0 if self.to_rgb else 1)
        self.convs = _conv_stack(n_channels, inner, code_dim, [2] * max(n_down, 2))
        n_values = self.shape.in_channels * self.shape.out_channels
        head = [nn.Conv2d(code_dim, n_values, 1)]
        self.output = (
            nn.Sequential(*head) if self.to_rgb else nn.Sequential(nn.AdaptiveAvgPool2d(1), *head)
        )

    def forward(self, features: Tensor) -> Tensor:
        """[B, n_channels, S, S] -> [B, out, in, k, k]."""
        k, c_in, c_out = self.shape
        values = self.output(self.convs(features))
        if self.to_rgb:
            return values.view(-1, c_out, c_in, k, k)
        # Same value at every tap; a broadcast view of what the official code materialises with repeat.
        return values.view(-1, c_out, c_in, 1, 1).expand(-1, c_out, c_in, k, k)


class HyperNetwork(nn.Module):
    """HyperStyle's ``SharedWeightsHyperNetResNet``: [B, input_nc, S, S] -> per-layer weight deltas.

    Args:
        layer_shapes: generator conv shapes in output order (``layer_shapes_of(generator)``);
            default: the FFHQ config-f 1024 generator (26 outputs).
        layers_to_tune: output indices that get a head (default: every non-ToRGB layer, which is
            ``LAYERS_TO_TUNE`` for 1024); the others output None and have no keys.
        shared_layers: tuned indices served by the shared hypernetwork (default: the official
            list, restricted to existing layers); they must all have the same shape.
        input_nc: input channels (6: target image and current reconstruction).
        input_size: input side S (256); the trunk reduces it 16x, which fixes the heads' depth.
        widths: ResNet34 stage widths (64, 128, 256, 512).
        code_dim: width of every head's last conv and of the shared code (512).
        hyper_inner, refine_inner: inner widths of the shared (128) and plain (256) heads.

    Trunk: ``conv1`` 7x7/2, ``bn1``, ``relu`` (PReLU), ``body`` = torchvision resnet34
    layer1..layer4 flattened (``body.0..15``; no max-pool), features [B, widths[3], S/16, S/16].
    ``refinement_blocks`` has one slot per output (None where untuned), as in the official file.
    Use ``eval()``: the trunk has BatchNorm.
    """

    def __init__(
        self,
        layer_shapes: Sequence[Sequence[int]] | None = None,
        *,
        layers_to_tune: Sequence[int] | None = None,
        shared_layers: Sequence[int] | None = None,
        input_nc: int = 6,
        input_size: int = 256,
        widths: Sequence[int] = IRSE_WIDTHS,
        code_dim: int = 512,
        hyper_inner: int = 128,
        refine_inner: int = 256,
    ) -> None:
        super().__init__()
        shapes = tuple(
            LayerShape(*s)
            for s in (layer_shapes or layer_shapes_from_channels(default_channels(2)))
        )
        widths = tuple(widths)
        if len(widths) != 4:
            raise ValueError(f"widths must be four stage widths, got {widths}")
        if input_size % 16:
            raise ValueError(f"input_size must be a multiple of 16, got {input_size}")
        if layers_to_tune is None:
            layers_to_tune = [i for i, s in enumerate(shapes) if s.kernel_size != 1]
        tuned = sorted(set(layers_to_tune))
        if tuned and not 0 <= tuned[0] <= tuned[-1] < len(shapes):
            raise ValueError(f"layers_to_tune {tuned} outside 0..{len(shapes) - 1}")
        if shared_layers is None:
            shared_layers = [i for i in SHARED_LAYERS if i < len(shapes)]
        shared = [i for i in tuned if i in set(shared_layers)]
        if shared and any(shapes[i] != shapes[shared[0]] for i in shared):
            found = {i: tuple(shapes[i]) for i in shared}
            raise ValueError(f"shared layers must have one shape; got (k, in, out) = {found}")

        self.layer_shapes = shapes
        self.layers_to_tune = tuple(tuned)
        self.shared_layers = tuple(shared)
        self.input_nc, self.input_size = input_nc, input_size

        # The trunk is ReStyle's ResNet34 encoder trunk (same keys: conv1, bn1, relu, body.0..15).
        self.conv1, self.bn1, self.relu, self.body = make_resnet34_trunk(input_nc, widths)

        spatial = input_size // 16
        k, c_in, c_out = shapes[shared[0]] if shared else (3, code_dim, code_dim)
        self.shared_weight_hypernet = SharedWeightsHypernet(
            z_dim=code_dim, in_channels=c_in, out_channels=c_out, kernel_size=k
        )
        self.refinement_blocks = nn.ModuleList()
        for idx, shape in enumerate(shapes):
            block: nn.Module | None = None
            if idx in shared:
                block = HyperRefinementBlock(
                    self.shared_weight_hypernet,
                    n_channels=widths[3],
                    inner=hyper_inner,
                    code_dim=code_dim,
                    spatial=spatial,
                )
            elif idx in tuned:
                block = RefinementBlock(
                    shape,
                    n_channels=widths[3],
                    inner=refine_inner,
                    code_dim=code_dim,
                    spatial=spatial,
                )
            self.refinement_blocks.append(block)  # None keeps the official slot numbering
        self.register_load_state_dict_pre_hook(_check_aliases_agree)

    def features(self, x: Tensor) -> Tensor:
        """Trunk: [B, input_nc, S, S] -> [B, widths[3], S/16, S/16]."""
        if x.ndim != 4 or x.shape[1] != self.input_nc:
            raise ValueError(
                f"HyperNetwork expects [B, {self.input_nc}, H, W], got {tuple(x.shape)}"
            )
        return self.body(self.relu(self.bn1(self.conv1(x))))

    def forward(self, x: Tensor) -> list[Tensor | None]:
        """[B, input_nc, S, S] in [-1, 1] -> one entry per generator layer: [B, out, in, k, k] or None."""
        feat = self.features(x)
        return [None if block is None else block(feat) for block in self.refinement_blocks]


def _check_aliases_agree(
    module: HyperNetwork,
    state_dict: Mapping[str, Tensor],
    prefix: str,
    local_metadata: dict,
    strict: bool,
    missing_keys: list[str],
    unexpected_keys: list[str],
    error_msgs: list[str],
) -> None:
    """A checkpoint's aliased keys must hold one value: loading would otherwise keep whichever came last."""
    for idx in module.shared_layers:
        for name in ("w1", "b1", "w2", "b2"):
            main = state_dict.get(f"{prefix}shared_weight_hypernet.{name}")
            alias = state_dict.get(f"{prefix}refinement_blocks.{idx}.hypernet.{name}")
            if main is None or alias is None or alias is main:
                continue  # a missing key is reported by load_state_dict itself
            if main.shape != alias.shape or not torch.equal(main, alias):
                error_msgs.append(
                    f"{prefix}refinement_blocks.{idx}.hypernet.{name} differs from "
                    f"{prefix}shared_weight_hypernet.{name}, but both name the one shared hypernetwork"
                )


class WEncoder(nn.Module):
    """HyperStyle's W encoder (``w_encoder.py``): IR-SE trunk -> one w, repeated n_latent times.

    input_layer (3 ch) -> IR-SE body -> global average pool -> ``linear`` EqualLinear(widths[3],
    style_dim). forward: [B, 3, S, S] in [-1, 1] -> [B, n_latent, style_dim] *without* latent_avg.
    Use ``eval()``.
    """

    def __init__(
        self,
        num_layers: int = 50,
        mode: str = "ir_se",
        *,
        n_latent: int = 18,
        style_dim: int = 512,
        widths: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        widths = tuple(IRSE_WIDTHS if widths is None else widths)
        self.n_latent, self.style_dim = n_latent, style_dim
        self.input_layer = make_input_layer(3, widths[0])
        self.body = make_body(num_layers, mode, widths)
        self.linear = EqualLinear(widths[3], style_dim)

    def forward(self, x: Tensor) -> Tensor:
        """[B, 3, S, S] -> [B, n_latent, style_dim]."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"WEncoder expects [B, 3, H, W], got {tuple(x.shape)}")
        w = self.linear(self.body(self.input_layer(x)).mean(dim=(2, 3)))
        return w.unsqueeze(1).repeat(1, self.n_latent, 1)
