"""fused_leaky_relu reference: hand computation, shapes, 1st/2nd-order grads, CUDA Function wiring."""

from __future__ import annotations

import math

import pytest
import torch

from redestyle.ops import _plugin, fused_leaky_relu
from redestyle.ops.bias_act import _bias_act_cuda


def test_hand_computed_values():
    x = torch.tensor([[[[-1.0, 2.0]]], [[[0.5, -3.0]]]]).repeat(1, 2, 1, 1)  # [2, 2, 1, 2]
    b = torch.tensor([0.5, -1.0])
    got = fused_leaky_relu(x, b)
    s = math.sqrt(2)
    # channel 0 adds 0.5, channel 1 subtracts 1; negatives are scaled by 0.2; all by sqrt(2).
    want = torch.tensor(
        [
            [[[-0.5 * 0.2 * s, 2.5 * s]], [[-2.0 * 0.2 * s, 1.0 * s]]],
            [[[1.0 * s, -2.5 * 0.2 * s]], [[-0.5 * 0.2 * s, -4.0 * 0.2 * s]]],
        ]
    )
    torch.testing.assert_close(got, want)


def test_2d_input_no_bias_custom_slope_and_scale():
    x = torch.tensor([[-2.0, 0.0, 3.0]])
    torch.testing.assert_close(
        fused_leaky_relu(x, None, 0.1, 2.0), torch.tensor([[-0.4, 0.0, 6.0]])
    )


def test_bias_shape_is_checked():
    with pytest.raises(ValueError, match="does not match x channels 3"):
        fused_leaky_relu(torch.randn(2, 3), torch.zeros(4))


@pytest.mark.parametrize("shape", [(3, 5), (2, 4, 3, 3)], ids=["linear", "conv"])
def test_gradcheck_and_gradgradcheck(shape):
    g = torch.Generator().manual_seed(0)
    # Keep x + b away from 0, where leaky ReLU has a kink that finite differences straddle.
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    x = (x + 0.2 * x.sign()).requires_grad_()
    b = (0.05 * torch.randn(shape[1], generator=g, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(fused_leaky_relu, (x, b))
    assert torch.autograd.gradgradcheck(fused_leaky_relu, (x, b))


def test_bf16_matches_fp32_loosely():
    x, b = torch.randn(4, 8, 5, 5), torch.randn(8)
    got = fused_leaky_relu(x.bfloat16(), b)
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), fused_leaky_relu(x, b), rtol=2e-2, atol=2e-2)


class _StandInBiasAct:
    """Plays the compiled module on CPU with the kernel's contract (grad=0 forward, grad=1 from ref)."""

    @staticmethod
    def bias_act(x, b, ref, grad, alpha, gain):
        if grad == 0:
            v = x + b.view([1, -1] + [1] * (x.ndim - 2)) if b.numel() else x
            return torch.where(v > 0, v, v * alpha) * gain
        return torch.where(ref > 0, x, x * alpha) * gain


@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "no_bias"])
def test_cuda_function_wiring_first_and_second_order(with_bias, monkeypatch):
    stand_in = _plugin.Plugin("bias_act", _StandInBiasAct, None, "")
    monkeypatch.setattr(_plugin, "load_plugin", lambda name: stand_in)
    op = _bias_act_cuda(0.2, math.sqrt(2))
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 4, generator=g, dtype=torch.float64)
    x = (x + 0.2 * x.sign()).requires_grad_()
    b = (0.05 * torch.randn(3, generator=g, dtype=torch.float64)).requires_grad_(with_bias)
    if not with_bias:
        b = x.new_empty(0)
    torch.testing.assert_close(op.apply(x, b), fused_leaky_relu(x, b if with_bias else None))
    inputs = (x, b) if with_bias else (x,)
    fn = (lambda x, b: op.apply(x, b)) if with_bias else (lambda x: op.apply(x, b))  # noqa: E731
    assert torch.autograd.gradcheck(fn, inputs)
    assert torch.autograd.gradgradcheck(fn, inputs)
