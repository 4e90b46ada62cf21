"""upfirdn2d: upsample (zero insertion), pad, FIR filter, downsample, per channel plane.

Semantics (reference/stylegan2.md §6), for every (batch, channel) plane independently:
1. insert ``up - 1`` zeros after every sample (both axes);
2. pad with (x0, x1, y0, y1) zeros, negative values crop;
3. convolve with the 2-D FIR kernel (a true convolution), keeping fully overlapping positions;
4. keep every ``down``-th sample, starting at 0.
Output H = (H_in * up_y + y0 + y1 - kh + down_y) // down_y, and likewise W.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from . import _plugin


def _pairs(pad) -> tuple[int, int, int, int]:
    """Normalise rosinality's (p0, p1) or a full (x0, x1, y0, y1) padding."""
    pad = tuple(int(p) for p in pad)
    if len(pad) == 2:
        return pad[0], pad[1], pad[0], pad[1]
    if len(pad) == 4:
        return pad  # type: ignore[return-value]
    raise ValueError(f"pad must have 2 or 4 entries, got {pad}")


def _factors(value, name: str) -> tuple[int, int]:
    """An int or an (x, y) pair of positive ints."""
    fx, fy = (value, value) if isinstance(value, int) else tuple(int(v) for v in value)
    if fx < 1 or fy < 1:
        raise ValueError(f"{name} factors must be >= 1, got {value}")
    return fx, fy


def _pad_or_crop(x: torch.Tensor, x0: int, x1: int, y0: int, y1: int) -> torch.Tensor:
    """Zero-pad (positive) or crop (negative) the last two dims; a pure crop is a view."""
    if x0 <= 0 and x1 <= 0 and y0 <= 0 and y1 <= 0:
        return x[:, :, -y0 : x.shape[2] + y1, -x0 : x.shape[3] + x1]
    return F.pad(x, [x0, x1, y0, y1])


def _upfirdn2d_ref(x, kernel, up_x, up_y, down_x, down_y, px0, px1, py0, py1):
    """The specification in plain PyTorch: any device or dtype, gradients of any order.

    No zero-stuffing and no discarded outputs: upsampling is a strided transposed convolution
    (which is exactly "zero insertion, then full convolution") and downsampling a strided
    convolution. Symmetric parts of the padding go to the conv's own ``padding`` (no copy).
    """
    c = x.shape[1]
    kh, kw = kernel.shape
    dtype = x.dtype
    # Depthwise convs in bf16/fp16 on CPU are several times slower than fp32 (measured with torch
    # 2.14 on this project's CPU): run them in fp32 there, and keep CPU autocast from re-casting.
    compute = (
        torch.float32
        if x.device.type == "cpu" and dtype in (torch.float16, torch.bfloat16)
        else dtype
    )
    with torch.autocast("cpu", enabled=False):
        x = x.to(compute)
        kernel = kernel.to(device=x.device, dtype=compute)
        if up_x > 1 or up_y > 1:
            # Full convolution of the zero-stuffed plane; output row i of the op is full row
            # i + kh - 1 - py0, so crop (kh - 1 - py0) rows in front and (kh - up - py1) behind.
            cy0, cy1 = kh - 1 - py0, kh - up_y - py1
            cx0, cx1 = kw - 1 - px0, kw - up_x - px1
            sy, sx = max(min(cy0, cy1), 0), max(min(cx0, cx1), 0)
            weight = kernel.view(1, 1, kh, kw).expand(c, 1, kh, kw)
            x = F.conv_transpose2d(x, weight, stride=(up_y, up_x), padding=(sy, sx), groups=c)
            x = _pad_or_crop(x, sx - cx0, sx - cx1, sy - cy0, sy - cy1)
            x = x[:, :, ::down_y, ::down_x]
        else:
            sy, sx = max(min(py0, py1), 0), max(min(px0, px1), 0)
            x = _pad_or_crop(x, px0 - sx, px1 - sx, py0 - sy, py1 - sy)
            # conv2d correlates: flip the kernel for a true convolution.
            weight = kernel.flip([0, 1]).view(1, 1, kh, kw).expand(c, 1, kh, kw)
            x = F.conv2d(x, weight, stride=(down_y, down_x), padding=(sy, sx), groups=c)
    return x.to(dtype)


@functools.cache
def _upfirdn2d_cuda(
    up_x, up_y, down_x, down_y, px0, px1, py0, py1
) -> type[torch.autograd.Function]:
    """An autograd Function for the CUDA kernel with these static arguments (cached).

    Backward = upfirdn2d of the upstream gradient with the flipped kernel, up and down swapped and
    padding (k - p0 - 1, in * up - out * down + p0 - up + 1) per axis (reference/stylegan2.md §6).
    That op is itself such a Function, so gradients of every order work. The kernel gets no gradient.
    """

    class Upfirdn2d(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
            module = _plugin.load_plugin("upfirdn2d").module
            y = module.upfirdn2d(
                x.contiguous(), kernel, up_x, up_y, down_x, down_y, px0, px1, py0, py1
            )
            ctx.save_for_backward(kernel)
            ctx.sizes = (x.shape[2], x.shape[3], y.shape[2], y.shape[3])
            return y

        @staticmethod
        def backward(ctx, dy: torch.Tensor):
            (kernel,) = ctx.saved_tensors
            kh, kw = kernel.shape
            in_h, in_w, out_h, out_w = ctx.sizes
            grad_op = _upfirdn2d_cuda(
                down_x,
                down_y,
                up_x,
                up_y,
                kw - px0 - 1,
                in_w * up_x - out_w * down_x + px0 - up_x + 1,
                kh - py0 - 1,
                in_h * up_y - out_h * down_y + py0 - up_y + 1,
            )
            return grad_op.apply(dy, kernel.flip([0, 1])), None

    return Upfirdn2d


def upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, up=1, down=1, pad=(0, 0)) -> torch.Tensor:
    """Upsample by ``up``, pad, convolve with the 2-D FIR ``kernel``, downsample by ``down``.

    x: [N, C, H, W], any float dtype; kernel: [kh, kw] (cast to x's dtype; taps are used as given,
    no normalisation or flip). up/down: int or (x, y); pad: (p0, p1) on both axes (rosinality) or
    (x0, x1, y0, y1), negative values crop. Returns [N, C, H', W'] in x's dtype with
    H' = (H * up_y + y0 + y1 - kh + down_y) // down_y, W' likewise.
    The CUDA kernel gives no gradient to ``kernel``: a kernel that requires grad runs the reference.
    """
    if x.ndim != 4 or kernel.ndim != 2:
        raise ValueError(
            f"need x [N, C, H, W] and kernel [kh, kw], got {tuple(x.shape)}, {tuple(kernel.shape)}"
        )
    up_x, up_y = _factors(up, "up")
    down_x, down_y = _factors(down, "down")
    px0, px1, py0, py1 = _pairs(pad)
    kh, kw = kernel.shape
    out_h = (x.shape[2] * up_y + py0 + py1 - kh + down_y) // down_y
    out_w = (x.shape[3] * up_x + px0 + px1 - kw + down_x) // down_x
    if out_h < 1 or out_w < 1:
        raise ValueError(
            f"upfirdn2d output would be {out_h}x{out_w} for input {tuple(x.shape)}, kernel {kh}x{kw}, pad {pad}"
        )
    if not kernel.requires_grad and _plugin.cuda_module("upfirdn2d", x) is not None:
        # The kernel accumulates in fp32 (fp64 for fp64 inputs) and reads taps in that precision.
        k = kernel.to(
            device=x.device, dtype=torch.float64 if x.dtype == torch.float64 else torch.float32
        )
        op = _upfirdn2d_cuda(up_x, up_y, down_x, down_y, px0, px1, py0, py1)
        return op.apply(x, k.contiguous())
    return _upfirdn2d_ref(x, kernel, up_x, up_y, down_x, down_y, px0, px1, py0, py1)
