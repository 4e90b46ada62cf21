"""Non-leaking adaptive discriminator augmentation (ADA) for DualStyleGAN training (``--augment``).

StyleGAN2-ADA's pipeline as DualStyleGAN runs it (``model/stylegan/non_leaking.py``, rosinality's
port; reference/dualstylegan.md §3): every transform below is applied to each image independently
with probability ``p`` (the rotations with ``1 - sqrt(1 - p)`` so that "some rotation" has
probability ``p``), to the real and the fake images that D sees. Because each transform is skipped
with probability ``1 - p``, D cannot learn the augmented distribution as the real one while ``p``
stays below about 0.8 (the "non-leaking" condition of the ADA paper).

Geometric, composed into one affine map (pixel units, image centre at the origin), in the order
xflip, rotate90, integer translation (U(-0.125, 0.125) of the size, rounded), isotropic scale
(2^N(0, 0.2)), pre-rotation (U(-pi, pi)), anisotropic scale (2^N(0, 0.2), s and 1/s), post-rotation,
fractional translation (N(0, 0.125) of the size). Colour, one 4x4 matrix on RGB (luma axis
v = (1, 1, 1) / sqrt(3)), in the order brightness (+N(0, 0.2)), contrast (x 2^N(0, 0.5)), luma flip,
hue rotation about v (U(-pi, pi)), saturation (x 2^N(0, 1) off the luma axis).

Differences from the official code: the warp is one bilinear ``grid_sample`` that mirrors the image
about its outer edges (the official reflect padding mirrors about the edge pixels), without the
official 2x SYM6-wavelet supersampling around it (so strong minification aliases slightly more); the draws are the same distributions, taken from a caller-supplied
``torch.Generator`` so that training resumes bit for bit. Outputs are not clamped (neither are the
official ones): colour transforms can leave [-1, 1].

:class:`AdaptiveAugment` tunes ``p`` from the sign of D's real logits (heuristic r_t of the ADA paper).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from . import dist

# standard deviations / ranges of the pipeline (StyleGAN2-ADA defaults, used by non_leaking.py)
INT_TRANSLATE = 0.125  # max integer translation, fraction of the image size
SCALE_STD = 0.2  # log2 std of the isotropic and anisotropic scales
FRAC_TRANSLATE_STD = 0.125  # std of the fractional translation, fraction of the image size
BRIGHTNESS_STD = 0.2
CONTRAST_STD = 0.5  # log2 std
SATURATION_STD = 1.0  # log2 std


def _gated(p: float, value: Tensor, neutral: float, generator: torch.Generator) -> Tensor:
    """``value`` [B, ...] where sample b's transform is on (probability p, one draw per sample), else
    ``neutral`` (the parameter of the identity)."""
    on = torch.rand(value.shape[0], generator=generator) < p
    return torch.where(on.reshape(-1, *[1] * (value.ndim - 1)), value, torch.full_like(value, neutral))


def _eye(batch: int, n: int) -> Tensor:
    return torch.eye(n, dtype=torch.float64).repeat(batch, 1, 1)


def _affine2d(a: Tensor, b: Tensor, c: Tensor, d: Tensor, tx: Tensor, ty: Tensor) -> Tensor:
    """[B] entries -> [B, 3, 3] matrices [[a, b, tx], [c, d, ty], [0, 0, 1]]."""
    zero, one = torch.zeros_like(a), torch.ones_like(a)
    return torch.stack([a, b, tx, c, d, ty, zero, zero, one], 1).reshape(-1, 3, 3)


def _rotation(theta: Tensor) -> Tensor:
    zero = torch.zeros_like(theta)
    return _affine2d(theta.cos(), -theta.sin(), theta.sin(), theta.cos(), zero, zero)


def _scaling(sx: Tensor, sy: Tensor) -> Tensor:
    zero = torch.zeros_like(sx)
    return _affine2d(sx, zero, zero, sy, zero, zero)


def _translation(tx: Tensor, ty: Tensor) -> Tensor:
    one, zero = torch.ones_like(tx), torch.zeros_like(tx)
    return _affine2d(one, zero, zero, one, tx, ty)


def geometric_matrix(p: float, batch: int, height: int, width: int, *, generator: torch.Generator) -> Tensor:
    """Random output->input maps [B, 3, 3] (float64, pixel units, centre at the origin).

    The order and distributions are the module docstring's; a sample whose gates all stay closed
    gets the identity. The number of draws does not depend on ``p`` (the random stream stays aligned).
    """
    b, g = batch, generator
    pr = 1 - math.sqrt(1 - min(max(p, 0.0), 1.0))  # per-rotation probability: P(any rotation) = p
    m = _eye(b, 3)

    def gated(prob: float, value: Tensor, neutral: float) -> Tensor:
        return _gated(prob, value, neutral, g)

    flip = gated(p, torch.randint(2, (b,), generator=g).double(), 0.0)
    m = m @ _scaling(1 - 2 * flip, torch.ones(b, dtype=torch.float64))
    quarter = gated(p, torch.randint(4, (b,), generator=g).double(), 0.0)
    m = m @ _rotation(quarter * (math.pi / 2))
    t = gated(p, (torch.rand(b, 2, generator=g, dtype=torch.float64) * 2 - 1) * INT_TRANSLATE, 0.0)
    m = m @ _translation((t[:, 0] * width).round(), (t[:, 1] * height).round())
    s = gated(p, torch.exp2(torch.randn(b, generator=g, dtype=torch.float64) * SCALE_STD), 1.0)
    m = m @ _scaling(s, s)
    pre = gated(pr, (torch.rand(b, generator=g, dtype=torch.float64) * 2 - 1) * math.pi, 0.0)
    m = m @ _rotation(pre)
    s = gated(p, torch.exp2(torch.randn(b, generator=g, dtype=torch.float64) * SCALE_STD), 1.0)
    m = m @ _scaling(s, 1 / s)
    post = gated(pr, (torch.rand(b, generator=g, dtype=torch.float64) * 2 - 1) * math.pi, 0.0)
    m = m @ _rotation(post)
    t = gated(p, torch.randn(b, 2, generator=g, dtype=torch.float64) * FRAC_TRANSLATE_STD, 0.0)
    return m @ _translation(t[:, 0] * width, t[:, 1] * height)


def color_matrix(p: float, batch: int, *, generator: torch.Generator) -> Tensor:
    """Random colour maps [B, 4, 4] (float64) on homogeneous RGB, applied as ``M @ (r, g, b, 1)``."""
    b, g = batch, generator
    v = torch.tensor([1.0, 1.0, 1.0, 0.0], dtype=torch.float64) / math.sqrt(3)  # luma axis
    vv = torch.outer(v, v)
    eye = torch.eye(4, dtype=torch.float64)
    m = _eye(b, 4)

    def gated(value: Tensor, neutral: float) -> Tensor:
        return _gated(p, value, neutral, g)

    bright = gated(torch.randn(b, generator=g, dtype=torch.float64) * BRIGHTNESS_STD, 0.0)
    shift = _eye(b, 4)
    shift[:, :3, 3] = bright[:, None]
    m = shift @ m
    c = gated(torch.exp2(torch.randn(b, generator=g, dtype=torch.float64) * CONTRAST_STD), 1.0)
    m = torch.diag_embed(torch.stack([c, c, c, torch.ones_like(c)], 1)) @ m
    flip = gated(torch.randint(2, (b,), generator=g).double(), 0.0)
    m = (eye - 2 * vv * flip[:, None, None]) @ m  # reflect colours through the plane orthogonal to v
    theta = gated((torch.rand(b, generator=g, dtype=torch.float64) * 2 - 1) * math.pi, 0.0)
    m = _rotation_about(v[:3], theta) @ m
    s = gated(torch.exp2(torch.randn(b, generator=g, dtype=torch.float64) * SATURATION_STD), 1.0)
    m = (vv + (eye - vv) * s[:, None, None]) @ m
    return m


def _rotation_about(axis: Tensor, theta: Tensor) -> Tensor:
    """Rodrigues rotation by ``theta`` [B] about the unit 3-vector ``axis`` -> [B, 4, 4] homogeneous."""
    k = torch.zeros(3, 3, dtype=torch.float64)
    k[0, 1], k[0, 2], k[1, 2] = -axis[2], axis[1], -axis[0]
    k = k - k.T  # cross-product matrix of the axis
    r = torch.eye(3, dtype=torch.float64) + theta.sin()[:, None, None] * k + (1 - theta.cos())[:, None, None] * (k @ k)
    out = _eye(theta.shape[0], 4)
    out[:, :3, :3] = r
    return out


def augment(
    images: Tensor, p: float, *, generator: torch.Generator, geometric: bool = True, color: bool = True,
) -> Tensor:
    """Non-leaking ADA of ``images`` [B, C, H, W] (RGB in [-1, 1] for the colour part) with probability p.

    Returns a tensor of the same shape, dtype and device, differentiable with respect to
    ``images`` (to any order: R1 is taken through it). p = 0 returns ``images`` itself. Every draw
    comes from ``generator`` (a CPU ``torch.Generator``), the same number of them whatever ``p``;
    ``geometric`` / ``color`` switch the two halves off (their draws are then skipped).
    """
    if images.ndim != 4:
        raise ValueError(f"augment needs images [B, C, H, W], got {tuple(images.shape)}")
    if not 0 <= p <= 1:
        raise ValueError(f"augment probability must be in [0, 1], got {p}")
    b, c, h, w = images.shape
    out = images
    if geometric:
        m = geometric_matrix(p, b, h, w, generator=generator)
        if not torch.equal(m, _eye(b, 3)):
            out = _warp(out, m)
    if color:
        if c != 3:
            raise ValueError(f"colour augmentation needs RGB images, got {c} channels")
        m = color_matrix(p, b, generator=generator)
        if not torch.equal(m, _eye(b, 4)):
            m = m.to(device=images.device, dtype=images.dtype)
            out = (m[:, :3, :3] @ out.flatten(2) + m[:, :3, 3:]).reshape(b, c, h, w)
    return out


def _warp(images: Tensor, matrix: Tensor) -> Tensor:
    """Resample ``images`` at ``matrix`` @ (output pixel position) (bilinear, reflected borders)."""
    b, _, h, w = images.shape
    # pixel units (centred) -> grid_sample's normalised units (align_corners=False: +-1 = outer edges)
    to_pixels = torch.diag(torch.tensor([w / 2, h / 2, 1.0], dtype=torch.float64))
    theta = torch.linalg.inv(to_pixels) @ matrix @ to_pixels
    theta = theta[:, :2].to(device=images.device, dtype=images.dtype)
    grid = F.affine_grid(theta, [b, 1, h, w], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


class AdaptiveAugment:
    """ADA's controller of ``p`` (``AdaptiveAugment`` of non_leaking.py; dualstylegan.md §3).

    :meth:`tune` is called with D's logits on the (augmented) real batch after every D step; it
    accumulates sum(sign(logits)) and the count, and every ``update_every`` calls sets
    r_t = sum / count (summed over ranks) and p <- clip(p + sign(r_t - target) * count / length, 0, 1):
    p rises while D is overconfident on reals (r_t > target) and falls otherwise.
    """

    def __init__(self, target: float = 0.6, length: int = 500_000, update_every: int = 8, p: float = 0.0) -> None:
        if length <= 0 or update_every < 1:
            raise ValueError(f"need length > 0 and update_every >= 1, got {length}, {update_every}")
        self.target, self.length, self.update_every = float(target), int(length), int(update_every)
        self.p = float(p)
        self.r_t = 0.0  # last heuristic value (for logging)
        self._signs, self._count, self._calls = 0.0, 0, 0

    def tune(self, real_pred: Tensor) -> float:
        """Accumulate ``real_pred`` [B, 1] (D's real logits); update p when due -> the current p."""
        self._signs += float(torch.sign(real_pred.detach()).sum())
        self._count += real_pred.shape[0]
        self._calls += 1
        if self._calls % self.update_every == 0:
            signs, count = self._signs, self._count
            if dist.is_distributed():
                import torch.distributed as tdist

                buf = torch.tensor([signs, float(count)], dtype=torch.float64, device=real_pred.device)
                tdist.all_reduce(buf)
                signs, count = buf.tolist()
            self.r_t = signs / count
            step = 1.0 if self.r_t > self.target else -1.0  # official: ties lower p
            self.p = min(max(self.p + step * count / self.length, 0.0), 1.0)
            self._signs, self._count = 0.0, 0
        return self.p

    def state_dict(self) -> dict:
        """Plain floats/ints: p, r_t and the pending accumulators (for an exact resume)."""
        return {"p": self.p, "r_t": self.r_t, "signs": self._signs, "count": self._count, "calls": self._calls,
                "target": self.target, "length": self.length, "update_every": self.update_every}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` (the settings stay this object's)."""
        self.p, self.r_t = float(state["p"]), float(state["r_t"])
        self._signs, self._count, self._calls = float(state["signs"]), int(state["count"]), int(state["calls"])
