"""The networks DualStyleGAN training needs, per profile, and loading/saving generator files.

* ``tiny``: seeded random networks; the intrinsic generator is exactly ``zoo.build_models``'s tiny
  StyleGAN2 (same seed), so codes destylized with the tiny Re-Destyle pipeline live in its W+.
  The VGG19 is 4x narrower and the IR-SE50 sees 32 px crops (cheap on 2 CPU cores).
* ``mini``: the tiny architectures with the miniature world's weights; the loss networks are the
  world's own (``perceptual.pt`` for the VGG19 terms, ``idnet.pt`` for the ID term), as LPIPS and
  the ID loss are replaced on mini elsewhere.
* ``ffhq1024``: ``generator-pretrain.pt`` (``g``, ``d``, ``g_ema``; or any file of that layout, e.g.
  our own checkpoints) from the weights folder or ``ckpt``; VGG19 ImageNet weights
  (``vgg19-dcbb9e9d.pth``) and ``model_ir_se50.pth`` from the weights folder when present.
"""

from __future__ import annotations

import copy
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .. import checkpoints as ck
from ..config import Profile, get_profile
from ..losses import VGG19Features
from ..miniature.models import (
    ID_NETWORK_LABEL,
    VGG_STANDIN_LABEL,
    load_id_features,
    load_vgg_features,
)
from ..nets.dualstylegan import DualStyleGAN
from ..nets.irse import Backbone, IDFeatures
from ..nets.stylegan2 import Discriminator
from ..zoo import GENERATOR_FILE, build_id_features, build_models, loss_net_weights, seeded

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
    loss_nets: dict = field(default_factory=dict)  # loss network -> what it runs on (file, random, none)
    optim_states: dict = field(default_factory=dict)  # "g_optim" / "d_optim" of the ckpt (Adam states), if any

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
    allow_random_loss_nets: bool = False,
    stage: str = "finetune",
) -> TrainModels:
    """Build generator, g_ema, discriminator, VGG19 and ID features for training (module docstring).

    ckpt: a DualStyleGAN file with ``g``, ``d``, ``g_ema``, or a StyleGAN2 one (``g_ema``, ``d``; e.g.
    ``stylegan2-ffhq-config-f.pt``: it fills the intrinsic generators and the discriminator, as
    pretrain_dualstylegan.py starts). Default for ffhq1024: the weights folder's
    ``generator-pretrain.pt`` (``stage="finetune"``) or ``stylegan2-ffhq-config-f.pt`` (``"pretrain"``).
    A DualStyleGAN file's ``g_optim`` / ``d_optim`` Adam states, when present, are kept in
    ``optim_states`` for the trainer. For tiny without ckpt the generator is seeded (``seed``).
    On ffhq1024 a missing
    ``vgg19-dcbb9e9d.pth`` or (``with_id``) ``model_ir_se50.pth`` is an error naming the file unless
    ``allow_random_loss_nets`` (then a seeded random VGG19 / no ID loss); ``loss_nets`` records it.
    On mini the ID loss runs on the shipped in-world ID network (``idnet.pt``) and the VGG19 losses on
    the in-world perceptual trunk (``perceptual.pt``); on tiny on a seeded random narrow IR-SE50 and
    VGG19.
    """
    profile = get_profile(profile)
    gc = profile.generator
    if profile.needs_weights and ckpt is None:
        ckpt = ck.resolve(GENERATOR_FILE if stage == "pretrain" else PRETRAIN_FILE, weights_dir)
    container = ck.load_container(ckpt) if ckpt is not None else None
    optim_states = {}
    if container is not None:
        discriminator = Discriminator(gc.size, gc.channel_multiplier, channels=gc.channels)
        d_sd = ck.take(container, "d", path=ckpt)
        ck.load_strict(discriminator, ck.with_default_kernels(discriminator, d_sd, path=ckpt), path=ckpt, what="d")
    if container is not None and _is_stylegan2(container):
        # pretrain_dualstylegan.py: the FFHQ StyleGAN2's g_ema fills the intrinsic generator of both
        # DualStyleGANs (its d the discriminator); res and T_s keep their init, g_ema := generator.
        # StyleGAN2's Adam states cover other parameters: the official script does not load them.
        generator = seeded("dualstylegan", seed, lambda: dualstylegan_for(profile))
        g_sd = ck.with_default_kernels(generator.generator, ck.take(container, "g_ema", path=ckpt), path=ckpt)
        ck.load_strict(generator.generator, g_sd, path=ckpt, what="g_ema (StyleGAN2)")
        g_ema = copy.deepcopy(generator)
    elif container is not None:
        generator, g_ema = dualstylegan_for(profile), dualstylegan_for(profile)
        ck.load_strict(generator, ck.take(container, "g", path=ckpt), path=ckpt, what="g")
        ck.load_strict(g_ema, ck.take(container, "g_ema", path=ckpt), path=ckpt, what="g_ema")
        optim_states = {k: container[k] for k in ("g_optim", "d_optim") if container.get(k) is not None}
    else:
        intrinsic = build_models(profile, methods=(), seed=seed).generator
        generator = seeded("dualstylegan", seed, lambda: dualstylegan_for(profile))
        generator.generator.load_state_dict(intrinsic.state_dict())
        g_ema = copy.deepcopy(generator)
        discriminator = seeded("discriminator", seed, lambda: Discriminator(
            gc.size, gc.channel_multiplier, channels=gc.channels))

    loss_nets = {}
    if profile.needs_weights:
        required = not allow_random_loss_nets
        vgg_sd = loss_net_weights(VGG19_FILE, weights_dir, required=required)
        if vgg_sd is None:
            log.warning("%s not found: the VGG19 losses use random weights (results are not meaningful)", VGG19_FILE)
        vgg = seeded("vgg19", seed, lambda: VGG19Features(vgg_sd, layers=VGG_LAYERS))
        loss_nets["vgg19"] = VGG19_FILE if vgg_sd is not None else f"random VGG19 (seed {seed})"
        id_features = None
        if with_id:
            id_features = build_id_features(loss_net_weights(ID_FILE, weights_dir, required=required))
            if id_features is None:
                log.warning("%s not found: training without the identity loss", ID_FILE)
            loss_nets["id"] = ID_FILE if id_features is not None else "none (no ID loss)"
    else:
        if profile.weights == "shipped":
            # mini: the in-world perceptual trunk (a random VGG19 reads nothing of the world's faces)
            vgg = load_vgg_features(VGG_LAYERS)
            loss_nets["vgg19"] = VGG_STANDIN_LABEL
        else:
            vgg = seeded("vgg19", seed, lambda: VGG19Features(layers=VGG_LAYERS, width_divisor=4))
            loss_nets["vgg19"] = f"random narrow VGG19 (seed {seed}, {profile.name} profile)"
        id_features = None
        if with_id and profile.weights == "shipped":
            id_features = load_id_features()
            loss_nets["id"] = ID_NETWORK_LABEL
        elif with_id:
            id_features = seeded("irse50", seed, lambda: IDFeatures(
                Backbone(32, 50, "ir_se", widths=profile.encoder.widths).eval()))
            loss_nets["id"] = f"random narrow IR-SE50 (seed {seed}, {profile.name} profile)"
    for m in (vgg, id_features):
        if m is not None:
            m.eval().requires_grad_(False)
    return TrainModels(generator, g_ema.eval(), discriminator, vgg, id_features,
                       pretrained=profile.needs_weights, loss_nets=loss_nets,
                       optim_states=optim_states).to(device)


def _is_stylegan2(container) -> bool:
    """A rosinality StyleGAN2 container (``g_ema`` keys start at ``style.``/``conv1.``), not a DualStyleGAN one."""
    g_ema = container.get("g_ema") if isinstance(container, dict) else None
    return isinstance(g_ema, dict) and "conv1.conv.weight" in g_ema


def save_generator(path: str | os.PathLike, g_ema: DualStyleGAN) -> Path:
    """Write ``{"g_ema": state_dict}`` atomically: the layout of the released ``<style>/generator.pt``."""
    return ck.save_atomic({"g_ema": g_ema.state_dict()}, path)
