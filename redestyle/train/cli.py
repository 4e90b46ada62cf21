"""``redestyle train``: fine-tune (or pretrain) DualStyleGAN; one process or ``torchrun --nproc_per_node=N``.

Fine-tuning on Re-Destyle codes (the paper's setting, README Cartoon command)::

    torchrun --nproc_per_node=1 -m redestyle train finetune --codes CODES_DIR --images STYLE_DIR \\
        --weights WEIGHTS --out runs/cartoon --iter 1500 --batch 4 --L2_reg_loss 0.015 --augment

``--codes`` holds ``instyle_code.npy`` / ``exstyle_code.npy`` and ``codes_meta.json`` (W+ or z+),
``--images`` the style images they came from. ``--resume runs/cartoon/last.pt`` continues exactly.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging

from ..config import DEFAULT_PROFILE, PROFILES

log = logging.getLogger(__name__)

# official flag spellings (finetune_dualstylegan.py) -> FinetuneConfig fields
_FLAG_ALIASES = {"cx_loss": ["--CX_loss"], "l2_reg_loss": ["--L2_reg_loss"]}


def add_train_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Options of ``redestyle train`` (config fields keep the official names and defaults)."""
    from .config import FinetuneConfig, PretrainConfig

    parser.add_argument("stage", choices=["finetune", "pretrain"],
                        help="finetune: stage 3 on a style set (Fig. 6); pretrain: stages 1-2 on FFHQ")
    parser.add_argument("--codes", default=None, help="finetune: folder with the code files")
    parser.add_argument("--images", required=True, help="finetune: the style images; pretrain: FFHQ images")
    parser.add_argument("--out", required=True, help="run folder: last.pt, generator-XXXXXX.pt, tb/ "
                        "(one run per folder at a time)")
    parser.add_argument("--profile", default=DEFAULT_PROFILE, choices=list(PROFILES),
                        help="mini (the shipped miniature-world generator; loss networks seeded random), "
                        "tiny (all seeded random) or ffhq1024 (official weights, needs --weights); "
                        f"default {DEFAULT_PROFILE}")
    parser.add_argument("--weights", default=None, help="weights folder for ffhq1024 (generator-pretrain.pt, "
                        "vgg19, ir_se50; default $REDESTYLE_WEIGHTS)")
    parser.add_argument("--ckpt", default=None, help="start from this g/d/g_ema file (default: finetune "
                        "generator-pretrain.pt; pretrain stylegan2-ffhq-config-f.pt, as the official scripts)")
    parser.add_argument("--resume", default=None, help="continue a run from its last.pt")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default auto)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--allow-random-loss-nets", action="store_true",
                        help="ffhq1024: go on when vgg19-dcbb9e9d.pth or model_ir_se50.pth is missing, with "
                        "a random VGG19 / no ID loss (not the paper's losses; recorded in the checkpoints' "
                        "args). Default: a missing file is an error")
    fields = {f.name: f for f in dataclasses.fields(FinetuneConfig)}
    fields.update({f.name: f for f in dataclasses.fields(PretrainConfig) if f.name not in fields})
    for name, field in fields.items():
        if name in ("space", "perc_weights", "inject_indices", "augment"):
            continue
        flags = [f"--{name}", *_FLAG_ALIASES.get(name, [])]
        parser.add_argument(*flags, dest=name, type=type(field.default), default=None,
                            help=f"default {field.default} (official)")
    parser.add_argument("--augment", action="store_true", default=None,
                        help="ADA: non-leaking adaptive augmentation of D's inputs (the official Cartoon command)")
    return parser


def _config(args: argparse.Namespace, cls, **fixed):
    names = {f.name for f in dataclasses.fields(cls)}
    given = {k: v for k, v in vars(args).items() if k in names and v is not None}
    return cls(**{**given, **fixed})


def cli_train(args: argparse.Namespace) -> int:
    """Body of ``redestyle train``; returns the exit status.

    The run folder is locked for the run (``folderlock``; rank 0 holds it), a second run on it is
    refused. Prints the profile and whether the networks are trained; warns on stderr when the
    generator starts from random weights.
    """
    import contextlib
    import sys

    from ..config import get_profile
    from ..folderlock import lock_folder
    from . import dist
    from .config import FinetuneConfig, PretrainConfig
    from .data import RealBatches, check_codes_profile, load_image_set, load_paired_set, read_space
    from .models import build_train_models
    from .trainer import Trainer, run

    profile = get_profile(args.profile)
    if args.stage == "finetune":
        if args.codes is None:
            raise SystemExit("train finetune needs --codes DIR")
        check_codes_profile(args.codes, profile.name)
    device = dist.init_from_env(args.device)
    try:
        with lock_folder(args.out) if dist.is_main() else contextlib.nullcontext():
            models = build_train_models(profile, weights_dir=args.weights, ckpt=args.ckpt, seed=args.seed or 0,
                                        device=device, allow_random_loss_nets=args.allow_random_loss_nets,
                                        stage=args.stage)
            official_start = "stylegan2-ffhq-config-f.pt" if args.stage == "pretrain" else "generator-pretrain.pt"
            start = args.ckpt or {"official": f"the official {official_start}",
                                  "shipped": "the miniature-world generator",
                                  "random": "seeded random weights"}[profile.weights]
            if dist.is_main():
                print(f"redestyle train: profile {profile.name}, starting from {start}")
                print("redestyle train: loss networks: " + ", ".join(f"{k} = {v}" for k, v in models.loss_nets.items()))
                if profile.weights == "random" and args.ckpt is None:
                    print("redestyle train: warning: tiny profile: random weights, the results show "
                          "mechanics only", file=sys.stderr)
                elif not profile.needs_weights:  # build_train_models: no trained small loss networks exist
                    print(f"redestyle train: warning: {profile.name} profile: the VGG19 and identity loss "
                          "networks have seeded random weights", file=sys.stderr)
            size = profile.image_size
            loss_size = min(256, size)
            if args.stage == "finetune":
                paired = load_paired_set(args.codes, args.images, size=size,
                                         mapping_plus=models.g_ema.mapping_plus)
                config = _config(args, FinetuneConfig, space=read_space(args.codes),
                                 **({} if args.loss_size else {"loss_size": loss_size}))
                images, encode = paired.images, None
            else:
                from .. import zoo

                config = _config(args, PretrainConfig, **({} if args.loss_size else {"loss_size": loss_size}))
                _, images = load_image_set(args.images, size=size)
                paired = None
                encoder_models = zoo.build_models(profile, methods=["dsg_zplus"], weights_dir=args.weights,
                                                  seed=config.seed, device=device)
                mapping_plus = models.generator.mapping_plus

                def encode(x):  # DualStyleGAN's z+ pSp (+ latent_avg when its opts say so), returned as W+
                    return mapping_plus(encoder_models.encode_zplus(x))

            real = RealBatches(images, config.batch, rank=dist.rank(), world_size=dist.world_size(),
                               seed=config.seed)
            trainer = Trainer(models, config, real=real, paired=paired, encode_wplus=encode, device=device)
            if args.resume:
                trainer.load(args.resume)
            run(trainer, out_dir=args.out, progress=not args.no_progress)
            if dist.is_main():
                print(f"redestyle train: finished at iteration {trainer.step} (profile {profile.name}); "
                      f"files in {args.out}")
    finally:
        dist.shutdown()
    return 0
