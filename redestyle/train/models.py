"""The networks DualStyleGAN training needs, per profile, and loading/saving generator files.

* ``tiny``: seeded random networks; the intrinsic generator is exactly ``zoo.build_models``'s tiny
  StyleGAN2 (same seed), so codes destylized with the tiny Re-Destyle pipeline live in its W+.
  The VGG19 is 4x narrower and the IR-SE50 sees 32 px crops (cheap on 2 CPU cores).
* ``ffhq1024``: ``generator-pretrain.pt`` (``g``, ``d``, ``g_ema``; or any file of that layout, e.g.
  our own checkpoints) from the weights folder or ``ckpt``; VGG19 ImageNet weights
  (``vgg19-dcbb9e9d.pth``) and ``model_ir_se50.pth`` from the weights folder when present.
"""

from __future__ import annotations

import copy
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .. import checkpoints as ck
from ..config import Profile, get_profile
from ..losses import VGG19Features
from ..nets.dualstylegan import DualStyleGAN
from ..nets.irse import Backbone, IDFeatures
from ..nets.stylegan2 import Discriminator
from ..zoo import build_models, seeded

log = logging.getLogger(__name__)

PRETRAIN_FILE = "generator-pretrain.pt"
VGG19_FILE = "vgg19-dcbb9e9d.pth"
ID_FILE = "model_ir_se50.pth"
TINY_STRUCTURE_MLP = 2
#: layers with a non-zero weight in pretraining (relu1-3_1) and fine-tuning (relu2_1, relu3_1)
VGG_LAYERS = ("relu1_1", "relu2_1", "relu3_1")  # the official T_s depth (n_mlp - 6 = 2 at n_mlp 8); tiny has n_mlp 4


@dataclass
class TrainModels:
    """generator / g_ema: DualStyleGAN; discriminator; frozen loss networks (id may be None)."""

    generator: DualStyleGAN
    g_ema: DualStyleGAN
    discriminator: Discriminator
    vgg: nn.Module
    id_features: nn.Module | None
    pretrained: bool  # official weights (False: tiny seeded random weights)

    def to(self, device: torch.device | str) -> TrainModels:
        for m in (self.generator, self.g_ema, self.discriminator, self.vgg, self.id_features):
            if m is not None:
                m.to(device)
        return self


def dualstylegan_for(profile: Profile) -> DualStyleGAN:
    """An (untrained) DualStyleGAN of the profile's generator configuration."""
    gc = profile.generator
    if profile.needs_weights:
        return DualStyleGAN(gc.size, gc.style_dim, gc.n_mlp, gc.channel_multiplier, res_index=6,
                            channels=gc.channels)
    return DualStyleGAN(gc.size, gc.style_dim, gc.n_mlp, gc.channel_multiplier, res_index=6,
                        channels=gc.channels, structure_mlp=TINY_STRUCTURE_MLP)


def load_dualstylegan(path: str | os.PathLike, profile: str | Profile = "ffhq1024", *, which: str = "g_ema") -> DualStyleGAN:
    """A DualStyleGAN from a checkpoint's ``which`` entry (``generator.pt``, ``generator-pretrain.pt``,
    our own checkpoints), strictly loaded; eval mode, CPU."""
    profile = get_profile(profile)
    container = ck.load_container(path)
    state_dict = ck.take(container, which, path=path)
    g = dualstylegan_for(profile)
    ck.load_strict(g, state_dict, path=path, what=which)
    return g.eval()


def build_train_models(
    profile: str | Profile = "tiny",
    *,
    weights_dir: str | os.PathLike | None = None,
    ckpt: str | os.PathLike | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    with_id: bool = True,
) -> TrainModels:
    """Build generator, g_ema, discriminator, VGG19 and ID features for training (module docstring).

    ckpt: a file with ``g``, ``d``, ``g_ema`` (default for ffhq1024: ``generator-pretrain.pt`` in the
    weights folder). For tiny without ckpt the generator is seeded (``seed``).
    """
    profile = get_profile(profile)
    gc = profile.generator
    if profile.needs_weights and ckpt is None:
        ckpt = ck.resolve(PRETRAIN_FILE, weights_dir)
    if ckpt is not None:
        container = ck.load_container(ckpt)
        generator, g_ema = dualstylegan_for(profile), dualstylegan_for(profile)
        ck.load_strict(generator, ck.take(container, "g", path=ckpt), path=ckpt, what="g")
        ck.load_strict(g_ema, ck.take(container, "g_ema", path=ckpt), path=ckpt, what="g_ema")
        d_sd = ck.take(container, "d", path=ckpt)
        discriminator = Discriminator(gc.size, gc.channel_multiplier, channels=gc.channels)
        ck.load_strict(discriminator, ck.with_default_kernels(discriminator, d_sd, path=ckpt), path=ckpt, what="d")
    else:
        intrinsic = build_models(profile, methods=(), seed=seed).generator
        generator = seeded("dualstylegan", seed, lambda: dualstylegan_for(profile))
        generator.generator.load_state_dict(intrinsic.state_dict())
        g_ema = copy.deepcopy(generator)
        discriminator = seeded("discriminator", seed, lambda: Discriminator(
            gc.size, gc.channel_multiplier, channels=gc.channels))

    if profile.needs_weights:
        vgg_sd = _optional(VGG19_FILE, weights_dir)
        if vgg_sd is None:
            log.warning("%s not found: the VGG19 losses use random weights (results are not meaningful)", VGG19_FILE)
        vgg = VGG19Features(vgg_sd, layers=VGG_LAYERS)
        id_sd = _optional(ID_FILE, weights_dir) if with_id else None
        id_features = None
        if id_sd is not None:
            backbone = Backbone(112, 50, "ir_se")
            ck.load_strict(backbone, id_sd, path=ID_FILE, what="IR-SE50")
            id_features = IDFeatures(backbone.eval())
        elif with_id:
            log.warning("%s not found: training without the identity loss", ID_FILE)
    else:
        vgg = seeded("vgg19", seed, lambda: VGG19Features(layers=VGG_LAYERS, width_divisor=4))
        id_features = None
        if with_id:
            id_features = seeded("irse50", seed, lambda: IDFeatures(
                Backbone(32, 50, "ir_se", widths=profile.encoder.widths).eval()))
    for m in (vgg, id_features):
        if m is not None:
            m.eval().requires_grad_(False)
    return TrainModels(generator, g_ema.eval(), discriminator, vgg, id_features,
                       pretrained=profile.needs_weights).to(device)


def _optional(name: str, weights_dir):
    try:
        return ck.load_container(ck.resolve(name, weights_dir))
    except FileNotFoundError:
        return None


def save_generator(path: str | os.PathLike, g_ema: DualStyleGAN) -> Path:
    """Write ``{"g_ema": state_dict}`` atomically: the layout of the released ``<style>/generator.pt``."""
    return ck.save_atomic({"g_ema": g_ema.state_dict()}, path)
