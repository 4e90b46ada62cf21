"""A complete official weights folder with rule weights: every file of ``checkpoints.REGISTRY``.

Each file has the container layout of the published one (``REGISTRY[...].layout``; the key names
are facts taken from the parity fixtures' manifests and their meta.json), filled with the parity
rule weights (``tests/fixtures/parity/rule.py``), so the networks with a fixture are exactly the
ones whose official outputs the parity tests compare. Where no manifest exists (the VGG16
classifier, VGG19, the Adam moments, the code files) the tensors are seeded stand-ins of the
documented shapes. Files that a pip package ships (LPIPS v0.1 heads, the dlib landmarks) are
linked from the package. Nothing here is trained: the folder tests file layouts and code paths,
never results.

Sizes: about 9.5 GB of float32 files (the pSp-family containers hold 1 GB each); writing them
takes about two minutes on one core.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
from pathlib import Path

import numpy as np
import torch

from redestyle import checkpoints as ck
from redestyle import zoo
from redestyle.train.models import PRETRAIN_FILE, VGG19_FILE

#: the baseline's / DualStyleGAN's style folder written by :func:`write_folder`
STYLE = "cartoon"

#: registry method -> (parity fixture, manifest, opts the official training wrote into the file)
_PSP_FILES = {
    "psp": ("psp_encoder", "manifest.json",
            {"encoder_type": "GradualStyleEncoder", "input_nc": 3, "output_size": 1024,
             "start_from_latent_avg": True, "learn_in_w": False, "dataset_type": "ffhq_encode"}),
    "e4e": ("e4e_encoder", "manifest.json",
            {"encoder_type": "Encoder4Editing", "input_nc": 3, "output_size": 1024,
             "start_from_latent_avg": True, "dataset_type": "ffhq_encode"}),
    "restyle_psp": ("restyle_psp_encoder", "manifest.json",
                    {"encoder_type": "BackboneEncoder", "input_nc": 6, "output_size": 1024,
                     "dataset_type": "ffhq_encode", "n_iters_per_batch": 5}),
    "restyle_e4e": ("restyle_e4e_ffhq_encoder", "manifest.json",
                    {"encoder_type": "ProgressiveBackboneEncoder", "input_nc": 6, "output_size": 1024,
                     "dataset_type": "ffhq_encode", "n_iters_per_batch": 5}),
    "dsg_zplus": ("dsg_encoder_zplus", "manifest.json",
                  {"encoder_type": "GradualStyleEncoder", "input_nc": 3, "label_nc": 0, "output_size": 1024,
                   "start_from_latent_avg": False, "learn_in_w": False}),
}


def _load_rule(parity: Path):
    spec = importlib.util.spec_from_file_location("parity_rule_folder", parity / "rule.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _seeded_normal(shape, seed: int, std: float) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * std


def _torchvision_vgg(name: str, seed: int) -> dict:
    """A seeded torchvision VGG (ImageNet layout, ``features.*`` + ``classifier.*``), default init."""
    import torchvision

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return getattr(torchvision.models, name)(weights=None).state_dict()


def _adam_state(shapes: list, *, lr: float, betas: tuple, seed: int) -> dict:
    """An Adam ``state_dict()`` over parameters of ``shapes`` (in optimiser order), as torch 1.x
    saved it (int ``step``), with seeded small moments so a wrong order or shape cannot pass."""
    state = {}
    for i, shape in enumerate(shapes):
        m = _seeded_normal(shape, seed + 2 * i, 1e-4)
        state[i] = {"step": 1000, "exp_avg": m, "exp_avg_sq": m.square() + 1e-10}
    group = {"lr": lr, "betas": betas, "eps": 1e-8, "weight_decay": 0, "amsgrad": False,
             "params": list(range(len(shapes)))}
    return {"state": state, "param_groups": [group]}


def _link_bundled(folder: Path, name: str) -> None:
    entry = ck.registry_entry(name)
    source = ck._bundled_path(entry)
    assert source is not None, f"{name}: the package that ships it ({entry.bundled}) is not installed"
    os.symlink(source, folder / name)


def write_folder(folder: str | os.PathLike, parity: str | os.PathLike) -> Path:
    """Write every registry file into ``folder`` (``<style>/`` files under ``cartoon/``); returns it.

    parity: the parity fixtures folder (tests/fixtures/parity or $REDESTYLE_PARITY_DIR).
    The StyleGAN2 weights are the ``stylegan2_ffhq1024`` fixture's everywhere (the generator file
    and every ``decoder.*``), g' is the ``dsg_destylize_step`` g' (seed 1), the DualStyleGAN the
    ``dualstylegan1024`` fixture's, the discriminator ``stylegan2_disc1024``'s.
    """
    folder, parity = Path(folder), Path(parity)
    rule = _load_rule(parity)
    (folder / STYLE).mkdir(parents=True, exist_ok=True)

    def weights(fixture: str, manifest: str = "manifest.json", prefix: str = "") -> dict:
        return rule.build_weights(str(parity / fixture), which=manifest, prefix=prefix)

    def save(obj, name: str) -> None:
        torch.save(obj, folder / name)

    data = torch.load(parity / "psp_encoder" / "data.pt", map_location="cpu", weights_only=True)
    latent_avg = data["latent_avg"].clone()  # [18, 512]: stylegan2_ffhq1024's mean_latent repeated
    del data

    g_ema = weights("stylegan2_ffhq1024")
    d = weights("stylegan2_disc1024")
    # rosinality convert_weight: g_ema, latent_avg [512], g, d (g = g_ema here: the same tensors,
    # stored once by torch.save)
    save({"g_ema": g_ema, "latent_avg": latent_avg[0].clone(), "g": g_ema, "d": d}, zoo.GENERATOR_FILE)
    decoder = {f"decoder.{k}": v for k, v in g_ema.items()}

    def psp_container(encoder: dict, opts: dict, prefix: str = "encoder.") -> dict:
        return {"state_dict": {**{prefix + k: v for k, v in encoder.items()}, **decoder},
                "latent_avg": latent_avg.clone(), "opts": dict(opts, checkpoint_path=None)}

    for method, (fixture, manifest, opts) in _PSP_FILES.items():
        save(psp_container(weights(fixture, manifest), opts), zoo.ENCODER_FILES[method])
    # DualStyleGAN's W+ pSp is a pSp FFHQ encoder of the same layout: a hard link saves 1.2 GB
    os.link(folder / zoo.ENCODER_FILES["psp"], folder / "encoder_wplus.pt")
    hyper_opts = {"encoder_type": "SharedWeightsHyperNetResNet", "input_nc": 6, "output_size": 1024,
                  "layers_to_tune": "0,2,3,5,6,8,9,11,12,14,15,17,18,20,21,23,24",
                  "dataset_type": "ffhq_hypernet", "n_iters_per_batch": 5, "load_w_encoder": True}
    save(psp_container(weights("hyperstyle_ffhq", "manifest_hypernet.json"), hyper_opts, "hypernet."),
         zoo.ENCODER_FILES["hyperstyle"])
    save(psp_container(weights("hyperstyle_ffhq", "manifest_w_encoder.json"),
                       {"encoder_type": "WEncoder", "input_nc": 3, "output_size": 1024,
                        "start_from_latent_avg": True}), zoo.W_ENCODER_FILE)

    save(weights("irse50_backbone"), zoo.ID_FILE)  # a bare Backbone state dict

    # generator-pretrain.pt: {g, d, g_ema, g_optim, d_optim, args, ada_aug_p}; the generator Adam
    # covers generator.res then generator.style (pretrain_dualstylegan.py), D Adam every D parameter
    manifest = rule.load_manifest(str(parity / "dualstylegan1024"))
    dsg = weights("dualstylegan1024")
    g_shapes = [e["shape"] for part in ("res.", "style.") for e in manifest["entries"]
                if e["key"].startswith(part) and e["init"] != "keep"]
    d_manifest = rule.load_manifest(str(parity / "stylegan2_disc1024"))
    d_shapes = [e["shape"] for e in d_manifest["entries"] if e["init"] != "keep"]
    ratio_g, ratio_d = 4 / 5, 16 / 17  # g_reg_every 4, d_reg_every 16
    args = argparse.Namespace(iter=1200, batch=4, size=1024, r1=10.0, path_regularize=2.0,
                              path_batch_shrink=2, d_reg_every=16, g_reg_every=4, mixing=0.9,
                              lr=0.002, channel_multiplier=2, augment=False, augment_p=0.0,
                              ada_target=0.6, ada_length=500000, ada_every=256, local_rank=0)
    save({"g": dsg, "d": d, "g_ema": dsg,
          "g_optim": _adam_state(g_shapes, lr=0.002 * ratio_g, betas=(0.0, 0.99**ratio_g), seed=11),
          "d_optim": _adam_state(d_shapes, lr=0.002 * ratio_d, betas=(0.0, 0.99**ratio_d), seed=12),
          "args": args, "ada_aug_p": 0.0}, PRETRAIN_FILE)
    save({"g_ema": dsg}, f"{STYLE}/generator.pt")
    del dsg, d
    save({"g_ema": weights("dsg_destylize_step", "manifest_gprime.json")}, zoo.G_PRIME_FILE.format(style=STYLE))

    # the official style set's codes: np.save of {image file name: float32 (1, 18, 512)} z+ codes
    rng = np.random.default_rng(0)
    for name in ("exstyle_code.npy", "refined_exstyle_code.npy", "instyle_code.npy"):
        codes = {f"{i:03d}.jpg": rng.standard_normal((1, 18, 512)).astype(np.float32) for i in range(3)}
        np.save(folder / STYLE / name, codes)

    vgg16 = _torchvision_vgg("vgg16", seed=16)
    vgg16.update(weights("dsg_destylize_step", "manifest_vgg16.json"))  # the fixture's LPIPS trunk
    save(vgg16, zoo.VGG16_FILE)
    del vgg16
    save(_torchvision_vgg("vgg19", seed=19), VGG19_FILE)
    for name in ("vgg.pth", "shape_predictor_68_face_landmarks.dat"):
        _link_bundled(folder, name)
    return folder


def registry_names(style: str = STYLE) -> list[str]:
    """Every registry file name, ``<style>/`` resolved to ``style``."""
    return [e.name.replace(ck.STYLE, style) for e in ck.REGISTRY]
