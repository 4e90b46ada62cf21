"""The official StyleGAN2 computation on the CPU, written here from the math: the benchmarks' baseline.

What the official code (rosinality ``stylegan2-pytorch``, vendored by pSp / e4e / ReStyle /
HyperStyle / DualStyleGAN) runs when its CUDA ops are replaced by their own CPU fallbacks, in the
same order and with the same tensor layouts, so that its cost is the official cost:

* ``upfirdn2d_native``: zero insertion by padding a 6-d view, padding / cropping of the NHWC-ordered
  planes, then *one single-channel* ``conv2d`` over all N*C planes (flipped kernel), then strided
  subsampling of the full-resolution result;
* ``fused_leaky_relu``: bias addition and ``leaky_relu(...) * sqrt(2)`` as separate passes;
* ``ModulatedConv2d`` (``fused=True``): a [B, out, in, k, k] weight per sample (modulate,
  demodulate), then one grouped ``conv2d`` / ``conv_transpose2d`` over the batch, the blur after
  (up) or before (down) it;
* noise injection ``x + w * noise``, ToRGB ``conv + bias + upsample(skip)``, NCHW memory format,
  no autocast-aware casts (fp32 only).

The parameters are those of a :class:`redestyle.nets.stylegan2.Generator` (shared, not copied), so
:class:`OfficialGenerator` can stand in for the generator in ``inversion.restyle`` (``decode``) and
in the destylization baseline (``__call__`` with z+ codes). ``tests/benchmarks/test_official.py``
checks it against our fast path. Benchmarks only: nothing in ``redestyle`` imports this module.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from redestyle.nets.stylegan2 import Generator, ModulatedConv2d, StyledConv, ToRGB

SQRT2 = math.sqrt(2.0)


def upfirdn2d_native(x: torch.Tensor, kernel: torch.Tensor, *, up: int = 1, down: int = 1,
                     pad: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """The official CPU fallback's algorithm: zero-stuff, pad/crop, FIR (single-channel conv), subsample.

    x: [N, C, H, W]; kernel: [k, k] (a true convolution: flipped for conv2d); up/down: same factor
    on both axes; pad: (p0, p1) on both axes, negative values crop. Returns [N, C, H', W'] with
    H' = (H * up + p0 + p1 - k) // down + 1.
    """
    n, c, h, w = x.shape
    kh, kw = kernel.shape
    p0, p1 = pad
    # The official code reshapes to [N*C, H, W, 1] planes ("minor" dim last) and works on those.
    planes = x.reshape(n * c, h, w, 1)
    # zero insertion: a [P, H, 1, W, 1, 1] view padded to [P, H, up, W, up, 1], then flattened
    planes = planes.view(n * c, h, 1, w, 1, 1)
    planes = F.pad(planes, [0, 0, 0, up - 1, 0, 0, 0, up - 1])
    planes = planes.view(n * c, h * up, w * up, 1)
    # positive padding first, then negative padding as a crop (two separate passes, as there)
    planes = F.pad(planes, [0, 0, max(p0, 0), max(p1, 0), max(p0, 0), max(p1, 0)])
    planes = planes[:, max(-p0, 0): planes.shape[1] - max(-p1, 0),
                    max(-p0, 0): planes.shape[2] - max(-p1, 0), :]
    # back to [P, 1, H, W] for a single-channel correlation with the flipped kernel
    planes = planes.permute(0, 3, 1, 2).reshape(-1, 1, planes.shape[1], planes.shape[2])
    weight = torch.flip(kernel, [0, 1]).view(1, 1, kh, kw).to(planes.dtype)
    out = F.conv2d(planes, weight)
    out = out.reshape(-1, 1, out.shape[2], out.shape[3]).permute(0, 2, 3, 1)
    out = out[:, ::down, ::down, :]  # every output computed at full resolution, then dropped
    return out.permute(0, 3, 1, 2).reshape(n, c, out.shape[1], out.shape[2])


def fused_leaky_relu_native(x: torch.Tensor, bias: torch.Tensor | None, negative_slope: float = 0.2,
                            scale: float = SQRT2) -> torch.Tensor:
    """The official CPU fallback: ``leaky_relu(x + bias) * scale`` as separate passes. bias: [C]."""
    if bias is not None:
        x = x + bias.view(1, -1, *([1] * (x.ndim - 2)))
    return F.leaky_relu(x, negative_slope) * scale


def modulated_conv(m: ModulatedConv2d, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """rosinality ``ModulatedConv2d.forward`` (``fused=True``): per-sample weights, one grouped conv.

    x: [B, in, H, W], style: [B, style_dim] -> [B, out, H', W'].
    """
    b, c, h, w = x.shape
    k = m.kernel_size
    s = m.modulation(style).view(b, 1, c, 1, 1)
    weight = m.scale * m.weight * s  # [B, out, in, k, k]
    if m.demodulate:
        demod = torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + 1e-8)
        weight = weight * demod.view(b, m.out_channel, 1, 1, 1)
    weight = weight.view(b * m.out_channel, c, k, k)
    if m.upsample:
        x = x.reshape(1, b * c, h, w)
        weight = weight.view(b, m.out_channel, c, k, k).transpose(1, 2).reshape(b * c, m.out_channel, k, k)
        out = F.conv_transpose2d(x, weight, padding=0, stride=2, groups=b)
        out = out.view(b, m.out_channel, out.shape[2], out.shape[3])
        return upfirdn2d_native(out, m.blur.kernel, pad=m.blur.pad)
    if m.downsample:
        x = upfirdn2d_native(x, m.blur.kernel, pad=m.blur.pad)
        _, _, h, w = x.shape
        out = F.conv2d(x.reshape(1, b * c, h, w), weight, padding=0, stride=2, groups=b)
    else:
        out = F.conv2d(x.reshape(1, b * c, h, w), weight, padding=m.padding, groups=b)
    return out.view(b, m.out_channel, out.shape[2], out.shape[3])


def styled_conv(layer: StyledConv, x: torch.Tensor, style: torch.Tensor,
                noise: torch.Tensor | None) -> torch.Tensor:
    """conv -> ``out + weight * noise`` -> ``fused_leaky_relu(out, bias)`` (three passes)."""
    out = modulated_conv(layer.conv, x, style)
    if noise is None:
        noise = out.new_empty(out.shape[0], 1, out.shape[2], out.shape[3]).normal_()
    out = out + layer.noise.weight * noise
    act = layer.activate
    return fused_leaky_relu_native(out, act.bias, act.negative_slope, act.scale)


def to_rgb(layer: ToRGB, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
    """1x1 modulated conv (no demodulation) + bias, plus the FIR-upsampled skip."""
    out = modulated_conv(layer.conv, x, style) + layer.bias
    if skip is not None:
        up = layer.upsample
        out = out + upfirdn2d_native(skip, up.kernel, up=up.factor, pad=up.pad)
    return out


def mapping(G: Generator, z: torch.Tensor) -> torch.Tensor:
    """PixelNorm + EqualLinear layers with the two-op leaky ReLU: z [B, D] -> w [B, D]."""
    x = z * torch.rsqrt(z.pow(2).mean(dim=1, keepdim=True) + 1e-8)
    for layer in list(G.style)[1:]:
        x = F.linear(x, layer.weight * layer.scale)
        x = fused_leaky_relu_native(x, layer.bias * layer.lr_mul)
    return x


def synthesize(G: Generator, latent: torch.Tensor, noise: Sequence[torch.Tensor | None]) -> torch.Tensor:
    """rosinality ``Generator.forward`` after the styles: W+ [B, n_latent, D] -> image [B, 3, R, R]."""
    out = G.input.input.repeat(latent.shape[0], 1, 1, 1)
    out = styled_conv(G.conv1, out, latent[:, 0], noise[0])
    skip = to_rgb(G.to_rgb1, out, latent[:, 1], None)
    for k in range(len(G.to_rgbs)):
        i = 2 * k + 1
        out = styled_conv(G.convs[2 * k], out, latent[:, i], noise[i])
        out = styled_conv(G.convs[2 * k + 1], out, latent[:, i + 1], noise[i + 1])
        skip = to_rgb(G.to_rgbs[k], out, latent[:, i + 2], skip)
    return skip


class OfficialGenerator(nn.Module):
    """A :class:`Generator`'s weights run by the official computation (see the module docstring).

    Implements the parts of the generator interface the algorithms call: ``decode`` (ReStyle),
    ``__call__`` with one z+ / w / W+ style (the destylization baseline), ``mapping``,
    ``registered_noise``, ``input``, ``n_latent``, ``style_dim``, ``num_layers``.
    """

    def __init__(self, G: Generator):
        super().__init__()
        self.G = G
        self.input = G.input
        self.n_latent, self.style_dim, self.num_layers = G.n_latent, G.style_dim, G.num_layers
        self.size = G.size

    def mapping(self, z: torch.Tensor) -> torch.Tensor:
        return mapping(self.G, z)

    def registered_noise(self) -> list[torch.Tensor]:
        return self.G.registered_noise()

    def decode(self, w_plus: torch.Tensor, *, noise=None, randomize_noise: bool = False,
               stop_at: int | None = None) -> torch.Tensor:
        """W+ [B, n_latent, D] (or w [B, D]) -> image [B, 3, R, R], registered noise by default."""
        if stop_at not in (None, self.size):
            raise ValueError("the official generator has no early stop (stop_at)")
        if w_plus.ndim == 2:
            w_plus = w_plus[:, None].repeat(1, self.n_latent, 1)
        if noise is None:
            noise = [None] * self.num_layers if randomize_noise else self.registered_noise()
        return synthesize(self.G, w_plus, noise)

    def forward(self, styles, *, input_is_latent: bool = False, z_plus_latent: bool = False,
                noise=None, randomize_noise: bool = True, truncation: float = 1.0,
                truncation_latent=None, return_latents: bool = False):
        """rosinality / DualStyleGAN ``Generator.forward`` for one style entry (no mixing)."""
        if len(styles) != 1 or return_latents:
            raise ValueError("the official reference supports one style entry and no return_latents")
        (s,) = styles
        if not input_is_latent:
            if z_plus_latent:  # DualStyleGAN maps each layer's z separately
                s = torch.stack([self.mapping(s[:, i]) for i in range(s.shape[1])], dim=1)
            else:
                s = self.mapping(s)
        if truncation < 1:
            s = truncation_latent + truncation * (s - truncation_latent)
        return self.decode(s, noise=noise, randomize_noise=randomize_noise), None
