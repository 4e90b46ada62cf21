"""Procedural face renderer: explicit identity / expression / accessory / pose / light -> image.

Every face is a stack of shapes given by signed distance functions (SDFs) in a *head frame*
(x right, y down, the image spans [-1, 1]^2). Coverage ``clip(0.5 - d / ramp, 0, 1)`` gives
analytic anti-aliasing, and drawing at ``supersample`` x resolution then box-filtering smooths
the rest. Pose is a 2-D approximation: roll rotates the head about the neck, yaw shifts the head
and (further, for parallax) the features. Two domains share the geometry:

- ``"photo"``: Lambert shading on an ellipsoid head, soft edges, realistic proportions;
- ``"portrait"``: flat colours snapped to a palette, dark outlines, one hard shadow step,
  exaggerated eyes and head shape.

Only the pixels a shape can touch are evaluated (its bounding box), which keeps a 64 px face at a
few milliseconds on one core.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Domain = Literal["photo", "portrait"]
Colour = tuple[float, float, float]

DOMAINS: tuple[str, ...] = ("photo", "portrait")
HAIR_STYLES: tuple[str, ...] = ("short", "long", "bob", "fringe", "bun")
# Label ids of ``segment`` (index into this tuple).
LABELS: tuple[str, ...] = ("background", "clothes", "skin", "hair", "eye", "brow", "mouth", "glasses")
_BG, _CLOTHES, _SKIN, _HAIR, _EYE, _BROW, _MOUTH, _GLASSES = range(len(LABELS))

# Valid ranges (inclusive); sampling draws uniformly inside them unless noted.
IDENTITY_RANGES: dict[str, tuple[float, float]] = {
    "face_width": (0.34, 0.50),   # half-width of the face ellipse, image units
    "face_height": (0.46, 0.64),  # half-height (forehead to chin)
    "face_shape": (0.0, 1.0),     # 0 = round chin, 1 = tapered (V-shaped) chin
    "eye_spacing": (0.35, 0.55),  # eye centre distance from the midline, as a fraction of face_width
    "eye_size": (0.05, 0.085),    # half-width of an eye
    "nose_length": (0.14, 0.25),  # eye line to nose tip
    "nose_width": (0.04, 0.10),   # half-width at the nostrils
}
EXPRESSION_RANGES: dict[str, tuple[float, float]] = {
    "smile": (-1.0, 1.0),       # -1 frown, +1 smile (mouth-corner curvature)
    "mouth_open": (0.0, 1.0),   # 0 closed lips
    "eye_open": (0.0, 1.0),     # 0 closed eyes
}
SCENE_RANGES: dict[str, tuple[float, float]] = {
    "yaw": (-25.0, 25.0),            # degrees, positive turns the face to the image right
    "roll": (-20.0, 20.0),           # degrees, positive rotates clockwise (about the neck)
    "light_angle": (-90.0, 90.0),    # degrees from straight above, positive = from the image right
    "light_strength": (0.3, 1.5),    # diffuse intensity (ambient is fixed)
}

# Order of ``FaceParams.to_vector`` (the regression targets of the attribute regressor).
VECTOR_NAMES: tuple[str, ...] = (
    "face_width", "face_height", "face_shape", "skin_r", "skin_g", "skin_b",
    "eye_spacing", "eye_size", "nose_length", "nose_width", "hair_r", "hair_g", "hair_b",
    "hair_style", "smile", "mouth_open", "eye_open", "glasses",
    "yaw", "roll", "light_angle", "light_strength",
)

# Sampling anchors: skin tones run along a light-dark line, hair from a natural palette.
_SKIN_LIGHT = np.array([0.96, 0.82, 0.72])
_SKIN_DARK = np.array([0.38, 0.24, 0.16])
_NATURAL_HAIR = np.array([
    [0.08, 0.07, 0.07], [0.22, 0.14, 0.09], [0.42, 0.27, 0.15],
    [0.55, 0.25, 0.12], [0.85, 0.70, 0.42], [0.70, 0.70, 0.70],
])
# Portrait palette: the style's own colours (every colour snaps to the nearest entry).
_TOON_SKIN = np.array([
    [1.00, 0.87, 0.77], [0.98, 0.76, 0.62], [0.86, 0.62, 0.45],
    [0.66, 0.45, 0.30], [0.46, 0.30, 0.20],
], np.float32)
_TOON_HAIR = np.array([
    [0.10, 0.10, 0.16], [0.36, 0.20, 0.12], [0.62, 0.38, 0.18],
    [0.90, 0.42, 0.16], [0.98, 0.85, 0.40], [0.80, 0.82, 0.88],
], np.float32)
_TOON_BACKGROUND = np.array([
    [0.98, 0.86, 0.55], [0.62, 0.85, 0.80], [0.97, 0.70, 0.72], [0.70, 0.76, 0.97],
    [0.80, 0.93, 0.62],
], np.float32)
_CLOTHES_COLOURS = np.array([
    [0.22, 0.30, 0.45], [0.45, 0.22, 0.25], [0.25, 0.40, 0.30], [0.35, 0.35, 0.38],
    [0.55, 0.45, 0.30],
], np.float32)
_INK = np.array([0.10, 0.07, 0.08], np.float32)
_PIVOT = (0.0, 0.45)  # the neck: roll rotates the head about it
_FACE_CY = -0.02       # centre of the face ellipse in the head frame


def _check_range(owner: str, name: str, value: object, lo: float, hi: float) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{owner}.{name} must be a real number, got {value!r}")
    value = float(value)
    if not lo <= value <= hi:  # also rejects NaN
        raise ValueError(f"{owner}.{name} must be in [{lo}, {hi}], got {value!r}")
    return value


def _check_colour(owner: str, name: str, value: object) -> Colour:
    try:
        rgb = tuple(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{owner}.{name} must be an RGB triple in [0, 1], got {value!r}") from None
    if len(rgb) != 3:
        raise ValueError(f"{owner}.{name} must be an RGB triple in [0, 1], got {value!r}")
    return tuple(_check_range(owner, f"{name}[{i}]", c, 0.0, 1.0) for i, c in enumerate(rgb))


def _validate(obj: object, ranges: dict[str, tuple[float, float]]) -> None:
    owner = type(obj).__name__
    for name, (lo, hi) in ranges.items():
        object.__setattr__(obj, name, _check_range(owner, name, getattr(obj, name), lo, hi))


@dataclass(frozen=True)
class Identity:
    """Who the face is: head shape, colours, feature placement, hair (ranges in IDENTITY_RANGES)."""

    face_width: float = 0.42
    face_height: float = 0.55
    face_shape: float = 0.4
    skin: Colour = (0.87, 0.68, 0.56)
    eye_spacing: float = 0.45
    eye_size: float = 0.068
    nose_length: float = 0.19
    nose_width: float = 0.065
    hair: Colour = (0.22, 0.14, 0.09)
    hair_style: int = 0  # index into HAIR_STYLES

    def __post_init__(self) -> None:
        _validate(self, IDENTITY_RANGES)
        object.__setattr__(self, "skin", _check_colour("Identity", "skin", self.skin))
        object.__setattr__(self, "hair", _check_colour("Identity", "hair", self.hair))
        style = self.hair_style
        if not isinstance(style, numbers.Integral) or isinstance(style, bool):
            raise TypeError(f"Identity.hair_style must be an int, got {style!r}")
        if not 0 <= style < len(HAIR_STYLES):
            raise ValueError(f"Identity.hair_style must be in [0, {len(HAIR_STYLES) - 1}], "
                             f"got {style!r}")
        object.__setattr__(self, "hair_style", int(style))


@dataclass(frozen=True)
class Expression:
    """What the face does: smile in [-1, 1], mouth opening and eye openness in [0, 1]."""

    smile: float = 0.0
    mouth_open: float = 0.0
    eye_open: float = 0.9

    def __post_init__(self) -> None:
        _validate(self, EXPRESSION_RANGES)


@dataclass(frozen=True)
class FaceParams:
    """Everything one rendered face depends on: identity, expression, glasses, pose, light."""

    identity: Identity = field(default_factory=Identity)
    expression: Expression = field(default_factory=Expression)
    glasses: bool = False
    yaw: float = 0.0
    roll: float = 0.0
    light_angle: float = -30.0
    light_strength: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.identity, Identity):
            raise TypeError(f"FaceParams.identity must be an Identity, got {self.identity!r}")
        if not isinstance(self.expression, Expression):
            raise TypeError(f"FaceParams.expression must be an Expression, got {self.expression!r}")
        if not isinstance(self.glasses, bool | np.bool_):
            raise TypeError(f"FaceParams.glasses must be a bool, got {self.glasses!r}")
        object.__setattr__(self, "glasses", bool(self.glasses))
        _validate(self, SCENE_RANGES)

    def to_vector(self) -> np.ndarray:
        """float64 [len(VECTOR_NAMES)] in VECTOR_NAMES order (hair_style and glasses as numbers)."""
        i, e = self.identity, self.expression
        return np.array([
            i.face_width, i.face_height, i.face_shape, *i.skin, i.eye_spacing, i.eye_size,
            i.nose_length, i.nose_width, *i.hair, i.hair_style,
            e.smile, e.mouth_open, e.eye_open, float(self.glasses),
            self.yaw, self.roll, self.light_angle, self.light_strength,
        ], dtype=np.float64)

    @classmethod
    def from_vector(cls, vector: Sequence[float] | np.ndarray) -> FaceParams:
        """Inverse of ``to_vector``; hair_style is rounded, glasses is ``value > 0.5``.

        Values are validated, so a regressor's raw output may need clipping first.
        """
        v = np.asarray(vector, dtype=np.float64)
        if v.shape != (len(VECTOR_NAMES),):
            raise ValueError(f"vector must have shape ({len(VECTOR_NAMES)},), got {v.shape}")
        d = dict(zip(VECTOR_NAMES, v.tolist()))
        identity = Identity(
            face_width=d["face_width"], face_height=d["face_height"], face_shape=d["face_shape"],
            skin=(d["skin_r"], d["skin_g"], d["skin_b"]), eye_spacing=d["eye_spacing"],
            eye_size=d["eye_size"], nose_length=d["nose_length"], nose_width=d["nose_width"],
            hair=(d["hair_r"], d["hair_g"], d["hair_b"]), hair_style=int(round(d["hair_style"])),
        )
        expression = Expression(smile=d["smile"], mouth_open=d["mouth_open"],
                                eye_open=d["eye_open"])
        return cls(identity=identity, expression=expression, glasses=d["glasses"] > 0.5,
                   yaw=d["yaw"], roll=d["roll"], light_angle=d["light_angle"],
                   light_strength=d["light_strength"])


# ---------------------------------------------------------------------------------------------
# Sampling


def _uniform(rng: np.random.Generator, ranges: dict[str, tuple[float, float]]) -> dict[str, float]:
    return {name: float(rng.uniform(lo, hi)) for name, (lo, hi) in ranges.items()}


def sample_identity(rng: np.random.Generator) -> Identity:
    """A random Identity: shape uniform in IDENTITY_RANGES, skin on a light-dark line, natural hair."""
    shape = _uniform(rng, IDENTITY_RANGES)
    t = rng.uniform()
    skin = np.clip(_SKIN_LIGHT + t * (_SKIN_DARK - _SKIN_LIGHT) + rng.normal(0, 0.02, 3), 0, 1)
    hair = _NATURAL_HAIR[rng.integers(len(_NATURAL_HAIR))]
    hair = np.clip(hair + rng.normal(0, 0.03, 3), 0, 1)
    style = int(rng.integers(len(HAIR_STYLES)))
    return Identity(**shape, skin=tuple(skin.tolist()), hair=tuple(hair.tolist()),
                    hair_style=style)


def sample_expression(rng: np.random.Generator) -> Expression:
    """A random Expression: smile uniform, mouth often near closed, eyes mostly open."""
    smile = float(rng.uniform(-1, 1))
    mouth_open = float(rng.uniform() ** 2)
    eye_open = float(rng.beta(4.0, 1.5))
    return Expression(smile=smile, mouth_open=mouth_open, eye_open=eye_open)


def sample_params(rng: np.random.Generator, *, glasses_p: float = 0.3,
                  identity: Identity | None = None) -> FaceParams:
    """A random face: identity, expression, glasses with probability ``glasses_p``, mild pose/light.

    ``identity``: keep this person (only the rest is drawn): portraits of one person.
    """
    identity = sample_identity(rng) if identity is None else identity
    expression = sample_expression(rng)
    glasses = bool(rng.uniform() < glasses_p)
    yaw = float(np.clip(rng.normal(0, 8), *SCENE_RANGES["yaw"]))
    roll = float(np.clip(rng.normal(0, 6), *SCENE_RANGES["roll"]))
    light_angle = float(rng.uniform(-60, 60))
    light_strength = float(rng.uniform(0.6, 1.3))
    return FaceParams(identity=identity, expression=expression, glasses=glasses, yaw=yaw,
                      roll=roll, light_angle=light_angle, light_strength=light_strength)


# ---------------------------------------------------------------------------------------------
# Geometry shared by both domains


@dataclass(frozen=True)
class _Geometry:
    a: float           # face half-width
    b: float           # face half-height
    taper: float       # chin taper
    shift: float       # image-x shift of the whole head (yaw)
    feat: float        # extra head-frame x shift of the features (yaw parallax)
    eye_x: float       # |x| of the eye centres (before the parallax shift)
    eye_y: float
    eye_w: float       # eye half-width
    nose_tip: float    # y of the nose tip
    mouth_y: float
    mouth_w: float


def _geometry(p: FaceParams, domain: str) -> _Geometry:
    i = p.identity
    photo = domain == "photo"
    ex = 1.0 if photo else 1.6  # the portrait style exaggerates head-shape deviations
    a = 0.42 + ex * (i.face_width - 0.42)
    b = 0.55 + ex * (i.face_height - 0.55)
    yaw = math.sin(math.radians(p.yaw))
    a *= 1.0 - 0.1 * abs(yaw)  # a turned head looks narrower
    eye_y = _FACE_CY - 0.1 * b
    nose_tip = eye_y + i.nose_length
    mouth_y = min(nose_tip + 0.1, _FACE_CY + 0.75 * b)
    return _Geometry(
        a=a, b=b, taper=i.face_shape * (0.35 if photo else 0.5), shift=0.12 * yaw,
        feat=0.25 * yaw, eye_x=i.eye_spacing * a, eye_y=eye_y,
        eye_w=i.eye_size * (1.0 if photo else 1.4), nose_tip=nose_tip, mouth_y=mouth_y,
        mouth_w=0.33 * a + 0.02 * max(i.face_shape, 0) + 0.02 * max(p.expression.smile, 0),
    )


# ---------------------------------------------------------------------------------------------
# Canvas and SDFs


class _Region:
    __slots__ = ("sl", "x", "y")

    def __init__(self, sl: tuple[slice, slice], x: np.ndarray, y: np.ndarray) -> None:
        self.sl, self.x, self.y = sl, x, y


class _Canvas:
    """Supersampled float RGB + label buffers; shapes are evaluated in head-frame coordinates."""

    def __init__(self, size: int, ss: int, *, roll: float, shift: float, ramp: float) -> None:
        self.n = n = size * ss
        self.px = 2.0 / n
        self.ramp = ramp * self.px  # width of the anti-aliasing ramp, image units
        self.t = ((np.arange(n, dtype=np.float32) + 0.5) * self.px - 1.0).astype(np.float32)
        self.rgb = np.empty((n, n, 3), np.float32)  # the background layer fills it
        self.label = np.zeros((n, n), np.uint8)
        self.c, self.s = math.cos(math.radians(roll)), math.sin(math.radians(roll))
        self.shift = shift

    def to_image(self, x: float, y: float) -> tuple[float, float]:
        """Head frame -> image coordinates (roll about the neck, then the yaw shift)."""
        dx, dy = x - _PIVOT[0], y - _PIVOT[1]
        return (_PIVOT[0] + self.c * dx - self.s * dy + self.shift,
                _PIVOT[1] + self.s * dx + self.c * dy)

    def region(self, x0: float, y0: float, x1: float, y1: float, *,
               head: bool = True) -> _Region | None:
        """The pixels a head-frame box can touch, with their head-frame coordinates."""
        if head:
            xs, ys = zip(*(self.to_image(x, y) for x in (x0, x1) for y in (y0, y1)))
        else:
            xs, ys = (x0, x1), (y0, y1)
        pad = 2 * self.ramp + self.px
        c0 = max(0, int((min(xs) - pad + 1) / self.px))
        c1 = min(self.n, int(math.ceil((max(xs) + pad + 1) / self.px)))
        r0 = max(0, int((min(ys) - pad + 1) / self.px))
        r1 = min(self.n, int(math.ceil((max(ys) + pad + 1) / self.px)))
        if c0 >= c1 or r0 >= r1:
            return None
        xi, yi = self.t[None, c0:c1], self.t[r0:r1, None]
        if head:
            dx, dy = xi - (_PIVOT[0] + self.shift), yi - _PIVOT[1]
            x = _PIVOT[0] + self.c * dx + self.s * dy
            y = _PIVOT[1] - self.s * dx + self.c * dy
        else:
            x, y = np.broadcast_arrays(xi, yi)
        return _Region((slice(r0, r1), slice(c0, c1)), x, y)

    def coverage(self, d: np.ndarray, *, soft: float = 1.0) -> np.ndarray:
        c = 0.5 - d * (1.0 / (self.ramp * soft))
        # ufuncs in place: np.clip's Python wrapper dominates on these small arrays
        np.maximum(c, 0.0, out=c)
        return np.minimum(c, 1.0, out=c)

    def paint(self, r: _Region, cov: np.ndarray, colour: np.ndarray | Sequence[float], *,
              label: int | None = None, alpha: float = 1.0) -> None:
        dst = self.rgb[r.sl]
        w = cov[..., None] if alpha == 1.0 else alpha * cov[..., None]
        dst += w * (np.asarray(colour, np.float32) - dst)
        if label is not None:
            self.label[r.sl][cov > 0.5] = label


def _ellipse(x: np.ndarray, y: np.ndarray, cx: float, cy: float, a: float, b: float) -> np.ndarray:
    """Approximate SDF of an axis-aligned ellipse (exact on the axes, good near the boundary)."""
    u, v = (x - cx) / a, (y - cy) / b
    k0 = np.sqrt(u * u + v * v)
    k1 = np.sqrt((u / a) ** 2 + (v / b) ** 2)
    return k0 * (k0 - 1.0) / np.maximum(k1, 1e-6)


def _circle(x: np.ndarray, y: np.ndarray, cx: float, cy: float, r: float) -> np.ndarray:
    return np.sqrt((x - cx) ** 2 + (y - cy) ** 2) - r


def _segment(x: np.ndarray, y: np.ndarray, p0: tuple[float, float], p1: tuple[float, float],
             r: float) -> np.ndarray:
    """SDF of a capsule of radius r around the segment p0-p1."""
    bx, by = p1[0] - p0[0], p1[1] - p0[1]
    px, py = x - p0[0], y - p0[1]
    h = np.clip((px * bx + py * by) / max(bx * bx + by * by, 1e-12), 0.0, 1.0)
    return np.sqrt((px - bx * h) ** 2 + (py - by * h) ** 2) - r


def _polyline(x: np.ndarray, y: np.ndarray, pts: Sequence[tuple[float, float]], r: float) -> np.ndarray:
    return np.minimum.reduce([_segment(x, y, p, q, r) for p, q in zip(pts[:-1], pts[1:])])


def _nearest(palette: np.ndarray, colour: Sequence[float]) -> np.ndarray:
    return palette[np.argmin(((palette - np.asarray(colour)) ** 2).sum(1))]


# ---------------------------------------------------------------------------------------------
# Drawing


class _Painter:
    """Draws one face; the domain decides colours, shading, softness and outlines."""

    def __init__(self, p: FaceParams, domain: str, size: int, ss: int) -> None:
        self.p, self.g = p, _geometry(p, domain)
        self.photo = domain == "photo"
        self.cv = _Canvas(size, ss, roll=p.roll, shift=self.g.shift,
                          ramp=1.5 if self.photo else 1.0)
        ang = math.radians(p.light_angle)
        light = np.array([math.sin(ang) * 0.8, -math.cos(ang) * 0.8, 0.6])
        self.light = light / np.linalg.norm(light)
        i = p.identity
        if self.photo:
            skin, hair = np.array(i.skin), np.array(i.hair)
        else:
            skin, hair = _nearest(_TOON_SKIN, i.skin), _nearest(_TOON_HAIR, i.hair)
        # float32 throughout: a float64 colour would upcast every pixel array it touches
        self.skin, self.hair = skin.astype(np.float32), hair.astype(np.float32)
        self.line = 0.0 if self.photo else 0.035  # outline width, image units

    # -- helpers --------------------------------------------------------------------------------
    def fill(self, r: _Region | None, d: np.ndarray, colour, *, label: int | None,
             soft: float = 1.0, outline: bool = True) -> None:
        """Portrait: ink stroke outside the shape, then the flat fill. Photo: the soft fill."""
        if r is None:
            return
        if self.line and outline:
            self.cv.paint(r, self.cv.coverage(d - self.line), _INK)
        self.cv.paint(r, self.cv.coverage(d, soft=soft), colour, label=label)

    def shade(self, r: _Region, base: np.ndarray, cx: float, cy: float, a: float,
              b: float) -> np.ndarray:
        """Per-pixel colour of an ellipsoid lit by the scene light: [h, w, 3]."""
        nx = np.clip((r.x - cx) / a, -1, 1)
        ny = np.clip((r.y - cy) / b, -1, 1)
        nz = np.sqrt(np.clip(1.0 - nx * nx - ny * ny, 0.0, 1.0))
        lx, ly, lz = (float(c) for c in self.light)
        lam = np.clip(nx * lx + ny * ly + nz * lz, 0.0, 1.0)
        strength = self.p.light_strength
        if self.photo:
            k = 0.58 + 0.5 * strength * lam
        else:  # one hard shadow step (cel shading)
            k = np.where(lam > 0.35, 1.0, 0.82).astype(np.float32)
        return np.clip(base[None, None, :] * k[..., None], 0.0, 1.0).astype(np.float32)

    # -- layers ---------------------------------------------------------------------------------
    def background(self) -> None:
        cv, p = self.cv, self.p
        if self.photo:
            top = np.array([0.66, 0.69, 0.74], np.float32)
            bottom = np.array([0.40, 0.43, 0.50], np.float32)
            v = (cv.t[:, None, None] + 1) / 2
            side = 1.0 + 0.08 * math.sin(math.radians(p.light_angle)) * cv.t[None, :, None]
            np.multiply(top + v * (bottom - top), side, out=cv.rgb)
        else:
            cv.rgb[:] = _TOON_BACKGROUND[p.identity.hair_style % len(_TOON_BACKGROUND)]

    def body(self) -> None:
        i, g = self.p.identity, self.g
        colour = _CLOTHES_COLOURS[(i.hair_style + int(i.face_shape * 7)) % len(_CLOTHES_COLOURS)]
        r = self.cv.region(-0.95, 0.64, 0.95, 1.0, head=False)
        d = _ellipse(r.x, r.y, g.shift * 0.5, 1.22, 0.9, 0.56)
        if self.photo:
            colour = colour * (1.15 - 0.35 * np.clip((r.y[..., None] - 0.7) / 0.3, 0, 1))
        self.fill(r, d, colour, label=_CLOTHES)

    def neck(self) -> None:
        g = self.g
        w = 0.17 * g.a / 0.42
        r = self.cv.region(-w, _FACE_CY + 0.3 * g.b, w, 1.1)
        d = _segment(r.x, r.y, (0.0, _FACE_CY + 0.4 * g.b), (0.0, 1.2), w)
        colour = self.skin * (0.8 if self.photo else 0.85)
        if self.photo:  # the chin shadows the top of the neck
            t = np.clip((r.y - (_FACE_CY + g.b - 0.05)) / 0.15, 0, 1)[..., None]
            colour = colour * (0.75 + 0.25 * t)
        self.fill(r, d, colour, label=_SKIN)

    def ears(self) -> None:
        g = self.g
        for s in (-1, 1):
            cx, cy = s * g.a * 0.97 - 0.3 * g.feat, g.eye_y + 0.07
            r = self.cv.region(cx - 0.08, cy - 0.12, cx + 0.08, cy + 0.12)
            d = _ellipse(r.x, r.y, cx, cy, 0.065, 0.11)
            colour = self.shade(r, self.skin * 0.92, 0.0, _FACE_CY, g.a * 1.1, g.b)
            self.fill(r, d, colour, label=_SKIN)

    def face_sdf(self, r: _Region) -> np.ndarray:
        g = self.g
        below = np.clip((r.y - _FACE_CY) / g.b, 0, 1)
        x = r.x / (1.0 - g.taper * below * below)
        return _ellipse(x, r.y, 0.0, _FACE_CY, g.a, g.b)

    def face(self) -> None:
        g = self.g
        r = self.cv.region(-g.a, _FACE_CY - g.b, g.a, _FACE_CY + g.b)
        colour = self.shade(r, self.skin, 0.0, _FACE_CY, g.a, g.b)
        self.fill(r, self.face_sdf(r), colour, label=_SKIN)
        if not self.photo:  # stylised blush
            for s in (-1, 1):
                cx, cy = s * g.eye_x * 1.15 + g.feat, g.eye_y + 0.11
                rr = self.cv.region(cx - 0.07, cy - 0.04, cx + 0.07, cy + 0.04)
                self.cv.paint(rr, self.cv.coverage(_ellipse(rr.x, rr.y, cx, cy, 0.06, 0.03)),
                              (1.0, 0.55, 0.55), alpha=0.45)

    def hair_back(self) -> None:
        g, style = self.g, HAIR_STYLES[self.p.identity.hair_style]
        if style == "long":
            cy, ha, hb, bottom = _FACE_CY + 0.2, g.a * 1.25, g.b * 1.4, 0.85
        elif style == "bob":
            cy, ha, hb, bottom = _FACE_CY, g.a * 1.28, g.b * 1.12, _FACE_CY + 0.6 * g.b
        elif style == "bun":
            cx, cy, rad = 0.0, _FACE_CY - g.b - 0.1, 0.17
            r = self.cv.region(cx - rad, cy - rad, cx + rad, cy + rad)
            colour = self.shade(r, self.hair, cx, cy, rad, rad)
            self.fill(r, _circle(r.x, r.y, cx, cy, rad), colour, label=_HAIR, soft=2.0)
            return
        else:
            return
        r = self.cv.region(-ha, cy - hb, ha, bottom)
        d = np.maximum(_ellipse(r.x, r.y, 0.0, cy, ha, hb), r.y - bottom)
        colour = self.shade(r, self.hair * 0.85, 0.0, cy, ha, hb)
        self.fill(r, d, colour, label=_HAIR, soft=2.0)

    def hair_cap(self) -> None:
        g, style = self.g, HAIR_STYLES[self.p.identity.hair_style]
        cy, ha, hb = _FACE_CY - 0.05, g.a * 1.1, g.b + 0.03
        r = self.cv.region(-ha, cy - hb, ha, _FACE_CY + 0.1)
        u = np.clip(r.x / g.a, -1.2, 1.2)
        if style == "fringe":  # bangs: low, gently scalloped hairline
            line = _FACE_CY - 0.3 * g.b + 0.015 * np.cos(u * 14.0) + 0.3 * g.b * u**4
        else:  # side-parted hairline, dropping to the temples
            line = _FACE_CY - 0.58 * g.b + 0.1 * g.b * (u - 0.3) ** 2 + 0.5 * g.b * u**4
        d = np.maximum(_ellipse(r.x, r.y, 0.0, cy, ha, hb), r.y - line)
        colour = self.shade(r, self.hair, 0.0, cy, ha, hb)
        self.fill(r, d, colour, label=_HAIR, soft=2.0)

    def brows(self) -> None:
        g = self.g
        t = 0.016 if self.photo else 0.024
        colour = self.hair * 0.75 if self.photo else _INK
        for s in (-1, 1):
            ex, by, bw = s * g.eye_x + g.feat, g.eye_y - 0.06 - 0.6 * g.eye_w, g.eye_w * 1.2
            pts = ((ex - s * bw, by + 0.012), (ex + s * 0.2 * bw, by - 0.014), (ex + s * bw, by + 0.014))
            r = self.cv.region(ex - bw - t, by - 0.03 - t, ex + bw + t, by + 0.03 + t)
            self.fill(r, _polyline(r.x, r.y, pts, t), colour, label=_BROW, outline=False)

    def eyes(self) -> None:
        g, openness = self.g, self.p.expression.eye_open
        ratio = 0.5 if self.photo else 0.72
        for s in (-1, 1):
            ex, ey, w = s * g.eye_x + g.feat, g.eye_y, g.eye_w
            h = w * ratio * (0.06 + 0.94 * openness)
            r = self.cv.region(ex - w - 0.03, ey - w, ex + w + 0.03, ey + w)
            if r is None:
                continue
            # the clamp to |x - ex| <= w matters for a nearly closed (very flat) eye, where the
            # approximate ellipse SDF degrades to a horizontal line of unbounded length
            sclera = np.maximum(_ellipse(r.x, r.y, ex, ey, w, h), np.abs(r.x - ex) - w)
            if not self.photo:
                self.cv.paint(r, self.cv.coverage(sclera - self.line * 0.7), _INK)
            self.cv.paint(r, self.cv.coverage(sclera), (0.96, 0.95, 0.93), label=_EYE)
            ix = ex + 0.15 * g.feat
            ri = w * (0.5 if self.photo else 0.62)
            iris_colour = (0.32, 0.22, 0.14) if self.photo else (0.25, 0.42, 0.75)
            for rad, colour in ((ri, iris_colour), (ri * 0.45, (0.03, 0.03, 0.04))):
                d = np.maximum(_circle(r.x, r.y, ix, ey, rad), sclera)
                self.cv.paint(r, self.cv.coverage(d), colour)
            glint = np.maximum(_circle(r.x, r.y, ix + 0.35 * ri, ey - 0.35 * ri, 0.25 * ri), sclera)
            self.cv.paint(r, self.cv.coverage(glint), (1.0, 1.0, 1.0))
            # upper lid / lashes: a band along the top of the sclera (a line when closed)
            lid_t = 0.008 if self.photo else 0.016
            lid = np.maximum(np.abs(sclera) - lid_t, r.y - ey)
            lid_colour = self.skin * 0.3 if self.photo else _INK
            self.cv.paint(r, self.cv.coverage(lid), lid_colour)

    def nose(self) -> None:
        g, i = self.g, self.p.identity
        nx, tip, nw = 1.2 * g.feat, g.nose_tip, i.nose_width
        top = g.eye_y + 0.03
        if self.photo:
            # side shadow away from the light, shadow under the tip, nostrils
            side = -1.0 if self.p.light_angle >= 0 else 1.0
            cx, cy, ha, hb = nx + side * nw * 0.55, (top + tip) / 2, nw * 0.35, (tip - top) / 2
            r = self.cv.region(cx - ha, cy - hb, cx + ha, cy + hb)
            self.cv.paint(r, self.cv.coverage(_ellipse(r.x, r.y, cx, cy, ha, hb), soft=5.0),
                          self.skin * 0.7, alpha=0.45)
            r = self.cv.region(nx - nw * 1.2, tip - 0.03, nx + nw * 1.2, tip + 0.04)
            self.cv.paint(r, self.cv.coverage(_ellipse(r.x, r.y, nx, tip + 0.012, nw, 0.022),
                                              soft=4.0), self.skin * 0.7, alpha=0.5)
            for s in (-1, 1):
                d = _ellipse(r.x, r.y, nx + s * nw * 0.45, tip, nw * 0.25, 0.011)
                self.cv.paint(r, self.cv.coverage(d, soft=1.5), self.skin * 0.35, alpha=0.9)
        else:
            pts = ((nx + nw * 0.1, (top + tip) / 2), (nx + nw * 0.5, tip), (nx - nw * 0.3, tip + 0.012))
            r = self.cv.region(nx - nw, top, nx + nw, tip + 0.04)
            self.cv.paint(r, self.cv.coverage(_polyline(r.x, r.y, pts, 0.012)), _INK)

    def mouth(self) -> None:
        g, e = self.g, self.p.expression
        mx, my, mw = g.feat, g.mouth_y, g.mouth_w
        r = self.cv.region(mx - mw - 0.03, my - 0.09, mx + mw + 0.03, my + 0.15)
        u = (r.x - mx) / mw
        env = np.sqrt(np.clip(1.0 - u * u, 0.0, 1.0))
        curve = my - e.smile * 0.05 * (u * u - 0.3)  # smile lifts the corners
        gap = e.mouth_open * 0.1
        inner_top, inner_bottom = curve - 0.25 * gap * env, curve + 0.75 * gap * env
        ends = (np.abs(u) - 1.0) * mw
        lips = np.maximum.reduce([inner_top - (0.016 * env + 0.003) - r.y,
                                  r.y - inner_bottom - (0.024 * env + 0.003), ends])
        inside = np.maximum.reduce([inner_top - r.y, r.y - inner_bottom, ends])
        teeth = np.maximum(inside, r.y - (inner_top + 0.35 * gap * env))
        if self.photo:
            lip_colour = 0.5 * self.skin + 0.5 * np.array([0.72, 0.30, 0.32])
            self.fill(r, lips, lip_colour, label=_MOUTH)
            self.cv.paint(r, self.cv.coverage(inside), (0.22, 0.05, 0.07))
        else:
            self.fill(r, lips, (0.88, 0.32, 0.38), label=_MOUTH)
            self.cv.paint(r, self.cv.coverage(inside), (0.35, 0.06, 0.10))
        self.cv.paint(r, self.cv.coverage(teeth), (0.95, 0.94, 0.90))

    def glasses(self) -> None:
        g, i = self.g, self.p.identity
        t = 0.011 if self.photo else 0.018
        frame = np.array([0.08, 0.08, 0.09])
        rad = min(i.eye_size * 1.75, 0.92 * g.eye_x)
        ey = g.eye_y
        r = self.cv.region(-g.a - 0.02, ey - rad - t, g.a + 0.02, ey + rad + t)
        ds = []
        for s in (-1, 1):
            ex = s * g.eye_x + g.feat
            lens = _circle(r.x, r.y, ex, ey, rad)
            if self.photo:  # faint tinted lens
                self.cv.paint(r, self.cv.coverage(lens), (0.75, 0.85, 0.95), alpha=0.15)
            ds.append(np.abs(lens) - t)
            ds.append(_segment(r.x, r.y, (ex + s * rad, ey - 0.3 * rad), (s * g.a * 0.98, ey - 0.35 * rad), t * 0.8))
        ds.append(_segment(r.x, r.y, (-g.eye_x + g.feat + rad, ey - 0.2 * rad),
                           (g.eye_x + g.feat - rad, ey - 0.2 * rad), t))
        self.cv.paint(r, self.cv.coverage(np.minimum.reduce(ds)), frame, label=_GLASSES)

    def draw(self) -> _Canvas:
        self.background()
        self.hair_back()
        self.body()
        self.neck()
        self.ears()
        self.face()
        self.hair_cap()
        self.brows()
        self.eyes()
        self.nose()
        self.mouth()
        if self.p.glasses:
            self.glasses()
        return self.cv


# ---------------------------------------------------------------------------------------------
# Public entry points


def _check_args(size: int, domain: str, supersample: int) -> None:
    if domain not in DOMAINS:
        raise ValueError(f"domain must be one of {DOMAINS}, got {domain!r}")
    if not isinstance(size, numbers.Integral) or size < 8:
        raise ValueError(f"size must be an int >= 8, got {size!r}")
    if not isinstance(supersample, numbers.Integral) or supersample < 1:
        raise ValueError(f"supersample must be an int >= 1, got {supersample!r}")


def render(params: FaceParams, *, size: int = 64, domain: Domain = "photo",
           supersample: int = 2) -> np.ndarray:
    """Draw one face: uint8 [size, size, 3].

    ``domain="photo"`` is the shaded, realistic rendering; ``"portrait"`` the flat-colour,
    outlined, exaggerated style of the same parameters. Deterministic: no randomness inside.
    ``supersample`` (>= 1) renders at that multiple of ``size`` and box-filters down.
    """
    _check_args(size, domain, supersample)
    if not isinstance(params, FaceParams):
        raise TypeError(f"params must be a FaceParams, got {type(params).__name__}")
    cv = _Painter(params, domain, size, supersample).draw()
    return _downsample(cv.rgb, supersample)


def _downsample(rgb: np.ndarray, ss: int) -> np.ndarray:
    """Box filter [n, n, 3] float in [0, 1] by ss -> uint8 [n / ss, n / ss, 3]."""
    # strided slice sums are several times faster than reshape(...).mean(axis=(1, 3))
    rows = sum(rgb[k::ss] for k in range(1, ss)) + rgb[0::ss] if ss > 1 else rgb
    out = sum(rows[:, k::ss] for k in range(1, ss)) + rows[:, 0::ss] if ss > 1 else rows
    out *= 255.0 / (ss * ss)
    out += 0.5
    np.clip(out, 0, 255, out=out)
    return out.astype(np.uint8)


def render_batch(params: Sequence[FaceParams], *, size: int = 64, domain: Domain = "photo",
                 supersample: int = 2) -> np.ndarray:
    """Draw several faces: uint8 [N, size, size, 3] (N = len(params))."""
    _check_args(size, domain, supersample)
    out = np.empty((len(params), size, size, 3), np.uint8)
    for k, p in enumerate(params):
        out[k] = render(p, size=size, domain=domain, supersample=supersample)
    return out


def segment(params: FaceParams, *, size: int = 64, domain: Domain = "photo",
            supersample: int = 2) -> np.ndarray:
    """Label map uint8 [size, size] with ids indexing LABELS (the centre sample of each pixel)."""
    _check_args(size, domain, supersample)
    cv = _Painter(params, domain, size, supersample).draw()
    k = supersample // 2
    return cv.label[k::supersample, k::supersample].copy()


def landmarks(params: FaceParams, *, size: int = 64,
              domain: Domain = "photo") -> dict[str, tuple[float, float]]:
    """Pixel (x, y) centres of ``left_eye``, ``right_eye`` (image left/right), ``nose``, ``mouth``.

    Pixel (0, 0) is the centre of the top-left pixel.
    """
    _check_args(size, domain, 1)
    g = _geometry(params, domain)
    cv = _Canvas(1, 1, roll=params.roll, shift=g.shift, ramp=1.0)
    head = {
        "left_eye": (-g.eye_x + g.feat, g.eye_y),
        "right_eye": (g.eye_x + g.feat, g.eye_y),
        "nose": (1.2 * g.feat, g.nose_tip),
        "mouth": (g.feat, g.mouth_y),
    }
    out = {}
    for name, (x, y) in head.items():
        qx, qy = cv.to_image(x, y)
        out[name] = ((qx + 1) / 2 * size - 0.5, (qy + 1) / 2 * size - 0.5)
    return out
