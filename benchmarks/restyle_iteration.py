"""ReStyle-pSp iteration time at FFHQ 1024: IR-SE50 encoder + 1024 generator, fp32 vs bf16 autocast.

One iteration = encode cat(portrait, current image) (6 channels, 256 px) + add the previous
latent + synthesise 1024 px + average-pool to 256 (what Re-Destyle repeats 9 times for 5-3-1).
Batches 1 and 8, fp32 and ``torch.autocast(bfloat16)``, on the CPU and, when present, CUDA.
Weights: the official files when ``--weights`` holds them, else the same architectures at random
init (timings do not depend on weight values; the bf16 error is then measured on random
networks, stated in the output). One untimed warm-up iteration per (device, batch, variant).

bf16 error: relative L2 error of the bf16 latent vs the fp32 latent, ||w_bf16 - w_fp32|| /
||w_fp32|| (the goal's measure).

Reference: the official iteration (the same encoder, whose computation order is the official
one, + the official StyleGAN2 computation of ``benchmarks/_official.py``), timed in the same run on
the same machine, fp32, alternating with ours (``--reps`` rounds; min and median). Goals (the
issue): fp32 <= 0.6 x official, bf16 <= 0.25 x official per image with the latent within 1 % of fp32.

    OMP_NUM_THREADS=1 python benchmarks/restyle_iteration.py            # CPU (+ CUDA when present)
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
from functools import partial

import torch

# siblings in benchmarks/ (the script's folder is on sys.path)
from _official import OfficialGenerator
from _timing import alternating

from redestyle import data, zoo
from redestyle.config import get_profile
from redestyle.experiments import format_table
from redestyle.imaging import pool
from redestyle.inversion import restyle_step

GOALS = {"fp32": 0.6, "bf16": 0.25}  # x the official fp32 iteration time per image
MAX_REL_ERR = 0.01


def build(weights_dir, device):
    """(encoder, generator, latent_avg [18, 512], avg_image [3, 256, 256], pretrained)."""
    profile = get_profile("ffhq1024")
    try:
        m, pretrained = zoo.build_models(profile, methods=["restyle_psp"], weights_dir=weights_dir,
                                         device=device), True
    except (OSError, ValueError):  # no official checkpoints here: same architectures, random weights
        m, pretrained = zoo.build_models(profile, methods=["restyle_psp"], random_weights=True,
                                         device=device), False
    return m.encoder("restyle_psp"), m.generator, m.latent_avg, m.avg_image, pretrained


def iteration(enc, g, x, feedback, latent):
    """One ReStyle iteration: (latent [B, 18, 512], feedback [B, 3, 256, 256]) for the next one."""
    # inversion.restyle_step: the iteration inference runs (bf16 + fp32 latent adds in fp32)
    latent, image = restyle_step(enc, partial(g.decode, randomize_noise=False), x, feedback, latent)
    return latent.float(), pool(image.float(), x.shape[-1])


def timed_call(enc, g, x, feedback, start, autocast):
    """A no-argument call of one iteration without autograd, under ``autocast`` (device type, dtype) or not."""
    def call():
        ctx = torch.autocast(autocast[0], dtype=autocast[1]) if autocast else contextlib.nullcontext()
        with torch.no_grad(), ctx:
            return iteration(enc, g, x, feedback, start)
    return call


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default=None, help="official weights folder (else random init)")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    p.add_argument("--reps", type=int, default=2, help="timed rounds (ours and official alternate)")
    p.add_argument("--devices", nargs="+", default=None, help="default: cpu, plus cuda when available")
    p.add_argument("--no-bf16", action="store_true", help="fp32 only (e.g. a CPU without native bf16)")
    args = p.parse_args(argv)
    devices = args.devices or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    rows = []
    pretrained = False
    for dev_name in devices:
        device = torch.device(dev_name)
        enc, g, avg, avg_image, pretrained = build(args.weights, device)
        official = OfficialGenerator(g)
        portrait = data.sample_portraits(256)["astronaut_ink"].to(device)
        for batch in args.batches:
            x = portrait.expand(batch, -1, -1, -1).contiguous()
            feedback = avg_image.unsqueeze(0).expand(batch, -1, -1, -1).contiguous()
            start = avg.unsqueeze(0).expand(batch, -1, -1)

            fns = {"fp32": timed_call(enc, g, x, feedback, start, None),
                   "official": timed_call(enc, official, x, feedback, start, None)}
            if not args.no_bf16:
                fns["bf16"] = timed_call(enc, g, x, feedback, start, (device.type, torch.bfloat16))
            res = alternating(fns, device, repeats=args.reps)
            official_s = min(res["official"][0]) / batch
            ref = res["fp32"][1][0]
            for name, (secs, (latent, _)) in res.items():
                per_image = min(secs) / batch
                row = {"device": dev_name, "batch": batch, "code": "official" if name == "official" else "ours",
                       "dtype": "fp32" if name == "official" else name, "s_per_image": per_image,
                       "median_s": statistics.median(secs) / batch, "x_official": per_image / official_s,
                       "goal_x": GOALS.get(name, float("nan")), "rel_err": float("nan"), "meets": ""}
                if name != "official":
                    row["rel_err"] = ((latent - ref).norm() / ref.norm()).item()
                    row["meets"] = "yes" if (row["x_official"] <= GOALS[name]
                                             and row["rel_err"] <= MAX_REL_ERR) else "no"
                rows.append(row)
                print(f"{dev_name} batch {batch} {name}: {per_image:.2f} s/image (min of {len(secs)}), "
                      f"x official {row['x_official']:.2f}", flush=True)
        del enc, g, official
    weights = "official weights" if pretrained else "RANDOM weights (no checkpoints here)"
    print(f"\nReStyle-pSp iteration at 1024 (IR-SE50 + StyleGAN2 1024, {weights}; "
          f"torch threads {torch.get_num_threads()}); official = benchmarks/_official.py, same run")
    print(format_table(rows, list(rows[0]), digits=3))
    print(f"goal: ours fp32 <= {GOALS['fp32']} x official, bf16 <= {GOALS['bf16']} x official per image, "
          f"latent rel_err <= {MAX_REL_ERR:.0%} (||w - w_fp32|| / ||w_fp32||)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
