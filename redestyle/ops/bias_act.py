"""Fused bias + leaky ReLU (rosinality ``fused_leaky_relu``; NVlabs ``bias_act``).

y = leaky_relu(x + b, alpha) * gain, the bias broadcast along dim 1.

The CUDA path mirrors the official kernel's contract (reference/stylegan2.md §6): one kernel that
computes the forward (grad=0) or, given the upstream gradient and the saved *output* as ``ref``, the
gradient (grad=1). The second derivative of a leaky ReLU is zero, so double backward reuses grad=1.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from . import _plugin

SQRT2 = math.sqrt(2.0)


def _bias_act_ref(
    x: torch.Tensor, b: torch.Tensor | None, alpha: float, gain: float
) -> torch.Tensor:
    """The specification: plain PyTorch, any device or dtype, any derivative order."""
    if b is not None:
        x = x + b.to(x.dtype).view([1, -1] + [1] * (x.ndim - 2))
    # leaky_relu saves its input, not its output, for backward: scaling the output in place is safe.
    return F.leaky_relu(x, alpha).mul_(gain)


@functools.cache
def _bias_act_cuda(alpha: float, gain: float) -> type[torch.autograd.Function]:
    """Autograd Functions for the CUDA kernel with static ``alpha``/``gain`` (one pair per value)."""

    def run(x: torch.Tensor, b: torch.Tensor, ref: torch.Tensor, grad: int) -> torch.Tensor:
        return _plugin.load_plugin("bias_act").module.bias_act(x, b, ref, grad, alpha, gain)

    class BiasActGrad(torch.autograd.Function):
        """dx = dy * (y > 0 ? 1 : alpha) * gain, y the saved forward output (gain > 0)."""

        @staticmethod
        def forward(ctx, dy: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            ctx.save_for_backward(y)
            return run(dy.contiguous(), y.new_empty(0), y, 1)

        @staticmethod
        def backward(ctx, ddx: torch.Tensor):
            (y,) = ctx.saved_tensors
            # Linear in dy with the same mask; piecewise constant in y, so no gradient to y.
            return BiasActGrad.apply(ddx, y), None

    class BiasAct(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            y = run(x.contiguous(), b, x.new_empty(0), 0)
            ctx.save_for_backward(y)
            ctx.has_bias = b.numel() > 0
            return y

        @staticmethod
        def backward(ctx, dy: torch.Tensor):
            (y,) = ctx.saved_tensors
            dx = BiasActGrad.apply(dy, y)
            db = None
            if ctx.has_bias and ctx.needs_input_grad[1]:
                db = dx.sum([d for d in range(dx.ndim) if d != 1])
            return dx, db

    return BiasAct


def fused_leaky_relu(
    x: torch.Tensor,
    bias: torch.Tensor | None = None,
    negative_slope: float = 0.2,
    scale: float = SQRT2,
) -> torch.Tensor:
    """leaky_relu(x + bias, negative_slope) * scale, same dtype and device as ``x``.

    x: [N, C, ...] (2-D for linear layers, 4-D for convs); bias: [C] or None, cast to x's dtype.
    Same signature as rosinality's op; defaults are StyleGAN2's slope 0.2 and gain sqrt(2).
    """
    if x.ndim < 2:
        raise ValueError(f"x must be [N, C, ...], got shape {tuple(x.shape)}")
    if bias is not None and (bias.ndim != 1 or bias.shape[0] != x.shape[1]):
        raise ValueError(
            f"bias of shape {tuple(bias.shape)} does not match x channels {x.shape[1]}"
        )
    # The kernel's backward reads the sign of the saved output: only valid for a positive scale.
    if scale > 0 and _plugin.cuda_module("bias_act", x) is not None:
        b = x.new_empty(0) if bias is None else bias.to(x.dtype)
        return _bias_act_cuda(float(negative_slope), float(scale)).apply(x, b)
    return _bias_act_ref(x, bias, negative_slope, scale)
