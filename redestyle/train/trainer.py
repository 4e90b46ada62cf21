"""DualStyleGAN pretraining and fine-tuning: one iteration at a time, resumable, data-parallel.

:class:`Trainer` holds the state of ``finetune_dualstylegan.py`` / ``pretrain_dualstylegan.py``
(models, Adam states with lazy-regularisation scaling, the path-length running mean, the
iteration counter, the random streams) and runs one iteration per :meth:`Trainer.finetune_step` /
:meth:`Trainer.pretrain_step`, returning that iteration's losses; it is a
:class:`~redestyle.train.loop.Resumable` (``train_step``, ``checkpoint``, ``load``). :func:`run`
drives it through the one training loop (``loop.train_loop``, shared with the miniature stages)
with TensorBoard, tqdm and checkpoints (rank 0) as callbacks. Every random draw of an iteration comes from
the trainer's own ``torch.Generator`` (noise maps included), so a run resumed from a checkpoint
continues bit for bit like the uninterrupted run.

Official facts kept on purpose (reference/dualstylegan.md §4-5):
* G's optimiser covers ``res`` and ``style`` (T_s) only; the intrinsic StyleGAN2 stays frozen.
* EMA averages ``g_ema.res`` only; ``g_ema.style`` keeps its starting values (an upstream quirk
  that the released checkpoints carry).
* L_reg is the sum of the (not squared) Frobenius norms of all ``res`` parameters.
W+ codes (Re-Destyle, C4): the intrinsic codes enter with ``input_is_latent=True`` and the
extrinsic codes are used as stored; z+ codes take the official path (``z_plus_latent=True``).
With ``config.augment`` (ADA, :mod:`~redestyle.train.augment`) D sees augmented real and fake
images in its step and in R1, G's adversarial term sees augmented fakes, and p follows D's real
logits after every D step (or stays at ``augment_p`` when that is > 0), as rosinality's train.py.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from ..checkpoints import load_checkpoint
from ..fileio import save_atomic
from ..imaging import pool
from ..losses import VGG19_LAYERS, contextual_loss, id_loss
from . import dist
from .augment import AdaptiveAugment, augment
from .config import FinetuneConfig, PretrainConfig
from .data import PairedSet, RealBatches, paired_batch
from .gan import (
    accumulate,
    d_logistic_loss,
    d_r1_loss,
    g_nonsaturating_loss,
    g_path_regularize,
    requires_grad,
)
from .loop import train_loop
from .models import TrainModels

log = logging.getLogger(__name__)

#: VGG19 layers of the fine-tuning losses: relu2_1 (FM, perceptual 0.5) and relu3_1 (CX, FM, perceptual 1.0).
FINETUNE_LAYERS = ("relu2_1", "relu3_1")
PERC_WEIGHTS = (0.5, 1.0)


def _vgg(vgg, images: Tensor, layers) -> list[Tensor]:
    """The named VGG19 features of ``images`` (the extractor may compute more layers)."""
    feats = dict(zip(vgg.layers, vgg(images)))
    missing = [name for name in layers if name not in feats]
    if missing:
        raise ValueError(f"the VGG19 extractor lacks layers {missing} (has {list(vgg.layers)})")
    return [feats[name] for name in layers]


class Trainer:
    """State and iterations of DualStyleGAN training (see the module docstring).

    models: from :func:`~redestyle.train.models.build_train_models`; config: FinetuneConfig or
    PretrainConfig. paired: the paired set (fine-tuning; pretraining uses it for nothing).
    real: the discriminator's real batches. encode_wplus (pretraining only): images in [-1, 1] ->
    W+ codes [B, n_latent, D] (DualStyleGAN's z+ pSp followed by the per-layer mapping).
    """

    def __init__(
        self,
        models: TrainModels,
        config: FinetuneConfig | PretrainConfig,
        *,
        real: RealBatches,
        paired: PairedSet | None = None,
        encode_wplus: Callable[[Tensor], Tensor] | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        if isinstance(config, FinetuneConfig) and paired is None:
            raise ValueError("fine-tuning needs the paired set (style images + codes)")
        if isinstance(config, PretrainConfig) and encode_wplus is None:
            raise ValueError("pretraining needs encode_wplus (DualStyleGAN's z+ encoder + mapping)")
        if isinstance(config, FinetuneConfig) and paired.space != config.space:
            raise ValueError(f"codes are {paired.space} but config.space is {config.space}")
        self.models, self.config, self.real, self.paired = models, config, real, paired
        self.encode_wplus = encode_wplus
        self.device = torch.device(device)
        g, d = models.generator, models.discriminator
        self.g, self.d, self.g_ema = g, d, models.g_ema
        requires_grad(g.generator, False)  # the intrinsic path is never optimised (official)
        requires_grad(self.g_ema, False)
        self.g_params = [*g.res.parameters(), *g.style.parameters()]
        g_ratio, d_ratio = config.g_reg_ratio, config.d_reg_ratio
        self.g_optim = torch.optim.Adam(self.g_params, lr=config.lr * g_ratio, betas=(0.0, 0.99**g_ratio))
        self.d_optim = torch.optim.Adam(d.parameters(), lr=config.lr * d_ratio, betas=(0.0, 0.99**d_ratio))
        if isinstance(config, FinetuneConfig):
            # finetune_dualstylegan.py continues the Adam moments of generator-pretrain.pt when the
            # file holds them (the released one does: g_optim, d_optim)
            if "g_optim" in models.optim_states:
                self.g_optim.load_state_dict(models.optim_states["g_optim"])
            if "d_optim" in models.optim_states:
                self.d_optim.load_state_dict(models.optim_states["d_optim"])
        self.step = 0
        self.mean_path_length = torch.zeros((), device=self.device)
        self.history: list[dict[str, float]] = []
        # one stream per rank: ranks draw different batches, as upstream's per-GPU sampling
        self.rng = torch.Generator().manual_seed(config.seed * 1_000_003 + dist.rank())
        self.ada = self._new_ada()
        dist.broadcast_parameters([g, d, self.g_ema])

    def _new_ada(self) -> AdaptiveAugment | None:
        """ADA: adaptive p unless --augment_p fixes it (official); p is the same on every rank."""
        cfg = self.config
        return AdaptiveAugment(cfg.ada_target, cfg.ada_length, cfg.ada_every) if cfg.augment and cfg.augment_p == 0 else None

    def _start_stage(self) -> None:
        """pretrain_dualstylegan.py calls its train() once per stage: each call starts a fresh
        path-length mean and a fresh ADA controller (p = 0); only the models and optimisers carry over."""
        self.mean_path_length = torch.zeros((), device=self.device)
        self.ada = self._new_ada()

    # ------------------------------------------------------------------ random draws

    def _randn(self, *shape: int) -> Tensor:
        return torch.randn(*shape, generator=self.rng).to(self.device)

    def _noise(self, batch: int) -> list[Tensor]:
        """Fresh per-sample noise maps (what ``randomize_noise=True`` draws), from the trainer's stream."""
        g = self.g.generator
        return [self._randn(batch, 1, 2 ** ((i + 5) // 2), 2 ** ((i + 5) // 2)) for i in range(g.num_layers)]

    def _mixing_z(self, batch: int) -> tuple[list[Tensor], int | None]:
        """mixing_noise(batch, D, config.mixing) plus the crossover index the generator would draw."""
        two = torch.rand((), generator=self.rng).item() < self.config.mixing
        zs = [self._randn(batch, self.g.style_dim) for _ in range(2 if two else 1)]
        return zs, self._inject_index() if two else None

    def _inject_index(self) -> int:
        """The crossover index a generator call draws for two styles: uniform in [1, n_latent - 1]."""
        return int(torch.randint(1, self.g.n_latent, (), generator=self.rng))

    def _pairs(self, batch: int) -> tuple[Tensor, Tensor, Tensor]:
        cfg = self.config
        return paired_batch(self.paired, batch, mapping=self.g.generator.mapping, random_ind=cfg.random_ind,
                            subspace_std=cfg.subspace_std, generator=self.rng, device=self.device)

    @property
    def ada_aug_p(self) -> float:
        """The current ADA probability (0 without ``config.augment``)."""
        if not self.config.augment:
            return 0.0
        return self.ada.p if self.ada is not None else float(self.config.augment_p)

    def _augment(self, images: Tensor) -> Tensor:
        """What D sees of ``images``: themselves, or their ADA (draws from the trainer's stream)."""
        if not self.config.augment:
            return images
        return augment(images, self.ada_aug_p, generator=self.rng)

    def _intrinsic_kwargs(self, paired: bool) -> dict:
        if not paired:
            return {}
        return {"input_is_latent": True} if self.config.space == "W+" else {"z_plus_latent": True}

    # ------------------------------------------------------------------ shared pieces

    def _d_step(self, real: Tensor, fake: Tensor, *, reg_step: int, weight: float = 1.0) -> dict[str, float]:
        """Logistic D loss on (real, fake) (+ R1 when ``reg_step`` is a multiple of d_reg_every)."""
        cfg = self.config
        requires_grad(self.d, True)
        real_aug, fake_aug = self._augment(real), self._augment(fake.detach())
        real_pred, fake_pred = self.d(real_aug), self.d(fake_aug)
        d_loss = weight * d_logistic_loss(real_pred, fake_pred)
        self.d.zero_grad(set_to_none=True)
        d_loss.backward()
        dist.average_gradients(self.d.parameters())
        self.d_optim.step()
        out = {"d": d_loss.item(), "real_score": real_pred.mean().item(), "fake_score": fake_pred.mean().item()}
        if self.ada is not None:  # after D's update, before R1 and G (official order)
            self.ada.tune(real_pred)
            out["r_t"] = self.ada.r_t
        if cfg.augment:
            out["ada_aug_p"] = self.ada_aug_p
        if reg_step % cfg.d_reg_every == 0:
            real = real.detach().requires_grad_(True)
            real_pred = self.d(self._augment(real))  # R1 is taken w.r.t. the un-augmented reals
            r1 = d_r1_loss(real_pred, real)
            self.d.zero_grad(set_to_none=True)
            (cfg.r1 / 2 * r1 * cfg.d_reg_every + 0 * real_pred[0]).sum().backward()
            dist.average_gradients(self.d.parameters())
            self.d_optim.step()
            out["r1"] = r1.item()
        requires_grad(self.d, False)
        return out

    def _g_update(self, loss: Tensor) -> None:
        self.g.zero_grad(set_to_none=True)
        loss.backward()
        dist.average_gradients(self.g_params)
        self.g_optim.step()

    def _path_step(self, exstyle: Tensor) -> dict[str, float]:
        """Path-length regulariser on batch // path_batch_shrink samples (every g_reg_every iterations)."""
        cfg = self.config
        batch = exstyle.shape[0]
        zs, inject = self._mixing_z(batch)
        with torch.no_grad():
            latent = self.g.intrinsic_latent(zs, inject_index=inject)
        latent = latent.detach().requires_grad_(True)  # J is taken w.r.t. the W+ latent (official)
        fake = self.g.synthesize(latent, exstyle, noise=self._noise(batch))
        penalty, self.mean_path_length, length = g_path_regularize(
            fake, latent, self.mean_path_length, noise=self._randn(*fake.shape))
        self._g_update(cfg.path_regularize * cfg.g_reg_every * penalty + 0 * fake[0, 0, 0, 0])
        return {"path": penalty.item(), "path_length": length.item()}

    def _finish_step(self, losses: dict[str, float]) -> dict[str, float]:
        accumulate(self.g_ema.res, self.g.res, self.config.ema_decay)  # res only (official)
        losses = {"step": float(self.step), **losses}
        self.history.append(losses)
        self.step += 1
        return losses

    # ------------------------------------------------------------------ fine-tuning

    def finetune_step(self) -> dict[str, float]:
        """One iteration of ``finetune_dualstylegan.py`` -> its losses (this rank's values)."""
        cfg, g = self.config, self.g
        b = cfg.batch
        paired = self.step % cfg.subspace_freq > 0
        kwargs = self._intrinsic_kwargs(paired)
        if paired:  # Eq. 4: intrinsic code of the style image, its extrinsic code, S itself
            instyle, exstyle, real = self._pairs(b)
            styles, inject = [instyle], None
        else:
            real = self.real.next(self.device)
            styles, inject = self._mixing_z(b)
            _, exstyle, _ = self._pairs(b)
        with torch.no_grad():
            fake, _ = g(styles, exstyle, inject_index=inject, noise=self._noise(b), **kwargs)
        losses = self._d_step(real, fake, reg_step=self.step)

        # The generator step draws afresh (finetune_dualstylegan.py): a new paired draw on paired
        # iterations, new mixing z's and a new paired draw (extrinsic codes, targets) otherwise.
        if paired:
            instyle, exstyle, target = self._pairs(b)
            styles = [instyle]
        else:
            styles, inject = self._mixing_z(b)
            _, exstyle, target = self._pairs(b)
        fake, _ = g(styles, exstyle, inject_index=inject, noise=self._noise(b), **kwargs)
        adv = g_nonsaturating_loss(self.d(self._augment(fake)))
        fake_l, target_l = pool(fake, cfg.loss_size), pool(target, cfg.loss_size)
        f2, f3 = _vgg(self.models.vgg, fake_l, FINETUNE_LAYERS)
        with torch.no_grad():
            t2, t3 = _vgg(self.models.vgg, target_l, FINETUNE_LAYERS)
        cx = contextual_loss(f3, t3, band_width=0.2)
        fm = F.mse_loss(f2.mean((2, 3)), t2.mean((2, 3))) + F.mse_loss(f3.mean((2, 3)), t3.mean((2, 3)))
        total = adv + cfg.cx_loss * cx + cfg.style_loss * fm
        out = {"g_adv": adv.item(), "cx": cx.item(), "fm": fm.item()}
        if paired:
            perc = PERC_WEIGHTS[0] * F.l1_loss(f2, t2) + PERC_WEIGHTS[1] * F.l1_loss(f3, t3)
            total = total + cfg.perc_loss * perc
            out["perc"] = perc.item()
        if self.models.id_features is not None and cfg.id_loss > 0:
            # the intrinsic-only content image (use_res=False): a separate generator call, which
            # draws its own crossover index for mixed z's (the official forward's randint)
            content_inject = self._inject_index() if len(styles) == 2 else None
            with torch.no_grad():
                content, _ = g(styles, None, inject_index=content_inject, noise=self._noise(b), use_res=False,
                               **kwargs)
            ident = id_loss(self.models.id_features, fake_l, pool(content, cfg.loss_size))
            total = total + cfg.id_loss * ident
            out["id"] = ident.item()
        reg = sum(p.norm() for p in g.res.parameters())
        total = total + cfg.l2_reg_loss * reg
        out["reg"] = reg.item()
        out["g"] = total.item()
        self._g_update(total)

        if self.step % cfg.g_reg_every == 0:
            _, ex_path, _ = self._pairs(max(b // cfg.path_batch_shrink, 1))
            out.update(self._path_step(ex_path))
        out["paired"] = float(paired)
        return self._finish_step({**losses, **out})

    # ------------------------------------------------------------------ pretraining

    def pretrain_step(self, *, inject_index: int, stage_iter: int) -> dict[str, float]:
        """One iteration of ``pretrain_dualstylegan.py`` (stage with ``inject_index``; ``stage_iter``
        is the stage-local counter that the lazy regularisers and the z+/W+ alternation follow)."""
        cfg, g = self.config, self.g
        b = cfg.batch
        z1, z2 = self._randn(b, g.style_dim), self._randn(b, g.style_dim)
        with torch.no_grad():
            target, _ = g([z1, z2], None, inject_index=inject_index, noise=self._noise(b), use_res=False)
            style_img, _ = g([z2], None, noise=self._noise(b), use_res=False)
            pspstyle = self.encode_wplus(pool(style_img, cfg.loss_size))
        if stage_iter % cfg.subspace_freq > 0:
            styles, exstyle, kwargs = [z1], g.generator.mapping(z2), {}
        else:  # z+ intrinsic (z1 repeated per layer), encoder W+ extrinsic
            styles, exstyle, kwargs = [z1[:, None].repeat(1, g.n_latent, 1)], pspstyle, {"z_plus_latent": True}
        real = self.real.next(self.device)
        with torch.no_grad():
            fake, _ = g(styles, exstyle, noise=self._noise(b), **kwargs)
        # the lazy regularisers follow the stage-local counter (the loop restarts at 0 per stage)
        losses = self._d_step(real, fake, reg_step=stage_iter, weight=cfg.adv_weight)
        fake, _ = g(styles, exstyle, noise=self._noise(b), **kwargs)
        adv = g_nonsaturating_loss(self.d(self._augment(fake)))
        layers = [name for name, w in zip(VGG19_LAYERS, cfg.perc_weights) if w]
        feats_f = _vgg(self.models.vgg, pool(fake, cfg.loss_size), layers)
        with torch.no_grad():
            feats_t = _vgg(self.models.vgg, pool(target, cfg.loss_size), layers)
        weights = [w for w in cfg.perc_weights if w]
        perc = sum(w * F.l1_loss(a, t) for w, a, t in zip(weights, feats_f, feats_t))
        total = cfg.adv_weight * adv + perc
        self._g_update(total)
        out = {"g_adv": adv.item(), "perc": float(perc.detach()), "g": total.item()}
        if stage_iter % cfg.g_reg_every == 0:
            zr = self._randn(max(b // cfg.path_batch_shrink, 1), g.style_dim)
            with torch.no_grad():
                ex_path = g.generator.mapping(zr)
            out.update(self._path_step(ex_path))
        return self._finish_step({**losses, **out, "inject_index": float(inject_index)})

    def pretrain_schedule(self) -> list[tuple[int, int]]:
        """(iterations, inject_index) per stage: iter/10 at 7, iter/10 at 6, iter at 5 (official)."""
        cfg = self.config
        counts = [cfg.iter // 10] * (len(cfg.inject_indices) - 1) + [cfg.iter]
        return list(zip(counts, cfg.inject_indices))

    def pretrain_position(self) -> tuple[int, int, int, bool]:
        """(stage, stage_iter, inject_index, last stage?) of the current global step."""
        left = self.step
        schedule = self.pretrain_schedule()
        for k, (count, inject) in enumerate(schedule):
            if left < count:
                return k, left, inject, k == len(schedule) - 1
            left -= count
        raise StopIteration("pretraining is finished")

    @property
    def total_steps(self) -> int:
        if isinstance(self.config, PretrainConfig):
            return sum(c for c, _ in self.pretrain_schedule())
        return self.config.iter

    def train_step(self) -> dict[str, float]:
        """The next iteration of whichever schedule the config describes."""
        if isinstance(self.config, PretrainConfig):
            stage, stage_iter, inject, _ = self.pretrain_position()
            if stage_iter == 0 and stage > 0:
                self._start_stage()
            return self.pretrain_step(inject_index=inject, stage_iter=stage_iter)
        return self.finetune_step()

    # ------------------------------------------------------------------ checkpoints

    def checkpoint(self) -> dict:
        """The official container ``{g, d, g_ema, g_optim, d_optim, args, ada_aug_p}`` plus our
        ``format/config/state_dict (= g_ema)/step`` and what an exact resume needs (per-rank streams)."""
        streams = _gather({"rng": self.rng.get_state(), "real": self.real.state_dict(),
                           "mean_path_length": self.mean_path_length.detach().cpu()})
        config = {"kind": "pretrain" if isinstance(self.config, PretrainConfig) else "finetune",
                  **dataclasses.asdict(self.config)}
        g_ema = self.g_ema.state_dict()
        return {
            "format": 1, "config": config, "state_dict": g_ema, "step": self.step,
            "g": self.g.state_dict(), "d": self.d.state_dict(), "g_ema": g_ema,
            "g_optim": self.g_optim.state_dict(), "d_optim": self.d_optim.state_dict(),
            "args": {**config, "loss_nets": dict(self.models.loss_nets)}, "ada_aug_p": self.ada_aug_p, "streams": streams, "history": list(self.history),
            "ada": self.ada.state_dict() if self.ada is not None else None,
        }

    def save(self, path: str | os.PathLike) -> Path | None:
        """Write :meth:`checkpoint` atomically (rank 0; every rank must call it, it gathers streams)."""
        payload = self.checkpoint()
        return save_atomic(payload, path) if dist.is_main() else None

    def load(self, payload_or_path: dict | str | os.PathLike) -> None:
        """Restore a :meth:`checkpoint` (or its file): weights, optimisers, step, streams, history."""
        ck = payload_or_path if isinstance(payload_or_path, dict) else load_checkpoint(payload_or_path)
        self.g.load_state_dict(ck["g"])
        self.d.load_state_dict(ck["d"])
        self.g_ema.load_state_dict(ck["g_ema"])
        self.g_optim.load_state_dict(ck["g_optim"])
        self.d_optim.load_state_dict(ck["d_optim"])
        self.step = int(ck["step"])
        self.history = [dict(h) for h in ck.get("history", [])]
        if self.ada is not None:  # ADA state is global (all-reduced), the same on every rank
            if ck.get("ada"):
                self.ada.load_state_dict(ck["ada"])
            else:  # an official container: only p survives
                self.ada.p = float(ck.get("ada_aug_p", 0.0))
        streams = ck.get("streams") or []
        r = dist.rank()
        if len(streams) == dist.world_size():
            self.rng.set_state(streams[r]["rng"])
            self.real.load_state_dict(streams[r]["real"])
            self.mean_path_length = streams[r]["mean_path_length"].to(self.device)
        else:
            log.warning("checkpoint holds %d rank streams, this run has %d ranks: random streams restart "
                        "(training continues, not bit-identically)", len(streams), dist.world_size())
            self.rng.manual_seed(self.config.seed * 1_000_003 + r + 7919 * self.step)
            self.real.load_state_dict({"consumed": self.step})


def _gather(obj: dict) -> list[dict]:
    if not dist.is_distributed():
        return [obj]
    import torch.distributed as tdist

    out: list = [None] * dist.world_size()
    tdist.all_gather_object(out, obj)
    return out


# ------------------------------------------------------------------ the loop


def run(
    trainer: Trainer,
    *,
    out_dir: str | os.PathLike | None = None,
    model_name: str | None = None,
    steps: int | None = None,
    progress: bool = True,
    tensorboard: bool = True,
) -> list[dict[str, float]]:
    """Train from ``trainer.step`` to the schedule's end (or ``steps`` more iterations).

    Rank 0 writes TensorBoard scalars (every ``log_every``) and image grids (every ``sample_every``)
    to ``out_dir/tb``, shows a tqdm bar, and saves ``out_dir/last.pt`` (everything, for ``--resume``)
    every ``save_every`` iterations and at the end, plus ``out_dir/<model_name>-XXXXXX.pt`` where the
    official script saves (fine-tuning: from ``save_begin``; pretraining: last stage only).
    Returns the losses of every iteration run (averaged over ranks).
    """
    cfg = trainer.config
    pretrain = isinstance(cfg, PretrainConfig)
    model_name = model_name or ("generator-pretrain" if pretrain else "generator")
    end = trainer.total_steps if steps is None else min(trainer.total_steps, trainer.step + steps)
    main = dist.is_main()
    out = Path(out_dir) if out_dir is not None else None
    writer = None
    if main and out is not None and tensorboard:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out / "tb"))
    bar = None
    if main and progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=end - trainer.step, desc=model_name, dynamic_ncols=True)
    fixed = _fixed_samples(trainer) if writer is not None else None

    def write_scalars(done: int, losses: dict[str, float]) -> None:
        if done % cfg.log_every == 0:
            for key, value in losses.items():
                if key != "step":
                    writer.add_scalar(f"loss/{key}", value, done)

    def write_samples(done: int, losses: dict[str, float]) -> None:
        if done % cfg.sample_every == 0:
            writer.add_image("samples", _sample_grid(trainer, fixed), done)

    def show(done: int, losses: dict[str, float]) -> None:
        bar.update(1)
        bar.set_postfix({k: f"{losses[k]:.3f}" for k in ("d", "g") if k in losses})

    def save(done: int, losses: dict[str, float]) -> None:
        official = _official_save_point(trainer, done)
        if done % cfg.save_every == 0 or done == end or official:
            trainer.save(out / "last.pt")  # every rank: it gathers the random streams
        if official and main:
            payload = trainer.checkpoint() if pretrain else {"g_ema": trainer.g_ema.state_dict()}
            save_atomic(payload, out / f"{model_name}-{done:06d}.pt")

    callbacks = [*((write_scalars, write_samples) if writer is not None else ()),
                 *((show,) if bar is not None else ()), *((save,) if out is not None else ())]
    try:
        return train_loop(trainer, end, callbacks, reduce=dist.reduce_mean)
    finally:
        if bar is not None:
            bar.close()
        if writer is not None:
            writer.close()


def _official_save_point(trainer: Trainer, done: int) -> bool:
    """Where the official scripts write ``<model_name>-XXXXXX.pt`` (done = iterations completed)."""
    cfg = trainer.config
    if isinstance(cfg, PretrainConfig):
        finished = done == trainer.total_steps
        if finished:
            return True
        trainer_step, trainer.step = trainer.step, done
        try:
            _, i, _, last = trainer.pretrain_position()
        finally:
            trainer.step = trainer_step
        return last and i > 0 and i % cfg.save_every == 0
    return (done >= cfg.save_begin and done % cfg.save_every == 0) or done == cfg.iter


def _fixed_samples(trainer: Trainer) -> dict:
    """Fixed z, extrinsic codes and noise for the TensorBoard grids (own seed: no effect on training)."""
    g, cfg = trainer.g, trainer.config
    gen = torch.Generator().manual_seed(cfg.seed + 12345)
    n = cfg.n_sample
    z = torch.randn(n, g.style_dim, generator=gen).to(trainer.device)
    if trainer.paired is not None:
        idx = torch.randint(len(trainer.paired), (n,), generator=gen)
        ex = trainer.paired.exstyle[idx].to(trainer.device)
    else:
        ex = g.generator.mapping(torch.randn(n, g.style_dim, generator=gen).to(trainer.device)).detach()
    return {"z": z, "exstyle": ex}


@torch.no_grad()
def _sample_grid(trainer: Trainer, fixed: dict) -> Tensor:
    from torchvision.utils import make_grid

    image, _ = trainer.g_ema([fixed["z"]], fixed["exstyle"], randomize_noise=False)
    nrow = max(int(math.sqrt(image.shape[0])), 1)
    return make_grid(image.clamp(-1, 1).cpu(), nrow=nrow, normalize=True, value_range=(-1, 1))
