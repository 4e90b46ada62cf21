"""DualStyleGAN fine-tuning speed: seconds per iteration and iterations per second (prints a table).

One iteration is :meth:`redestyle.train.Trainer.finetune_step` with the paper setting
(:func:`~redestyle.train.paper_finetune_config`: ADA on, L2 0.015) at batch 1 (``--batch``): D step
(+ R1 every 16 iterations), G step with adversarial / FM / CX / perceptual (paired iterations) / ID /
L2-reg losses, path-length regulariser every 4 iterations, EMA of ``res``. Iterations therefore come
in four kinds over the official 16-iteration cycle (step % 16):

* ``r1+path``  step 0          unpaired, R1 and path-length regularisers  (1 of 16)
* ``path``     steps 4, 8, 12  unpaired, path-length regulariser          (3 of 16)
* ``unpaired`` steps 2, 6, ... unpaired, no regulariser                   (4 of 16)
* ``paired``   odd steps       paired (perceptual loss), no regulariser   (8 of 16)

After one untimed warm-up iteration (step 0, which runs every code path, R1 and path included) the
trainer's step counter is set to one step of each kind in turn and that iteration is timed
(``--repeats`` times, mean). ``cycle mean`` = the 16-iteration weighted mean: the expected seconds
per iteration of a long run. CUDA timings synchronise before and after each iteration.

Weights: with ``--ckpt`` / ``--weights`` the 1024 models come from
:func:`~redestyle.train.build_train_models` (``generator-pretrain.pt``, VGG19, IR-SE50); without
them the same architectures at random init (DualStyleGAN(1024, 512, 8, 2), Discriminator(1024, 2),
full VGG19 to relu3_1, IR-SE50 at 112 px), labelled RANDOM in the table: the timings do not depend
on weight values. The data are 2 random 1024 px style images with W+ codes [1, 18, 512] (mapped
random z). ``--profile tiny`` adds the tiny profile (its seeded models) for comparison, ``--profile
mini`` the mini one (the world's generator, perceptual trunk and ID network; 64 px). ``--threads``
times each profile at several torch thread counts in the same run (the counts are far apart: on the
shared 2-core machine, 2026-12-07, load ~3.4, mini at batch 2 ran 3.07 s/iteration (cycle mean) with
2 threads and 0.48 s with 1; 64 px batches are too small to share between threads).

    python benchmarks/finetune_speed.py                        # 1024, CPU (+ CUDA when present)
    python benchmarks/finetune_speed.py --profile tiny ffhq1024 --device cpu
    python benchmarks/finetune_speed.py --profile mini --device cpu --batch 2 --threads 2 1
"""

from __future__ import annotations

import argparse
import copy

import torch
from _timing import timed  # benchmarks/_timing.py (the script's folder is on sys.path)

from redestyle.config import get_profile
from redestyle.experiments import format_table
from redestyle.train import (
    PairedSet,
    RealBatches,
    Trainer,
    build_train_models,
    paper_finetune_config,
)
from redestyle.train.models import VGG_LAYERS, TrainModels, dualstylegan_for

#: (kind, a step of that kind, iterations of that kind per 16-iteration cycle)
KINDS = (("r1+path", 16, 1), ("path", 4, 3), ("unpaired", 2, 4), ("paired", 1, 8))


def random_1024_models(seed: int = 0) -> TrainModels:
    """The ffhq1024 training networks at random init (what build_train_models loads from files)."""
    from redestyle.losses import VGG19Features
    from redestyle.nets.irse import Backbone, IDFeatures
    from redestyle.nets.stylegan2 import Discriminator

    profile = get_profile("ffhq1024")
    gc = profile.generator
    torch.manual_seed(seed)
    generator = dualstylegan_for(profile)
    discriminator = Discriminator(gc.size, gc.channel_multiplier)
    vgg = VGG19Features(None, layers=VGG_LAYERS).eval().requires_grad_(False)
    id_features = IDFeatures(Backbone(112, 50, "ir_se").eval()).eval().requires_grad_(False)
    return TrainModels(generator, copy.deepcopy(generator).eval(), discriminator, vgg, id_features,
                       pretrained=False)


def build(profile_name: str, args) -> tuple[TrainModels, str]:
    """(models on CPU, weights label)."""
    if profile_name in ("tiny", "mini"):
        label = "tiny seeded random" if profile_name == "tiny" else "mini shipped (world loss networks)"
        return build_train_models(profile_name, seed=args.seed), label
    if args.ckpt is not None or args.weights is not None:
        models = build_train_models("ffhq1024", weights_dir=args.weights, ckpt=args.ckpt)
        return models, "official" + ("" if models.id_features is not None else " (no ID net)")
    return random_1024_models(args.seed), "RANDOM (no checkpoints)"


def random_pairs(models: TrainModels, n: int = 2, seed: int = 0) -> PairedSet:
    """n random uint8 style images at the generator's size with W+ codes [n, n_latent, style_dim]."""
    g = models.generator
    size = g.generator.size
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, size, size), generator=gen, dtype=torch.uint8)
    with torch.no_grad():
        mapping = g.generator.mapping
        codes = [mapping(torch.randn(n * g.n_latent, g.style_dim, generator=gen)).reshape(n, g.n_latent, -1)
                 for _ in range(2)]
    return PairedSet([f"style{i}.png" for i in range(n)], images, codes[0], codes[1], "W+")


def timed_step(trainer: Trainer, step: int, device: torch.device) -> float:
    """Seconds of one ``finetune_step`` run as iteration ``step``."""
    trainer.step = step
    return timed(trainer.finetune_step, device)[0]


def bench(profile_name: str, device: torch.device, args, threads: int) -> list[dict]:
    """Table rows for one (profile, device, thread count): one per iteration kind plus the cycle mean."""
    torch.set_num_threads(threads)
    models, weights = build(profile_name, args)
    paired = random_pairs(models, seed=args.seed)  # on the CPU, where PairedSet keeps its tensors
    models.to(device)
    # the losses see min(256, size) px, as notebook 04 (a 64 px image is not upsampled for them)
    config = paper_finetune_config(batch=args.batch, seed=args.seed,
                                   loss_size=min(256, models.generator.generator.size))
    real = RealBatches(paired.images, config.batch, seed=args.seed)
    trainer = Trainer(models, config, real=real, paired=paired, device=device)
    base = {"profile": profile_name, "device": device.type, "threads": threads, "batch": config.batch,
            "weights": weights}
    rows, cycle = [], 0.0
    timed_step(trainer, 0, device)  # warm-up: every code path (R1 and path-length included)
    for kind, step, per_cycle in KINDS:
        sec = sum(timed_step(trainer, step, device) for _ in range(args.repeats)) / args.repeats
        cycle += per_cycle * sec / 16
        rows.append({**base, "iteration": f"{kind} ({per_cycle}/16)", "s_per_iter": sec, "iter_per_s": 1 / sec})
        print(f"{profile_name} {device.type} {threads} thread(s) {kind}: {sec:.3f} s", flush=True)
    rows.append({**base, "iteration": "cycle mean", "s_per_iter": cycle, "iter_per_s": 1 / cycle})
    del trainer, models
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", nargs="+", default=["ffhq1024"], choices=["tiny", "mini", "ffhq1024"])
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="auto: cpu, plus cuda when available")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--repeats", type=int, default=1, help="timed iterations per kind (mean)")
    p.add_argument("--weights", default=None, help="official weights folder (else random init)")
    p.add_argument("--ckpt", default=None, help="generator-pretrain.pt-like file (g, d, g_ema)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, nargs="+", default=None,
                   help="torch thread counts to time in turn (default: torch's current count)")
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: CUDA is not available")
    devices = {"auto": ["cpu"] + (["cuda"] if torch.cuda.is_available() else []),
               "cpu": ["cpu"], "cuda": ["cuda"]}[args.device]
    counts = args.threads or [torch.get_num_threads()]
    rows = [row for name in devices for profile in args.profile for threads in counts
            for row in bench(profile, torch.device(name), args, threads)]
    gpu = f", {torch.cuda.get_device_name()}" if "cuda" in devices else ""
    print(f"\nDualStyleGAN fine-tuning speed (paper config, ADA on; 1 warm-up at step 0, then "
          f"{args.repeats} timed iteration(s) per kind{gpu})")
    print(format_table(rows, ["profile", "device", "threads", "batch", "weights", "iteration", "s_per_iter", "iter_per_s"],
                       digits=3))
    print("cycle mean = (1 r1+path + 3 path + 4 unpaired + 8 paired) / 16: expected s/iteration of a long run")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
