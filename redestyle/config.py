"""Profiles: the network configurations every notebook, CLI verb and test builds from.

``tiny``: the same classes and code paths as the official 1024 models, with small widths, so
every figure runs in minutes on 2 CPU cores from seeded random weights (its figures are labelled
"tiny profile (random weights)"). ``mini`` (the default of ``make reproduce``): the same small
networks with the weights trained on the miniature world (``redestyle.miniature``).
``ffhq1024`` is the official configuration and needs the official weights folder.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
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


#: Where a profile's weights come from: seeded random init, files shipped in the package
#: (``redestyle/miniature/weights``), or the official files of a weights folder.
WEIGHT_SOURCES = ("random", "shipped", "official")


@dataclass(frozen=True)
class Profile:
    """A complete set of network configurations, and what else differs between profiles.

    Code branches on these fields, never on ``name``.
    """

    name: str
    generator: GeneratorConfig
    encoder: EncoderConfig
    weights: str  # one of WEIGHT_SOURCES
    label: str = ""  # printed in figure titles
    baseline_style: str = "cartoon"  # the baseline's default g' style (ffhq1024: a DualStyleGAN style folder)
    samples: str = "photos"  # notebooks' portraits without data_dir: "photos" (data.sample_portraits)
    #                          or "world" (the miniature world's renders, whose answers are known)

    def __post_init__(self):
        _check(self.weights in WEIGHT_SOURCES, f"Profile.weights must be one of {WEIGHT_SOURCES}, got {self.weights!r}")
        _check(self.samples in ("photos", "world"), f"Profile.samples must be 'photos' or 'world', got {self.samples!r}")

    @property
    def needs_weights(self) -> bool:
        """True when the networks come from an official weights folder (``--weights``)."""
        return self.weights == "official"

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
        weights="random",
        label="tiny profile (random weights)",
        baseline_style="tiny",  # only seeds the stand-in g' (zoo.tiny_g_prime)
    ),
    "mini": Profile(  # the tiny networks, trained on the miniature world (redestyle.miniature)
        name="mini",
        generator=_SMALL_GENERATOR,
        encoder=_SMALL_ENCODER,
        weights="shipped",
        label="mini profile (trained on the miniature world)",
        baseline_style="portrait",  # the world's one style: its renderer's portrait domain (g_prime.pt)
        samples="world",
    ),
    "ffhq1024": Profile(
        name="ffhq1024",
        generator=GeneratorConfig(),
        encoder=EncoderConfig(),
        weights="official",
        label="FFHQ 1024 (official weights)",
    ),
}


#: The inversion methods of Fig. 1 (``inversion.invert``); which a profile can run: ``zoo.methods_for``.
METHODS = ("psp", "e4e", "restyle_psp", "restyle_e4e", "hyperstyle", "optimization")

#: The profile of every verb and notebook when none is given: trained weights that ship with the
#: package (``ffhq1024`` needs the official weights folder, which is never assumed).
DEFAULT_PROFILE = "mini"


def get_profile(name: str | Profile) -> Profile:
    """A profile by name (an error lists the known ones); a Profile is returned as it is.

    The one place where ``str | Profile`` arguments are normalised.
    """
    if isinstance(name, Profile):
        return name
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; known: {', '.join(PROFILES)}") from None


# "5-3-1", "6,4,2", "6 4 2", "(4, 2)", "[6, 4, 2]": integers joined by one separator each
_SCHEDULE_RE = re.compile(r"\d+(?:(?:\s*[-,]\s*|\s+)\d+)*")


@dataclass(frozen=True)
class Schedule:
    """Numbers of ReStyle iterations per round, e.g. (5, 3, 1)."""

    rounds: tuple[int, ...]

    def __post_init__(self):
        if not self.rounds:
            raise ValueError("a schedule needs at least one round, e.g. '5-3-1'")
        if any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in self.rounds):
            raise ValueError(
                f"schedule rounds must be positive integers (ReStyle iterations per round), "
                f"got {list(self.rounds)}")

    @classmethod
    def parse(cls, spec: str | int | Sequence[int] | Schedule) -> Schedule:
        """Accept ``"5-3-1"``, ``"(4, 2)"``, ``"6,4,2"``, ``5`` or ``[6, 4, 2]``."""
        if isinstance(spec, Schedule):
            return spec
        if isinstance(spec, int):  # a bool is rejected by __post_init__
            return cls((spec,))
        if isinstance(spec, str):
            text = spec.strip()
            if text[:1] + text[-1:] in ("()", "[]"):
                text = text[1:-1].strip()
            if not _SCHEDULE_RE.fullmatch(text):
                raise ValueError(
                    f"cannot parse schedule {spec!r}: expected ReStyle iteration counts such as "
                    "'5-3-1', '6,4,2' or '(4, 2)'")
            return cls(tuple(int(p) for p in re.findall(r"\d+", text)))
        if isinstance(spec, Sequence):
            return cls(tuple(spec))
        raise TypeError(f"a schedule is a string, an int or a sequence of ints, got {type(spec).__name__}")

    def __str__(self) -> str:
        return "-".join(str(n) for n in self.rounds)

    @property
    def passes(self) -> int:
        """Encoder + generator passes per image (9 for 5-3-1)."""
        return sum(self.rounds)
# ------------------------------------------------------------------------------------------------
# The destylization baseline (torch-free, so the CLI parser can show the defaults)


@dataclass(frozen=True)
class BaselineWeights:
    """Loss weights of DualStyleGAN's destylize.py (lines 176-180): loss = Lperc + id LID + reg Lreg + noise Lnoise."""

    id: float = 0.1
    reg: float = 1.0
    noise: float = 1e5


@dataclass(frozen=True)
class BaselineDefaults:
    """The optimisation baseline's settings, defined once (DualStyleGAN destylize.py, commit b3f0cf8).

    steps: ``--iter`` 300 Adam iterations; lr: 0.1 peak of the ramped schedule; truncation: 0.7,
    applied toward w = 0 (``truncation_latent=0``); the colour copy starts at ``destylize.COLOR_FROM`` (8).
    """

    steps: int = 300
    lr: float = 0.1
    truncation: float = 0.7
    weights: BaselineWeights = BaselineWeights()


#: The one place the baseline's defaults live (CLI, notebooks, benchmarks and tests read it).
BASELINE = BaselineDefaults()
