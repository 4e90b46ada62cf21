"""Training of the miniature world's networks, from renders only (no download, no pretrained part).

Every stage is a function and a ``python -m redestyle.miniature.train <stage>`` command:

| stage | network (the repo's own class) | data | loss |
|---|---|---|---|
| ``generator`` | StyleGAN2 ``Generator`` + ``Discriminator`` (tiny widths) | photo renders | non-saturating GAN + lazy R1, EMA |
| ``oracle`` | :class:`~redestyle.miniature.oracle.AttributeRegressor` | photo renders + parameters | MSE + CE + BCE |
| ``perceptual`` | VGG-like ``Trunk`` of LPIPS (:mod:`~redestyle.miniature.perceptual`) | photo + portrait renders + parameters | MSE + CE + BCE (head dropped) |
| ``idnet`` | IR-SE ``Backbone`` in ``IDFeatures`` (the ID loss's network, :mod:`~redestyle.miniature.idnet`) | photo renders, several per person | supervised InfoNCE |
| ``restyle_psp``, ``restyle_e4e`` | ReStyle ``BackboneEncoder`` / ``ProgressiveBackboneEncoder`` | G samples (known W+) + photo renders | per-iteration pixel MSE + W+ MSE |
| ``psp``, ``e4e`` | ``GradualStyleEncoder`` / ``Encoder4Editing`` | as above | as above, one pass |
| ``dsg_zplus`` | DualStyleGAN's z+ pSp (``GradualStyleEncoder``) | G samples (known z) + photo renders | pixel MSE + z+ MSE |
| ``g_prime`` | the generator fine-tuned on portraits (g' of the baseline) | portrait renders | GAN, from the generator's G and D |

The encoders share one simple objective (no LPIPS, ID or e4e's progressive delta schedule: there
are no pretrained loss networks offline). Every stage is seeded, writes a resumable state
(``<stage>-state.pt``, atomically, every ``save_every`` steps; :class:`StageRun` through the
training loop that DualStyleGAN's trainer runs on, ``redestyle.train.loop``) and, at the end, the shipped
half-precision file plus a JSON record of its command, seed, wall time and final losses
(``<stage>.json``). Renders are cached as ``.npz`` in the working folder.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoints import save_checkpoint
from ..fileio import atomic_write, save_atomic
from ..imaging import to_tensor
from ..inversion import restyle_step
from ..nets.irse import IDFeatures
from ..train.gan import (
    accumulate,
    d_logistic_loss,
    d_r1_loss,
    g_nonsaturating_loss,
    mixing_noise,
    requires_grad,
)
from ..train.loop import train_loop
from ..zoo import average_image
from . import idnet, perceptual
from . import supervised as sup
from .models import (
    ENCODERS,
    IMAGE_SIZE,
    WEIGHTS_DIR,
    build_discriminator,
    build_encoder,
    build_generator,
    load_generator_file,
)
from .oracle import AttributeRegressor, attribute_loss, errors
from .render import render_batch
from .seeds import training_seed
from .world import cached_arrays, loss_network_rows, render_set

STAGES = ("generator", "oracle", "g_prime", "restyle_psp", "restyle_e4e", "psp", "e4e", "dsg_zplus",
          "generator_sup", "idnet", "perceptual")


# ---------------------------------------------------------------------------------------------
# Data


def _batches(images: np.ndarray, batch: int, gen: torch.Generator, *, flip: bool = True):
    """Endless random batches [B, 3, S, S] in [-1, 1] (horizontal flips when ``flip``)."""
    n = len(images)
    while True:
        idx = torch.randint(n, (batch,), generator=gen).numpy()
        x = to_tensor(images[idx])
        if flip:
            mask = torch.rand(batch, generator=gen) < 0.5
            x[mask] = x[mask].flip(-1)
        yield x


# ---------------------------------------------------------------------------------------------
# Bookkeeping shared by the stages


@dataclass
class Run:
    """What a stage records beside its weights."""

    stage: str
    seed: int
    steps: int
    command: str
    seconds: float = 0.0
    final_losses: dict | None = None
    extra: dict | None = None


def _state_path(out_dir: Path, stage: str) -> Path:
    return out_dir / f"{stage}-state.pt"


def _half(state_dict: dict) -> dict:
    """Floating tensors to float16 (what is shipped); others as they are."""
    return {k: v.detach().half() if v.is_floating_point() else v for k, v in state_dict.items()}


def _write_record(out_dir: Path, run: Run) -> None:
    with atomic_write(out_dir / f"{run.stage}.json", "w") as f:
        json.dump(asdict(run), f, indent=1)
        f.write("\n")


def _ship(ship: Path, stage: str, module: nn.Module, *, seed: int, steps: int, log: list[dict],
          seconds: float, command: str, record: dict, payload: dict | None = None) -> None:
    """Write a stage's shipped files: half-precision weights (+ ``payload``) and its JSON record
    (``record`` as its extra; final losses: every logged loss, averaged over the last windows)."""
    save_checkpoint(ship / f"{stage}.pt", state_dict=_half(module.state_dict()),
                    config={"profile": "mini", "stage": stage}, step=steps, extra=payload)
    keys = sorted({k for row in log for k in row} - {"step", "seconds"})
    final = {k: _mean_recent(log, k) for k in keys}
    _write_record(ship, Run(stage, seed, steps, command, round(seconds, 1), final, record))


def _mean_recent(log: list[dict], key: str, n: int = 10) -> float:
    values = [row[key] for row in log[-n:] if key in row]
    return round(float(np.mean(values)), 6) if values else float("nan")


class StageRun:
    """A miniature stage as a :class:`~redestyle.train.loop.Resumable`: ``step_fn`` over its state.

    step_fn(step) runs one iteration and returns its losses; modules and optims (optimizers, lr
    schedulers, random streams: anything with ``state_dict`` / ``load_state_dict``) are what a
    resume restores, together with the global torch random state, the log rows and the elapsed
    time. Two file formats, both kept loadable as written since the first stages:

    * :meth:`checkpoint` (``<stage>-state.pt``): ``{"step", "modules", "optims", "log",
      "elapsed", "rng"}``, everything: a run resumed from it continues bit for bit where the
      stage's own random streams are among ``optims`` (generator_sup);
    * :meth:`carry` (small, for committing): ``{"step", "modules" (float16), "states", "log",
      "elapsed"}``, the ``carry_keys`` entries of ``optims`` only, no optimizer moments.
    """

    def __init__(self, stage: str, step_fn: Callable[[int], dict], modules: dict[str, nn.Module],
                 optims: dict, *, carry_keys: tuple[str, ...] = ()) -> None:
        self.stage, self.step_fn, self.modules, self.optims = stage, step_fn, modules, optims
        self.carried = {k: optims[k] for k in carry_keys}
        self.step, self.log = 0, []
        self.t0 = time.perf_counter()

    @property
    def elapsed(self) -> float:
        """Seconds of training so far, over every resumed piece of the run."""
        return time.perf_counter() - self.t0

    def _restart_clock(self, elapsed: float) -> None:
        self.t0 = time.perf_counter() - elapsed

    def train_step(self) -> dict:
        losses = self.step_fn(self.step)
        self.step += 1
        return losses

    def checkpoint(self) -> dict:
        return {
            "step": self.step,
            "modules": {k: m.state_dict() for k, m in self.modules.items()},
            "optims": {k: o.state_dict() for k, o in self.optims.items()},
            "log": self.log,
            "elapsed": self.elapsed,
            "rng": torch.get_rng_state(),
        }

    def load(self, payload: dict) -> None:
        for k, m in self.modules.items():
            m.load_state_dict(payload["modules"][k])
        for k, o in self.optims.items():
            o.load_state_dict(payload["optims"][k])
        torch.set_rng_state(payload["rng"])
        self.step, self.log = payload["step"], payload["log"]
        self._restart_clock(payload["elapsed"])

    def carry(self) -> dict:
        return {"step": self.step, "modules": {k: _half(m.state_dict()) for k, m in self.modules.items()},
                "states": {k: o.state_dict() for k, o in self.carried.items()}, "log": self.log,
                "elapsed": self.elapsed}

    def load_carry(self, payload: dict) -> None:
        for k, m in self.modules.items():
            m.load_state_dict({n: v.float() if v.is_floating_point() else v
                               for n, v in payload["modules"][k].items()})
        for k, o in self.carried.items():
            o.load_state_dict(payload["states"][k])
        self.step, self.log = payload["step"], payload["log"]
        self._restart_clock(payload["elapsed"])


def _loop(stage: str, out_dir: Path, steps: int, step_fn: Callable[[int], dict],
          modules: dict[str, nn.Module], optims: dict, *,
          log_every: int, save_every: int, resume: bool, carry: Path | None = None,
          carry_keys: tuple[str, ...] = ()) -> tuple[list[dict], float]:
    """Run ``step_fn(step) -> losses`` from the saved step to ``steps``; log, save; -> (log, seconds).

    A :class:`StageRun` through the one training loop (``train.loop.train_loop``). ``optims``:
    optimizers and lr schedulers (anything with ``state_dict`` / ``load_state_dict``), saved and
    restored with the modules, so a resumed run continues where it stopped; the full state is
    written every ``save_every`` steps before the end (the end ships instead). ``carry``: also
    write the small state of :meth:`StageRun.carry` there (with the ``carry_keys`` entries of
    ``optims``) at every save and at the end; a run without a state in ``out_dir`` (a fresh
    clone) resumes from it.
    """
    run = StageRun(stage, step_fn, modules, optims, carry_keys=carry_keys)
    state = _state_path(out_dir, stage)
    if not resume:
        pass
    elif carry is not None and carry.exists() and not state.exists():
        run.load_carry(torch.load(carry, map_location="cpu", weights_only=False))
        print(f"[{carry.name}] carried over at step {run.step} (optimizer moments start afresh)", flush=True)
    elif state.exists():
        run.load(torch.load(state, map_location="cpu", weights_only=False))
        print(f"[{stage}] resumed from {state} at step {run.step}", flush=True)
    acc: dict[str, list[float]] = {}

    def log_rows(done: int, losses: dict) -> None:
        nonlocal acc
        for k, v in losses.items():
            acc.setdefault(k, []).append(float(v))
        if done % log_every == 0 or done == steps:
            row = {"step": done, "seconds": round(run.elapsed, 1)}
            row.update({k: round(float(np.mean(v)), 5) for k, v in acc.items()})
            run.log.append(row)
            acc = {}
            print(f"[{stage}] " + " ".join(f"{k}={v}" for k, v in row.items()), flush=True)

    def save(done: int, losses: dict) -> None:
        if done % save_every == 0 and done < steps:
            save_atomic(run.checkpoint(), state)
        if carry is not None and (done % save_every == 0 or done == steps):
            save_atomic(run.carry(), carry)

    train_loop(run, steps, [log_rows, save])
    return run.log, run.elapsed


# ---------------------------------------------------------------------------------------------
# Stage 1 and 4: StyleGAN2 on renders (g' = the same loop started from the generator)


def d_step(d: nn.Module, d_opt: torch.optim.Optimizer, real: torch.Tensor, fake: torch.Tensor, *,
           r1_gamma: float | None, r1_every: int) -> dict:
    """One discriminator step (logistic loss on real / fake [B, 3, S, S]) and, when ``r1_gamma`` is
    given, the lazy R1 step after it (weighted by ``r1_every``, StyleGAN2's lazy regularisation).
    ``fake`` must not carry gradients to G. -> the logged numbers (d, real, fake, r1)."""
    real_pred, fake_pred = d(real), d(fake)
    d_loss = d_logistic_loss(real_pred, fake_pred)
    d_opt.zero_grad(set_to_none=True)
    d_loss.backward()
    d_opt.step()
    out = {"d": d_loss.item(), "real": real_pred.mean().item(), "fake": fake_pred.mean().item()}
    if r1_gamma is not None:
        real.requires_grad_(True)
        r1 = d_r1_loss(d(real), real)
        d_opt.zero_grad(set_to_none=True)
        (r1_gamma / 2 * r1 * r1_every).backward()
        d_opt.step()
        out["r1"] = r1.item()
    return out


def train_gan(images: np.ndarray, *, stage: str, out_dir: Path, steps: int, batch: int, seed: int,
              lr: float, r1_gamma: float, mixing: float = 0.9, ema_kimg: float = 10.0,
              init: dict | None = None, log_every: int = 50, save_every: int = 500,
              resume: bool = True) -> tuple[nn.Module, list[dict], float]:
    """Non-saturating StyleGAN2 training with lazy R1 (every 16 D steps) and an EMA generator.

    ``init``: {"g": ..., "d": ...} state dicts to start from (fine-tuning), with the Adam states
    ``"g_optim"`` / ``"d_optim"`` when present (rosinality's ``--ckpt`` and DualStyleGAN's
    fine-tuning carry them over too). Returns (g_ema, log, seconds).
    """

    torch.manual_seed(seed)
    g, d = build_generator(seed), build_discriminator(seed)
    if init is not None:
        g.load_state_dict({k: v.float() for k, v in init["g"].items()})
        d.load_state_dict({k: v.float() for k, v in init["d"].items()})
    g_ema = copy.deepcopy(g).eval()
    requires_grad(g_ema, False)
    r1_every = 16
    d_ratio = r1_every / (r1_every + 1)
    g_opt = torch.optim.Adam(g.parameters(), lr=lr, betas=(0.0, 0.99))
    d_opt = torch.optim.Adam(d.parameters(), lr=lr * d_ratio, betas=(0.0, 0.99 ** d_ratio))
    if init is not None and "g_optim" in init:
        g_opt.load_state_dict(init["g_optim"])
        d_opt.load_state_dict(init["d_optim"])
        for opt, rate in ((g_opt, lr), (d_opt, lr * d_ratio)):
            for group in opt.param_groups:
                group["lr"] = rate
    gen = torch.Generator().manual_seed(seed)
    data = _batches(images, batch, gen)
    dim = g.style_dim

    def step_fn(step: int) -> dict:
        real = next(data)
        requires_grad(g, False)
        requires_grad(d, True)
        fake, _ = g(mixing_noise(batch, dim, mixing, device=real.device, generator=gen))
        out = d_step(d, d_opt, real, fake, r1_gamma=r1_gamma if step % r1_every == 0 else None,
                     r1_every=r1_every)
        requires_grad(g, True)
        requires_grad(d, False)
        fake, _ = g(mixing_noise(batch, dim, mixing, device=real.device, generator=gen))
        g_loss = g_nonsaturating_loss(d(fake))
        g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        g_opt.step()
        out["g"] = g_loss.item()
        ema_nimg = min(ema_kimg * 1000, (step + 1) * batch * 0.05)  # StyleGAN2-ADA ramp-up
        accumulate(g_ema, g, 0.5 ** (batch / max(ema_nimg, 1e-8)))
        return out

    log, seconds = _loop(stage, out_dir, steps, step_fn, {"g": g, "d": d, "g_ema": g_ema},
                         {"g": g_opt, "d": d_opt}, log_every=log_every, save_every=save_every,
                         resume=resume)
    # the discriminator is kept (full precision) so g' can start from the pair
    save_atomic({"g": g.state_dict(), "d": d.state_dict(), "g_ema": g_ema.state_dict(),
                 "g_optim": g_opt.state_dict(), "d_optim": d_opt.state_dict()},
                out_dir / f"{stage}-final-full.pt")
    return g_ema, log, seconds


# ---------------------------------------------------------------------------------------------
# Stage 2: the oracle


def one_cycle_lr(step: int, total: int, lr: float, *, warmup: float = 0.1, div: float = 25.0,
                 final_div: float = 1e4) -> float:
    """One-cycle schedule as a function of the step (torch ``OneCycleLR``'s cosine defaults).

    Rises from lr / div to lr over the first ``warmup`` of the run, then falls to
    lr / div / final_div at the last step. A pure function, so a resumed (or longer) run simply
    continues the curve of its own length.
    """
    def cos(start: float, end: float, t: float) -> float:
        return end + (start - end) / 2 * (math.cos(math.pi * t) + 1)

    peak = float(warmup * total) - 1
    if step <= peak:
        return cos(lr / div, lr, step / peak)
    return cos(lr, lr / div / final_div, (step - peak) / max(total - 1 - peak, 1e-8))


def _fit_attributes(stage: str, build: Callable[[], nn.Module],
                    draw: Callable[[torch.Generator], tuple[torch.Tensor, torch.Tensor]], *,
                    out_dir: Path, steps: int, seed: int, lr: float, log_every: int, save_every: int,
                    resume: bool) -> tuple[nn.Module, list[dict], float]:
    """Teach ``build()`` (-> continuous, hair, glasses outputs) to read the world's parameters:
    each step ``draw(gen)`` gives (images [B, 3, S, S], true vectors [B, 22]) and the loss is
    :func:`~redestyle.miniature.oracle.attribute_loss`; one-cycle AdamW (weight decay 1e-4)."""
    torch.manual_seed(seed)
    model = build().train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(seed)

    def step_fn(step: int) -> dict:
        for group in opt.param_groups:
            group["lr"] = one_cycle_lr(step, steps, lr)
        x, vectors = draw(gen)
        loss, parts = attribute_loss(model(x), vectors)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss": loss.item(), **parts}

    log, seconds = _loop(stage, out_dir, steps, step_fn, {stage: model}, {"opt": opt},
                         log_every=log_every, save_every=save_every, resume=resume)
    return model.eval(), log, seconds


def train_oracle(images: np.ndarray, vectors: np.ndarray, *, out_dir: Path, steps: int, batch: int,
                 seed: int, lr: float = 2e-3, log_every: int = 100, save_every: int = 1000,
                 resume: bool = True) -> tuple[nn.Module, list[dict], float]:
    """Fit :class:`~redestyle.miniature.oracle.AttributeRegressor` to (render, parameters) pairs."""
    targets = torch.from_numpy(vectors)

    def draw(gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(len(images), (batch,), generator=gen)
        return to_tensor(images[idx.numpy()]), targets[idx]

    return _fit_attributes("oracle", AttributeRegressor, draw, out_dir=out_dir, steps=steps, seed=seed,
                           lr=lr, log_every=log_every, save_every=save_every, resume=resume)


def train_idnet(images: np.ndarray, person: np.ndarray, per_person: int, *, out_dir: Path,
                steps: int, people: int, seed: int, lr: float = 2e-3, temperature: float = 0.1,
                log_every: int = 100, save_every: int = 500, resume: bool = True) -> tuple[nn.Module, list[dict], float]:
    """Fit the identity network (:mod:`~redestyle.miniature.idnet`) -> (IDFeatures, log, seconds).

    ``images`` uint8 [N, S, S, 3], ``person`` [N]: ``per_person`` consecutive renders per person,
    people in twin pairs (``idnet.identity_views(..., twins=True)``). A step takes ``people // 2``
    random twin pairs (so every batch holds hard negatives: same colours and hair, another face),
    two different renders of each person, and minimises ``idnet.info_nce``; one-cycle AdamW.
    """
    backbone = idnet.build_backbone(seed).train()
    opt = torch.optim.AdamW(backbone.parameters(), lr=lr, weight_decay=5e-4)
    gen = torch.Generator().manual_seed(seed)
    n_people = len(person) // per_person

    def step_fn(step: int) -> dict:
        for group in opt.param_groups:
            group["lr"] = one_cycle_lr(step, steps, lr)
        pairs = torch.randperm(n_people // 2, generator=gen)[:people // 2]
        who = torch.stack([2 * pairs, 2 * pairs + 1], 1).flatten()
        first = torch.randint(per_person, (people,), generator=gen)
        second = (first + torch.randint(1, per_person, (people,), generator=gen)) % per_person
        rows = torch.cat([who * per_person + first, who * per_person + second]).numpy()
        emb = backbone(idnet.face_crop(to_tensor(images[rows])))
        loss = idnet.info_nce(emb, temperature)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            half = emb.shape[0] // 2
            top1 = ((emb[:half] @ emb[half:].t()).argmax(1) == torch.arange(half)).float().mean()
        return {"loss": loss.item(), "top1": top1.item()}

    log, seconds = _loop("idnet", out_dir, steps, step_fn, {"idnet": backbone}, {"opt": opt},
                         log_every=log_every, save_every=save_every, resume=resume)
    return IDFeatures(backbone.eval()).eval(), log, seconds


def train_perceptual(photos: np.ndarray, portraits: np.ndarray, vectors: np.ndarray, *, out_dir: Path,
                     steps: int, batch: int, seed: int, lr: float = 2e-3, log_every: int = 100,
                     save_every: int = 500, resume: bool = True) -> tuple[nn.Module, list[dict], float]:
    """Fit the perceptual trunk (:mod:`~redestyle.miniature.perceptual`) -> (WorldLPIPS, log, seconds).

    ``photos`` and ``portraits`` uint8 [N, S, S, 3] render the same parameter ``vectors`` [N, 22]
    in the two domains; each step reads the parameters of ``batch // 2`` of each (as the oracle
    is taught, :func:`_fit_attributes`). The head is dropped.
    """
    targets = torch.from_numpy(vectors)

    def draw(gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        a = torch.randint(len(photos), (batch // 2,), generator=gen)
        b = torch.randint(len(portraits), (batch - batch // 2,), generator=gen)
        x = to_tensor(np.concatenate([photos[a.numpy()], portraits[b.numpy()]]))
        return x, torch.cat([targets[a], targets[b]])

    trunk, log, seconds = _fit_attributes("perceptual", perceptual.Trunk, draw, out_dir=out_dir,
                                          steps=steps, seed=seed, lr=lr, log_every=log_every,
                                          save_every=save_every, resume=resume)
    return perceptual.WorldLPIPS(trunk), log, seconds


# ---------------------------------------------------------------------------------------------
# Stage 3: encoders (ReStyle-pSp first; pSp, e4e and DualStyleGAN's z+ pSp with the same loop)

#: method -> (encoder class name, refinement iterations per batch, latent space)
def train_encoder(method: str, g: nn.Module, latent_avg: torch.Tensor, images: np.ndarray, *,
                  out_dir: Path, steps: int, batch: int, seed: int, lr: float = 1e-3,
                  latent_weight: float = 1.0, log_every: int = 50, save_every: int = 500,
                  resume: bool = True) -> tuple[nn.Module, list[dict], float]:
    """Train an encoder to invert ``g`` (frozen): half of each batch are G samples (known code),
    half photo renders. Loss per iteration: pixel MSE + ``latent_weight`` * code MSE (samples only).

    ReStyle methods run ``iters`` refinement iterations per batch as the official coach does
    (iteration 1 from the average image and ``latent_avg``, later ones from the detached previous
    output and code; losses summed, one optimizer step). ``dsg_zplus`` predicts z+ codes (mapped
    per layer by ``g.mapping_plus``), the others W+ residuals added to ``latent_avg``.
    """
    _, iters, space = ENCODERS[method]
    torch.manual_seed(seed)
    encoder = build_encoder(method, seed).train()
    g = g.eval().requires_grad_(False)
    opt = torch.optim.Adam(encoder.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    real = _batches(images, batch - batch // 2, gen)
    avg = average_image(g, latent_avg, pool_size=IMAGE_SIZE).unsqueeze(0)
    start = latent_avg.unsqueeze(0) if space == "w+" else torch.zeros_like(latent_avg).unsqueeze(0)

    def decode(code: torch.Tensor) -> torch.Tensor:
        w = g.mapping_plus(code) if space == "z+" else code
        return g.decode(w, randomize_noise=False)

    def step_fn(step: int) -> dict:
        n_fake = batch // 2
        with torch.no_grad():
            z = torch.randn(n_fake, g.style_dim, generator=gen)
            if space == "z+":
                target = z.unsqueeze(1).expand(-1, g.n_latent, -1)
            else:
                z2 = torch.randn(n_fake, g.style_dim, generator=gen)
                target = g.latent([z, z2] if step % 2 else [z])
            fake = decode(target).clamp(-1, 1)
        x = torch.cat([fake, next(real)])
        code = start.expand(batch, -1, -1)
        feedback = avg.expand(batch, -1, -1, -1)
        opt.zero_grad(set_to_none=True)
        out = {}
        for t in range(iters):
            if iters > 1:  # ReStyle: the inference iteration, with the previous code detached
                code, y = restyle_step(encoder, decode, x, feedback, code.detach())
            else:  # single-pass encoders see the image alone
                code = encoder(x) + code.detach()
                y = decode(code)
            pix = F.mse_loss(y, x)
            lat = F.mse_loss(code[:n_fake], target)
            (pix + latent_weight * lat).backward()
            feedback = y.detach()
            out[f"pix{t + 1}"], out[f"lat{t + 1}"] = pix.item(), lat.item()
        opt.step()
        return out

    log, seconds = _loop(method, out_dir, steps, step_fn, {"encoder": encoder}, {"opt": opt},
                         log_every=log_every, save_every=save_every, resume=resume)
    return encoder.eval(), log, seconds


# ---------------------------------------------------------------------------------------------
# Stage 1b: generator_sup (supervised, then adversarial; supervised.py holds its parts)


def train_generator_sup(*, out_dir: Path, steps: int, sup_steps: int, batch: int, seed: int,
                        face_seed: int, lr: float = 2e-3, gan_lr: float = 2e-3,
                        r1_gamma: float = 0.05, rec_weight: float = 1.0, kl_weight: float = 1e-4,
                        latent_adv_weight: float = 0.02, pool: int = 1024,
                        sup_mapping_lr_mul: float = 100.0, ema_kimg: float = 10.0,
                        channels: dict[int, int] | None = None, log_every: int = 50,
                        save_every: int = 500, eval_every: int = 2000, eval_n: int = 1000,
                        carry_dir: Path | None = None, resume: bool = True):
    """Train this stage (``supervised``'s module docstring) -> (g_ema, ParamsToZ, log, seconds).

    ``batch`` renders per step. ``sup_mapping_lr_mul``: the mapping network's EqualLinear layers
    learn at lr * 0.01 (StyleGAN2's lr_mlp, kept for the adversarial phase); the supervised phase
    multiplies that back so the whole path learns at ``lr``. ``kl_weight`` weighs the summed KL
    (nats) against the mean L1 losses (the trade between sharp parameters and a filled prior);
    ``latent_adv_weight`` the encoder's non-saturating loss against the latent critic, which sees
    the posterior means of 256 of the last ``pool`` faces against 256 prior samples a step.
    ``carry_dir``: a small resumable copy (modules in float16, random streams, log; no optimizer
    moments) is written there at each save, for committing; it is resumed when ``out_dir`` has no
    state (see ``train._loop``).
    """
    g, d, p, c = sup.build(seed, channels)
    g_ema = copy.deepcopy(g).eval()
    requires_grad(g_ema, False)
    rngs = sup.FaceStream(face_seed, seed)
    mapping = list(g.style.parameters())
    rest = [q for n, q in g.named_parameters() if not n.startswith("style.")] + list(p.parameters())
    sup_opt = torch.optim.Adam([{"params": rest}, {"params": mapping, "lr": lr * sup_mapping_lr_mul}],
                               lr=lr, betas=(0.9, 0.99))
    r1_every = 16
    d_ratio = r1_every / (r1_every + 1)
    g_opt = torch.optim.Adam(rest + mapping, lr=gan_lr, betas=(0.0, 0.99))
    d_opt = torch.optim.Adam(d.parameters(), lr=gan_lr * d_ratio, betas=(0.0, 0.99 ** d_ratio))
    c_opt = torch.optim.Adam(c.parameters(), lr=lr, betas=(0.5, 0.99))
    recent = sup.CodePool(pool, sup.PARAM_FEATURES)
    monitor = sup.FrechetMonitor(eval_n) if eval_every else None
    dim = g.style_dim

    def posterior(encoded: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, logvar = p(encoded)
        z = mean + (0.5 * logvar).exp() * torch.randn(mean.shape, generator=rngs.torch)
        return z, sup.kl_to_prior(mean, logvar)

    def reconstruction(n: int) -> tuple[torch.Tensor, dict]:
        faces, vectors = rngs.faces_batch(n)
        x = to_tensor(render_batch(faces, size=g.size, domain="photo"))
        encoded = sup.encode_params(vectors)
        recent.add(encoded)
        z, kl = posterior(encoded)
        y = g.decode(g.mapping(z), randomize_noise=True)
        pix, lap = (y - x).abs().mean(), sup.laplacian_l1(y, x)
        # the latent critic: first its own step on detached codes, then the encoder's loss
        # the critic sees posterior means: on samples the encoder fooled it by inflating the
        # variance (the posterior fell to ~5 nats and the reconstructions blurred)
        zq, _ = p(recent.sample(256, rngs.torch))
        zp = torch.randn(256, dim, generator=rngs.torch)
        c_loss = F.softplus(-c(zp)).mean() + F.softplus(c(zq.detach())).mean()
        c_opt.zero_grad(set_to_none=True)
        c_loss.backward()
        c_opt.step()
        adv = F.softplus(-c(zq)).mean()
        total = pix + lap + kl_weight * kl + latent_adv_weight * adv
        return total, {"pix": pix.item(), "lap": lap.item(), "kl": kl.item(), "zc": c_loss.item(),
                       "zadv": adv.item()}

    def step_fn(step: int) -> dict:
        out: dict = {}
        if step < sup_steps:
            rec, out = reconstruction(batch)
            sup_opt.zero_grad(set_to_none=True)
            rec.backward()
            sup_opt.step()
        else:
            real = to_tensor(render_batch(rngs.faces_batch(batch)[0], size=g.size, domain="photo"))
            requires_grad(g, False)
            requires_grad(p, False)
            requires_grad(d, True)
            with torch.no_grad():
                fake, _ = g([torch.randn(batch, dim, generator=rngs.torch)])
            out.update(d_step(d, d_opt, real, fake, r1_gamma=r1_gamma if step % r1_every == 0 else None,
                              r1_every=r1_every))
            requires_grad(g, True)
            requires_grad(p, True)
            requires_grad(d, False)
            fake, _ = g([torch.randn(batch, dim, generator=rngs.torch)])
            g_loss = g_nonsaturating_loss(d(fake))
            rec, parts = reconstruction(max(batch // 2, 1))
            g_opt.zero_grad(set_to_none=True)
            (g_loss + rec_weight * rec).backward()
            g_opt.step()
            out.update(g=g_loss.item(), **parts)
        ema_nimg = min(ema_kimg * 1000, (step + 1) * batch * 0.05)  # StyleGAN2-ADA ramp-up
        accumulate(g_ema, g, 0.5 ** (batch / max(ema_nimg, 1e-8)))
        done = step + 1
        if monitor is not None and (done % eval_every == 0 or done == steps):
            out["fd"] = monitor(g_ema)
        return out

    carry = None if carry_dir is None else Path(carry_dir) / "generator_sup-carry.pt"
    log, seconds = _loop("generator_sup", out_dir, steps, step_fn,
                         {"g": g, "d": d, "p": p, "c": c, "g_ema": g_ema},
                         {"sup": sup_opt, "g": g_opt, "d": d_opt, "c": c_opt, "rngs": rngs, "pool": recent},
                         log_every=log_every, save_every=save_every, resume=resume,
                         carry=carry, carry_keys=("rngs", "pool"))
    return g_ema, p, log, seconds


# ---------------------------------------------------------------------------------------------
# CLI


def _command(argv: list[str]) -> str:
    return "python -m redestyle.miniature.train " + " ".join(argv)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m redestyle.miniature.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=STAGES)
    parser.add_argument("--out", default=".cache/miniature/train", help="working folder (states, logs)")
    parser.add_argument("--ship", default=str(WEIGHTS_DIR),
                        help="where the final files go (default: the mini profile's weights folder)")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-images", type=int, default=30000)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--r1", type=float, default=None,
                        help="R1 weight gamma (GAN stages; default 0.05 generator, 10 g_prime)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--save-every", type=int, default=500, help="steps between resumable states")
    parser.add_argument("--fresh", action="store_true", help="ignore a saved state (no resume)")
    parser.add_argument("--data-seed", type=int, default=None,
                        help="seed of the photo render set (portrait: + 1); default: the training "
                             "stream of --seed (seeds.TRAINING); 0 reproduces the files shipped "
                             "before the seed ranges")
    id_args = parser.add_argument_group("idnet")
    id_args.add_argument("--people", type=int, default=4000, help="training identities")
    id_args.add_argument("--per-person", type=int, default=4, help="renders of each training identity")
    sup_args = parser.add_argument_group("generator_sup")
    sup_args.add_argument("--sup-steps", type=int, default=40000,
                     help="supervised steps before the adversarial phase")
    sup_args.add_argument("--eval-every", type=int, default=2000,
                     help="steps between Fréchet distances in the log (0: none)")
    sup_args.add_argument("--carry", default=None,
                     help="folder of a small committed resumable state (float16, no optimizer moments)")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    out_dir, ship = Path(args.out), Path(args.ship)
    out_dir.mkdir(parents=True, exist_ok=True)
    cache = out_dir / "renders"
    photo_seed = args.data_seed if args.data_seed is not None else training_seed("photo", args.seed)
    portrait_seed = args.data_seed + 1 if args.data_seed is not None else training_seed("portrait", args.seed)

    if args.stage == "generator_sup":
        _main_generator_sup(args, argv, out_dir, ship)
    elif args.stage in ("generator", "g_prime"):
        domain = "photo" if args.stage == "generator" else "portrait"
        images, _ = render_set(args.n_images, domain=domain,
                               seed=photo_seed if domain == "photo" else portrait_seed, cache_dir=cache)
        init = None
        if args.stage == "g_prime":
            init = torch.load(out_dir / "generator-final-full.pt", map_location="cpu", weights_only=True)
        # g' fine-tunes across a domain gap: at the generator's lr 0.0025 / R1 0.05 (and at 0.001 /
        # 1.0) its D separated the domains within 30 steps and G's faces washed out; 0.0002 / 10
        # keeps them. It starts from the generator's weights and Adam states (final-full file).
        first = args.stage == "generator"
        steps = args.steps or (6000 if first else 600)
        lr = args.lr or (0.0025 if first else 0.0002)
        gamma = args.r1 if args.r1 is not None else (0.05 if first else 10.0)
        g_ema, log, seconds = train_gan(
            images, stage=args.stage, out_dir=out_dir, steps=steps, batch=args.batch, seed=args.seed,
            lr=lr, r1_gamma=gamma, init=init, save_every=args.save_every, resume=not args.fresh)
        with torch.no_grad():
            mean = g_ema.mean_latent(10000, generator=torch.Generator().manual_seed(args.seed))
        _ship(ship, args.stage, g_ema, seed=args.seed, steps=steps, log=log, seconds=seconds,
              command=_command(argv), payload={"latent_avg": mean.half()},
              record={"n_images": args.n_images, "batch": args.batch, "domain": domain,
                      "lr": lr, "r1_gamma": gamma})
    elif args.stage == "oracle":
        images, vectors = render_set(args.n_images, domain="photo", seed=photo_seed, cache_dir=cache)
        steps = args.steps or 4000
        model, log, seconds = train_oracle(images, vectors, out_dir=out_dir, steps=steps,
                                           batch=args.batch, seed=args.seed, lr=args.lr or 2e-3,
                                           save_every=args.save_every, resume=not args.fresh)
        held_images, held_vectors = render_set(2000, domain="photo", seed=args.seed + 100, cache_dir=cache)
        held = errors(model.predict(to_tensor(held_images)), held_vectors)
        _ship(ship, "oracle", model, seed=args.seed, steps=steps, log=log, seconds=seconds,
              command=_command(argv),
              record={"n_images": args.n_images, "batch": args.batch,
                      "held_out_errors (2000 renders, seed + 100)": held})
    elif args.stage == "perceptual":
        photos, vectors = render_set(args.n_images, domain="photo", seed=photo_seed, cache_dir=cache)
        portraits, _ = render_set(args.n_images, domain="portrait", seed=photo_seed, cache_dir=cache)
        steps = args.steps or 1500
        lp, log, seconds = train_perceptual(photos, portraits, vectors, out_dir=out_dir, steps=steps,
                                            batch=args.batch, seed=args.seed, lr=args.lr or 2e-3,
                                            save_every=args.save_every, resume=not args.fresh)
        held = _held_out("perceptual", loss_network_rows(None, lp))
        _ship(ship, "perceptual", lp.trunk, seed=args.seed, steps=steps, log=log, seconds=seconds,
              command=_command(argv),
              record={"n_images": args.n_images, "batch": args.batch, "domains": ["photo", "portrait"],
                      "held_out (world.loss_network_rows)": held})
    elif args.stage == "idnet":
        _main_idnet(args, argv, out_dir, ship)
    else:  # encoders
        images, _ = render_set(args.n_images, domain="photo", seed=photo_seed, cache_dir=cache)
        g, latent_avg = load_generator_file(ship / "generator.pt")
        steps = args.steps or 3000
        encoder, log, seconds = train_encoder(args.stage, g, latent_avg, images, out_dir=out_dir,
                                              steps=steps, batch=args.batch, seed=args.seed,
                                              lr=args.lr or 1e-3, save_every=args.save_every,
                                              resume=not args.fresh)
        _ship(ship, args.stage, encoder, seed=args.seed, steps=steps, log=log, seconds=seconds,
              command=_command(argv), payload={"latent_avg": latent_avg.half()},
              record={"n_images": args.n_images, "batch": args.batch,
                      "iterations_per_batch": ENCODERS[args.stage][1],
                      "space": ENCODERS[args.stage][2]})
    return 0


def _main_generator_sup(args, argv: list[str], out_dir: Path, ship: Path) -> None:
    steps = args.steps or 200000
    lr = args.lr or 2e-3
    gamma = args.r1 if args.r1 is not None else 0.05
    g_ema, p, log, seconds = train_generator_sup(
        out_dir=out_dir, steps=steps, sup_steps=args.sup_steps, batch=args.batch, seed=args.seed,
        face_seed=training_seed("generator_sup", args.seed), lr=lr, gan_lr=lr, r1_gamma=gamma,
        save_every=args.save_every, eval_every=args.eval_every,
        carry_dir=Path(args.carry) if args.carry else None, resume=not args.fresh)
    with torch.no_grad():
        mean = g_ema.mean_latent(10000, generator=torch.Generator().manual_seed(args.seed))
    _ship(ship, "generator_sup", g_ema, seed=args.seed, steps=steps, log=log, seconds=seconds,
          command=_command(argv), payload={"latent_avg": mean.half(), "params_to_z": _half(p.state_dict()),
                                           "generator_kwargs": sup.generator_kwargs()},
          record={"batch": args.batch, "sup_steps": args.sup_steps, "lr": lr, "r1_gamma": gamma,
                  "face_stream_seed": training_seed("generator_sup", args.seed),
                  "generator_kwargs": {k: v if not isinstance(v, dict) else {str(a): b for a, b in v.items()}
                                       for k, v in sup.generator_kwargs().items()}})


def _held_out(stage: str, rows: list[dict]) -> dict:
    """measure -> value of ``world.loss_network_rows``, printed and rounded for a stage's record."""
    held = {r["measure"]: round(r["value"], 5) for r in rows}
    print(f"[{stage}] held out: {held}", flush=True)
    return held


def _main_idnet(args, argv: list[str], out_dir: Path, ship: Path) -> None:
    stream = training_seed("idnet", args.seed)
    path = out_dir / "renders" / f"idnet-seed{stream}-{args.people}x{args.per_person}.npz"
    arrays = cached_arrays(path, lambda: dict(zip(("images", "person"), idnet.identity_views(
        args.people, args.per_person, seed=stream, twins=True))))
    images, person = arrays["images"], arrays["person"]
    steps = args.steps or 1000
    batch_people = args.batch  # people per step (two renders each)
    features, log, seconds = train_idnet(images, person, args.per_person, out_dir=out_dir, steps=steps,
                                         people=batch_people, seed=args.seed, lr=args.lr or 2e-3,
                                         save_every=args.save_every, resume=not args.fresh)
    held = _held_out("idnet", loss_network_rows(features, None))
    _ship(ship, "idnet", features.backbone, seed=args.seed, steps=steps, log=log, seconds=seconds,
          command=_command(argv),
          record={"people": args.people, "per_person": args.per_person, "batch_people": batch_people,
                  "face_stream_seed": stream, "held_out (world.loss_network_rows)": held})


if __name__ == "__main__":
    raise SystemExit(main())
