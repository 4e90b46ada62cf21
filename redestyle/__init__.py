"""Re-Destyle: encoder-only facial destylization for DualStyleGAN.

Importing this package touches no torch state, disk or network; submodules are
imported on demand (``from redestyle.nets.stylegan2 import Generator``).
"""

__version__ = "0.1.0"
