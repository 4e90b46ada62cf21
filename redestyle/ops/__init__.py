"""Custom ops of the StyleGAN family: reference PyTorch always, CUDA kernels built lazily."""

from ._plugin import backend, use_backend
from .bias_act import fused_leaky_relu
from .upfirdn2d import upfirdn2d

__all__ = ["backend", "use_backend", "fused_leaky_relu", "upfirdn2d"]
