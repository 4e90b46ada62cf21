"""ReStyle-pSp iteration time at FFHQ 1024: IR-SE50 encoder + 1024 generator, fp32 vs bf16 autocast.

One iteration = encode cat(portrait, current image) (6 channels, 256 px) + add the previous
latent + synthesise 1024 px + average-pool to 256 (what Re-Destyle repeats 9 times for 5-3-1).
Batches 1 and 8, fp32 and ``torch.autocast(bfloat16)``, on the CPU and, when present, CUDA.
Weights: the official files when ``--weights`` holds them, else the same architectures at random
init (timings do not depend on weight values; the bf16 error is then measured on random
networks, stated in the output). One untimed warm-up iteration per (device, dtype).

bf16 error: relative L2 error of the bf16 latent vs the fp32 latent, ||w_bf16 - w_fp32|| /
||w_fp32|| (the goal's measure), and of the encoder's residual alone (stricter: w_avg cancels).

Goals (the issue; reference = the official code on this CPU, 3.77 s per iteration, batch 1):
fp32 <= 0.6 x 3.77 s, bf16 <= 0.25 x 3.77 s per image with the latent within 1 % of fp32.

    OMP_NUM_THREADS=1 python benchmarks/restyle_iteration.py            # CPU (+ CUDA when present)
"""

from __future__ import annotations

import argparse
import contextlib

import torch
from _timing import timed  # benchmarks/_timing.py (the script's folder is on sys.path)

from redestyle import data, zoo
from redestyle.config import get_profile
from redestyle.experiments import format_table
from redestyle.inversion import pool

OFFICIAL_ITER = 3.77  # s, official ReStyle iteration on this CPU, batch 1, fp32
GOALS = {"fp32": 0.6 * OFFICIAL_ITER, "bf16": 0.25 * OFFICIAL_ITER}
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
    latent = enc(torch.cat([x, feedback], dim=1)).float() + latent
    image = g.decode(latent, randomize_noise=False)
    return latent, pool(image.float(), x.shape[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default=None, help="official weights folder (else random init)")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    p.add_argument("--reps", type=int, default=2, help="timed iterations at batch 1 (1 at larger batches)")
    p.add_argument("--devices", nargs="+", default=None, help="default: cpu, plus cuda when available")
    args = p.parse_args(argv)
    devices = args.devices or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    rows = []
    pretrained = False
    for dev_name in devices:
        device = torch.device(dev_name)
        enc, g, avg, avg_image, pretrained = build(args.weights, device)
        portrait = data.sample_portraits(256)["astronaut_ink"].to(device)
        for batch in args.batches:
            x = portrait.expand(batch, -1, -1, -1).contiguous()
            feedback = avg_image.unsqueeze(0).expand(batch, -1, -1, -1).contiguous()
            start = avg.unsqueeze(0).expand(batch, -1, -1)
            reps = args.reps if batch == 1 else 1
            latents = {}
            for dtype in ("fp32", "bf16"):
                ctx = (torch.autocast(device.type, dtype=torch.bfloat16) if dtype == "bf16"
                       else contextlib.nullcontext())

                def run(ctx=ctx, enc=enc, g=g, x=x, feedback=feedback, start=start):
                    with torch.no_grad(), ctx:
                        return iteration(enc, g, x, feedback, start)

                if batch == args.batches[0]:
                    run()  # warm-up (allocations, kernel selection)
                sec, (latent, _) = timed(run, device, repeats=reps)
                latents[dtype] = latent
                per_image = sec / batch
                row = {"device": dev_name, "batch": batch, "dtype": dtype, "s_per_iter": sec,
                       "s_per_image": per_image, "x_official": per_image / OFFICIAL_ITER,
                       "goal_s": GOALS[dtype], "meets_time": "yes" if per_image <= GOALS[dtype] else "no",
                       "rel_err": float("nan"), "resid_rel_err": float("nan")}
                if dtype == "bf16":
                    ref = latents["fp32"]
                    row["rel_err"] = ((latent - ref).norm() / ref.norm()).item()
                    row["resid_rel_err"] = ((latent - ref).norm() / (ref - start).norm()).item()
                    row["meets_time"] += ", err " + ("yes" if row["rel_err"] <= MAX_REL_ERR else "no")
                rows.append(row)
                print(f"{dev_name} batch {batch} {dtype}: {sec:.2f} s/iteration, {per_image:.2f} s/image "
                      f"(goal {GOALS[dtype]:.2f}), rel_err {row['rel_err']:.2e}", flush=True)
        del enc, g
    weights = "official weights" if pretrained else "RANDOM weights (no checkpoints here)"
    print(f"\nReStyle-pSp iteration at 1024 (IR-SE50 + StyleGAN2 1024, {weights}; "
          f"torch threads {torch.get_num_threads()})")
    print(format_table(rows, list(rows[0]), digits=3))
    print(f"goal: fp32 <= 0.6 x {OFFICIAL_ITER} = {GOALS['fp32']:.2f} s/image; bf16 <= 0.25 x {OFFICIAL_ITER} "
          f"= {GOALS['bf16']:.2f} s/image with rel_err <= {MAX_REL_ERR:.0%} (official code: {OFFICIAL_ITER} s, "
          "this CPU, batch 1, fp32)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
