"""Experiments of the miniature world: portrait sets with known answers, scored by the oracle.

Every portrait here is rendered from explicit ``FaceParams``, so its realistic counterpart (the
same parameters in the photo domain) and its true identity, expression and glasses are known.
The oracle (:mod:`~redestyle.miniature.oracle`) reads parameters back from any face, which turns
destylization accuracy into errors against ground truth:

- ``identity``: mean absolute error of the 13 identity parameters (range units, 0 best);
- ``expression``: the same over smile, mouth opening and eye openness (expression retention);
- ``glasses``: fraction of faces whose glasses (on / off) match the portrait's.

Methods are compared by the held-out protocol (:mod:`~redestyle.miniature.protocol`: more
metrics, same-person consistency that a constant answer cannot win, intervals over identities).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..fileio import atomic_write
from ..imaging import pool, to_tensor
from ..inversion import invert
from ..metrics import roc_auc
from . import idnet
from . import oracle as orc
from .models import IMAGE_SIZE, WEIGHTS_DIR, load_into, weights_file
from .render import FaceParams, render_batch, sample_params


def load_oracle(device: str | torch.device = "cpu") -> orc.AttributeRegressor:
    """The shipped oracle (``weights/oracle.pt``), float32, eval mode."""
    model = orc.AttributeRegressor()
    load_into(model, weights_file("oracle"), what="mini oracle")
    return model.eval().to(device)


def training_records() -> dict[str, dict]:
    """stage -> the JSON record written beside its shipped weights (command, seed, losses)."""
    return {p.stem: json.loads(p.read_text()) for p in sorted(WEIGHTS_DIR.glob("*.json"))}


@dataclass
class PortraitSet:
    """Portraits with known answers: one group of portraits per person."""

    portraits: torch.Tensor  # [N, 3, S, S] in [-1, 1], portrait domain
    photos: torch.Tensor  # [N, 3, S, S], the same parameters in the photo domain (the answer)
    params: list[FaceParams]
    group_of: list[str]  # person of each portrait, in row order

    @property
    def vectors(self) -> np.ndarray:
        return np.stack([p.to_vector() for p in self.params]).astype(np.float32)

    def groups(self) -> dict[str, torch.Tensor]:
        """person -> that person's portraits [n, 3, S, S] (the shape ``accuracy`` expects)."""
        out: dict[str, list[int]] = {}
        for i, g in enumerate(self.group_of):
            out.setdefault(g, []).append(i)
        return {g: self.portraits[idx] for g, idx in out.items()}


def person_set(n_people: int = 4, per_person: int = 4, *, seed: int = 0, size: int = 64,
               glasses_p: float = 0.5) -> PortraitSet:
    """``n_people`` identities, each in ``per_person`` portraits with varied expression, pose,
    light and glasses (Fig. 4's setting). Rows are ordered person by person; deterministic."""
    if n_people < 1 or per_person < 1:
        raise ValueError(f"need n_people >= 1 and per_person >= 1, got {n_people}, {per_person}")
    params, person = idnet.identity_params(n_people, per_person, seed=seed, glasses_p=glasses_p)
    group_of = [f"person_{k}" for k in person]
    portraits = to_tensor(render_batch(params, size=size, domain="portrait"))
    photos = to_tensor(render_batch(params, size=size, domain="photo"))
    return PortraitSet(portraits, photos, params, group_of)


def named_portraits(n: int = 4, *, seed: int = 0, size: int = 64) -> dict[str, torch.Tensor]:
    """``n`` portraits of different people: ``mini_<k>`` -> [1, 3, size, size] (the notebooks' default
    portraits on the ``mini`` profile; :func:`person_set` with one portrait per person)."""
    pset = person_set(n, 1, seed=seed, size=size)
    return {f"mini_{k}": pset.portraits[k:k + 1] for k in range(n)}


def score(faces: torch.Tensor, truth: np.ndarray, oracle: orc.AttributeRegressor) -> dict[str, float]:
    """Oracle reading of ``faces`` [N, 3, S, S] against the true vectors [N, 22] (module docstring).

    Methods are compared on the held-out protocol (``miniature.protocol``: intervals, consistency
    measures a constant answer cannot win); this is the plain mean for the networks' bars."""
    with torch.no_grad():
        pred = oracle.predict(faces.detach().float().cpu())
    return {"n": len(pred), **orc.errors(pred, truth)}


# ---------------------------------------------------------------------------------------------
# quality of the trained networks (the bars)


def draw_faces(n: int, seed: int) -> list[FaceParams]:
    """The first ``n`` faces of the stream ``seed``: what :func:`render_set` renders (and what
    :mod:`~redestyle.miniature.seeds` keeps apart between training and evaluation)."""
    rng = np.random.default_rng(seed)
    return [sample_params(rng) for _ in range(n)]


def render_set(n: int, *, domain: str, seed: int, size: int = IMAGE_SIZE,
               cache_dir: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random faces -> (uint8 images [n, size, size, 3], float32 parameters [n, 22]).

    Parameters are drawn by ``sample_params`` from ``np.random.default_rng(seed)``; the same seed
    gives the same faces in both domains. With ``cache_dir`` the set is kept as an ``.npz``.
    """
    path = None if cache_dir is None else Path(cache_dir) / f"{domain}-{size}-seed{seed}-n{n}.npz"

    def make() -> dict[str, np.ndarray]:
        params = draw_faces(n, seed)
        return {"images": render_batch(params, size=size, domain=domain),
                "params": np.stack([p.to_vector() for p in params]).astype(np.float32)}

    arrays = cached_arrays(path, make)
    return arrays["images"], arrays["params"]


def cached_arrays(path: Path | None, make: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """``make()``'s named arrays, kept as an ``.npz`` at ``path`` (read back when it exists,
    written atomically otherwise); ``path`` None: no cache."""
    if path is not None and path.exists():
        with np.load(path) as f:
            return {k: f[k] for k in f.files}
    arrays = make()
    if path is not None:
        with atomic_write(path) as f:
            np.savez(f, **arrays)
    return arrays


def photo_renders(n: int, *, seed: int, size: int = 64, domain: str = "photo") -> tuple[torch.Tensor, np.ndarray]:
    """``n`` random renders (held out from training by the seed) -> ([n, 3, S, S], vectors [n, 22])."""
    images, vectors = render_set(n, domain=domain, seed=seed, size=size)
    return to_tensor(images), vectors


@torch.no_grad()
def generator_samples(g, n: int, *, seed: int, batch: int = 250, truncation: float = 1.0) -> torch.Tensor:
    """``n`` samples of a generator (registered noise, no truncation by default): [n, 3, S, S]."""
    gen = torch.Generator().manual_seed(seed)
    mean = g.mean_latent(4096, generator=gen) if truncation < 1 else None
    out = []
    for start in range(0, n, batch):
        z = torch.randn(min(batch, n - start), g.style_dim, generator=gen)
        img, _ = g([z.to(g.input.input.device)], randomize_noise=False, truncation=truncation,
                   truncation_latent=mean)
        out.append(img.clamp(-1, 1).cpu())
    return torch.cat(out)


def frechet_rows(g, oracle: orc.AttributeRegressor, *, n: int = 1000, seed: int = 1000) -> list[dict]:
    """Fréchet distance on the oracle's features between photo renders and: other renders (the
    floor set by sampling noise), the generator's samples, and portrait renders (a far reference)."""
    real, _ = photo_renders(n, seed=seed)
    other, _ = photo_renders(n, seed=seed + 1)
    portraits, _ = photo_renders(n, seed=seed + 2, domain="portrait")
    fr = oracle.embed(real)
    rows = []
    for name, images in (("photo renders (other seed)", other), ("generator samples", generator_samples(g, n, seed=seed)),
                         ("portrait renders", portraits)):
        rows.append({"vs photo renders": name, "n": n, "frechet": orc.frechet_distance(fr, oracle.embed(images))})
    return rows


def encoder_rows(models, oracle: orc.AttributeRegressor, *, n: int = 200, n_iters: int = 5,
                 seed: int = 2000) -> list[dict]:
    """How well ReStyle-pSp's reconstructions of held-out photo renders recover the parameters,
    per iteration, next to the average face (what iteration 0 shows) and the renders themselves.

    The renders are drawn at the encoder's resolution (``models.profile.pool_size``: 64 on mini,
    256 on ffhq1024; the oracle reads any size) and inverted through ``inversion.invert``, i.e. with
    the ReStyle checkpoint's own decoder and average image, as every other caller.
    """
    images, truth = photo_renders(n, seed=seed, size=models.profile.pool_size)
    dev = models.latent_avg.device
    with torch.no_grad():
        steps = invert("restyle_psp", images.to(dev), models, n_iters=n_iters).steps
    rows = [{"faces": "photo renders (answer)", **score(images, truth, oracle)}]
    avg = models.avg_image_for("restyle_psp").cpu().unsqueeze(0).expand(n, -1, -1, -1)
    rows.append({"faces": "average face", **score(avg, truth, oracle)})
    for t, step in enumerate(steps, 1):
        faces = pool(step.image, images.shape[-1]).clamp(-1, 1).cpu()  # the generator's size -> the renders'
        rows.append({"faces": f"ReStyle-pSp N={t}", **score(faces, truth, oracle),
                     "pixel_mse": float(torch.mean((faces - images) ** 2))})
    return rows


def verification_auc(embeddings: torch.Tensor, person: np.ndarray, *, negatives: str = "all") -> float:
    """ROC AUC of cosine similarity telling same-person pairs from different-person pairs
    (:func:`~redestyle.metrics.roc_auc`: ties count half). Positives: every same-person pair of
    rows of unit ``embeddings`` [N, D]. ``negatives``: ``"all"`` (every pair of rows of different
    people) or ``"twins"`` (only pairs of twins, people 2k and 2k + 1 of
    ``idnet.identity_views(..., twins=True)``: the same colours and hair, another face)."""
    person = np.asarray(person)
    sim = (embeddings @ embeddings.t()).numpy()
    upper = np.triu_indices(len(person), k=1)
    a, b = person[upper[0]], person[upper[1]]
    same = a == b
    if negatives == "all":
        negative = ~same
    elif negatives == "twins":
        negative = (a // 2 == b // 2) & ~same
    else:
        raise ValueError(f"negatives must be 'all' or 'twins', got {negatives!r}")
    scores = sim[upper]
    return roc_auc(scores[same], scores[negative])


def loss_network_rows(id_features, lpips, *, n_people: int = 300, seed: int = idnet.EVAL_SEED) -> list[dict]:
    """The quality of the ``mini`` profile's loss networks on held-out faces (issue 13's bars).

    ID network: verification ROC AUC on ``n_people`` held-out identities in twin pairs, two
    renders each (:func:`verification_auc`), against every other
    person and against the twin only, in both domains (trained on photos only; on portraits it is
    what IR-SE50 is on stylised faces: used out of its domain by the baseline's ID loss).
    Perceptual network: mean LPIPS of a photo render to itself shifted by one pixel, to its own
    portrait render and to another person's photo. A network given as None has no rows.
    """
    rows = []
    for domain in ("photo", "portrait") if id_features is not None else ():
        images, person = idnet.identity_views(n_people, 2, seed=seed, twins=True, domain=domain)
        emb = idnet.embed(id_features, images)
        for negatives in ("all", "twins"):
            rows.append({"network": "ID network", "measure": f"verification ROC AUC, {domain}, "
                         f"negatives: {'every other person' if negatives == 'all' else 'twin'}",
                         "value": verification_auc(emb, person, negatives=negatives)})
    if lpips is None:
        return rows
    x, _ = photo_renders(200, seed=seed)
    y, _ = photo_renders(200, seed=seed, domain="portrait")
    with torch.no_grad():
        for name, other in (("photo shifted by 1 px", x.roll(1, 3)), ("its own portrait", y),
                            ("another person's photo", x.roll(1, 0))):
            rows.append({"network": "perceptual (LPIPS)", "measure": f"photo to {name}",
                         "value": float(lpips(x, other).mean())})
    return rows
