"""Fused bias + leaky ReLU (rosinality ``fused_leaky_relu``; NVlabs ``bias_act``).

y = leaky_relu(x + b, alpha) * gain, the bias broadcast along dim 1.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from . import _plugin

SQRT2 = math.sqrt(2.0)


def _bias_act_ref(x: torch.Tensor, b: torch.Tensor | None, alpha: float, gain: float) -> torch.Tensor:
    """The specification: plain PyTorch, any device or dtype, any derivative order."""
    if b is not None:
        shape = [1, -1] + [1] * (x.ndim - 2)
        x = x + b.to(x.dtype).view(shape)
    return F.leaky_relu(x, alpha) * gain


def fused_leaky_relu(
    x: torch.Tensor,
    bias: torch.Tensor | None = None,
    negative_slope: float = 0.2,
    scale: float = SQRT2,
) -> torch.Tensor:
    """leaky_relu(x + bias, negative_slope) * scale.

    x: [N, C, ...]; bias: [C] or None. Same signature as rosinality's op.
    """
    if bias is not None and (bias.ndim != 1 or bias.shape[0] != x.shape[1]):
        raise ValueError(f"bias of shape {tuple(bias.shape)} does not match x channels {x.shape[1]}")
    return _bias_act_ref(x, bias, negative_slope, scale)
