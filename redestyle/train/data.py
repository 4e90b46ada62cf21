"""Training data: the paired set (style image S, extrinsic code z_e, intrinsic code z_i) and real batches.

``finetune_dualstylegan.py`` holds the style images twice (an lmdb for the discriminator, a dict for
the pairs); here one :class:`PairedSet` (uint8 images in memory) serves both: :func:`paired_batch`
draws pairs, :class:`RealBatches` the discriminator's real images (random horizontal flip, a
``DistributedSampler`` per rank, resumable exactly from a count of consumed batches).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DistributedSampler

from ..checkpoints import load_codes
from ..config import Schedule
from ..data import load_folder
from ..destylize import redestyle
from ..imaging import load_image, pool, to_uint8_batch


@dataclass
class PairedSet:
    """Style images with their codes, in the code files' (insertion) order.

    images: uint8 [N, 3, S, S]; exstyle: extrinsic codes [N, n_latent, D], already in **W+** (z+
    files are mapped once at load, as the official script does); instyle: intrinsic codes
    [N, n_latent, D] in ``space`` (W+: Re-Destyle; z+: DualStyleGAN's optimisation / encoder).
    """

    names: list[str]
    images: Tensor
    exstyle: Tensor
    instyle: Tensor
    space: str

    def __post_init__(self):
        n = len(self.names)
        if not (self.images.shape[0] == self.exstyle.shape[0] == self.instyle.shape[0] == n) or n == 0:
            raise ValueError(
                f"PairedSet needs the same positive count of names ({n}), images "
                f"({self.images.shape[0]}), exstyle ({self.exstyle.shape[0]}) and instyle ({self.instyle.shape[0]})"
            )
        if self.space not in ("W+", "z+"):
            raise ValueError(f"PairedSet.space must be 'W+' or 'z+', got {self.space!r}")

    def __len__(self) -> int:
        return len(self.names)

    def image(self, index: Tensor) -> Tensor:
        """Float images [len(index), 3, S, S] in [-1, 1]."""
        return self.images[index].float() / 127.5 - 1


def load_image_set(folder: str | os.PathLike, *, size: int) -> tuple[list[str], Tensor]:
    """Every readable image of a folder (sorted) -> (names, uint8 [N, 3, size, size]); e.g. FFHQ for pretraining."""
    images, failures = load_folder(folder, size=size)
    if not images:
        raise ValueError(f"{folder}: no readable images ({len(failures)} unreadable)")
    names = sorted(images)
    return names, torch.cat([to_uint8_batch(images[n]) for n in names])


def read_space(codes_dir: str | os.PathLike) -> str:
    """The latent space of a code folder from its ``codes_meta.json`` (official folders without one: z+)."""
    meta = Path(codes_dir) / "codes_meta.json"
    if not meta.exists():
        return "z+"  # DualStyleGAN's own destylize.py writes z+ codes and no meta file
    space = json.loads(meta.read_text()).get("space")
    if space not in ("W+", "z+"):
        raise ValueError(f"{meta}: 'space' must be 'W+' or 'z+', found {space!r}")
    return space


def check_codes_profile(codes_dir: str | os.PathLike, profile: str) -> None:
    """Refuse codes made under another profile (their shapes differ: a run would fail later, deep
    inside a network); folders without ``codes_meta.json`` (DualStyleGAN's own) are not checked."""
    meta = Path(codes_dir) / "codes_meta.json"
    if not meta.exists():
        return
    made = json.loads(meta.read_text()).get("profile")
    if made is not None and made != profile:
        raise ValueError(f"{meta}: these codes were made with profile {made!r}, this run uses {profile!r}; "
                         f"pass --profile {made}")


def load_paired_set(
    codes_dir: str | os.PathLike,
    image_dir: str | os.PathLike,
    *,
    size: int,
    mapping_plus=None,
    exstyle_name: str = "exstyle_code.npy",
) -> PairedSet:
    """Read ``instyle_code.npy`` / ``exstyle_code.npy`` (+ ``codes_meta.json``) and their images.

    Keys are file names relative to ``image_dir`` (as ``redestyle destylize`` and DualStyleGAN's
    ``destylize.py`` write them); order = the instyle dict's order (official). z+ exstyle codes are
    mapped once with ``mapping_plus`` (the generator's per-layer mapping), as the official script
    maps them through ``g_ema.generator.style``.
    """
    codes_dir = Path(codes_dir)
    space = read_space(codes_dir)
    instyle = load_codes(codes_dir / "instyle_code.npy")
    exstyle = load_codes(codes_dir / exstyle_name)
    names = [n for n in instyle if n in exstyle]
    if not names:
        raise ValueError(f"{codes_dir}: no file has both an instyle and an exstyle code")
    missing = [n for n in names if not (Path(image_dir) / n).is_file()]
    if missing:  # the codes were made from another folder: say so once, not per file
        raise ValueError(f"{image_dir}: no image for {len(missing)} of the {len(names)} codes in {codes_dir} "
                         f"(first: {', '.join(missing[:3])}); --images must be the folder that was destylized")
    images = torch.cat([to_uint8_batch(load_image(Path(image_dir) / n, size=size)) for n in names])
    ex = torch.from_numpy(np.concatenate([exstyle[n] for n in names])).float()
    ins = torch.from_numpy(np.concatenate([instyle[n] for n in names])).float()
    if space == "z+":
        if mapping_plus is None:
            raise ValueError("z+ codes need mapping_plus to map the exstyle codes to W+")
        with torch.no_grad():
            ex = mapping_plus(ex)
    return PairedSet(names, images, ex, ins, space)


def paired_batch(
    data: PairedSet,
    batch: int,
    *,
    mapping,
    random_ind: int = 8,
    subspace_std: float = 0.1,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> tuple[Tensor, Tensor, Tensor]:
    """``get_paired_data``: draw ``batch`` pairs uniformly with replacement -> (instyle, exstyle, S).

    instyle [B, n_latent, D]: the codes with entries >= ``random_ind`` re-drawn ("eliminate the
    colour consistency between content and target"): N(0, I) z vectors for z+ codes (official), and
    ``mapping(z)`` w vectors for W+ codes (C4). exstyle [B, n_latent, D] (W+): the codes plus
    N(0, subspace_std^2) jitter. S [B, 3, S, S] in [-1, 1].
    """
    index = torch.randint(len(data), (batch,), generator=generator)
    instyle = data.instyle[index].clone()
    n_rand = instyle.shape[1] - random_ind
    if n_rand > 0:
        z = torch.randn(batch * n_rand, instyle.shape[2], generator=generator).to(device)
        if data.space == "W+":
            with torch.no_grad():
                z = mapping(z)
        instyle = instyle.to(device)
        instyle[:, random_ind:] = z.reshape(batch, n_rand, -1)
    exstyle = data.exstyle[index] + subspace_std * torch.randn(data.exstyle[index].shape, generator=generator)
    return instyle.to(device), exstyle.to(device), data.image(index).to(device)


class RealBatches:
    """Endless real-image batches for the discriminator, per rank, resumable.

    Each epoch a ``DistributedSampler`` (seeded, ``set_epoch``) gives this rank's permutation,
    ``drop_last`` batches are cut from it and each image is flipped horizontally with
    probability 1/2 (flips drawn from a generator seeded by (seed, epoch, rank)). The whole
    stream is a function of the batch count, so ``state_dict`` is ``{"consumed": n}``.
    """

    def __init__(self, images: Tensor, batch: int, *, rank: int = 0, world_size: int = 1,
                 seed: int = 0, flip: bool = True) -> None:
        """images: uint8 [N, 3, S, S] (e.g. ``PairedSet.images``)."""
        self.images, self.batch, self.flip, self.seed, self.rank = images, batch, flip, seed, rank
        self.sampler = DistributedSampler(range(len(images)), num_replicas=world_size, rank=rank,
                                          shuffle=True, seed=seed, drop_last=False)
        per_rank = len(self.sampler)
        # fewer images than a batch (tiny sets): cycle the permutation within the epoch
        self.per_epoch = max(per_rank // batch, 1)
        self.consumed = 0
        self._epoch, self._order, self._flips = -1, None, None

    def _load_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)
        order = torch.tensor(list(self.sampler))
        reps = -(-self.per_epoch * self.batch // len(order))
        self._order = order.repeat(reps)[: self.per_epoch * self.batch]
        g = torch.Generator().manual_seed((self.seed * 1_000_003 + epoch * 7919 + self.rank) % 2**63)
        self._flips = torch.rand(len(self._order), generator=g) < 0.5
        self._epoch = epoch

    def next(self, device: torch.device | str = "cpu") -> Tensor:
        """The next real batch [batch, 3, S, S] in [-1, 1]."""
        epoch, pos = divmod(self.consumed, self.per_epoch)
        if epoch != self._epoch:
            self._load_epoch(epoch)
        sl = slice(pos * self.batch, (pos + 1) * self.batch)
        images = self.images[self._order[sl]].float() / 127.5 - 1
        if self.flip:
            flips = self._flips[sl]
            images[flips] = images[flips].flip(3)
        self.consumed += 1
        return images.to(device)

    def state_dict(self) -> dict:
        return {"consumed": self.consumed}

    def load_state_dict(self, state: dict) -> None:
        self.consumed = int(state["consumed"])


def destylized_pairs(
    models,
    portraits: dict[str, Tensor],
    *,
    schedule: Schedule | str = "5-3-1",
    batch: int = 4,
) -> PairedSet:
    """Destylize ``portraits`` (name -> [1, 3, R, R] in [-1, 1]) with Re-Destyle in memory -> a W+ PairedSet.

    models: ``zoo.build_models(..., methods=["restyle_psp"])``. The same codes as
    ``redestyle destylize`` writes to disk (``load_paired_set`` reads those), for notebooks and tests.
    """
    names = list(portraits)
    images = torch.cat([portraits[n] for n in names])
    z_e, z_i = [], []
    with torch.no_grad():
        for start in range(0, len(names), batch):
            x = pool(images[start : start + batch].to(models.latent_avg.device), models.profile.pool_size)
            result = redestyle(models.encoder("restyle_psp"), models.decoder_for("restyle_psp"), x, schedule=schedule,
                               latent_avg=models.latent_avg, avg_image=models.avg_image)
            z_e.append(result.z_e.cpu())
            z_i.append(result.z_i.cpu())
    size = models.profile.image_size
    return PairedSet(names, to_uint8_batch(pool(images, size)), torch.cat(z_e), torch.cat(z_i), "W+")
