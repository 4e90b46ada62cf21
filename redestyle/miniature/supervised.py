"""The ``generator_sup`` stage: a StyleGAN2 generator taught by the world's known parameters.

A GAN trained on renders alone (the ``generator`` stage) reaches a Fréchet distance of 47.5 on the
oracle's features after 6000 CPU steps; the world's parameters make supervision available, so this
stage trains the same ``Generator`` class (mapping network, W, W+ kept; wider synthesis channels)
in two phases, in one resumable loop:

1. steps < ``sup_steps``: a learned parameters-to-W path :class:`ParamsToW` (22 parameters -> one
   w) and the synthesis network reproduce fresh renders of fresh parameters (L1 on pixels + L1 on
   the levels of a Laplacian pyramid, which weighs the small sharp parts: eyes, mouths, glasses).
   The mapping network z -> w is fitted meanwhile to the distribution of the path's w (sliced
   Wasserstein distance), so that z samples land where the parameters' w lie.
2. steps >= ``sup_steps``: adversarial fine-tuning (non-saturating loss, lazy R1, as the
   ``generator`` stage) of mapping + synthesis, the reconstruction and distribution terms kept.

No loss uses the oracle (it stays the judge); the monitor logs the notebook-00 Fréchet distance
(1000 samples vs the photo renders of seed 1000) every ``eval_every`` steps. Faces are drawn from
the training stream :func:`~redestyle.miniature.seeds.training_seed` ``("generator_sup", seed)``,
never an evaluation seed.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .render import HAIR_STYLES, VECTOR_NAMES, render_batch, sample_params, to_tensor

#: Synthesis widths of this stage's generator (the ``mini`` profile's are 64/64/32/32/16).
CHANNELS = {4: 128, 8: 128, 16: 64, 32: 64, 64: 32}
PARAM_FEATURES = 20 + len(HAIR_STYLES) + 1  # continuous in [-1, 1], hair one-hot, glasses +-1


def encode_params(vectors: np.ndarray) -> torch.Tensor:
    """Parameter vectors [N, 22] (VECTOR_NAMES order) -> network inputs [N, 26] float32: the 20
    continuous parameters scaled from their valid ranges to [-1, 1], hair style one-hot, glasses
    as -1 / +1."""
    from .oracle import normalise

    v = np.asarray(vectors, np.float32)
    hair = np.eye(len(HAIR_STYLES), dtype=np.float32)[v[:, VECTOR_NAMES.index("hair_style")].astype(int)]
    glasses = v[:, VECTOR_NAMES.index("glasses"), None] * 2 - 1
    return torch.from_numpy(np.concatenate([normalise(v) * 2 - 1, hair, glasses], 1))


class ParamsToW(nn.Module):
    """The learned parameters-to-W path: encoded parameters [B, 26] -> w [B, style_dim]."""

    def __init__(self, style_dim: int = 64, hidden: int = 256, depth: int = 4) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = PARAM_FEATURES
        for _ in range(depth - 1):
            layers += [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
            width = hidden
        layers.append(nn.Linear(width, style_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, encoded: torch.Tensor) -> torch.Tensor:
        return self.net(encoded)


def laplacian_l1(y: torch.Tensor, x: torch.Tensor, levels: int = 4) -> torch.Tensor:
    """L1 between images y, x [B, C, S, S] on each band of a Laplacian pyramid (summed over the
    ``levels`` band-pass levels and the low-pass rest, each level's mean): detail errors (thin
    glasses rims, eye and mouth lines) weigh as much as large blobs."""
    total = y.new_zeros(())
    for _ in range(levels):
        ys, xs = F.avg_pool2d(y, 2), F.avg_pool2d(x, 2)
        up_y = F.interpolate(ys, scale_factor=2, mode="bilinear", align_corners=False)
        up_x = F.interpolate(xs, scale_factor=2, mode="bilinear", align_corners=False)
        total = total + (y - up_y - (x - up_x)).abs().mean()
        y, x = ys, xs
    return total + (y - x).abs().mean()


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, n_proj: int = 128,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """Sliced Wasserstein-2 (squared) between point sets a, b [N, D] (same N): mean over
    ``n_proj`` random unit directions of the squared distance between sorted projections."""
    proj = torch.randn(a.shape[1], n_proj, generator=generator)
    proj = proj / proj.norm(dim=0, keepdim=True)
    pa, _ = torch.sort(a @ proj, 0)
    pb, _ = torch.sort(b @ proj, 0)
    return (pa - pb).pow(2).mean()


class _Rngs:
    """The stage's random streams (numpy faces, torch noise) as one saveable state."""

    def __init__(self, face_seed: int, seed: int) -> None:
        self.faces = np.random.default_rng(face_seed)
        self.torch = torch.Generator().manual_seed(seed)

    def state_dict(self) -> dict:
        return {"faces": self.faces.bit_generator.state, "torch": self.torch.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.faces.bit_generator.state = state["faces"]
        self.torch.set_state(state["torch"])

    def faces_batch(self, n: int) -> tuple[list, np.ndarray]:
        """n fresh faces of the stream -> (FaceParams list, float32 vectors [n, 22])."""
        faces = [sample_params(self.faces) for _ in range(n)]
        return faces, np.stack([f.to_vector() for f in faces]).astype(np.float32)


def build(seed: int = 0, channels: dict[int, int] | None = None):
    """(Generator, Discriminator, ParamsToW) of this stage, seeded; the generator is the repo's
    StyleGAN2 ``Generator`` at 64 px with the mini profile's style_dim and n_mlp."""
    from ..config import get_profile
    from ..nets.stylegan2 import Discriminator, Generator

    gc = get_profile("mini").generator
    ch = dict(channels or CHANNELS)
    torch.manual_seed(seed)
    g = Generator(gc.size, gc.style_dim, gc.n_mlp, gc.channel_multiplier, channels=ch)
    torch.manual_seed(seed + 1)
    d = Discriminator(gc.size, gc.channel_multiplier, channels=ch)
    torch.manual_seed(seed + 2)
    p = ParamsToW(gc.style_dim)
    return g, d, p


def generator_kwargs(channels: dict[int, int] | None = None) -> dict:
    """The ``Generator`` keyword arguments of this stage (stored with its files)."""
    from ..config import get_profile

    kw = dict(get_profile("mini").generator.kwargs())
    kw["channels"] = dict(channels or CHANNELS)
    return kw


class FrechetMonitor:
    """Notebook 00's generator row of ``world.frechet_rows`` (n samples, sample seed = ``seed``,
    against the photo renders of ``seed``), with the renders' features computed once."""

    def __init__(self, n: int = 1000, seed: int = 1000) -> None:
        from . import world

        self.n, self.seed = n, seed
        self.oracle = world.load_oracle()
        real, _ = world.photo_renders(n, seed=seed)
        self.real = self.oracle.embed(real)

    def __call__(self, g: nn.Module) -> float:
        from . import oracle as orc
        from . import world

        samples = world.generator_samples(g, self.n, seed=self.seed)
        return orc.frechet_distance(self.real, self.oracle.embed(samples))


def train_generator_sup(*, out_dir: Path, steps: int, sup_steps: int, batch: int, seed: int,
                        face_seed: int, lr: float = 2e-3, gan_lr: float = 2e-3,
                        r1_gamma: float = 0.05, rec_weight: float = 1.0, swd_weight: float = 1.0,
                        mapping_lr_mul: float = 10.0, ema_kimg: float = 10.0,
                        channels: dict[int, int] | None = None, log_every: int = 50,
                        save_every: int = 500, eval_every: int = 2000, eval_n: int = 1000,
                        carry_dir: Path | None = None, resume: bool = True):
    """Train this stage (module docstring) -> (g_ema, ParamsToW, log, seconds).

    ``batch`` renders per step; ``mapping_lr_mul`` raises the mapping network's learning rate
    (its EqualLinear layers learn at lr * 0.01 otherwise, too slowly to follow the path's w).
    ``carry_dir``: a small resumable copy (modules in float16, random streams, log; no optimizer
    moments) is written there at each save, for committing; it is resumed when ``out_dir`` has no
    state (see ``train._loop``).
    """
    from ..train.gan import (
        accumulate,
        g_nonsaturating_loss,
        requires_grad,
    )
    from .train import _loop, d_step

    g, d, p = build(seed, channels)
    g_ema = copy.deepcopy(g).eval()
    requires_grad(g_ema, False)
    rngs = _Rngs(face_seed, seed)
    mapping = list(g.style.parameters())
    synth = [q for n, q in g.named_parameters() if not n.startswith("style.")]
    sup_opt = torch.optim.Adam([{"params": synth + list(p.parameters())},
                                {"params": mapping, "lr": lr * mapping_lr_mul}], lr=lr, betas=(0.9, 0.99))
    r1_every = 16
    d_ratio = r1_every / (r1_every + 1)
    g_opt = torch.optim.Adam([{"params": synth + list(p.parameters())},
                              {"params": mapping, "lr": gan_lr * mapping_lr_mul}], lr=gan_lr, betas=(0.0, 0.99))
    d_opt = torch.optim.Adam(d.parameters(), lr=gan_lr * d_ratio, betas=(0.0, 0.99 ** d_ratio))
    monitor = FrechetMonitor(eval_n) if eval_every else None
    dim = g.style_dim

    def reconstruction(n: int) -> tuple[torch.Tensor, dict]:
        faces, vectors = rngs.faces_batch(n)
        x = to_tensor(render_batch(faces, size=g.size, domain="photo"))
        y = g.decode(p(encode_params(vectors)), randomize_noise=True)
        pix, lap = (y - x).abs().mean(), laplacian_l1(y, x)
        return pix + lap, {"pix": pix.item(), "lap": lap.item()}

    def distribution() -> tuple[torch.Tensor, float]:
        with torch.no_grad():
            target = p(encode_params(rngs.faces_batch(256)[1]))
        z = torch.randn(256, dim, generator=rngs.torch)
        swd = sliced_wasserstein(g.mapping(z), target, generator=rngs.torch)
        return swd, swd.item()

    def step_fn(step: int) -> dict:
        out: dict = {}
        if step < sup_steps:
            rec, out = reconstruction(batch)
            swd, out["swd"] = distribution()
            sup_opt.zero_grad(set_to_none=True)
            (rec + swd_weight * swd).backward()
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
            swd, out["swd"] = distribution()
            g_opt.zero_grad(set_to_none=True)
            (g_loss + rec_weight * rec + swd_weight * swd).backward()
            g_opt.step()
            out.update(g=g_loss.item(), **parts)
        ema_nimg = min(ema_kimg * 1000, (step + 1) * batch * 0.05)  # StyleGAN2-ADA ramp-up
        accumulate(g_ema, g, 0.5 ** (batch / max(ema_nimg, 1e-8)))
        done = step + 1
        if monitor is not None and (done % eval_every == 0 or done == steps):
            out["fd"] = monitor(g_ema)
        return out

    carry = None if carry_dir is None else Path(carry_dir) / "generator_sup-carry.pt"
    log, seconds = _loop("generator_sup", out_dir, steps, step_fn, {"g": g, "d": d, "p": p, "g_ema": g_ema},
                         {"sup": sup_opt, "g": g_opt, "d": d_opt, "rngs": rngs},
                         log_every=log_every, save_every=save_every, resume=resume,
                         carry=carry, carry_keys=("rngs",))
    return g_ema, p, log, seconds
