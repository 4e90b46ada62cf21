"""The oracle: a small CNN that reads a photo-domain face's parameters back (the ground-truth ruler).

Trained on photo renders only (``python -m redestyle.miniature.train oracle``), it turns any
64 px face (a render, a StyleGAN2 sample, a destylized z_i* face) into the 22 numbers of
``VECTOR_NAMES``. Its penultimate features serve the Fréchet distance of generator samples.

Targets are normalised: every continuous parameter to [0, 1] by its valid range, ``hair_style``
as a 5-way class, ``glasses`` as a logit. :func:`errors` scores predictions against the truth in
those normalised units, grouped as identity / expression / glasses / pose.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..imaging import pool
from .render import (
    EXPRESSION_RANGES,
    HAIR_STYLES,
    IDENTITY_RANGES,
    SCENE_RANGES,
    VECTOR_NAMES,
)

_INDEX = {name: i for i, name in enumerate(VECTOR_NAMES)}
_RANGES = {**IDENTITY_RANGES, **EXPRESSION_RANGES, **SCENE_RANGES,
           **{f"{part}_{c}": (0.0, 1.0) for part in ("skin", "hair") for c in "rgb"}}
#: Continuous parameters, regressed in [0, 1] units (everything but hair_style and glasses).
CONTINUOUS: tuple[str, ...] = tuple(n for n in VECTOR_NAMES if n not in ("hair_style", "glasses"))
_LO = np.array([_RANGES[n][0] for n in CONTINUOUS], np.float32)
_SPAN = np.array([_RANGES[n][1] - _RANGES[n][0] for n in CONTINUOUS], np.float32)
_CONT_IDX = np.array([_INDEX[n] for n in CONTINUOUS])

#: Groups of :func:`errors` (continuous parameters only; hair style and glasses are accuracies).
IDENTITY: tuple[str, ...] = ("face_width", "face_height", "face_shape", "skin_r", "skin_g", "skin_b",
                             "eye_spacing", "eye_size", "nose_length", "nose_width",
                             "hair_r", "hair_g", "hair_b")
EXPRESSION: tuple[str, ...] = ("smile", "mouth_open", "eye_open")
POSE: tuple[str, ...] = ("yaw", "roll", "light_angle", "light_strength")
FEATURE_DIM = 128


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Parameter vectors [N, 22] -> continuous parameters in [0, 1] units [N, len(CONTINUOUS)]."""
    v = np.asarray(vectors, np.float32)
    return (v[:, _CONT_IDX] - _LO) / _SPAN


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2),
        nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2),
        nn.AvgPool2d(2),
    )


class AttributeRegressor(nn.Module):
    """64 px image [B, 3, 64, 64] in [-1, 1] -> continuous [B, 20] in [0, 1] units, hair logits [B, 5],
    glasses logit [B]; ``features`` gives the [B, 128] penultimate vector."""

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64, 128)) -> None:
        super().__init__()
        layers, cin = [], 3
        for w in widths:  # 64 -> 32 -> 16 -> 8 -> 4
            layers.append(_block(cin, w))
            cin = w
        self.body = nn.Sequential(*layers)
        self.neck = nn.Sequential(nn.Flatten(), nn.Linear(cin * 16, FEATURE_DIM), nn.LeakyReLU(0.2))
        self.continuous = nn.Linear(FEATURE_DIM, len(CONTINUOUS))
        self.hair = nn.Linear(FEATURE_DIM, len(HAIR_STYLES))
        self.glasses = nn.Linear(FEATURE_DIM, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1:] != (3, 64, 64):
            raise ValueError(f"the oracle reads [B, 3, 64, 64] images in [-1, 1], got {tuple(x.shape)}")
        return self.neck(self.body(x))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        f = self.features(x)
        return self.continuous(f), self.hair(f), self.glasses(f).squeeze(1)

    def loss(self, x: torch.Tensor, vectors: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """Training loss against true parameter vectors [B, 22] (:func:`attribute_loss`)."""
        return attribute_loss(self(x), vectors)

    @torch.no_grad()
    def predict(self, images: torch.Tensor, *, batch_size: int = 256) -> np.ndarray:
        """Images [N, 3, 64, 64] in [-1, 1] (larger ones are pooled) -> parameter vectors [N, 22].

        Continuous values come back in their own units (not clipped), hair_style as the argmax
        class, glasses as 0/1.
        """
        out = []
        for chunk in images.split(batch_size):
            chunk = _to64(chunk)
            cont, hair, glasses = self(chunk)
            v = np.zeros((len(chunk), len(VECTOR_NAMES)), np.float32)
            v[:, _CONT_IDX] = cont.float().cpu().numpy() * _SPAN + _LO
            v[:, _INDEX["hair_style"]] = hair.argmax(1).cpu().numpy()
            v[:, _INDEX["glasses"]] = (glasses > 0).float().cpu().numpy()
            out.append(v)
        return np.concatenate(out) if out else np.zeros((0, len(VECTOR_NAMES)), np.float32)

    @torch.no_grad()
    def embed(self, images: torch.Tensor, *, batch_size: int = 256) -> np.ndarray:
        """Images [N, 3, 64, 64] -> penultimate features [N, 128] (float64, for Fréchet distances)."""
        feats = [self.features(_to64(c)).double().cpu().numpy() for c in images.split(batch_size)]
        return np.concatenate(feats) if feats else np.zeros((0, FEATURE_DIM))


def attribute_loss(outputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
                   vectors: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """MSE + 0.05 CE + 0.05 BCE of (continuous [B, 20] in [0, 1] units, hair logits [B, 5], glasses
    logit [B]) against true parameter vectors [B, 22]; -> (loss, its parts as floats)."""
    cont, hair, glasses = outputs
    target = torch.from_numpy(normalise(vectors.numpy()))
    mse = F.mse_loss(cont, target)
    ce = F.cross_entropy(hair, vectors[:, _INDEX["hair_style"]].long())
    bce = F.binary_cross_entropy_with_logits(glasses, vectors[:, _INDEX["glasses"]])
    return mse + 0.05 * ce + 0.05 * bce, {"mse": mse.item(), "ce": ce.item(), "bce": bce.item()}


def _to64(x: torch.Tensor) -> torch.Tensor:
    return pool(x.float(), 64)


#: Column of each continuous parameter in :func:`normalise`'s output.
COLUMNS = {name: i for i, name in enumerate(CONTINUOUS)}


def abs_errors(pred: np.ndarray, truth: np.ndarray, names) -> np.ndarray:
    """|pred - truth| [N, len(names)] of the named continuous parameters; both [N, 22] already
    :func:`normalise` d (range units)."""
    idx = [COLUMNS[n] for n in names]
    return np.abs(pred[:, idx] - truth[:, idx])


def errors(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Ground-truth scores of predicted vs true parameter vectors [N, 22].

    ``identity`` / ``expression`` / ``pose``: mean absolute error in [0, 1] range units (0 best;
    guessing the middle of a uniform range scores 0.25); ``hair_style`` and ``glasses``: fraction
    predicted right.
    """
    p, t = normalise(pred), normalise(truth)

    def mae(names):
        return float(abs_errors(p, t, names).mean())

    hs, gl = _INDEX["hair_style"], _INDEX["glasses"]
    return {
        "identity": mae(IDENTITY),
        "expression": mae(EXPRESSION),
        "pose": mae(POSE),
        "hair_style": float((np.round(pred[:, hs]) == truth[:, hs]).mean()),
        "glasses": float(((pred[:, gl] > 0.5) == (truth[:, gl] > 0.5)).mean()),
    }


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to feature sets a [N, D] and b [M, D]."""
    from scipy import linalg

    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = np.real(linalg.sqrtm(cov_a @ cov_b))
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * covmean))
