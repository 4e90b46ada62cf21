"""Backend choice for the custom ops, and the lazy build of their CUDA kernels.

The choice is made at call time, never at import:
1. a context override (``with use_backend("reference"): ...``),
2. else the environment variable ``REDESTYLE_OPS=auto|reference|cuda``,
3. else ``auto``.

``auto`` runs the CUDA kernel when the input is a CUDA tensor and the kernel builds; a failed build
logs one warning per op (first line of the error) and the reference PyTorch code runs instead.
``cuda`` raises on a failed build, naming the op and carrying the build log. CPU tensors always run
the reference. Builds happen on first CUDA use (or ``build_all()``), once per process: results,
failures included, are memoized.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch

log = logging.getLogger(__name__)

BACKENDS = ("auto", "reference", "cuda")
OPS = ("bias_act", "upfirdn2d")
CSRC = Path(__file__).parent / "csrc"

_results: dict[str, Plugin] = {}  # mirror of load_plugin's cache, filled as builds finish
_override: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "redestyle_ops", default=None
)


def backend() -> str:
    """The active backend name: ``auto``, ``reference`` or ``cuda``."""
    name = _override.get() or os.environ.get("REDESTYLE_OPS", "auto").strip().lower() or "auto"
    if name not in BACKENDS:
        raise ValueError(f"REDESTYLE_OPS={name!r} is not one of {', '.join(BACKENDS)}")
    return name


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Force a backend inside a ``with`` block (tests, benchmarks)."""
    if name not in BACKENDS:
        raise ValueError(f"backend {name!r} is not one of {', '.join(BACKENDS)}")
    token = _override.set(name)
    try:
        yield
    finally:
        _override.reset(token)


@dataclass(frozen=True)
class Plugin:
    """Outcome of one build: the extension module, or the error that prevented it."""

    name: str
    module: ModuleType | None
    error: str | None
    build_dir: str


def _build_settings() -> dict:
    """Keyword arguments for ``cpp_extension.load`` (the only place that knows the toolchain).

    ENV.md 'CUDA extensions': torch must see CUDA_HOME (its guess fails to link cudart here) and
    nvcc needs the headers that the pip CUDA wheels ship under ``nvidia/cu13/include``.
    """
    # An empty CUDA_HOME counts as unset (torch then guesses from `which nvcc`, a wrapper here).
    cuda_home = os.environ.get("CUDA_HOME") or "/usr/local/cuda"
    os.environ["CUDA_HOME"] = cuda_home
    from torch.utils import cpp_extension  # imported here: it probes the toolchain on import

    cpp_extension.CUDA_HOME = cuda_home  # it may have been imported (and guessed) before
    site = Path(torch.__file__).resolve().parent.parent
    includes = [str(p) for p in sorted(site.glob("nvidia/cu*/include")) if p.is_dir()]
    cuda_flags = ["-O3", "--expt-relaxed-constexpr"]
    if not os.environ.get("TORCH_CUDA_ARCH_LIST") and torch.cuda.device_count() == 0:
        # torch derives the arch list from the visible GPUs; with none (a compile-only check),
        # build portable PTX that any Ampere-or-newer driver can JIT.
        cuda_flags.append("-gencode=arch=compute_80,code=compute_80")
    return {
        "extra_include_paths": includes,
        "extra_cflags": ["-O3"],
        "extra_cuda_cflags": cuda_flags,
    }


@functools.cache
def load_plugin(name: str) -> Plugin:
    """Build (once per process) and import the CUDA extension of op ``name``; a failed build never raises.

    Sources: ``csrc/<name>.cpp`` and ``csrc/<name>.cu``. A failure is cached like a success, so a
    broken toolchain costs one attempt, not one per call.
    """
    if name not in OPS:
        raise ValueError(f"unknown op {name!r}; known: {', '.join(OPS)}")
    ext_name = f"redestyle_{name}"
    build_dir = ""
    try:
        settings = _build_settings()  # before the import below: it fixes CUDA_HOME
        from torch.utils import cpp_extension

        build_dir = os.path.join(cpp_extension.get_default_build_root(), ext_name)
        module = cpp_extension.load(
            name=ext_name,
            sources=[str(CSRC / f"{name}.cpp"), str(CSRC / f"{name}.cu")],
            verbose=False,
            **settings,
        )
    except Exception as exc:  # compiler, linker, missing toolchain: all mean "no kernel"
        error = f"{type(exc).__name__}: {exc}".strip()
        log.debug("building %s failed:\n%s", ext_name, error)
        plugin = Plugin(name, None, error, build_dir)
    else:
        plugin = Plugin(name, module, None, build_dir)
    _results[name] = plugin  # lets backend_report() look without building
    return plugin


@functools.cache
def _warn_fallback(name: str) -> None:
    """Log the auto-mode fallback once per op and process."""
    error = load_plugin(name).error or ""
    first = error.splitlines()[0] if error else "unknown error"
    log.warning(
        "redestyle.ops: CUDA kernel %r unavailable, using the reference PyTorch op (%s)",
        name,
        first,
    )


def cuda_module(name: str, x: torch.Tensor) -> ModuleType | None:
    """The compiled module to run op ``name`` on ``x`` with, or None for the reference.

    Raises RuntimeError in ``cuda`` mode when a CUDA tensor meets a failed build.
    """
    mode = backend()
    if mode == "reference" or not x.is_cuda:
        return None
    plugin = load_plugin(name)
    if plugin.module is not None:
        return plugin.module
    if mode == "cuda":
        raise RuntimeError(
            f"redestyle.ops: REDESTYLE_OPS=cuda but the CUDA op {name!r} failed to build "
            f"(build dir {plugin.build_dir}). Build log:\n{plugin.error}"
        )
    _warn_fallback(name)
    return None


def backend_report() -> dict[str, tuple[str, str]]:
    """``{op: (status, reason)}``; status is ``cuda``, ``reference`` or ``unbuilt``. Builds nothing.

    ``cuda``: the kernel is built and CUDA tensors use it; ``reference``: PyTorch code runs (the reason
    says why); ``unbuilt``: the kernel builds on first CUDA use (or ``build_all()``).
    """
    mode = backend()
    report = {}
    for name in OPS:
        built = _results.get(name)
        if mode == "reference":
            report[name] = ("reference", "REDESTYLE_OPS=reference (or a use_backend override)")
        elif built is not None and built.module is not None:
            report[name] = ("cuda", f"built in {built.build_dir}; used for CUDA tensors")
        elif built is not None:
            report[name] = ("reference", f"build failed: {built.error.splitlines()[0]}")
        elif not torch.cuda.is_available():
            report[name] = ("reference", "no CUDA device; CPU tensors use the reference op")
        else:
            report[name] = ("unbuilt", "builds on first CUDA use (or redestyle.ops.build_all())")
    return report


def build_all() -> dict[str, tuple[str, str]]:
    """Build every CUDA kernel now (25-90 s cold, instant when cached) and return ``backend_report()``.

    Keeps the compile out of a notebook's first figure cell. Works without a GPU when nvcc exists
    (compile and import only).
    """
    for name in OPS:
        load_plugin(name)
    return backend_report()
