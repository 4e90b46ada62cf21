"""The miniature world's identity network: what IR-SE50 ArcFace is to the ``ffhq1024`` profile.

The baseline's ID loss (and any ID term) needs a face-recognition network; offline there is no
``model_ir_se50.pth`` trained on real faces, so the ``mini`` profile trains its own on the world:
the same classes as the official loss (:class:`~redestyle.nets.irse.Backbone`, IR-SE, wrapped by
:class:`~redestyle.nets.irse.IDFeatures`, which crops and pools the face exactly as the ID loss
does), at small widths, taught on photo renders that one person's renders (expression, pose,
light and glasses redrawn) share an embedding and different people's do not (a supervised
InfoNCE loss over the other views of a batch). It is a network separate from the oracle, which
stays the judge only; its quality is its verification ROC AUC on held-out identities
(:func:`~redestyle.miniature.world.verification_auc`, the evaluation set
``seeds.EVALUATION_SETS``'s "ID network").
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F

from ..imaging import to_tensor
from ..nets.irse import Backbone, IDFeatures
from .render import IDENTITY_RANGES, FaceParams, render_batch, sample_identity, sample_params

#: The backbone's input side (IDFeatures pools its face crop to this) and stage widths.
INPUT_SIZE = 48
WIDTHS = (8, 16, 32, 64)
#: Evaluation seed of the held-out identities (seeds.EVALUATION_SETS).
EVAL_SEED = 3000


def build_backbone(seed: int = 0) -> Backbone:
    """The untrained backbone (seeded): IR-SE, 50 layers, ``WIDTHS``; 64-d embeddings."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return Backbone(INPUT_SIZE, 50, "ir_se", drop_ratio=0.0, widths=WIDTHS)


def face_crop(images: torch.Tensor) -> torch.Tensor:
    """What :class:`IDFeatures` feeds its backbone: [B, 3, S, S] -> [B, 3, INPUT_SIZE, INPUT_SIZE]
    (the ID loss's crop at the same fractions of the image, average-pooled)."""
    return F.adaptive_avg_pool2d(IDFeatures.crop(images), INPUT_SIZE)


def identity_params(n_people: int, per_person: int, *, seed: int, glasses_p: float = 0.5,
                    twins: bool = False) -> tuple[list[FaceParams], np.ndarray]:
    """``n_people`` identities, ``per_person`` faces each (expression, pose, light and glasses
    redrawn) -> (faces, person index [N]); rows person by person, deterministic in ``seed``.

    ``twins``: people come in pairs (2k, 2k + 1) that share skin, hair colour and hair style and
    differ only in the head and feature shapes (``render.IDENTITY_RANGES``): raw pixels tell the
    world's random people apart at a verification ROC AUC of 0.96 by their colours alone; twins
    measure (and, in training batches, teach) the face geometry an ID loss must see.
    ``n_people`` must then be even.
    """
    if twins and n_people % 2:
        raise ValueError(f"twins need an even number of people, got {n_people}")
    rng = np.random.default_rng(seed)
    faces, person = [], []
    identity = None
    for k in range(n_people):
        if twins and k % 2:
            identity = replace(identity, **{name: float(rng.uniform(lo, hi))
                                            for name, (lo, hi) in IDENTITY_RANGES.items()})
        else:
            identity = sample_identity(rng)
        for _ in range(per_person):
            faces.append(sample_params(rng, glasses_p=glasses_p, identity=identity))
            person.append(k)
    return faces, np.asarray(person, dtype=np.int64)


def identity_views(n_people: int, per_person: int, *, seed: int, size: int = 64,
                   domain: str = "photo", **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """:func:`identity_params` rendered in ``domain`` -> (uint8 [N, size, size, 3], person [N])."""
    faces, person = identity_params(n_people, per_person, seed=seed, **kwargs)
    return render_batch(faces, size=size, domain=domain), person


def info_nce(embeddings: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Supervised InfoNCE of unit embeddings [2P, D] laid out as (view 1 of P people, view 2 of the
    same P people): each row must pick its other view among the 2P - 1 others."""
    n = embeddings.shape[0]
    if n % 2:
        raise ValueError(f"need two views per person (an even batch), got {n} rows")
    logits = embeddings @ embeddings.t() / temperature
    logits = logits.masked_fill(torch.eye(n, dtype=torch.bool), float("-inf"))
    target = torch.arange(n).roll(n // 2)
    return F.cross_entropy(logits, target)


@torch.no_grad()
def embed(features: IDFeatures, images: np.ndarray | torch.Tensor, *, batch_size: int = 500) -> torch.Tensor:
    """Unit embeddings [N, D] of uint8 renders [N, S, S, 3] or images [N, 3, S, S] in [-1, 1]."""
    x = to_tensor(images) if isinstance(images, np.ndarray) else images
    return torch.cat([features(x[i:i + batch_size].float()) for i in range(0, len(x), batch_size)])
