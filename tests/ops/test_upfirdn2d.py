"""upfirdn2d reference: against an independent zero-stuff + per-plane conv formulation, sizes, grads."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from redestyle.ops import _plugin, upfirdn2d
from redestyle.ops.upfirdn2d import _upfirdn2d_cuda


def naive_upfirdn2d(x, kernel, up, down, pad):
    """Independent formulation: explicit zero insertion, explicit zero pad then crop, and one full
    single-channel conv2d per (n, c) plane with the flipped kernel, then subsampling."""
    (ux, uy), (dx, dy), (px0, px1, py0, py1) = up, down, pad
    n, c, h, w = x.shape
    stuffed = x.new_zeros(n, c, h * uy, w * ux)
    stuffed[:, :, ::uy, ::ux] = x
    big = max(abs(p) for p in pad)
    padded = F.pad(stuffed, [big] * 4)  # pad generously, then cut the wanted window out
    padded = padded[:, :, big - py0 : big + h * uy + py1, big - px0 : big + w * ux + px1]
    weight = kernel.flip([0, 1]).to(x.dtype)[None, None]
    out = torch.stack(
        [
            torch.stack([F.conv2d(padded[i, j][None, None], weight)[0, 0] for j in range(c)])
            for i in range(n)
        ]
    )
    return out[:, :, ::dy, ::dx]


CASES = {
    # id: (up, down, pad (x0, x1, y0, y1))
    "identity": ((1, 1), (1, 1), (0, 0, 0, 0)),
    "blur_sym": ((1, 1), (1, 1), (1, 2, 1, 2)),
    "up2_stylegan": ((2, 2), (1, 1), (2, 1, 2, 1)),
    "down2_stylegan": ((1, 1), (2, 2), (1, 1, 1, 1)),
    "up_asym_axes": ((3, 2), (1, 1), (1, 3, 0, 2)),
    "down_asym_axes": ((1, 1), (3, 2), (2, 0, 1, 3)),
    "up_and_down": ((2, 3), (3, 2), (1, 2, 2, 1)),
    "negative_pads": ((1, 1), (1, 1), (-1, 2, 3, -2)),
    "negative_pads_up": ((2, 2), (1, 1), (-2, 1, 1, -3)),
    "negative_pads_down": ((1, 1), (2, 2), (2, -1, -1, 0)),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_matches_zero_stuffing_conv(case):
    up, down, pad = CASES[case]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 7, 6, generator=g, dtype=torch.float64)
    kernel = torch.randn(3, 4, generator=g, dtype=torch.float64)  # asymmetric in size and taps
    got = upfirdn2d(x, kernel, up=up, down=down, pad=pad)
    want = naive_upfirdn2d(x, kernel, up, down, pad)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "size, kernel, up, down, pad",
    [
        ((8, 8), (4, 4), 2, 1, (2, 1)),  # StyleGAN2 Upsample: exactly 2H
        ((17, 17), (4, 4), 1, 1, (1, 1)),  # blur after the stride-2 transposed conv: 2H+1 -> 2H
        ((16, 16), (4, 4), 1, 2, (1, 1)),  # Downsample: exactly H/2
        ((9, 5), (3, 2), (2, 3), (3, 2), (1, 0, 2, -1)),
    ],
)
def test_output_size_formula(size, kernel, up, down, pad):
    x = torch.randn(1, 2, *size)
    out = upfirdn2d(x, torch.ones(kernel), up=up, down=down, pad=pad)
    (ux, uy) = (up, up) if isinstance(up, int) else up
    (dx, dy) = (down, down) if isinstance(down, int) else down
    px0, px1, py0, py1 = pad * 2 if len(pad) == 2 else pad
    want_h = (size[0] * uy + py0 + py1 - kernel[0] + dy) // dy
    want_w = (size[1] * ux + px0 + px1 - kernel[1] + dx) // dx
    assert out.shape == (1, 2, want_h, want_w)


def test_hand_computed_1d_case():
    # x = [3, 5], up 2 -> [3, 0, 5, 0], pad (1, 0) -> [0, 3, 0, 5, 0]; a true convolution with
    # kernel [1, 2] gives out[i] = 2 * p[i] + 1 * p[i + 1] = [3, 6, 5, 10].
    x = torch.tensor([[[[3.0, 5.0]]]])
    out = upfirdn2d(x, torch.tensor([[1.0, 2.0]]), up=(2, 1), pad=(1, 0, 0, 0))
    assert out.flatten().tolist() == [3.0, 6.0, 5.0, 10.0]


def test_pair_padding_means_both_axes():
    x, k = torch.randn(1, 1, 5, 6), torch.rand(3, 3)
    torch.testing.assert_close(upfirdn2d(x, k, pad=(2, 1)), upfirdn2d(x, k, pad=(2, 1, 2, 1)))


def test_invalid_arguments():
    x, k = torch.randn(1, 1, 4, 4), torch.ones(3, 3)
    with pytest.raises(ValueError, match="pad must have 2 or 4"):
        upfirdn2d(x, k, pad=(1, 1, 1))
    with pytest.raises(ValueError, match="output would be"):
        upfirdn2d(x, k, pad=(-2, -2))
    with pytest.raises(ValueError, match="up factors"):
        upfirdn2d(x, k, up=0)
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        upfirdn2d(x[0], k)


GRAD_CASES = ["up2_stylegan", "down2_stylegan", "up_and_down", "negative_pads"]


@pytest.mark.parametrize("case", GRAD_CASES, ids=GRAD_CASES)
def test_gradcheck_and_gradgradcheck(case):
    up, down, pad = CASES[case]
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 2, 5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    k = torch.randn(3, 2, generator=g, dtype=torch.float64, requires_grad=True)
    fn = lambda x, k: upfirdn2d(x, k, up=up, down=down, pad=pad)  # noqa: E731
    # fast_mode checks random projections of the Jacobians: full mode is minutes of fp64 convs.
    assert torch.autograd.gradcheck(fn, (x, k), fast_mode=True)
    assert torch.autograd.gradgradcheck(fn, (x, k), fast_mode=True)


@pytest.mark.parametrize("case", GRAD_CASES, ids=GRAD_CASES)
def test_backward_formula_is_the_adjoint(case):
    """The CUDA path's backward (flipped kernel, up/down swapped, stylegan2.md §6 pads) equals the
    reference gradient: checked here with the reference op standing in for the kernel."""
    up, down, pad = CASES[case]
    (ux, uy), (dx, dy), (px0, _, py0, _) = up, down, pad
    g = torch.Generator().manual_seed(2)
    x = torch.randn(1, 2, 5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    k = torch.randn(3, 2, generator=g, dtype=torch.float64)
    y = upfirdn2d(x, k, up=up, down=down, pad=pad)
    dy_ = torch.randn(y.shape, generator=g, dtype=torch.float64)
    (want,) = torch.autograd.grad(y, x, dy_)
    kh, kw = k.shape
    (in_h, in_w), (out_h, out_w) = x.shape[2:], y.shape[2:]
    got = upfirdn2d(
        dy_,
        k.flip([0, 1]),
        up=(dx, dy),
        down=(ux, uy),
        pad=(
            kw - px0 - 1,
            in_w * ux - out_w * dx + px0 - ux + 1,
            kh - py0 - 1,
            in_h * uy - out_h * dy + py0 - uy + 1,
        ),
    )
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


class _StandInUpfirdn2d:
    """Plays the compiled module on CPU: same call signature, reference math."""

    @staticmethod
    def upfirdn2d(x, kernel, up_x, up_y, down_x, down_y, px0, px1, py0, py1):
        from redestyle.ops.upfirdn2d import _upfirdn2d_ref

        return _upfirdn2d_ref(x, kernel, up_x, up_y, down_x, down_y, px0, px1, py0, py1)


@pytest.mark.parametrize("case", GRAD_CASES, ids=GRAD_CASES)
def test_cuda_function_wiring_first_and_second_order(case, monkeypatch):
    """The autograd Function around the kernel (saved sizes, recursive backward) is exact to 2nd order."""
    stand_in = _plugin.Plugin("upfirdn2d", _StandInUpfirdn2d, None, "")
    monkeypatch.setattr(_plugin, "load_plugin", lambda name: stand_in)
    up, down, pad = CASES[case]
    op = _upfirdn2d_cuda(*up, *down, *pad)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1, 2, 5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    k = torch.randn(3, 2, generator=g, dtype=torch.float64)
    fn = lambda x: op.apply(x, k)  # noqa: E731
    torch.testing.assert_close(fn(x), upfirdn2d(x, k, up=up, down=down, pad=pad))
    assert torch.autograd.gradcheck(fn, (x,), fast_mode=True)
    assert torch.autograd.gradgradcheck(fn, (x,), fast_mode=True)


def test_bf16_matches_fp32_loosely():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, 4, 16, 16, generator=g)
    k = torch.outer(torch.tensor([1.0, 3, 3, 1]), torch.tensor([1.0, 3, 3, 1])) / 64 * 4
    want = upfirdn2d(x, k, up=2, pad=(2, 1))
    got = upfirdn2d(x.bfloat16(), k, up=2, pad=(2, 1))
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), want, rtol=2e-2, atol=2e-2)


def test_bf16_gradients_flow():
    x = torch.randn(1, 2, 8, 8, dtype=torch.bfloat16, requires_grad=True)
    y = upfirdn2d(x, torch.ones(4, 4) / 16, down=2, pad=(1, 1))
    y.sum().backward()
    assert x.grad.dtype == torch.bfloat16 and torch.isfinite(x.grad.float()).all()
