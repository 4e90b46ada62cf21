"""Backend choice for the custom ops: reference PyTorch or lazily built CUDA kernels.

The choice is made at call time, never at import:
1. a context override (``with use_backend("reference"): ...``),
2. else the environment variable ``REDESTYLE_OPS=auto|reference|cuda``,
3. else ``auto`` (CUDA kernels when the tensor is on CUDA and the build works).
"""

from __future__ import annotations

import contextlib
import contextvars
import os

BACKENDS = ("auto", "reference", "cuda")
_override: contextvars.ContextVar[str | None] = contextvars.ContextVar("redestyle_ops", default=None)


def backend() -> str:
    """The active backend name: ``auto``, ``reference`` or ``cuda``."""
    name = _override.get() or os.environ.get("REDESTYLE_OPS", "auto").strip().lower() or "auto"
    if name not in BACKENDS:
        raise ValueError(f"REDESTYLE_OPS={name!r} is not one of {', '.join(BACKENDS)}")
    return name


@contextlib.contextmanager
def use_backend(name: str):
    """Force a backend inside a ``with`` block (tests, benchmarks)."""
    if name not in BACKENDS:
        raise ValueError(f"backend {name!r} is not one of {', '.join(BACKENDS)}")
    token = _override.set(name)
    try:
        yield
    finally:
        _override.reset(token)


def load_plugin(name: str):
    """Return the compiled CUDA module for op ``name``, or None when unavailable.

    Placeholder until the CUDA kernels land: always None (the reference is used).
    """
    return None


def want_cuda(x) -> bool:
    """Whether op inputs like ``x`` should go to a CUDA kernel under the active backend."""
    mode = backend()
    return mode != "reference" and x.is_cuda
