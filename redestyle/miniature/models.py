"""The ``mini`` profile's networks: their architectures (seeded) and their shipped weight files.

The lowest module of :mod:`redestyle.miniature` that touches networks: ``zoo`` (the model bundle
of every profile), the oracle loader and the training stages take the ``mini`` architectures and
loaders from here, so nothing below the training script imports it.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ..checkpoints import load_container, load_strict
from ..config import get_profile
from ..nets import encoders as enc
from ..nets.irse import IDFeatures
from ..nets.stylegan2 import Discriminator, Generator
from . import idnet, perceptual

#: Where the ``mini`` profile reads its weights: the shipped ones (package data), or a folder of
#: your own retrained files named by $REDESTYLE_MINI_WEIGHTS.
SHIPPED_WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
WEIGHTS_DIR = Path(os.environ.get("REDESTYLE_MINI_WEIGHTS") or SHIPPED_WEIGHTS_DIR)
IMAGE_SIZE = 64

#: method -> (encoder class of ``nets.encoders``, ReStyle iterations per batch, latent space)
ENCODERS = {
    "restyle_psp": ("BackboneEncoder", 3, "w+"),
    "restyle_e4e": ("ProgressiveBackboneEncoder", 3, "w+"),
    "psp": ("GradualStyleEncoder", 1, "w+"),
    "e4e": ("Encoder4Editing", 1, "w+"),
    "dsg_zplus": ("GradualStyleEncoder", 1, "z+"),
}


def build_encoder(method: str, seed: int = 0) -> nn.Module:
    """The ``mini`` profile's encoder of ``method`` (the ``tiny`` widths), seeded."""
    name, iters, _ = ENCODERS[method]
    p = get_profile("mini")
    torch.manual_seed(seed)
    return getattr(enc, name)(p.encoder.num_layers, p.encoder.mode, n_styles=p.generator.n_latent,
                              style_dim=p.generator.style_dim, input_size=p.encoder.input_size,
                              widths=p.encoder.widths, **({"input_nc": 3} if iters == 1 else {}))



def build_generator(seed: int = 0) -> nn.Module:
    """The ``mini`` profile's generator architecture (the ``tiny`` widths), seeded."""
    torch.manual_seed(seed)
    return Generator(**get_profile("mini").generator.kwargs())


def build_discriminator(seed: int = 0) -> nn.Module:
    """The ``mini`` profile's discriminator (the generator's widths), seeded with ``seed + 1``."""
    gc = get_profile("mini").generator
    torch.manual_seed(seed + 1)
    return Discriminator(gc.size, gc.channel_multiplier, channels=gc.channels)



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


#: The shipped ``mini`` DualStyleGAN (paper §4.4: fine-tuned on Re-Destyle codes of the style set,
#: ``miniature.supervision``): ``WEIGHTS_DIR/dsg_redestyle.pt`` (``{"g_ema"}`` in float16, the
#: layout ``redestyle transfer --ckpt`` reads), its record ``dsg_redestyle.json``, and the folder
#: ``WEIGHTS_DIR/dsg_redestyle/``: the style set's extrinsic codes (``exstyle_code.npy`` +
#: ``codes_meta.json``, a ``--codes`` folder) and a sample content photo (``content.png``).
DUALSTYLEGAN = "dsg_redestyle"
SAMPLE_CONTENT = "content.png"


def dualstylegan_files() -> tuple[Path, Path]:
    """(generator file, codes folder) of the shipped ``mini`` DualStyleGAN (:data:`DUALSTYLEGAN`).

    A missing one raises FileNotFoundError naming it and the commands that make it.
    """
    gen, codes = WEIGHTS_DIR / f"{DUALSTYLEGAN}.pt", WEIGHTS_DIR / DUALSTYLEGAN
    for path in (gen, codes / "exstyle_code.npy"):
        if not path.exists():
            raise FileNotFoundError(
                f"{path}: the mini profile has no shipped DualStyleGAN (make it with `python -m "
                f"redestyle.miniature.supervision train --codes redestyle`, then `... supervision ship`)")
    return gen, codes


def load_into(module: nn.Module, path: str | Path, *, what: str) -> dict:
    """Strictly load a shipped (half-precision) file's ``state_dict`` into ``module`` as float32.

    Returns the whole payload (``latent_avg``, ``config``, ...). Errors name the file.
    """
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


#: What ``load_id_features`` stands in for, as run records and summaries name it.
ID_NETWORK_LABEL = "idnet.pt (the miniature world's ID network, in place of IR-SE50)"


def load_id_features() -> IDFeatures:
    """The shipped identity network (``idnet.pt``, :mod:`~redestyle.miniature.idnet`): the ``mini``
    profile's ID-loss network, frozen, as ``zoo.build_id_features`` gives IR-SE50 for ffhq1024."""
    backbone = idnet.build_backbone()
    load_into(backbone, weights_file("idnet"), what="mini ID network")
    return IDFeatures(backbone.eval()).eval().requires_grad_(False)


#: What ``load_lpips`` stands in for, as run records and summaries name it.
PERCEPTUAL_LABEL = "perceptual.pt (the miniature world's LPIPS trunk, in place of VGG16)"


def _load_trunk() -> perceptual.Trunk:
    trunk = perceptual.Trunk()
    load_into(trunk, weights_file("perceptual"), what="mini perceptual network")
    return trunk


def load_lpips() -> perceptual.WorldLPIPS:
    """The shipped perceptual trunk (``perceptual.pt``) as an LPIPS distance, frozen: the ``mini``
    profile's LPIPS, as ``losses.LPIPS`` on ImageNet VGG16 is ffhq1024's."""
    return perceptual.WorldLPIPS(_load_trunk()).eval()


#: What ``load_vgg_features`` stands in for, as run records and summaries name it.
VGG_STANDIN_LABEL = "perceptual.pt (the miniature world's trunk, in place of ImageNet VGG19)"


def load_vgg_features(layers: tuple[str, ...]) -> perceptual.TrunkFeatures:
    """The shipped perceptual trunk behind VGG19's feature interface (``layers``: VGG19 names), frozen:
    the ``mini`` profile's network for DualStyleGAN's CX / FM / perceptual losses."""
    return perceptual.TrunkFeatures(_load_trunk(), layers=layers).eval()
