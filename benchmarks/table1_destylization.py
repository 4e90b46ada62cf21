"""Table 1: destylization time per image, DualStyleGAN's optimization baseline vs Re-Destyle.

Protocol (reference/destylization.md C10): images go through ``jobs.destylize_folder`` (image
decode, destylization and code storage timed; model loading and one warm-up image excluded),
batch 1. Re-Destyle: schedules 5-3-1 and 6-4-2, exact (``pool``) and approximate (``early``)
hand-off. Baseline: K of its 300 Adam steps are run and timed; the per-image time is
extrapolated to 300 steps as  T(K) + (300 - K) * mean step time  (stated in the output).
The deviation of the ``early`` hand-off from the exact one is printed (max / mean |diff| of the
destylized image and of z_i). Paper (one RTX 3090, 633 images): baseline 29.3 s/image,
Re-Destyle 1.45 s/image, 20.1x.

    OMP_NUM_THREADS=1 python benchmarks/table1_destylization.py            # tiny, CPU
    python benchmarks/table1_destylization.py --profile ffhq1024 --weights W --style cartoon --device cuda
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from redestyle import data, jobs, zoo
from redestyle import destylize as ds
from redestyle.config import get_profile
from redestyle.experiments import format_table


def write_inputs(folder: Path, data_dir: str | None, size: int, n: int) -> list[str]:
    """The timed inputs as PNG files (the bundled samples unless --data)."""
    from PIL import Image

    from redestyle.viz import to_uint8

    folder.mkdir(parents=True, exist_ok=True)
    if data_dir is None:
        images = data.sample_portraits(size)
    else:
        images, _ = data.load_folder(data_dir, size=size)
    names = list(images)[:n]
    for name in names:
        Image.fromarray(to_uint8(images[name])).save(folder / f"{Path(name).stem}.png")
    return names


def seconds_per_image(fn, src: Path, work: Path, tag: str, size: int, device) -> float:
    """Mean wall seconds per image of destylize_folder (decode + destylize + code storage)."""
    meta = {"space": "bench", "tag": tag}
    warm = work / f"warm_{tag}"
    one = work / "one"
    if not one.exists():
        one.mkdir()
        first = sorted(src.iterdir())[0]
        (one / first.name).write_bytes(first.read_bytes())
    jobs.destylize_folder(one, warm, destylize=fn, size=size, meta=meta, device=device, save_preview=False)
    n = len(list(src.iterdir()))
    start = time.perf_counter()
    jobs.destylize_folder(src, work / tag, destylize=fn, size=size, meta=meta, device=device,
                          save_preview=False)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / n


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", default="tiny", choices=["tiny", "ffhq1024"])
    p.add_argument("--weights", default=None, help="official weights folder (ffhq1024)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    p.add_argument("--data", default=None, help="folder of portraits (default: the 4 bundled samples)")
    p.add_argument("--images", type=int, default=4, help="images to time (default 4)")
    p.add_argument("--baseline-steps", type=int, default=5, help="baseline steps actually run (default 5)")
    p.add_argument("--style", default="cartoon", help="g' style folder for the baseline (default cartoon)")
    p.add_argument("--skip-baseline", action="store_true")
    args = p.parse_args(argv)

    profile = get_profile(args.profile)
    device = zoo.resolve_device(args.device)
    methods = ["restyle_psp"] + ([] if args.skip_baseline else ["dsg_zplus"])
    models = zoo.build_models(profile, methods=methods, weights_dir=args.weights, device=device,
                              with_lpips=not args.skip_baseline, with_id=not args.skip_baseline,
                              g_prime_style=None if args.skip_baseline else args.style)
    size = profile.pool_size
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        src = work / "inputs"
        names = write_inputs(src, args.data, size, args.images)
        results = {}
        for schedule in ("5-3-1", "6-4-2"):
            for handoff in ("pool", "early"):
                options = ds.DestyleOptions(schedule=schedule, handoff=handoff)
                fn = ds.make_destylizer(models, options)
                sec = seconds_per_image(fn, src, work, f"{schedule}_{handoff}", size, device)
                rows.append({"method": f"Re-Destyle {schedule} ({'exact' if handoff == 'pool' else 'early, approx.'})",
                             "s_per_image": sec, "basis": "measured"})
                x = torch.cat([data.load_image(src / f"{Path(n).stem}.png", size=size) for n in names]).to(device)
                results[(schedule, handoff)] = fn(x)
        if not args.skip_baseline:
            k = args.baseline_steps
            step_times: list[float] = []
            last = [time.perf_counter()]

            def tick(i, loss):
                now = time.perf_counter()
                step_times.append(now - last[0])
                last[0] = now

            options = ds.DestyleOptions(method="baseline", steps=k, style=args.style)
            fn = ds.make_destylizer(models, options, progress=tick)

            def timed(x):
                last[0] = time.perf_counter()
                return fn(x)

            sec_k = seconds_per_image(timed, src, work, "baseline", size, device)
            n = len(names)
            step = sum(step_times[-k * n:]) / (k * n)
            rows.append({"method": f"Baseline ({k} steps, measured)", "s_per_image": sec_k, "basis": "measured"})
            rows.append({"method": "Baseline (300 steps)", "s_per_image": sec_k + (300 - k) * step,
                         "basis": f"T({k}) + {300 - k} x {step:.3f} s/step"})
    base = rows[-1]["s_per_image"] if not args.skip_baseline else None
    for r in rows:
        r["baseline_ratio"] = base / r["s_per_image"] if base else float("nan")
    print(f"Table 1 ({profile.label}; device {device}; {len(names)} images, batch 1; "
          f"torch threads {torch.get_num_threads()})")
    print(format_table(rows, ["method", "s_per_image", "baseline_ratio", "basis"], digits=3))
    print("Paper (RTX 3090, 633 images, 1024 px): baseline 29.3 s/image, Re-Destyle 1.45 s/image, 20.1x")
    dev_rows = []
    for schedule in ("5-3-1", "6-4-2"):
        exact, early = results[(schedule, "pool")], results[(schedule, "early")]
        img = ds.handoff_deviation(early.image, exact.image)
        lat = ds.handoff_deviation(early.z_i, exact.z_i)
        dev_rows.append({"schedule": schedule, "image_max_abs": img["max_abs"], "image_mean_abs": img["mean_abs"],
                         "z_i_max_abs": lat["max_abs"], "z_i_mean_abs": lat["mean_abs"]})
    print("\n'early' hand-off vs exact (images in [-1, 1]):")
    print(format_table(dev_rows, list(dev_rows[0]), digits=4))
    if profile.image_size == profile.pool_size:
        print(f"(generator output {profile.image_size} px = encoder input: 'early' is exact here by "
              "construction; it differs, and saves time, only when the output is larger, e.g. 1024 vs 256)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
