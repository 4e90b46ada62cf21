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
   faces' posterior means from N(0, I) samples, the encoder learns to fool it) make the z of all
   faces fill the
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

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import get_profile
from ..nets.stylegan2 import Discriminator, Generator
from . import oracle as orc
from . import world
from .render import HAIR_STYLES, VECTOR_NAMES, sample_params

#: Synthesis widths of this stage's generator (the ``mini`` profile's are 64/64/32/32/16).
CHANNELS = {4: 128, 8: 128, 16: 64, 32: 64, 64: 32}
PARAM_FEATURES = 20 + len(HAIR_STYLES) + 1  # continuous in [-1, 1], hair one-hot, glasses +-1


def encode_params(vectors: np.ndarray) -> torch.Tensor:
    """Parameter vectors [N, 22] (VECTOR_NAMES order) -> network inputs [N, 26] float32: the 20
    continuous parameters scaled from their valid ranges to [-1, 1], hair style one-hot, glasses
    as -1 / +1."""
    v = np.asarray(vectors, np.float32)
    hair = np.eye(len(HAIR_STYLES), dtype=np.float32)[v[:, VECTOR_NAMES.index("hair_style")].astype(int)]
    glasses = v[:, VECTOR_NAMES.index("glasses"), None] * 2 - 1
    return torch.from_numpy(np.concatenate([orc.normalise(v) * 2 - 1, hair, glasses], 1))


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


class CodePool:
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


class FaceStream:
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
    kw = dict(get_profile("mini").generator.kwargs())
    kw["channels"] = dict(channels or CHANNELS)
    return kw


class FrechetMonitor:
    """Notebook 00's generator row of ``world.frechet_rows`` (n samples, sample seed = ``seed``,
    against the photo renders of ``seed``), with the renders' features computed once."""

    def __init__(self, n: int = 1000, seed: int = 1000) -> None:
        self.n, self.seed = n, seed
        self.oracle = world.load_oracle()
        real, _ = world.photo_renders(n, seed=seed)
        self.real = self.oracle.embed(real)

    def __call__(self, g: nn.Module) -> float:
        samples = world.generator_samples(g, self.n, seed=self.seed)
        return orc.frechet_distance(self.real, self.oracle.embed(samples))
