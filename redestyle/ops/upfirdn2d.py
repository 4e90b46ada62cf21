"""upfirdn2d: upsample (zero insertion), pad, FIR filter, downsample, per channel plane."""

from __future__ import annotations

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


def _upfirdn2d_ref(x, kernel, up_x, up_y, down_x, down_y, px0, px1, py0, py1):
    """The specification: zero-stuff, pad (negative crops), true convolution, subsample."""
    n, c, h, w = x.shape
    kh, kw = kernel.shape
    if up_x > 1 or up_y > 1:
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, [0, up_x - 1, 0, 0, 0, up_y - 1])
        x = x.reshape(n, c, h * up_y, w * up_x)
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0) : x.shape[2] - max(-py1, 0), max(-px0, 0) : x.shape[3] - max(-px1, 0)]
    # conv2d correlates: flip the kernel for a true convolution; depthwise over channels.
    weight = torch.flip(kernel, [0, 1]).to(x.dtype).view(1, 1, kh, kw).expand(c, 1, kh, kw)
    x = F.conv2d(x, weight, groups=c)
    return x[:, :, ::down_y, ::down_x]


def upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, up=1, down=1, pad=(0, 0)) -> torch.Tensor:
    """Upsample by ``up``, pad, convolve with the 2-D FIR ``kernel``, downsample by ``down``.

    x: [N, C, H, W]; kernel: [kh, kw]; up/down: int or (x, y); pad: (p0, p1) on both axes
    (rosinality) or (x0, x1, y0, y1). Output H = (H*up_y + py0 + py1 - kh + down_y) // down_y.
    """
    up_x, up_y = (up, up) if isinstance(up, int) else up
    down_x, down_y = (down, down) if isinstance(down, int) else down
    px0, px1, py0, py1 = _pairs(pad)
    return _upfirdn2d_ref(x, kernel, up_x, up_y, down_x, down_y, px0, px1, py0, py1)
