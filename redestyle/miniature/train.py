"""Training of the miniature world's networks, from renders only (no download, no pretrained part).

Every stage is a function and a ``python -m redestyle.miniature.train <stage>`` command:

| stage | network (the repo's own class) | data | loss |
|---|---|---|---|
| ``generator`` | StyleGAN2 ``Generator`` + ``Discriminator`` (tiny widths) | photo renders | non-saturating GAN + lazy R1, EMA |
| ``oracle`` | :class:`~redestyle.miniature.oracle.AttributeRegressor` | photo renders + parameters | MSE + CE + BCE |
| ``restyle_psp``, ``restyle_e4e`` | ReStyle ``BackboneEncoder`` / ``ProgressiveBackboneEncoder`` | G samples (known W+) + photo renders | per-iteration pixel MSE + W+ MSE |
| ``psp``, ``e4e`` | ``GradualStyleEncoder`` / ``Encoder4Editing`` | as above | as above, one pass |
| ``dsg_zplus`` | DualStyleGAN's z+ pSp (``GradualStyleEncoder``) | G samples (known z) + photo renders | pixel MSE + z+ MSE |
| ``g_prime`` | the generator fine-tuned on portraits (g' of the baseline) | portrait renders | GAN, from the generator's G and D |

The encoders share one simple objective (no LPIPS, ID or e4e's progressive delta schedule: there
are no pretrained loss networks offline). Every stage is seeded, writes a resumable state
(``<stage>-state.pt``, atomically, every ``save_every`` steps) and, at the end, the shipped
half-precision file plus a JSON record of its command, seed, wall time and final losses
(``<stage>.json``). Renders are cached as ``.npz`` in the working folder.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .render import render_batch, sample_params, to_tensor

STAGES = ("generator", "oracle", "g_prime", "restyle_psp", "restyle_e4e", "psp", "e4e", "dsg_zplus",
          "generator_sup")
#: Where the ``mini`` profile reads its weights: the shipped ones (package data), or a folder of
#: your own retrained files named by $REDESTYLE_MINI_WEIGHTS.
SHIPPED_WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
WEIGHTS_DIR = Path(os.environ.get("REDESTYLE_MINI_WEIGHTS") or SHIPPED_WEIGHTS_DIR)
IMAGE_SIZE = 64


# ---------------------------------------------------------------------------------------------
# Data


def draw_faces(n: int, seed: int) -> list:
    """The first ``n`` faces (FaceParams) of the stream ``seed``: what :func:`render_set` renders
    (and what :mod:`~redestyle.miniature.seeds` keeps apart between training and evaluation)."""
    rng = np.random.default_rng(seed)
    return [sample_params(rng) for _ in range(n)]


def render_set(n: int, *, domain: str, seed: int, size: int = IMAGE_SIZE,
               cache_dir: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random faces -> (uint8 images [n, size, size, 3], float32 parameters [n, 22]).

    Parameters are drawn by ``sample_params`` from ``np.random.default_rng(seed)``; the same seed
    gives the same faces in both domains. With ``cache_dir`` the set is kept as an ``.npz``.
    """
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"{domain}-{size}-seed{seed}-n{n}.npz"
        if path.exists():
            with np.load(path) as f:
                return f["images"], f["params"]
    params = draw_faces(n, seed)
    images = render_batch(params, size=size, domain=domain)
    vectors = np.stack([p.to_vector() for p in params]).astype(np.float32)
    if path is not None:
        from ..checkpoints import atomic_write

        with atomic_write(path) as f:
            np.savez(f, images=images, params=vectors)
    return images, vectors


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


def _save_state(out_dir: Path, stage: str, step: int, modules: dict[str, nn.Module],
                optims: dict, log: list[dict], elapsed: float) -> None:
    from ..checkpoints import save_atomic

    save_atomic({
        "step": step,
        "modules": {k: m.state_dict() for k, m in modules.items()},
        "optims": {k: o.state_dict() for k, o in optims.items()},
        "log": log,
        "elapsed": elapsed,
        "rng": torch.get_rng_state(),
    }, _state_path(out_dir, stage))


def _load_state(out_dir: Path, stage: str, modules: dict[str, nn.Module],
                optims: dict) -> tuple[int, list[dict], float]:
    path = _state_path(out_dir, stage)
    if not path.exists():
        return 0, [], 0.0
    state = torch.load(path, map_location="cpu", weights_only=False)
    for k, m in modules.items():
        m.load_state_dict(state["modules"][k])
    for k, o in optims.items():
        o.load_state_dict(state["optims"][k])
    torch.set_rng_state(state["rng"])
    print(f"[{stage}] resumed from {path} at step {state['step']}", flush=True)
    return state["step"], state["log"], state["elapsed"]


def _half(state_dict: dict) -> dict:
    """Floating tensors to float16 (what is shipped); others as they are."""
    return {k: v.detach().half() if v.is_floating_point() else v for k, v in state_dict.items()}


def _write_record(out_dir: Path, run: Run) -> None:
    from ..checkpoints import atomic_write

    with atomic_write(out_dir / f"{run.stage}.json", "w") as f:
        json.dump(asdict(run), f, indent=1)
        f.write("\n")


def _ship(ship: Path, stage: str, module: nn.Module, *, seed: int, steps: int, log: list[dict],
          seconds: float, command: str, record: dict, payload: dict | None = None) -> None:
    """Write a stage's shipped files: half-precision weights (+ ``payload``) and its JSON record
    (``record`` as its extra; final losses: every logged loss, averaged over the last windows)."""
    from ..checkpoints import save_checkpoint

    save_checkpoint(ship / f"{stage}.pt", state_dict=_half(module.state_dict()),
                    config={"profile": "mini", "stage": stage}, step=steps, extra=payload)
    keys = sorted({k for row in log for k in row} - {"step", "seconds"})
    final = {k: _mean_recent(log, k) for k in keys}
    _write_record(ship, Run(stage, seed, steps, command, round(seconds, 1), final, record))


def _mean_recent(log: list[dict], key: str, n: int = 10) -> float:
    values = [row[key] for row in log[-n:] if key in row]
    return round(float(np.mean(values)), 6) if values else float("nan")


def _save_carry(path: Path, step: int, modules: dict[str, nn.Module], states: dict,
                log: list[dict], elapsed: float) -> None:
    """A small resumable state for committing: modules in float16, ``states`` (e.g. random
    streams) as they are, the log; no optimizer moments."""
    from ..checkpoints import save_atomic

    save_atomic({"step": step, "modules": {k: _half(m.state_dict()) for k, m in modules.items()},
                 "states": {k: o.state_dict() for k, o in states.items()}, "log": log,
                 "elapsed": elapsed}, path)


def _load_carry(path: Path, modules: dict[str, nn.Module], states: dict) -> tuple[int, list[dict], float]:
    state = torch.load(path, map_location="cpu", weights_only=False)
    for k, m in modules.items():
        m.load_state_dict({n: v.float() if v.is_floating_point() else v for n, v in state["modules"][k].items()})
    for k, o in states.items():
        o.load_state_dict(state["states"][k])
    print(f"[{path.name}] carried over at step {state['step']} (optimizer moments start afresh)", flush=True)
    return state["step"], state["log"], state["elapsed"]


def _loop(stage: str, out_dir: Path, steps: int, step_fn: Callable[[int], dict],
          modules: dict[str, nn.Module], optims: dict, *,
          log_every: int, save_every: int, resume: bool, carry: Path | None = None,
          carry_keys: tuple[str, ...] = ()) -> tuple[list[dict], float]:
    """Run ``step_fn(step) -> losses`` from the saved step to ``steps``; log, save; -> (log, seconds).

    ``optims``: optimizers and lr schedulers (anything with ``state_dict`` / ``load_state_dict``),
    saved and restored with the modules, so a resumed run continues where it stopped.
    ``carry``: also write the small state of :func:`_save_carry` there (with the ``carry_keys``
    entries of ``optims``) at every save and at the end; a run without a state in ``out_dir``
    (a fresh clone) resumes from it.
    """
    carried = {k: optims[k] for k in carry_keys}
    if not resume:
        start, log, elapsed = 0, [], 0.0
    elif carry is not None and carry.exists() and not _state_path(out_dir, stage).exists():
        start, log, elapsed = _load_carry(carry, modules, carried)
    else:
        start, log, elapsed = _load_state(out_dir, stage, modules, optims)
    t0 = time.perf_counter() - elapsed
    acc: dict[str, list[float]] = {}
    for step in range(start, steps):
        losses = step_fn(step)
        for k, v in losses.items():
            acc.setdefault(k, []).append(float(v))
        done = step + 1
        if done % log_every == 0 or done == steps:
            row = {"step": done, "seconds": round(time.perf_counter() - t0, 1)}
            row.update({k: round(float(np.mean(v)), 5) for k, v in acc.items()})
            log.append(row)
            acc = {}
            print(f"[{stage}] " + " ".join(f"{k}={v}" for k, v in row.items()), flush=True)
        if done % save_every == 0 and done < steps:
            _save_state(out_dir, stage, done, modules, optims, log, time.perf_counter() - t0)
        if carry is not None and (done % save_every == 0 or done == steps):
            _save_carry(carry, done, modules, carried, log, time.perf_counter() - t0)
    return log, time.perf_counter() - t0


# ---------------------------------------------------------------------------------------------
# Stage 1 and 4: StyleGAN2 on renders (g' = the same loop started from the generator)


def build_generator(seed: int = 0) -> nn.Module:
    """The ``mini`` profile's generator architecture (the ``tiny`` widths), seeded."""
    from ..config import get_profile
    from ..nets.stylegan2 import Generator

    torch.manual_seed(seed)
    return Generator(**get_profile("mini").generator.kwargs())


def build_discriminator(seed: int = 0) -> nn.Module:
    from ..config import get_profile
    from ..nets.stylegan2 import Discriminator

    gc = get_profile("mini").generator
    torch.manual_seed(seed + 1)
    return Discriminator(gc.size, gc.channel_multiplier, channels=gc.channels)


def d_step(d: nn.Module, d_opt: torch.optim.Optimizer, real: torch.Tensor, fake: torch.Tensor, *,
           r1_gamma: float | None, r1_every: int) -> dict:
    """One discriminator step (logistic loss on real / fake [B, 3, S, S]) and, when ``r1_gamma`` is
    given, the lazy R1 step after it (weighted by ``r1_every``, StyleGAN2's lazy regularisation).
    ``fake`` must not carry gradients to G. -> the logged numbers (d, real, fake, r1)."""
    from ..train.gan import d_logistic_loss, d_r1_loss

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
    from ..train.gan import accumulate, g_nonsaturating_loss, mixing_noise, requires_grad

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
    from ..checkpoints import save_atomic

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


def train_oracle(images: np.ndarray, vectors: np.ndarray, *, out_dir: Path, steps: int, batch: int,
                 seed: int, lr: float = 2e-3, log_every: int = 100, save_every: int = 1000,
                 resume: bool = True) -> tuple[nn.Module, list[dict], float]:
    """Fit :class:`~redestyle.miniature.oracle.AttributeRegressor` to (render, parameters) pairs."""
    from .oracle import AttributeRegressor

    torch.manual_seed(seed)
    model = AttributeRegressor().train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(seed)
    targets = torch.from_numpy(vectors)

    def step_fn(step: int) -> dict:
        for group in opt.param_groups:
            group["lr"] = one_cycle_lr(step, steps, lr)
        idx = torch.randint(len(images), (batch,), generator=gen)
        x = to_tensor(images[idx.numpy()])
        loss, parts = model.loss(x, targets[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss": loss.item(), **parts}

    log, seconds = _loop("oracle", out_dir, steps, step_fn, {"oracle": model}, {"opt": opt},
                         log_every=log_every, save_every=save_every, resume=resume)
    return model.eval(), log, seconds


# ---------------------------------------------------------------------------------------------
# Stage 3: encoders (ReStyle-pSp first; pSp, e4e and DualStyleGAN's z+ pSp with the same loop)

#: method -> (encoder class name, refinement iterations per batch, latent space)
ENCODERS = {
    "restyle_psp": ("BackboneEncoder", 3, "w+"),
    "restyle_e4e": ("ProgressiveBackboneEncoder", 3, "w+"),
    "psp": ("GradualStyleEncoder", 1, "w+"),
    "e4e": ("Encoder4Editing", 1, "w+"),
    "dsg_zplus": ("GradualStyleEncoder", 1, "z+"),
}


def build_encoder(method: str, seed: int = 0) -> nn.Module:
    """The ``mini`` profile's encoder of ``method`` (the ``tiny`` widths), seeded."""
    from ..config import get_profile
    from ..nets import encoders as enc

    name, iters, _ = ENCODERS[method]
    p = get_profile("mini")
    torch.manual_seed(seed)
    return getattr(enc, name)(p.encoder.num_layers, p.encoder.mode, n_styles=p.generator.n_latent,
                              style_dim=p.generator.style_dim, input_size=p.encoder.input_size,
                              widths=p.encoder.widths, **({"input_nc": 3} if iters == 1 else {}))


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
    from ..inversion import average_image

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
            inp = torch.cat([x, feedback], 1) if iters > 1 else x
            code = encoder(inp) + code.detach()
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


def weights_file(name: str) -> Path:
    """``WEIGHTS_DIR/<name>.pt``; a missing one raises FileNotFoundError naming what is there and
    the command that trains it."""
    path = WEIGHTS_DIR / f"{name}.pt"
    if not path.exists():
        trained = sorted(p.stem for p in WEIGHTS_DIR.glob("*.pt"))
        raise FileNotFoundError(
            f"{path}: the mini profile has no trained {name!r} (shipped: {', '.join(trained) or 'none'}); "
            f"train it with `python -m redestyle.miniature.train {name}`")
    return path


def load_into(module: nn.Module, path: str | Path, *, what: str) -> dict:
    """Strictly load a shipped (half-precision) file's ``state_dict`` into ``module`` as float32.

    Returns the whole payload (``latent_avg``, ``config``, ...). Errors name the file.
    """
    from ..checkpoints import load_container, load_strict

    payload = load_container(path)
    state = {k: v.float() if v.is_floating_point() else v for k, v in payload["state_dict"].items()}
    load_strict(module, state, path=path, what=what)
    return payload


def load_generator_file(path: str | Path) -> tuple[nn.Module, torch.Tensor]:
    """A shipped generator file -> (float32 Generator in eval mode, latent_avg [n_latent, D])."""
    g = build_generator()
    payload = load_into(g, path, what="mini generator")
    avg = payload["latent_avg"].float().reshape(1, -1).expand(g.n_latent, -1).clone()
    return g.eval(), avg


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
    sup = parser.add_argument_group("generator_sup")
    sup.add_argument("--sup-steps", type=int, default=40000,
                     help="supervised steps before the adversarial phase")
    sup.add_argument("--eval-every", type=int, default=2000,
                     help="steps between Fréchet distances in the log (0: none)")
    sup.add_argument("--carry", default=None,
                     help="folder of a small committed resumable state (float16, no optimizer moments)")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    out_dir, ship = Path(args.out), Path(args.ship)
    out_dir.mkdir(parents=True, exist_ok=True)
    cache = out_dir / "renders"
    from .seeds import training_seed

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
        from .oracle import errors

        held_images, held_vectors = render_set(2000, domain="photo", seed=args.seed + 100, cache_dir=cache)
        held = errors(model.predict(to_tensor(held_images)), held_vectors)
        _ship(ship, "oracle", model, seed=args.seed, steps=steps, log=log, seconds=seconds,
              command=_command(argv),
              record={"n_images": args.n_images, "batch": args.batch,
                      "held_out_errors (2000 renders, seed + 100)": held})
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
    from .seeds import training_seed
    from .supervised import generator_kwargs, train_generator_sup

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
                                           "generator_kwargs": generator_kwargs()},
          record={"batch": args.batch, "sup_steps": args.sup_steps, "lr": lr, "r1_gamma": gamma,
                  "face_stream_seed": training_seed("generator_sup", args.seed),
                  "generator_kwargs": {k: v if not isinstance(v, dict) else {str(a): b for a, b in v.items()}
                                       for k, v in generator_kwargs().items()}})


if __name__ == "__main__":
    raise SystemExit(main())
