"""The ``generator_sup`` stage: a StyleGAN2 generator taught by the world's known parameters.

A GAN trained on renders alone (the ``generator`` stage) reaches a Fréchet distance of 47.5 on the
oracle's features after 6000 CPU steps; the world's parameters make supervision available, so this
stage trains the same ``Generator`` class (mapping network, W, W+ kept; wider synthesis channels)
in two phases, in one resumable loop:

1. steps < ``sup_steps``: a learned parameters-to-W path reproduces fresh renders of fresh
   parameters: :class:`ParamsToZ` encodes the 22 parameters as a Gaussian posterior in z, a sample
   of it goes through the generator's own mapping network to one w and through the synthesis
   network to an image (L1 on pixels + L1 on the levels of a Laplacian pyramid, which weighs the
   small sharp parts: eyes, mouths, glasses). A KL term to N(0, I) (a VAE with the StyleGAN2
   generator as decoder) and a latent critic (an adversarial autoencoder's: a small MLP tells the
   faces' z from N(0, I) samples, the encoder learns to fool it) make the z of all faces fill the
   prior, so that z ~ N(0, I), the generator's ordinary input, lands on faces (the KL alone, a
   per-face term, left holes: at step 500 prior samples decoded to colour noise).
2. steps >= ``sup_steps``: adversarial fine-tuning (non-saturating loss, lazy R1, as the
   ``generator`` stage) of mapping + synthesis, the reconstruction + KL terms kept.

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


class ParamsToZ(nn.Module):
    """Parameters to z, the first half of the parameters-to-W path (the mapping network is the
    second): encoded parameters [B, 26] -> (mean, log-variance) [B, style_dim] each."""

    def __init__(self, style_dim: int = 64, hidden: int = 256, depth: int = 4) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = PARAM_FEATURES
        for _ in range(depth - 1):
            layers += [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
            width = hidden
        layers.append(nn.Linear(width, 2 * style_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, encoded: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, logvar = self.net(encoded).chunk(2, dim=1)
        return mean, logvar.clamp(-12, 4)


class LatentCritic(nn.Module):
    """z [B, style_dim] -> logit [B, 1] that z comes from N(0, I) rather than from faces."""

    def __init__(self, style_dim: int = 64, hidden: int = 256) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(style_dim, hidden), nn.LeakyReLU(0.2),
                                 nn.Linear(hidden, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, 1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def kl_to_prior(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)) summed over dimensions, batch mean; [B, D] -> scalar."""
    return 0.5 * (mean.square() + logvar.exp() - logvar - 1).sum(1).mean()


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


class _Pool:
    """The encoded parameters of the last ``size`` faces (what the latent critic samples)."""

    def __init__(self, size: int, width: int) -> None:
        self.data = torch.zeros(0, width)
        self.size = size

    def add(self, rows: torch.Tensor) -> None:
        self.data = torch.cat([self.data, rows.detach()])[-self.size:]

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return self.data[torch.randint(len(self.data), (n,), generator=generator)]

    def state_dict(self) -> dict:
        return {"data": self.data}

    def load_state_dict(self, state: dict) -> None:
        self.data = state["data"]


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
    """(Generator, Discriminator, ParamsToZ, LatentCritic) of this stage, seeded; the generator is the repo's
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
    p = ParamsToZ(gc.style_dim)
    torch.manual_seed(seed + 3)
    c = LatentCritic(gc.style_dim)
    return g, d, p, c


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
                        r1_gamma: float = 0.05, rec_weight: float = 1.0, kl_weight: float = 1e-4,
                        latent_adv_weight: float = 0.02, pool: int = 1024,
                        sup_mapping_lr_mul: float = 100.0, ema_kimg: float = 10.0,
                        channels: dict[int, int] | None = None, log_every: int = 50,
                        save_every: int = 500, eval_every: int = 2000, eval_n: int = 1000,
                        carry_dir: Path | None = None, resume: bool = True):
    """Train this stage (module docstring) -> (g_ema, ParamsToZ, log, seconds).

    ``batch`` renders per step. ``sup_mapping_lr_mul``: the mapping network's EqualLinear layers
    learn at lr * 0.01 (StyleGAN2's lr_mlp, kept for the adversarial phase); the supervised phase
    multiplies that back so the whole path learns at ``lr``. ``kl_weight`` weighs the summed KL
    (nats) against the mean L1 losses (the trade between sharp parameters and a filled prior);
    ``latent_adv_weight`` the encoder's non-saturating loss against the latent critic, which sees
    256 posterior samples of the last ``pool`` faces' parameters against 256 prior samples a step.
    ``carry_dir``: a small resumable copy (modules in float16, random streams, log; no optimizer
    moments) is written there at each save, for committing; it is resumed when ``out_dir`` has no
    state (see ``train._loop``).
    """
    from ..train.gan import accumulate, g_nonsaturating_loss, requires_grad
    from .train import _loop, d_step

    g, d, p, c = build(seed, channels)
    g_ema = copy.deepcopy(g).eval()
    requires_grad(g_ema, False)
    rngs = _Rngs(face_seed, seed)
    mapping = list(g.style.parameters())
    rest = [q for n, q in g.named_parameters() if not n.startswith("style.")] + list(p.parameters())
    sup_opt = torch.optim.Adam([{"params": rest}, {"params": mapping, "lr": lr * sup_mapping_lr_mul}],
                               lr=lr, betas=(0.9, 0.99))
    r1_every = 16
    d_ratio = r1_every / (r1_every + 1)
    g_opt = torch.optim.Adam(rest + mapping, lr=gan_lr, betas=(0.0, 0.99))
    d_opt = torch.optim.Adam(d.parameters(), lr=gan_lr * d_ratio, betas=(0.0, 0.99 ** d_ratio))
    c_opt = torch.optim.Adam(c.parameters(), lr=lr, betas=(0.5, 0.99))
    recent = _Pool(pool, PARAM_FEATURES)
    monitor = FrechetMonitor(eval_n) if eval_every else None
    dim = g.style_dim

    def posterior(encoded: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, logvar = p(encoded)
        z = mean + (0.5 * logvar).exp() * torch.randn(mean.shape, generator=rngs.torch)
        return z, kl_to_prior(mean, logvar)

    def reconstruction(n: int) -> tuple[torch.Tensor, dict]:
        faces, vectors = rngs.faces_batch(n)
        x = to_tensor(render_batch(faces, size=g.size, domain="photo"))
        encoded = encode_params(vectors)
        recent.add(encoded)
        z, kl = posterior(encoded)
        y = g.decode(g.mapping(z), randomize_noise=True)
        pix, lap = (y - x).abs().mean(), laplacian_l1(y, x)
        # the latent critic: first its own step on detached codes, then the encoder's loss
        zq, _ = posterior(recent.sample(256, rngs.torch))
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
