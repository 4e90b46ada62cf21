"""Custom ops of the StyleGAN family: reference PyTorch always, CUDA kernels built lazily.

``fused_leaky_relu`` and ``upfirdn2d`` dispatch at call time: CUDA tensors use the compiled kernels
(built on first use, or by ``build_all()``) unless ``REDESTYLE_OPS=reference`` or a
``use_backend("reference")`` block says otherwise; everything else runs the reference PyTorch code.
Importing this package builds, reads and prints nothing.
"""

from ._plugin import backend, backend_report, build_all, use_backend
from .bias_act import fused_leaky_relu
from .upfirdn2d import upfirdn2d

__all__ = ["backend", "backend_report", "build_all", "use_backend", "fused_leaky_relu", "upfirdn2d"]
