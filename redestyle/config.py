"""Profiles: the network configurations every notebook, CLI verb and test builds from.

``tiny``: the same classes and code paths as the official 1024 models, with small widths, so
every figure runs in minutes on 2 CPU cores from seeded random weights (its figures are labelled
"tiny profile (random weights)"). ``mini`` (the default of ``make reproduce``): the same small
networks with the weights trained on the miniature world (``redestyle.miniature``).
``ffhq1024`` is the official configuration and needs the official weights folder.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


@dataclass(frozen=True)
class GeneratorConfig:
    """rosinality ``Generator(size, style_dim, n_mlp, channel_multiplier)``, optional width table."""

    size: int = 1024  # output resolution
    style_dim: int = 512  # z / w dimension
    n_mlp: int = 8  # mapping layers
    channel_multiplier: int = 2  # config-f
    channels: dict[int, int] | None = None  # resolution -> width, overrides the official table

    def __post_init__(self):
        _check(self.size >= 8 and self.size & (self.size - 1) == 0,
               f"GeneratorConfig.size must be a power of two >= 8, got {self.size}")
        _check(self.style_dim > 0, f"GeneratorConfig.style_dim must be positive, got {self.style_dim}")

    @property
    def n_latent(self) -> int:
        """Number of w vectors in W+ (18 at 1024)."""
        return int(math.log2(self.size)) * 2 - 2

    def kwargs(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class EncoderConfig:
    """IR-SE encoders (pSp, e4e, ReStyle) and their input resolution."""

    num_layers: int = 50
    mode: str = "ir_se"
    input_size: int = 256  # encoders see 256x256 images (pool of the 1024 output)
    widths: tuple[int, ...] | None = None  # IR-SE stage widths; None = official (64, 128, 256, 512)

    def __post_init__(self):
        _check(self.mode in ("ir", "ir_se"), f"EncoderConfig.mode must be 'ir' or 'ir_se', got {self.mode!r}")
        _check(self.num_layers in (50, 100, 152), f"EncoderConfig.num_layers must be 50/100/152, got {self.num_layers}")


@dataclass(frozen=True)
class Profile:
    """A complete set of network configurations."""

    name: str
    generator: GeneratorConfig
    encoder: EncoderConfig
    needs_weights: bool
    label: str = ""  # printed in figure titles

    @property
    def image_size(self) -> int:
        return self.generator.size

    @property
    def pool_size(self) -> int:
        """Resolution the encoders see and ReStyle hands back between iterations."""
        return self.encoder.input_size


#: The small networks of ``tiny`` (seeded random) and ``mini`` (trained): 64 px, 64-d styles.
_SMALL_GENERATOR = GeneratorConfig(size=64, style_dim=64, n_mlp=4, channel_multiplier=1,
                                   channels={4: 64, 8: 64, 16: 32, 32: 32, 64: 16})
_SMALL_ENCODER = EncoderConfig(num_layers=50, mode="ir_se", input_size=64, widths=(8, 16, 32, 64))

PROFILES: dict[str, Profile] = {
    "tiny": Profile(
        name="tiny",
        generator=_SMALL_GENERATOR,
        encoder=_SMALL_ENCODER,
        needs_weights=False,
        label="tiny profile (random weights)",
    ),
    "mini": Profile(  # the tiny networks, trained on the miniature world (redestyle.miniature)
        name="mini",
        generator=_SMALL_GENERATOR,
        encoder=_SMALL_ENCODER,
        needs_weights=False,
        label="mini profile (trained on the miniature world)",
    ),
    "ffhq1024": Profile(
        name="ffhq1024",
        generator=GeneratorConfig(),
        encoder=EncoderConfig(),
        needs_weights=True,
        label="FFHQ 1024 (official weights)",
    ),
}


#: The profile of every verb and notebook when none is given: trained weights that ship with the
#: package (``ffhq1024`` needs the official weights folder, which is never assumed).
DEFAULT_PROFILE = "mini"


def get_profile(name: str) -> Profile:
    """Look up a profile by name with an error listing the known ones."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; known: {', '.join(PROFILES)}") from None
