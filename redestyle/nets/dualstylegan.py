"""DualStyleGAN: a StyleGAN2 generator with an extrinsic style path (Yang et al., CVPR 2022).

The network composes an ordinary :class:`~redestyle.nets.stylegan2.Generator` (``self.generator``,
the *intrinsic* path, FFHQ weights, never trained by the DualStyleGAN scripts) and adds the
*extrinsic* path that injects an exemplar's style code:

* ``style``: the structure transform **T_s**, ``PixelNorm`` + ``n_mlp - 6`` equalized linear
  layers (lr_mul 0.01, fused leaky ReLU) applied to each extrinsic w;
* ``res[j]`` for layer index ``j <= res_index``: **ModRes** blocks (:class:`AdaResBlock`), residual
  blocks modulated by ``T_s(exstyle[:, j])`` and added after the intrinsic conv of layer ``j``
  (4 to 32 px for ``res_index = 6`` at 1024), scaled by ``interp_weights[j]``: the *structure*;
* ``res[j]`` for ``j > res_index``: the colour transform **T_c**, an equalized linear layer per
  layer; layer ``j``'s style becomes ``w_j * T_c(exstyle[:, j]) + (1 - w_j) * latent[:, j]``:
  the *colour*.

Hence the 18 interpolation weights at 1024 split as 7 structure + 11 colour weights
(``style_transfer.py --weight``). Facts, key names and call semantics come from
williamyang1991/DualStyleGAN ``model/dualstylegan.py`` (commit b3f0cf8e); the parity fixture
``dualstylegan1024`` proves that :meth:`DualStyleGAN.forward` matches it.

Latent spaces of the intrinsic code (see :meth:`DualStyleGAN.forward`):

* **W+** (Re-Destyle codes, ReStyle/pSp encoders): ``forward([w_plus], exstyle, input_is_latent=True)``
  or directly :meth:`DualStyleGAN.synthesize`;
* **z+** (DualStyleGAN's own ``instyle_code.npy``, its ``encoder.pt``): ``forward([z_plus], exstyle,
  z_plus_latent=True)``, which maps every layer's z separately (``Generator.mapping_plus``);
* **z** ([B, 512], random sampling): ``forward([z], exstyle)``.

The extrinsic code ``exstyle`` is always in **W** ([B, 512]) or **W+** ([B, n_latent, 512]); the
official scripts map their z+ ``exstyle_code.npy`` entries through ``generator.style`` first
(:func:`style_transfer` does this for you).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .stylegan2 import ConvLayer, EqualLinear, Generator, PixelNorm

__all__ = ["AdaptiveInstanceNorm", "AdaResBlock", "DualStyleGAN", "style_transfer"]


class AdaptiveInstanceNorm(nn.Module):
    """AdaIN: ``gamma * InstanceNorm(x) + beta`` with ``(gamma, beta) = split(style(s))``.

    ``style`` is a plain (not equalized) ``nn.Linear(style_dim, 2 * channels)`` whose bias starts at
    1 for gamma and 0 for beta, so the block starts as a plain instance norm.
    """

    def __init__(self, channels: int, style_dim: int) -> None:
        super().__init__()
        self.channels = channels
        self.style = nn.Linear(style_dim, 2 * channels)
        with torch.no_grad():
            self.style.bias[:channels] = 1.0
            self.style.bias[channels:] = 0.0

    def forward(self, x: Tensor, s: Tensor) -> Tensor:
        """x: [B, C, H, W]; s: [B, style_dim] -> [B, C, H, W]."""
        gamma, beta = self.style(s)[:, :, None, None].chunk(2, dim=1)
        # InstanceNorm2d(affine=False) defaults: eps 1e-5, no running stats.
        return gamma * F.instance_norm(x, eps=1e-5) + beta


class AdaResBlock(nn.Module):
    """ModRes: a residual block modulated by the structure code, ``x + w * conv2(norm2(conv(norm(x))))``.

    Keys ``conv.0.weight``, ``conv.1.bias``, ``conv2.*`` (two 3x3 ``ConvLayer``) and
    ``norm.style.*``, ``norm2.style.*`` (:class:`AdaptiveInstanceNorm`), as in the official
    ``AdaResBlock``. Both norms read the same style vector.
    """

    def __init__(self, channels: int, style_dim: int = 512) -> None:
        super().__init__()
        self.conv = ConvLayer(channels, channels, 3)
        self.conv2 = ConvLayer(channels, channels, 3)
        self.norm = AdaptiveInstanceNorm(channels, style_dim)
        self.norm2 = AdaptiveInstanceNorm(channels, style_dim)
        with torch.no_grad():
            # The residual starts near zero, so the pretrained StyleGAN2 output is kept at first.
            self.conv[0].weight.mul_(0.01)
            self.conv2[0].weight.mul_(0.01)

    def forward(self, x: Tensor, s: Tensor, weight: float | Tensor = 1.0) -> Tensor:
        """x: [B, C, H, W]; s: [B, style_dim] (T_s output); weight: residual scale -> [B, C, H, W]."""
        if isinstance(weight, (int, float)) and weight == 0:
            return x  # the official block skips the residual entirely for a zero weight
        r = self.conv(self.norm(x, s))
        r = self.conv2(self.norm2(r, s))
        return r * weight + x


def _color_transform(style_dim: int) -> EqualLinear:
    """A T_c layer initialised near the identity: stored weight ``I * sqrt(d) + 0.01 * N(0, 1)``.

    EqualLinear scales its weight by ``1 / sqrt(d)`` at run time, so the effective map is about ``I``.
    """
    layer = EqualLinear(style_dim, style_dim)
    with torch.no_grad():
        layer.weight.copy_(
            torch.eye(style_dim) * math.sqrt(style_dim) + 0.01 * torch.randn(style_dim, style_dim)
        )
        layer.bias.zero_()
    return layer


class DualStyleGAN(nn.Module):
    """DualStyleGAN generator; ``state_dict`` keys equal the official ``g_ema`` of ``generator.pt``.

    Args:
        size: output resolution (1024 for every released model).
        style_dim: width of z / w (512).
        n_mlp: mapping layers of the intrinsic generator (8); T_s gets ``n_mlp - 6`` of them.
        channel_multiplier: StyleGAN2 width multiplier (2 = config-f).
        twoRes: accepted for signature compatibility; unused, as in the official code.
        res_index: last layer index with a ModRes block, rounded down to even (6: 4 to 32 px).
        channels: optional resolution -> width table for small profiles (see ``Generator``).
        structure_mlp: number of T_s linear layers; None keeps the official ``max(n_mlp - 6, 0)``
            (keyword-only, for small profiles whose generator has fewer mapping layers).
    """

    def __init__(
        self,
        size: int,
        style_dim: int,
        n_mlp: int,
        channel_multiplier: int = 2,
        twoRes: bool = True,  # noqa: N803 -- official argument name, unused there too
        res_index: int = 6,
        channels: dict[int, int] | None = None,
        *,
        structure_mlp: int | None = None,
    ) -> None:
        super().__init__()
        self.generator = Generator(
            size, style_dim, n_mlp, channel_multiplier=channel_multiplier, channels=channels
        )
        self.style_dim = style_dim
        self.n_latent = self.generator.n_latent
        # Official: self.res_index = res_index // 2 * 2 (ModRes comes in pairs per resolution).
        self.res_index = res_index // 2 * 2
        if not 0 <= self.res_index < self.n_latent - 1:
            raise ValueError(
                f"res_index must be in [0, {self.n_latent - 2}] for size {size}, got {res_index}"
            )

        # Structure transform T_s: PixelNorm, then n_mlp - 6 equalized layers (key style.1, style.2).
        n_structure = max(n_mlp - 6, 0) if structure_mlp is None else structure_mlp
        self.style = nn.Sequential(
            PixelNorm(),
            *(
                EqualLinear(style_dim, style_dim, lr_mul=0.01, activation="fused_lrelu")
                for _ in range(n_structure)
            ),
        )

        # res[j] belongs to W+ index j: ModRes for j <= res_index (after conv j, at its width),
        # T_c for j > res_index; conv j is conv1 for j = 0, else convs[j - 1]; the last entry
        # (j = n_latent - 1) only styles the last ToRGB.
        g = self.generator
        convs = [g.conv1, *g.convs]
        self.res = nn.ModuleList(
            AdaResBlock(convs[j].conv.weight.shape[1], style_dim)
            if j <= self.res_index
            else _color_transform(style_dim)
            for j in range(self.n_latent)
        )

    # ------------------------------------------------------------------ codes

    def mapping_plus(self, z_plus: Tensor) -> Tensor:
        """z+ [B, n, style_dim] -> W+ [B, n, style_dim], every layer's z mapped separately."""
        return self.generator.mapping_plus(z_plus)

    def extrinsic_codes(self, exstyle: Tensor) -> tuple[Tensor, Tensor]:
        """W [B, D] or W+ [B, n_latent, D] extrinsic code -> (T_s codes, T_c inputs), both [B, n_latent, D].

        The first feeds the ModRes blocks, the second (the code itself, broadcast) the T_c layers.
        """
        if exstyle.ndim == 2:
            exstyle = exstyle[:, None].expand(-1, self.n_latent, -1)
        if exstyle.ndim != 3 or exstyle.shape[1:] != (self.n_latent, self.style_dim):
            raise ValueError(
                f"exstyle must be [B, {self.style_dim}] or [B, {self.n_latent}, {self.style_dim}], "
                f"got {tuple(exstyle.shape)}"
            )
        b, n, d = exstyle.shape
        structure = self.style(exstyle.reshape(b * n, d)).reshape(b, n, d)
        return structure, exstyle

    def intrinsic_latent(
        self,
        styles: Sequence[Tensor],
        *,
        input_is_latent: bool = False,
        z_plus_latent: bool = False,
        truncation: float = 1.0,
        truncation_latent: Tensor | float | None = None,
        inject_index: int | None = None,
    ) -> Tensor:
        """The W+ [B, n_latent, D] the intrinsic path uses (official forward, steps before synthesis).

        ``styles``: one code, or two for style mixing, each z / w [B, D] or z+ / W+ [B, n_latent, D].
        Codes are mapped unless ``input_is_latent`` (z+ per layer when ``z_plus_latent``), then
        truncated toward ``truncation_latent`` when ``truncation < 1`` (the scripts pass 0, the origin of
        W), then mixed: layers < ``inject_index`` (default random in [1, n_latent - 1]) from the first.
        """
        styles = list(styles)
        if not 1 <= len(styles) <= 2:
            raise ValueError(f"styles must hold one code, or two for mixing; got {len(styles)}")
        return self.generator.latent(styles, input_is_latent=input_is_latent, z_plus_latent=z_plus_latent,
                                     truncation=truncation, truncation_latent=truncation_latent,
                                     inject_index=inject_index)

    # ------------------------------------------------------------------ synthesis

    def synthesize(
        self,
        latent: Tensor,
        exstyle: Tensor | None = None,
        *,
        interp_weights: Sequence[float] | None = None,
        fuse_index: int | None = None,
        noise: Sequence[Tensor | None] | None = None,
        randomize_noise: bool = False,
    ) -> Tensor:
        """Image [B, 3, size, size] (about [-1, 1], not clamped) from an intrinsic W+ and an extrinsic code.

        latent: intrinsic W+ [B, n_latent, D]. exstyle: extrinsic W / W+ (see :meth:`extrinsic_codes`);
        None gives the plain StyleGAN2 image of ``latent``. interp_weights: n_latent floats (None: all
        1): weight j scales ModRes j (j <= res_index) or blends T_c for layer j (j > res_index); all
        zeros reproduce the plain image. fuse_index: the extrinsic path acts only on layers
        j <= fuse_index (None: all; 0: none). noise: explicit per-layer noise, else the generator's
        fixed buffers, or fresh noise with ``randomize_noise``.
        """
        g = self.generator
        if latent.ndim != 3 or latent.shape[1:] != (self.n_latent, self.style_dim):
            raise ValueError(
                f"latent must be W+ [B, {self.n_latent}, {self.style_dim}], got {tuple(latent.shape)}"
            )
        weights = [1.0] * self.n_latent if interp_weights is None else list(interp_weights)
        if len(weights) != self.n_latent:
            raise ValueError(f"interp_weights needs {self.n_latent} entries, got {len(weights)}")
        fuse = self.n_latent if fuse_index is None else fuse_index
        if noise is None:
            noise = [None] * g.num_layers if randomize_noise else g.registered_noise()
        if exstyle is not None:
            structure, color = self.extrinsic_codes(exstyle)

        def active(j: int) -> bool:
            # Official: res.0 needs fuse_index > 0, layer j >= 1 needs fuse_index >= j.
            return exstyle is not None and fuse > 0 and j <= fuse

        def style_of(j: int) -> Tensor:
            """Layer j's modulation style: T_c blend above res_index, intrinsic w otherwise."""
            if active(j) and j > self.res_index:
                return weights[j] * self.res[j](color[:, j]) + (1 - weights[j]) * latent[:, j]
            return latent[:, j]

        def modres(h: Tensor, j: int) -> Tensor:
            """ModRes residual after layer j's conv, for j <= res_index."""
            if active(j) and j <= self.res_index:
                return self.res[j](h, structure[:, j], weights[j])
            return h

        # channels_last: oneDNN's fast convolution layout on CPU (as Generator's own synthesis)
        h = g.input(latent.shape[0]).contiguous(memory_format=torch.channels_last)
        h = modres(g.conv1(h, style_of(0), noise=noise[0]), 0)
        skip = g.to_rgb1(h, latent[:, 1])  # official: to_rgb1 always takes the intrinsic w
        for k, to_rgb in enumerate(g.to_rgbs):
            j = 2 * k + 1  # W+ index of this resolution's up-conv
            h = modres(g.convs[2 * k](h, style_of(j), noise=noise[j]), j)
            h = modres(g.convs[2 * k + 1](h, style_of(j + 1), noise=noise[j + 1]), j + 1)
            skip = to_rgb(h, style_of(j + 2), skip)
        return skip.contiguous()

    def forward(
        self,
        styles: Sequence[Tensor],
        exstyles: Tensor | None,
        *,
        return_latents: bool = False,
        inject_index: int | None = None,
        truncation: float = 1.0,
        truncation_latent: Tensor | float | None = None,
        input_is_latent: bool = False,
        noise: Sequence[Tensor | None] | None = None,
        randomize_noise: bool = True,
        z_plus_latent: bool = False,
        use_res: bool = True,
        fuse_index: int = 18,
        interp_weights: Sequence[float] | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Official ``DualStyleGAN.forward`` semantics -> (image [B, 3, size, size], W+ latent or None).

        styles: list of intrinsic codes (see :meth:`intrinsic_latent`): W+ from Re-Destyle with
        ``input_is_latent=True``; z+ from DualStyleGAN's encoder with ``z_plus_latent=True``; z otherwise.
        exstyles: extrinsic W [B, D] / W+ [B, n_latent, D] (ignored when ``use_res=False``).
        interp_weights: None means ``[1] * n_latent``. ``randomize_noise`` defaults to True as upstream;
        pass False for the generator's fixed noise buffers. ``fuse_index`` as in :meth:`synthesize`.
        The official ``return_feat`` is not supported.
        """
        latent = self.intrinsic_latent(
            styles,
            input_is_latent=input_is_latent,
            z_plus_latent=z_plus_latent,
            truncation=truncation,
            truncation_latent=truncation_latent,
            inject_index=inject_index,
        )
        image = self.synthesize(
            latent,
            exstyles if use_res else None,
            interp_weights=interp_weights,
            fuse_index=fuse_index,
            noise=noise,
            randomize_noise=randomize_noise,
        )
        return image, (latent if return_latents else None)

    # ------------------------------------------------------------------ helpers

    def make_noise(self, *, generator: torch.Generator | None = None) -> list[Tensor]:
        """Fresh per-layer noise (delegates to the intrinsic generator)."""
        return self.generator.make_noise(generator=generator)

    def mean_latent(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """Mean w [1, D] of ``n`` mapped z samples (delegates to the intrinsic generator)."""
        return self.generator.mean_latent(n, generator=generator)

    def default_interp_weights(
        self, structure_weight: float = 0.75, color_weight: float = 1.0
    ) -> list[float]:
        """``[structure_weight] * (res_index + 1) + [color_weight] * rest`` ([0.75]*7 + [1]*11 at 1024)."""
        n_structure = self.res_index + 1
        return [float(structure_weight)] * n_structure + [float(color_weight)] * (
            self.n_latent - n_structure
        )


def style_transfer(
    generator: DualStyleGAN,
    instyle: Tensor,
    exstyle: Tensor,
    *,
    structure_weight: float = 0.75,
    color_weight: float = 1.0,
    interp_weights: Sequence[float] | None = None,
    wplus: bool = False,
    exstyle_wplus: bool = False,
    preserve_color: bool = False,
    truncation: float = 0.75,
    randomize_noise: bool = False,
    clamp: bool = True,
) -> Tensor:
    """Stylize faces as DualStyleGAN's ``style_transfer.py`` does -> images [B, 3, size, size].

    instyle: intrinsic code [B, n_latent, D], z+ (``wplus=False``, DualStyleGAN's ``encoder.pt``,
    ``instyle_code.npy``) or W+ (``wplus=True``: ``encoder_wplus.pt``, Re-Destyle codes).
    exstyle: extrinsic code [B, n_latent, D] (or [1, ...], broadcast), z+ as stored in
    ``exstyle_code.npy`` (mapped per layer here, as the script does) or W+ with ``exstyle_wplus=True``
    (Re-Destyle codes). interp_weights default to ``generator.default_interp_weights(structure_weight,
    color_weight)`` (the script's ``--weight`` default [0.75]*7 + [1]*11). ``preserve_color`` copies the
    content's colour layers (index > res_index, 7:18 at 1024) into the extrinsic code; mapping is per
    layer, so copying before (z+, as the script) or after mapping is the same. Truncation pulls the
    intrinsic W+ toward 0 (the script's ``truncation_latent=0``). Noise: the fixed buffers unless
    ``randomize_noise`` (the script uses random noise). ``clamp`` clips to [-1, 1] like the script.
    """
    ex_w = exstyle if exstyle_wplus else generator.mapping_plus(exstyle)
    ex_w = ex_w.expand(instyle.shape[0], -1, -1)
    if preserve_color:
        in_w = instyle if wplus else generator.mapping_plus(instyle)
        first_color = generator.res_index + 1
        ex_w = torch.cat([ex_w[:, :first_color], in_w[:, first_color:]], dim=1)
    weights = (
        generator.default_interp_weights(structure_weight, color_weight)
        if interp_weights is None
        else interp_weights
    )
    image, _ = generator(
        [instyle],
        ex_w,
        input_is_latent=wplus,
        z_plus_latent=not wplus,
        truncation=truncation,
        truncation_latent=0.0,
        randomize_noise=randomize_noise,
        use_res=True,
        interp_weights=weights,
    )
    return image.clamp(-1, 1) if clamp else image
