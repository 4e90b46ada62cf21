"""CUDA kernels vs the reference: values, 1st and 2nd-order grads, fp32 and fp16 (GPU only)."""

from __future__ import annotations

import pytest
import torch

from redestyle import ops

pytestmark = pytest.mark.cuda

TOL = {torch.float32: dict(rtol=1e-4, atol=1e-4), torch.float16: dict(rtol=1e-2, atol=1e-2)}
DTYPES = [torch.float32, torch.float16]


def _grads(fn, inputs, *, seed):
    """Output, first-order grads of <out, u>, and second-order grads of <grads, v> w.r.t. inputs and u."""
    g = torch.Generator(device="cuda").manual_seed(seed)
    inputs = [t.detach().clone().requires_grad_() for t in inputs]
    out = fn(*inputs)
    u = torch.randn(out.shape, generator=g, device="cuda", dtype=out.dtype).requires_grad_()
    first = torch.autograd.grad(out, inputs, u, create_graph=True)
    v = [torch.randn(f.shape, generator=g, device="cuda", dtype=f.dtype) for f in first]
    second = torch.autograd.grad(first, inputs + [u], v, allow_unused=True, materialize_grads=True)
    return [out, *first, *second]


def _compare(fn, inputs, dtype, seed=0):
    with ops.use_backend("reference"):
        want = _grads(fn, inputs, seed=seed)
    with ops.use_backend("cuda"):
        got = _grads(fn, inputs, seed=seed)
    for i, (a, b) in enumerate(zip(got, want)):
        torch.testing.assert_close(
            a.float(), b.float(), **TOL[dtype], msg=lambda m, i=i: f"term {i}: {m}"
        )


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "fp16"])
@pytest.mark.parametrize("shape", [(4, 16), (2, 8, 9, 7)], ids=["linear", "conv"])
def test_bias_act_cuda_matches_reference(shape, dtype):
    x = torch.randn(shape, device="cuda", dtype=dtype)
    b = torch.randn(shape[1], device="cuda", dtype=dtype)
    _compare(lambda x, b: ops.fused_leaky_relu(x, b), [x, b], dtype)


UPFIRDN_CASES = {
    "upsample": dict(up=2, pad=(2, 1)),
    "blur": dict(pad=(1, 1)),
    "downsample": dict(down=2, pad=(1, 1)),
    "asym_up_down_negpad": dict(up=(2, 3), down=(3, 2), pad=(-1, 2, 1, -2)),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "fp16"])
@pytest.mark.parametrize("case", list(UPFIRDN_CASES), ids=list(UPFIRDN_CASES))
def test_upfirdn2d_cuda_matches_reference(case, dtype):
    x = torch.randn(2, 5, 11, 9, device="cuda", dtype=dtype)
    kernel = torch.rand(4, 3, device="cuda")  # asymmetric: catches flip mistakes
    kwargs = UPFIRDN_CASES[case]
    _compare(lambda x: ops.upfirdn2d(x, kernel, **kwargs), [x], dtype)


def test_cuda_mode_uses_the_kernel():
    with ops.use_backend("cuda"):
        y = ops.fused_leaky_relu(torch.randn(2, 3, device="cuda", requires_grad=True))
    assert "BiasAct" in type(y.grad_fn).__name__
    assert ops.backend_report()["bias_act"][0] == "cuda"
