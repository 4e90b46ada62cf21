"""Backend selection, build-failure handling, import hygiene, and an opt-in nvcc compile check."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from redestyle import ops
from redestyle.ops import _plugin

LOAD_PLUGIN = _plugin.load_plugin  # the memoized builder, even while a test patches it away
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class _FakeCudaTensor:
    """Enough of a CUDA tensor for the dispatcher (no GPU on the CI machines)."""

    is_cuda = True


@pytest.fixture
def fresh_build_cache():
    """Empty the memoized build results before and after a test that fills them."""

    def clear():
        LOAD_PLUGIN.cache_clear()
        _plugin._warn_fallback.cache_clear()
        _plugin._results.clear()

    clear()
    yield
    clear()


def test_env_var_selects_backend(monkeypatch):
    monkeypatch.setenv("REDESTYLE_OPS", "cuda")
    token = _plugin._override.set(None)  # lift the conftest's override: the environment decides
    try:
        assert ops.backend() == "cuda"
        monkeypatch.setenv("REDESTYLE_OPS", " Reference ")
        assert ops.backend() == "reference"
        monkeypatch.delenv("REDESTYLE_OPS")
        assert ops.backend() == "auto"
    finally:
        _plugin._override.reset(token)


def test_context_overrides_env_and_nests(monkeypatch):
    monkeypatch.setenv("REDESTYLE_OPS", "cuda")
    with ops.use_backend("auto"):
        assert ops.backend() == "auto"
        with ops.use_backend("reference"):
            assert ops.backend() == "reference"
        assert ops.backend() == "auto"


def test_invalid_names_raise_clear_value_errors(monkeypatch):
    token = _plugin._override.set(None)
    try:
        monkeypatch.setenv("REDESTYLE_OPS", "gpu")
        with pytest.raises(
            ValueError, match=r"REDESTYLE_OPS='gpu' is not one of auto, reference, cuda"
        ):
            ops.backend()
    finally:
        _plugin._override.reset(token)
    with pytest.raises(ValueError, match=r"backend 'fast' is not one of"):
        with ops.use_backend("fast"):
            pass


@pytest.mark.parametrize("mode", ["auto", "cuda"])
def test_cpu_tensors_use_the_reference_without_building(mode, monkeypatch, fresh_build_cache):
    def no_build(name):
        raise AssertionError(f"a CPU call tried to build {name}")

    monkeypatch.setattr(_plugin, "load_plugin", no_build)
    x = torch.randn(2, 3, 6, 6)
    with ops.use_backend(mode):
        y = ops.upfirdn2d(ops.fused_leaky_relu(x, torch.zeros(3)), torch.ones(2, 2) / 4, down=2)
    assert y.shape == (2, 3, 3, 3)


def test_failed_build_is_cached_warned_once_and_raised_in_cuda_mode(
    tmp_path, monkeypatch, caplog, fresh_build_cache
):
    monkeypatch.setattr(_plugin, "CSRC", tmp_path)  # no sources there: the build must fail
    fake = _FakeCudaTensor()
    with ops.use_backend("auto"), caplog.at_level(logging.WARNING, logger=_plugin.__name__):
        assert _plugin.cuda_module("bias_act", fake) is None
        assert _plugin.cuda_module("bias_act", fake) is None
    warnings = [r for r in caplog.records if "bias_act" in r.getMessage()]
    assert len(warnings) == 1 and "using the reference" in warnings[0].getMessage()
    assert "\n" not in warnings[0].getMessage()  # only the first line of the error
    assert _plugin.load_plugin.cache_info().misses == 1  # the failure was memoized, not retried
    with (
        ops.use_backend("cuda"),
        pytest.raises(RuntimeError, match=r"CUDA op 'bias_act' failed to build") as err,
    ):
        _plugin.cuda_module("bias_act", fake)
    assert "Build log:" in str(err.value) and "bias_act.cpp" in str(err.value)
    with ops.use_backend("auto"):
        status, reason = ops.backend_report()["bias_act"]
    assert status == "reference" and reason.startswith("build failed:")


def test_backend_report_builds_nothing(monkeypatch, fresh_build_cache):
    monkeypatch.setattr(_plugin, "load_plugin", lambda name: pytest.fail("backend_report built"))
    with ops.use_backend("auto"):
        report = ops.backend_report()
    assert set(report) == {"bias_act", "upfirdn2d"}
    want = "reference" if not torch.cuda.is_available() else "unbuilt"
    assert all(status == want for status, _ in report.values())
    with ops.use_backend("reference"):
        assert all(status == "reference" for status, _ in ops.backend_report().values())


def _run(code: str, **env) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **env}
    full_env.pop("REDESTYLE_OPS", None)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=REPO,
    )


def test_import_and_cpu_calls_print_and_build_nothing():
    code = """
        import sys
        import redestyle.ops as ops
        import torch
        assert "torch.utils.cpp_extension" not in sys.modules, "import pulled in the build machinery"
        assert not torch.cuda.is_initialized(), "import initialised CUDA"
        x = torch.randn(1, 2, 8, 8)
        ops.upfirdn2d(ops.fused_leaky_relu(x, torch.zeros(2)), torch.ones(4, 4) / 16, up=2, pad=(2, 1))
        assert ops._plugin.load_plugin.cache_info().currsize == 0, "a CPU call built a kernel"
        assert "torch.utils.cpp_extension" not in sys.modules
    """
    result = _run(code, CUDA_VISIBLE_DEVICES="")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""


@pytest.mark.skipif(
    os.environ.get("REDESTYLE_TEST_BUILD") != "1",
    reason="compiles the CUDA kernels with nvcc (25-90 s per op); set REDESTYLE_TEST_BUILD=1 to run",
)
def test_cuda_sources_compile(tmp_path):
    """nvcc + the host compiler accept csrc/ and the extensions import (no GPU needed)."""
    code = """
        import json, redestyle.ops as ops
        print(json.dumps(ops.build_all()))
    """
    result = _run(code, TORCH_EXTENSIONS_DIR=str(tmp_path), REDESTYLE_OPS="auto")
    assert result.returncode == 0, result.stderr
    import json

    report = json.loads(result.stdout.strip().splitlines()[-1])
    for op, (status, reason) in report.items():
        assert status == "cuda", f"{op}: {reason}"
