"""StyleGAN2 Generator and Discriminator with rosinality's module tree and state-dict keys.

The key names are the checkpoint format of ``stylegan2-ffhq-config-f.pt`` and of every encoder
checkpoint of this project (pSp, e4e, ReStyle, HyperStyle, DualStyleGAN embed this generator), so
``load_state_dict(official, strict=True)`` works, FIR ``kernel`` buffers and ``noises.noise_i``
included. The math follows rosinality ``model.py`` (see shared/reference/stylegan2.md); the code is
our own. Extensions of the forks are declared hooks instead of forks:

* HyperStyle ``weights_deltas``: ``ModulatedConv2d(..., weight_delta=)`` multiplies the weight by
  ``1 + delta`` (hyperstyle ``models/stylegan2/model.py``);
* DualStyleGAN ``externalweight``: ``weight_offset=`` is added to the weight, and
  ``Generator(..., z_plus_latent=True)`` maps a z+ code per layer (DualStyleGAN
  ``model/stylegan/model.py``);
* pSp-family ``return_features`` and an early ``stop_at`` resolution.

Speed (CPU): synthesis runs in ``channels_last`` memory format, which oneDNN convolves 2-4x faster
than NCHW on this kind of CPU. A modulated conv either builds one weight per sample (batch 1, or
per-sample HyperStyle deltas) or, for a shared weight and batch > 1, folds the modulation into the
activations (``x * s``, conv with the shared weight, ``* demod``), which equals the official grouped
convolution up to float rounding (rosinality's own ``fused=False`` path). The style path
(mapping, modulation, demodulation) always runs in float32, also under autocast.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from redestyle.ops import fused_leaky_relu, upfirdn2d

__all__ = [
    "make_kernel",
    "PixelNorm",
    "EqualLinear",
    "EqualConv2d",
    "FusedLeakyReLU",
    "Blur",
    "Upsample",
    "Downsample",
    "ModulatedConv2d",
    "NoiseInjection",
    "ConstantInput",
    "StyledConv",
    "ToRGB",
    "Generator",
    "ConvLayer",
    "ResBlock",
    "Discriminator",
    "default_channels",
]

BLUR_KERNEL = (1, 3, 3, 1)
#: CPU generators of at least this size synthesise a batch one sample at a time (Generator._synthesize)
CPU_PER_SAMPLE_MIN_SIZE = 512


def default_channels(channel_multiplier: int = 2) -> dict[int, int]:
    """rosinality's width table, resolution -> channels (config-f: channel_multiplier=2)."""
    m = channel_multiplier
    return {
        4: 512,
        8: 512,
        16: 512,
        32: 512,
        64: 256 * m,
        128: 128 * m,
        256: 64 * m,
        512: 32 * m,
        1024: 16 * m,
    }


def _channel_table(
    size: int, channel_multiplier: int, channels: dict[int, int] | None
) -> dict[int, int]:
    table = {**default_channels(channel_multiplier), **(channels or {})}
    missing = [r for r in (2**i for i in range(2, int(math.log2(size)) + 1)) if r not in table]
    if missing:
        raise ValueError(f"channels has no width for resolutions {missing} (size {size})")
    return table


def _log2_size(size: int) -> int:
    log_size = int(math.log2(size))
    if size < 4 or 2**log_size != size:
        raise ValueError(f"size must be a power of two >= 4, got {size}")
    return log_size


def make_kernel(taps: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """2-D FIR kernel from 1-D taps: outer product, normalised to sum 1. [k] -> [k, k] float32."""
    k = torch.as_tensor(taps, dtype=torch.float32)
    if k.ndim == 1:
        k = k[None, :] * k[:, None]
    return k / k.sum()


# --------------------------------------------------------------------------------------------------
# Equalized-lr layers, activation, FIR resampling
# --------------------------------------------------------------------------------------------------


class PixelNorm(nn.Module):
    """x / sqrt(mean(x^2 over dim 1) + 1e-8): the mapping network's input normalisation."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


class FusedLeakyReLU(nn.Module):
    """leaky_relu(x + bias, 0.2) * sqrt(2), bias broadcast along dim 1. Key: ``bias`` [C]."""

    def __init__(
        self,
        channel: int,
        bias: bool = True,
        negative_slope: float = 0.2,
        scale: float = math.sqrt(2),
    ):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channel)) if bias else None
        self.negative_slope = negative_slope
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fused_leaky_relu(x, self.bias, self.negative_slope, self.scale)


class EqualLinear(nn.Module):
    """Linear layer with equalized learning rate (weights stored at unit scale).

    Runtime weight = weight * lr_mul / sqrt(in_dim), runtime bias = bias * lr_mul;
    ``activation="fused_lrelu"`` adds the bias inside the fused leaky ReLU. x: [..., in_dim].
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        bias: bool = True,
        bias_init: float = 0.0,
        lr_mul: float = 1.0,
        activation: str | None = None,
    ):
        super().__init__()
        if activation not in (None, "fused_lrelu"):
            raise ValueError(f"activation must be None or 'fused_lrelu', got {activation!r}")
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim).div_(lr_mul))
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init))) if bias else None
        self.activation = activation
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias * self.lr_mul
        if self.activation:
            return fused_leaky_relu(F.linear(x, self.weight * self.scale), bias)
        return F.linear(x, self.weight * self.scale, bias)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[1]}, {self.weight.shape[0]}, lr_mul={self.lr_mul}, activation={self.activation}"


class EqualConv2d(nn.Module):
    """Conv2d with equalized learning rate: runtime weight = weight / sqrt(in * k * k)."""

    def __init__(
        self,
        in_channel: int,
        out_channel: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
    ):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channel, in_channel, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channel)) if bias else None
        self.scale = 1 / math.sqrt(in_channel * kernel_size**2)
        self.stride = stride
        self.padding = padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(
            x, self.weight * self.scale, self.bias, stride=self.stride, padding=self.padding
        )

    def extra_repr(self) -> str:
        o, i, k, _ = self.weight.shape
        return f"{i}, {o}, {k}, stride={self.stride}, padding={self.padding}"


class Blur(nn.Module):
    """FIR filter (no resampling): upfirdn2d with make_kernel(taps) * upsample_factor^2.

    Buffer ``kernel`` [k, k] (part of official state dicts). pad: (p0, p1) on both axes.
    """

    def __init__(self, kernel: Sequence[float], pad: tuple[int, int], upsample_factor: int = 1):
        super().__init__()
        self.register_buffer("kernel", make_kernel(kernel) * upsample_factor**2)
        self.pad = tuple(pad)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """x: [B, C, H, W] -> [B, C, H + p0 + p1 - k + 1, ...]; optional per-channel ``bias`` [C] added."""
        p0, p1 = self.pad
        if p0 != p1 or p0 < 0:
            out = upfirdn2d(x, self.kernel, pad=self.pad)
            return out if bias is None else out + bias.to(out.dtype).view(1, -1, 1, 1)
        # Symmetric padding: the same FIR as one depthwise conv with the padding (and bias)
        # inside the convolution, saving upfirdn2d's separate pad copy on the large maps.
        c = x.shape[1]
        weight = self.kernel.flip(0, 1).to(x.dtype)[None, None].expand(c, 1, -1, -1)
        return F.conv2d(x, weight, None if bias is None else bias.to(x.dtype), padding=p0, groups=c)


class Upsample(nn.Module):
    """x2 FIR upsampling (zero insertion + filter), [B, C, H, W] -> [B, C, 2H, 2W]. Buffer ``kernel``."""

    def __init__(self, kernel: Sequence[float], factor: int = 2):
        super().__init__()
        self.factor = factor
        self.register_buffer("kernel", make_kernel(kernel) * factor**2)
        p = self.kernel.shape[0] - factor
        self.pad = ((p + 1) // 2 + factor - 1, p // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, up=self.factor, down=1, pad=self.pad)


class Downsample(nn.Module):
    """/2 FIR downsampling (filter + subsample), [B, C, H, W] -> [B, C, H/2, W/2]. Buffer ``kernel``."""

    def __init__(self, kernel: Sequence[float], factor: int = 2):
        super().__init__()
        self.factor = factor
        self.register_buffer("kernel", make_kernel(kernel))
        p = self.kernel.shape[0] - factor
        self.pad = ((p + 1) // 2, p // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, up=1, down=self.factor, pad=self.pad)


# --------------------------------------------------------------------------------------------------
# Synthesis layers
# --------------------------------------------------------------------------------------------------


class ModulatedConv2d(nn.Module):
    """StyleGAN2 modulated (and demodulated) convolution, optionally x2 up- or down-sampling.

    Keys: ``weight`` [1, out, in, k, k], ``modulation.{weight, bias}`` (EqualLinear(style_dim, in),
    bias_init 1), ``blur.kernel`` when resampling.
    """

    def __init__(
        self,
        in_channel: int,
        out_channel: int,
        kernel_size: int,
        style_dim: int,
        demodulate: bool = True,
        upsample: bool = False,
        downsample: bool = False,
        blur_kernel: Sequence[float] = BLUR_KERNEL,
    ):
        super().__init__()
        if upsample and downsample:
            raise ValueError("ModulatedConv2d cannot both upsample and downsample")
        self.in_channel, self.out_channel, self.kernel_size = in_channel, out_channel, kernel_size
        self.upsample, self.downsample, self.demodulate = upsample, downsample, demodulate
        factor, taps = 2, len(blur_kernel)
        if upsample:
            # transposed conv (H -> 2H + k - 2) then a blur cropping back to 2H (reference §2)
            p = (taps - factor) - (kernel_size - 1)
            self.blur = Blur(
                blur_kernel, pad=((p + 1) // 2 + factor - 1, p // 2 + 1), upsample_factor=factor
            )
        if downsample:
            p = (taps - factor) + (kernel_size - 1)
            self.blur = Blur(blur_kernel, pad=((p + 1) // 2, p // 2))
        self.scale = 1 / math.sqrt(in_channel * kernel_size**2)
        self.padding = kernel_size // 2
        self.weight = nn.Parameter(
            torch.randn(1, out_channel, in_channel, kernel_size, kernel_size)
        )
        self.modulation = EqualLinear(style_dim, in_channel, bias_init=1)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channel}, {self.out_channel}, {self.kernel_size}, demodulate={self.demodulate}, "
            f"upsample={self.upsample}, downsample={self.downsample}"
        )

    def _conv(
        self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
    ) -> torch.Tensor:
        """Plain conv of x [B, in, H, W] with weight [out, in, k, k] (+ bias [out]), incl. the resampling."""
        if self.upsample:
            if x.device.type == "cpu" and weight.shape[-2:] == (3, 3) and x.shape[-1] <= 256:
                return self.blur(_conv_transpose3x3_s2(x, weight), bias)
            # conv_transpose2d wants [in, out, k, k]; no spatial flip (rosinality convention)
            return self.blur(F.conv_transpose2d(x, weight.transpose(0, 1), stride=2), bias)
        if self.downsample:
            return F.conv2d(self.blur(x), weight, bias, stride=2)
        return F.conv2d(x, weight, bias, padding=self.padding)

    def forward(
        self,
        x: torch.Tensor,
        style: torch.Tensor,
        *,
        weight_delta: torch.Tensor | None = None,
        weight_offset: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x: [B, in, H, W]; style: [B, style_dim] -> [B, out, H', W'] (H' = 2H / H / H/2).

        weight_delta: HyperStyle's per-layer delta, [B or 1, out, in, k, k] or [out, in, k, k];
        the weight becomes weight * (1 + delta). weight_offset: DualStyleGAN's ``externalweight``,
        same shapes, added to the weight (after the delta).
        """
        return self.conv_gain_bias(x, style, weight_delta=weight_delta, weight_offset=weight_offset)

    def conv_gain_bias(
        self,
        x: torch.Tensor,
        style: torch.Tensor,
        *,
        weight_delta: torch.Tensor | None = None,
        weight_offset: torch.Tensor | None = None,
        gain: float = 1.0,
        bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``forward(x, style) * gain + bias`` with the gain folded into the weight and the bias
        [out] into the convolution (what StyledConv uses to save passes over large maps)."""
        batch = x.shape[0]
        # The style path runs in float32 even under autocast: it is tiny, and bf16 styles
        # would perturb every channel's gain by ~0.4%.
        with torch.autocast(x.device.type, enabled=False):
            weight = self.weight  # [1, out, in, k, k]
            s = self.modulation(style.to(weight.dtype)) * self.scale  # [B, in]
            if weight_delta is not None:
                weight = weight * (1 + _as_5d(weight_delta).to(weight.dtype))
            if weight_offset is not None:
                weight = weight + _as_5d(weight_offset).to(weight.dtype)
            if self.demodulate:
                # 1 / |W_b[o]| with W_b = W * s_b: sum_i s_i^2 sum_k W[o, i, k]^2 (equal math, and
                # no [B, out, in, k, k] temporaries)
                w_sq = weight.square().sum(dim=(3, 4))  # [1 or B, out, in]
                out_gain = (
                    torch.rsqrt((w_sq * s.square()[:, None, :]).sum(-1) + 1e-8) * gain
                )  # [B, out]
            else:
                out_gain = s.new_full((batch, self.out_channel), gain)
            # one weight per sample for batch 1 (no extra passes over the activations) and for
            # per-sample HyperStyle deltas; the official grouped conv is the same computation
            per_sample = batch == 1 or weight.shape[0] > 1
            if per_sample:
                weight = (
                    weight * (out_gain[:, :, None] * s[:, None, :])[..., None, None]
                )  # [B, out, in, k, k]
            else:
                weight = weight[0]
        if not torch.is_autocast_enabled(x.device.type):
            weight = weight.to(x.dtype)
        if per_sample:
            outs = [self._conv(x[b : b + 1], weight[b], bias) for b in range(batch)]
            return outs[0] if batch == 1 else torch.cat(outs)
        # shared weight, batch > 1: fold the modulation into the activations (equal math;
        # rosinality's fused=False path): conv(x * s) * demod
        out = self._conv(x * s[:, :, None, None].to(x.dtype), weight, None)
        out_gain = out_gain[:, :, None, None].to(out.dtype)
        if bias is None:
            return out * out_gain
        return torch.addcmul(bias.to(out.dtype).view(1, -1, 1, 1), out, out_gain)


def _conv_transpose3x3_s2(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``conv_transpose2d(x, weight.transpose(0, 1), stride=2)`` as four ordinary convolutions.

    x: [B, in, H, W]; weight: [out, in, 3, 3] -> [B, out, 2H + 1, 2W + 1]. Output row 2m collects
    x[m - 1] * w[2] + x[m] * w[0], row 2m + 1 collects x[m] * w[1] (likewise for columns), so each
    of the four (row, column) parities is a stride-1 convolution of x with a 2x2, 2x1, 1x2 or 1x1
    part of the kernel: the same products and FLOPs as the transposed convolution, summed in another
    order (equal up to float rounding). On the CPU (torch 2.14, oneDNN, AVX2, 1 thread, CPU time)
    this took 8-30 % less than the transposed convolution for inputs of 64-256 px and 6 % more at
    512 px (the scattered writes of the large output): the caller uses it up to 256 px.
    """
    b, _, h, w = x.shape
    rows_even, rows_odd = weight[:, :, [2, 0]], weight[:, :, 1:2]
    out = torch.empty(b, weight.shape[0], 2 * h + 1, 2 * w + 1, dtype=x.dtype, device=x.device,
                      memory_format=torch.channels_last)
    out[:, :, 0::2, 0::2] = F.conv2d(x, rows_even[..., [2, 0]], padding=1)
    out[:, :, 0::2, 1::2] = F.conv2d(x, rows_even[..., 1:2], padding=(1, 0))
    out[:, :, 1::2, 0::2] = F.conv2d(x, rows_odd[..., [2, 0]], padding=(0, 1))
    out[:, :, 1::2, 1::2] = F.conv2d(x, rows_odd[..., 1:2])
    return out


def _sample(t: torch.Tensor | None, i: int, batch: int, *, ndim: int) -> torch.Tensor | None:
    """Sample i of a per-sample ``ndim``-D tensor [batch, ...]; None, shared ([1, ...]) or lower-rank
    tensors (a 4-D HyperStyle delta is shared by the batch) are returned as they are."""
    if t is None or t.ndim != ndim or t.shape[0] != batch:
        return t
    return t[i : i + 1]


def _as_5d(t: torch.Tensor) -> torch.Tensor:
    return t.unsqueeze(0) if t.ndim == 4 else t


class NoiseInjection(nn.Module):
    """x + weight * noise; noise [B, 1, H, W] (fresh N(0, 1) when None). Key: ``weight`` [1]."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(
        self,
        image: torch.Tensor,
        noise: torch.Tensor | None = None,
        *,
        gain: float = 1.0,
        inplace: bool = False,
    ) -> torch.Tensor:
        """image: [B, C, H, W], noise: [B or 1, 1, H, W] -> image + gain * weight * noise."""
        if noise is None:
            b, _, h, w = image.shape
            noise = image.new_empty(b, 1, h, w).normal_()
        strength = (self.weight * gain).to(image.dtype)
        if inplace:
            return image.addcmul_(strength, noise.to(image.dtype))
        return torch.addcmul(image, strength, noise.to(image.dtype))


class ConstantInput(nn.Module):
    """Learned constant [1, C, size, size] repeated over the batch. Key: ``input``."""

    def __init__(self, channel: int, size: int = 4):
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channel, size, size))

    def forward(self, batch: int | torch.Tensor) -> torch.Tensor:
        """batch: a batch size, or any tensor whose dim 0 is the batch (rosinality passes the latent)."""
        if isinstance(batch, torch.Tensor):
            batch = batch.shape[0]
        return self.input.expand(batch, -1, -1, -1)


class StyledConv(nn.Module):
    """ModulatedConv2d -> NoiseInjection -> FusedLeakyReLU (keys ``conv.*``, ``noise.weight``, ``activate.bias``)."""

    def __init__(
        self,
        in_channel: int,
        out_channel: int,
        kernel_size: int,
        style_dim: int,
        upsample: bool = False,
        blur_kernel: Sequence[float] = BLUR_KERNEL,
        demodulate: bool = True,
    ):
        super().__init__()
        self.conv = ModulatedConv2d(
            in_channel,
            out_channel,
            kernel_size,
            style_dim,
            demodulate=demodulate,
            upsample=upsample,
            blur_kernel=blur_kernel,
        )
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_channel)

    def forward(
        self,
        x: torch.Tensor,
        style: torch.Tensor,
        noise: torch.Tensor | None = None,
        *,
        weight_delta: torch.Tensor | None = None,
        weight_offset: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x: [B, in, H, W], style: [B, style_dim], noise: [B or 1, 1, H', W'] or None -> [B, out, H', W']."""
        # = fused_leaky_relu(conv(x) + noise, bias): lrelu(v) * g == lrelu(v * g) for g > 0, so the
        # gain and the bias go into the conv and the noise and lrelu act in place (one large
        # allocation per layer instead of four)
        act = self.activate
        bias = None if act.bias is None else act.bias * act.scale
        out = self.conv.conv_gain_bias(
            x,
            style,
            weight_delta=weight_delta,
            weight_offset=weight_offset,
            gain=act.scale,
            bias=bias,
        )
        out = self.noise(out, noise, gain=act.scale, inplace=True)
        return F.leaky_relu_(out, act.negative_slope)


class ToRGB(nn.Module):
    """1x1 modulated conv to RGB (no demodulation) + ``bias`` [1, 3, 1, 1], plus the upsampled skip."""

    def __init__(
        self,
        in_channel: int,
        style_dim: int,
        upsample: bool = True,
        blur_kernel: Sequence[float] = BLUR_KERNEL,
    ):
        super().__init__()
        if upsample:
            self.upsample = Upsample(blur_kernel)
        self.conv = ModulatedConv2d(in_channel, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(
        self,
        x: torch.Tensor,
        style: torch.Tensor,
        skip: torch.Tensor | None = None,
        *,
        weight_delta: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x: [B, in, H, W], skip: [B, 3, H/2, W/2] or None -> [B, 3, H, W] (float32 under autocast,
        as the float32 bias promotes the bf16 conv output)."""
        out = self.conv(x, style, weight_delta=weight_delta) + self.bias
        if skip is not None:
            out = out + self.upsample(skip)
        return out


# --------------------------------------------------------------------------------------------------
# Generator
# --------------------------------------------------------------------------------------------------


class Generator(nn.Module):
    """rosinality StyleGAN2 generator (config-f at size 1024: 171 state-dict entries).

    Mapping ``style`` (PixelNorm + n_mlp EqualLinear), synthesis ``input``, ``conv1``, ``to_rgb1``,
    ``convs`` (up-conv, conv per resolution), ``to_rgbs``, noise buffers ``noises.noise_i``.
    W+ index routing: conv1 <- w[0], to_rgb1 <- w[1], block k: convs.2k <- w[2k+1],
    convs.2k+1 <- w[2k+2], to_rgbs.k <- w[2k+3].
    """

    def __init__(
        self,
        size: int,
        style_dim: int = 512,
        n_mlp: int = 8,
        channel_multiplier: int = 2,
        blur_kernel: Sequence[float] = BLUR_KERNEL,
        lr_mlp: float = 0.01,
        channels: dict[int, int] | None = None,
    ):
        super().__init__()
        self.size = size
        self.style_dim = style_dim
        self.log_size = _log2_size(size)
        self.num_layers = (self.log_size - 2) * 2 + 1  # styled convs = noise inputs
        self.n_latent = self.log_size * 2 - 2  # w vectors in W+
        self.channels = _channel_table(size, channel_multiplier, channels)
        blur_kernel = tuple(blur_kernel)

        self.style = nn.Sequential(
            PixelNorm(),
            *[
                EqualLinear(style_dim, style_dim, lr_mul=lr_mlp, activation="fused_lrelu")
                for _ in range(n_mlp)
            ],
        )

        ch = self.channels
        self.input = ConstantInput(ch[4])
        self.conv1 = StyledConv(ch[4], ch[4], 3, style_dim, blur_kernel=blur_kernel)
        self.to_rgb1 = ToRGB(ch[4], style_dim, upsample=False)

        self.convs = nn.ModuleList()
        self.upsamples = nn.ModuleList()  # empty, as in rosinality (no keys)
        self.to_rgbs = nn.ModuleList()
        self.noises = nn.Module()
        for layer_idx in range(self.num_layers):
            res = 2 ** ((layer_idx + 5) // 2)
            self.noises.register_buffer(f"noise_{layer_idx}", torch.randn(1, 1, res, res))
        in_channel = ch[4]
        for i in range(3, self.log_size + 1):
            out_channel = ch[2**i]
            self.convs.append(
                StyledConv(
                    in_channel, out_channel, 3, style_dim, upsample=True, blur_kernel=blur_kernel
                )
            )
            self.convs.append(
                StyledConv(out_channel, out_channel, 3, style_dim, blur_kernel=blur_kernel)
            )
            self.to_rgbs.append(ToRGB(out_channel, style_dim, blur_kernel=blur_kernel))
            in_channel = out_channel

    # ---- latents ------------------------------------------------------------------------------

    def mapping(self, z: torch.Tensor) -> torch.Tensor:
        """z [B, style_dim] -> w [B, style_dim] (float32, also under autocast)."""
        if z.ndim != 2:
            raise ValueError(
                f"mapping expects z of shape [B, {self.style_dim}], got {tuple(z.shape)}"
            )
        with torch.autocast(z.device.type, enabled=False):
            return self.style(z.to(self.input.input.dtype))

    def mapping_plus(self, z_plus: torch.Tensor) -> torch.Tensor:
        """DualStyleGAN z+ [B, n_latent, style_dim] -> W+ [B, n_latent, style_dim], one mapping per layer."""
        if z_plus.ndim != 3:
            raise ValueError(
                f"mapping_plus expects z+ of shape [B, n, {self.style_dim}], got {tuple(z_plus.shape)}"
            )
        b, n, d = z_plus.shape
        return self.mapping(z_plus.reshape(b * n, d)).reshape(b, n, d)

    @torch.no_grad()
    def mean_latent(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Mean of mapping(z) over n samples z ~ N(0, I) -> [1, style_dim] (the truncation target)."""
        ref = self.input.input
        dev = ref.device if generator is None else generator.device
        z = torch.randn(n, self.style_dim, generator=generator, device=dev)
        return self.mapping(z.to(ref.device)).mean(0, keepdim=True)

    def make_noise(self, *, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """A fresh list of num_layers N(0, 1) noise maps with the buffer shapes [1, 1, r, r]."""
        ref = self.input.input
        noise = []
        for layer_idx in range(self.num_layers):
            res = 2 ** ((layer_idx + 5) // 2)
            dev = ref.device if generator is None else generator.device
            noise.append(
                torch.randn(1, 1, res, res, generator=generator, device=dev).to(ref.device)
            )
        return noise

    def registered_noise(self) -> list[torch.Tensor]:
        """The fixed noise buffers noises.noise_0..num_layers-1 (what randomize_noise=False uses)."""
        return [getattr(self.noises, f"noise_{i}") for i in range(self.num_layers)]

    # ---- synthesis ----------------------------------------------------------------------------

    def forward(
        self,
        styles: Sequence[torch.Tensor],
        *,
        return_latents: bool = False,
        inject_index: int | None = None,
        truncation: float = 1.0,
        truncation_latent: torch.Tensor | float | None = None,
        input_is_latent: bool = False,
        z_plus_latent: bool = False,
        noise: Sequence[torch.Tensor | None] | None = None,
        randomize_noise: bool = True,
        weights_deltas: Sequence[torch.Tensor | None] | None = None,
        stop_at: int | None = None,
        return_features: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """rosinality ``Generator.forward``: styles -> (image, latent or features or None).

        styles: list of one entry (or two for style mixing), each z [B, D] (default),
            z+ [B, n_latent, D] (``z_plus_latent``), or with ``input_is_latent`` w [B, D] / W+ [B, n_latent, D].
        truncation / truncation_latent: w <- t_lat + truncation * (w - t_lat) when truncation < 1
            (t_lat a [1, D] mean latent, or 0 as DualStyleGAN uses).
        inject_index: mixing crossover layer (random in [1, n_latent - 1] when None).
        noise: list of num_layers maps (None entries: fresh noise); if None, fresh noise
            (randomize_noise=True) or the registered buffers (False).
        weights_deltas: HyperStyle deltas, 2 + 3 * (log_size - 2) entries (None skips a layer).
        stop_at: stop after the block of this resolution and return its RGB skip image.
        Returns (image [B, 3, R, R], unclamped, roughly in [-1, 1]; latent [B, n_latent, D] if
        return_latents, else the last feature map if return_features, else None).
        """
        latent = self.latent(styles, input_is_latent=input_is_latent, z_plus_latent=z_plus_latent,
                             truncation=truncation, truncation_latent=truncation_latent,
                             inject_index=inject_index)
        image, features = self._synthesize(
            latent,
            noise=noise,
            randomize_noise=randomize_noise,
            weights_deltas=weights_deltas,
            stop_at=stop_at,
        )
        if return_latents:
            return image, latent
        if return_features:
            return image, features
        return image, None

    def latent(
        self,
        styles: Sequence[torch.Tensor],
        *,
        input_is_latent: bool = False,
        z_plus_latent: bool = False,
        truncation: float = 1.0,
        truncation_latent: torch.Tensor | float | None = None,
        inject_index: int | None = None,
    ) -> torch.Tensor:
        """The W+ [B, n_latent, D] that ``forward`` synthesises: mapping, truncation, mixing.

        Arguments as in :meth:`forward`. Shared with DualStyleGAN's intrinsic path.
        """
        if not isinstance(styles, (list, tuple)) or not 1 <= len(styles) <= 2:
            raise TypeError("styles must be a list of one or two tensors (two: style mixing)")
        if not input_is_latent:
            styles = [self.mapping_plus(s) if z_plus_latent else self._map_z(s) for s in styles]
        if truncation < 1:
            if truncation_latent is None:
                raise ValueError(
                    "truncation < 1 needs truncation_latent (e.g. G.mean_latent(4096), or 0 as in DualStyleGAN)"
                )
            styles = [truncation_latent + truncation * (s - truncation_latent) for s in styles]
        return self._broadcast(styles, inject_index)

    def decode(
        self,
        w_plus: torch.Tensor,
        *,
        noise: Sequence[torch.Tensor | None] | None = None,
        randomize_noise: bool = False,
        weights_deltas: Sequence[torch.Tensor | None] | None = None,
        stop_at: int | None = None,
    ) -> torch.Tensor:
        """W+ [B, n_latent, D] (or w [B, D]) -> image [B, 3, R, R]; registered noise by default."""
        latent = self._broadcast([w_plus], None)
        image, _ = self._synthesize(
            latent,
            noise=noise,
            randomize_noise=randomize_noise,
            weights_deltas=weights_deltas,
            stop_at=stop_at,
        )
        return image

    def _map_z(self, z: torch.Tensor) -> torch.Tensor:
        if z.ndim != 2:
            raise ValueError(
                f"z must be [B, {self.style_dim}], got {tuple(z.shape)}; pass z_plus_latent=True for z+ codes "
                "or input_is_latent=True for W+ codes"
            )
        return self.mapping(z)

    def _broadcast(self, styles: Sequence[torch.Tensor], inject_index: int | None) -> torch.Tensor:
        """One or two w / W+ entries -> W+ [B, n_latent, D] (mixing switches at inject_index)."""
        full = []
        for s in styles:
            if s.ndim == 2:
                s = s[:, None, :].expand(-1, self.n_latent, -1)
            if s.ndim != 3 or s.shape[1:] != (self.n_latent, self.style_dim):
                raise ValueError(
                    f"latent must be [B, {self.style_dim}] or [B, {self.n_latent}, {self.style_dim}], got {tuple(s.shape)}"
                )
            full.append(s)
        if len(full) == 1:
            return full[0] if styles[0].ndim == 3 else full[0].contiguous()
        if inject_index is None:
            inject_index = int(torch.randint(1, self.n_latent, ()).item())
        if not 0 <= inject_index <= self.n_latent:
            raise ValueError(f"inject_index must be in [0, {self.n_latent}], got {inject_index}")
        return torch.cat([full[0][:, :inject_index], full[1][:, inject_index:]], dim=1)

    def _synthesize(
        self,
        latent: torch.Tensor,
        *,
        noise: Sequence[torch.Tensor | None] | None,
        randomize_noise: bool,
        weights_deltas: Sequence[torch.Tensor | None] | None,
        stop_at: int | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """W+ [B, n_latent, D] -> (RGB skip image, last feature map)."""
        batch = latent.shape[0]
        if batch > 1 and latent.device.type == "cpu" and self.size >= CPU_PER_SAMPLE_MIN_SIZE:
            # On the CPU, for large generators, one sample at a time is the fastest batch: each
            # modulated conv then takes the per-sample-weight path (no x * s and * demod passes
            # over the activations, no batch-sized temporaries), measured 11 % less CPU time per
            # image than the folded batch path at 1024 px, batch 4 (1 thread). It also makes a
            # batch's images equal to the images synthesised one by one. Small generators (64 px)
            # stay batched: there the per-sample Python overhead dominates.
            parts = [
                self._synthesize(
                    latent[i : i + 1],
                    noise=None if noise is None else [_sample(n, i, batch, ndim=4) for n in noise],
                    randomize_noise=randomize_noise,
                    weights_deltas=None
                    if weights_deltas is None
                    else [_sample(d, i, batch, ndim=5) for d in weights_deltas],
                    stop_at=stop_at,
                )
                for i in range(batch)
            ]
            return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        if noise is None:
            noise = [None] * self.num_layers if randomize_noise else self.registered_noise()
        if len(noise) != self.num_layers:
            raise ValueError(f"noise must have {self.num_layers} entries, got {len(noise)}")
        n_deltas = 2 + 3 * (self.log_size - 2)
        if weights_deltas is None:
            weights_deltas = [None] * n_deltas
        if len(weights_deltas) != n_deltas:
            raise ValueError(
                f"weights_deltas must have {n_deltas} entries (conv1, to_rgb1, 3 per block), got {len(weights_deltas)}"
            )
        stop_at = self.size if stop_at is None else stop_at
        if stop_at not in [2**i for i in range(2, self.log_size + 1)]:
            raise ValueError(f"stop_at must be a power of two in [4, {self.size}], got {stop_at}")

        # channels_last: oneDNN's fast convolution layout on CPU (2-4x over NCHW)
        out = self.input(latent.shape[0]).contiguous(memory_format=torch.channels_last)
        out = self.conv1(out, latent[:, 0], noise[0], weight_delta=weights_deltas[0])
        skip = self.to_rgb1(out, latent[:, 1], weight_delta=weights_deltas[1])
        for k in range(len(self.to_rgbs)):
            if 2 ** (k + 2) >= stop_at:
                break
            i = 2 * k + 1
            up_conv, conv, to_rgb = self.convs[2 * k], self.convs[2 * k + 1], self.to_rgbs[k]
            out = up_conv(out, latent[:, i], noise[i], weight_delta=weights_deltas[2 + 3 * k])
            out = conv(out, latent[:, i + 1], noise[i + 1], weight_delta=weights_deltas[3 + 3 * k])
            skip = to_rgb(out, latent[:, i + 2], skip, weight_delta=weights_deltas[4 + 3 * k])
        return skip.contiguous(), out


# --------------------------------------------------------------------------------------------------
# Discriminator
# --------------------------------------------------------------------------------------------------


class ConvLayer(nn.Sequential):
    """[Blur if downsample] -> EqualConv2d -> [FusedLeakyReLU if activate] (keys ``0.*``, ``1.*``, ``2.*``).

    With an activation the conv has no bias and the bias lives in the activation.
    """

    def __init__(
        self,
        in_channel: int,
        out_channel: int,
        kernel_size: int,
        downsample: bool = False,
        blur_kernel: Sequence[float] = BLUR_KERNEL,
        bias: bool = True,
        activate: bool = True,
    ):
        layers: list[nn.Module] = []
        if downsample:
            p = (len(blur_kernel) - 2) + (kernel_size - 1)
            layers.append(Blur(blur_kernel, pad=((p + 1) // 2, p // 2)))
            stride, padding = 2, 0
        else:
            stride, padding = 1, kernel_size // 2
        layers.append(
            EqualConv2d(
                in_channel,
                out_channel,
                kernel_size,
                stride=stride,
                padding=padding,
                bias=bias and not activate,
            )
        )
        if activate:
            layers.append(FusedLeakyReLU(out_channel, bias=bias))
        super().__init__(*layers)


class ResBlock(nn.Module):
    """Residual /2 block: (conv2(conv1(x)) + skip(x)) / sqrt(2)."""

    def __init__(
        self, in_channel: int, out_channel: int, blur_kernel: Sequence[float] = BLUR_KERNEL
    ):
        super().__init__()
        self.conv1 = ConvLayer(in_channel, in_channel, 3)
        self.conv2 = ConvLayer(in_channel, out_channel, 3, downsample=True, blur_kernel=blur_kernel)
        self.skip = ConvLayer(
            in_channel,
            out_channel,
            1,
            downsample=True,
            blur_kernel=blur_kernel,
            activate=False,
            bias=False,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.conv2(self.conv1(x)) + self.skip(x)) / math.sqrt(2)


class Discriminator(nn.Module):
    """rosinality StyleGAN2 residual discriminator (64 state-dict entries at size 1024).

    ``convs`` (fromRGB 1x1 + ResBlocks down to 4x4), minibatch stddev (group min(B, 4), 1 feature),
    ``final_conv``, ``final_linear``. x: [B, 3, size, size] -> logits [B, 1].
    """

    def __init__(
        self,
        size: int,
        channel_multiplier: int = 2,
        blur_kernel: Sequence[float] = BLUR_KERNEL,
        channels: dict[int, int] | None = None,
    ):
        super().__init__()
        log_size = _log2_size(size)
        ch = _channel_table(size, channel_multiplier, channels)
        self.size = size
        convs: list[nn.Module] = [ConvLayer(3, ch[size], 1)]
        in_channel = ch[size]
        for i in range(log_size, 2, -1):
            out_channel = ch[2 ** (i - 1)]
            convs.append(ResBlock(in_channel, out_channel, blur_kernel))
            in_channel = out_channel
        self.convs = nn.Sequential(*convs)
        self.stddev_group = 4
        self.stddev_feat = 1
        self.final_conv = ConvLayer(in_channel + 1, ch[4], 3)
        self.final_linear = nn.Sequential(
            EqualLinear(ch[4] * 4 * 4, ch[4], activation="fused_lrelu"),
            EqualLinear(ch[4], 1),
        )

    def minibatch_stddev(self, x: torch.Tensor) -> torch.Tensor:
        """Append the group std feature: [B, C, H, W] -> [B, C + 1, H, W] (B divisible by min(B, 4))."""
        b, c, h, w = x.shape
        group = min(b, self.stddev_group)
        if b % group:
            raise ValueError(f"batch {b} is not divisible by the stddev group {group}")
        y = x.reshape(group, -1, self.stddev_feat, c // self.stddev_feat, h, w)
        y = torch.sqrt(y.var(0, unbiased=False) + 1e-8)
        y = y.mean(dim=(2, 3, 4), keepdim=True).squeeze(2)  # [B / G, feat, 1, 1]
        y = y.repeat(group, 1, h, w)
        return torch.cat([x, y], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, 3, size, size] in [-1, 1] -> logits [B, 1]."""
        # channels_last: oneDNN's fast layout on CPU (as in the generator)
        out = self.convs(x.contiguous(memory_format=torch.channels_last))
        out = self.final_conv(self.minibatch_stddev(out))
        return self.final_linear(out.flatten(1))
