"""Table 1: destylization time per image, DualStyleGAN's optimization baseline vs Re-Destyle.

Both methods run in one process on the same machine, batch 1, with the FULL FFHQ 1024
architectures by default (StyleGAN2 1024 generator and g', IR-SE50 ReStyle-pSp and z+ pSp
encoders, LPIPS-VGG16, IR-SE50 ID network). Without the official checkpoints the networks have
random weights: the table says so; the *time* of a forward/backward pass does not depend on
the weight values.

``--profile ffhq1024`` (default), what is measured and what is extrapolated (all printed):

* Re-Destyle: ``--restyle-iters`` (2) ReStyle iterations (IR-SE50 encoder + 1024 synthesis +
  pooling to 256) are timed; s/image = passes x (seconds per iteration), passes = 9 for 5-3-1
  and 12 for 6-4-2. The approximate ``early`` hand-off is extrapolated the same way from a timed
  iteration that stops the generator at 256 px (rounds full iterations + the rest early).
* Baseline: its encoding, ``--baseline-steps`` (2) of its 300 Adam steps (g' forward +
  backward at 1024, LPIPS, ID, regularisers) and its render/re-encode are run and timed;
  s/image = T(K steps) + (300 - K) x (mean step time, the first step excluded when K > 1).
* ``official`` column: the same quantities with the official StyleGAN2 computation
  (``benchmarks/_official.py``: the official ops' CPU fallbacks, per-sample weights and grouped
  convs) as g and g', timed in the same run on the same machine (encoders, LPIPS and the ID network
  follow the official computation order already). ``--skip-official`` leaves it out.
  Paper (one RTX 3090, 633 images): baseline 29.3 s/image, Re-Destyle 1.45 s/image, 20.1x.

``--profile tiny`` is a quick run of the same code on the tiny profile, timed end to end
through ``jobs.destylize_folder`` (image decode, destylization, code storage; one warm-up image
excluded), plus the deviation of the ``early`` hand-off from the exact one.

    OMP_NUM_THREADS=1 python benchmarks/table1_destylization.py                 # 1024, CPU, few minutes
    OMP_NUM_THREADS=1 python benchmarks/table1_destylization.py --profile tiny  # seconds
    python benchmarks/table1_destylization.py --weights W --style cartoon --device cuda
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

# sibling in benchmarks/ (the script's folder is on sys.path)
from _official import OfficialGenerator

from redestyle import data, imaging, jobs, zoo
from redestyle import destylize as ds
from redestyle.config import get_profile
from redestyle.experiments import format_table


def write_inputs(folder: Path, data_dir: str | None, size: int, n: int) -> list[str]:
    """The timed inputs as PNG files (the bundled samples unless --data)."""
    from PIL import Image

    from redestyle.imaging import to_uint8

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


def full_size_models(profile, *, weights_dir, style, device, seed: int = 0):
    """The 1024 networks: official files when present, else the same architectures at random init.

    Returns (models, pretrained). Random init keeps each network's default initialisation (cheap);
    the ReStyle heads are damped as in the tiny profile so the 9-pass loop stays finite.
    """
    from redestyle.nets.irse import Backbone, IDFeatures

    kwargs = dict(methods=["restyle_psp", "dsg_zplus"], weights_dir=weights_dir, seed=seed,
                  with_lpips=True, g_prime_style=style)
    try:
        return zoo.build_models(profile, device=device, with_id=True, **kwargs), True
    except (OSError, ValueError):  # no official checkpoints here: same architectures, random weights
        pass
    models = zoo.build_models(profile, random_weights=True, **kwargs)  # g' is a perturbed copy: same cost
    models.id_features = IDFeatures(Backbone(112, 50, "ir_se").eval()).eval()
    return models.to(device), False


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def restyle_seconds(enc, g, x, avg, avg_image, k: int, device, *, early: bool) -> float:
    """Mean seconds per ReStyle iteration over ``k`` iterations (no autograd)."""
    from redestyle.inversion import restyle

    with torch.no_grad():
        _sync(device)
        start = time.perf_counter()
        restyle(enc, g, x, n_iters=k, latent_avg=avg, avg_image=avg_image, early_feedback=early)
        _sync(device)
    return (time.perf_counter() - start) / k


def baseline_seconds(models, x, kb: int, style: str, device) -> tuple[float, float]:
    """(seconds of ``kb`` baseline steps incl. encoding and rendering, mean s/step excluding step 1)."""
    step_times: list[float] = []
    last = [0.0]

    def tick(i, loss):
        _sync(device)
        now = time.perf_counter()
        step_times.append(now - last[0])
        last[0] = now
        print(f"baseline step {i + 1}: {step_times[-1]:.2f} s", flush=True)

    fn = ds.make_destylizer(models, ds.DestyleOptions(method="baseline", steps=kb, style=style),
                            progress=tick)
    _sync(device)
    start = last[0] = time.perf_counter()
    fn(x)
    _sync(device)
    total = time.perf_counter() - start
    return total, (sum(step_times[1:]) / (kb - 1) if kb > 1 else step_times[0])


def full_size_table(args, profile, device) -> int:
    """Table 1 at 1024 (module docstring: what is measured, what is extrapolated)."""
    t0 = time.perf_counter()
    models, pretrained = full_size_models(profile, weights_dir=args.weights, style=args.style, device=device)
    x = data.sample_portraits(profile.pool_size)["astronaut_ink"].to(device)
    avg, avg_image = models.latent_avg, models.avg_image
    enc, g = models.encoder("restyle_psp"), models.generator
    print(f"built the 1024 networks ({'official weights' if pretrained else 'RANDOM weights: no checkpoints'}) "
          f"in {time.perf_counter() - t0:.1f} s", flush=True)
    k, kb = args.restyle_iters, args.baseline_steps
    per_iter = {}
    for early in (False, True):
        per_iter[early] = restyle_seconds(enc, g, x, avg, avg_image, k, device, early=early)
        print(f"ReStyle iteration ({'early' if early else 'full'}): {per_iter[early]:.2f} s", flush=True)
    total, step = baseline_seconds(models, x, kb, args.style, device)
    official_iter = official_total = official_step = float("nan")
    if not args.skip_official:  # the same runs with the official StyleGAN2 computation as g and g'
        official_iter = restyle_seconds(enc, OfficialGenerator(g), x, avg, avg_image, k, device, early=False)
        print(f"official ReStyle iteration: {official_iter:.2f} s", flush=True)
        ours_g_prime = models.g_prime
        models.g_prime = OfficialGenerator(ours_g_prime)
        try:
            official_total, official_step = baseline_seconds(models, x, kb, args.style, device)
        finally:
            models.g_prime = ours_g_prime
    t_full = per_iter[False]
    t_early = max(k * per_iter[True] - t_full, 0.0) / max(k - 1, 1)  # k-1 early + 1 full iterations
    rows = []
    for spec in ("5-3-1", "6-4-2"):
        sched = ds.Schedule.parse(spec)
        rows.append({"method": f"Re-Destyle {spec} (exact)", "s_per_image": sched.passes * t_full,
                     "official": sched.passes * official_iter,
                     "basis": f"{sched.passes} x {t_full:.2f} s/iteration ({k} timed)"})
        n_full, n_early = len(sched.rounds), sched.passes - len(sched.rounds)
        rows.append({"method": f"Re-Destyle {spec} (early, approx.)",
                     "s_per_image": n_full * t_full + n_early * t_early, "official": float("nan"),
                     "basis": f"{n_full} x {t_full:.2f} + {n_early} x {t_early:.2f} s (early iteration)"})
    base = total + (ds.BASELINE.steps - kb) * step
    official_base = official_total + (ds.BASELINE.steps - kb) * official_step
    rows.append({"method": f"Baseline ({kb} steps, measured)", "s_per_image": total,
                 "official": official_total, "basis": "measured"})
    rows.append({"method": "Baseline (300 steps)", "s_per_image": base, "official": official_base,
                 "basis": f"T({kb}) + {ds.BASELINE.steps - kb} x {step:.2f} s/step"})
    for r in rows:
        r["speedup"] = base / r["s_per_image"]
        r["x_official"] = r["official"] / r["s_per_image"]
    r = rows[0]
    r["official_speedup"] = official_base / r["official"]
    weights = "official weights" if pretrained else "full 1024 architectures, RANDOM weights (no checkpoints here)"
    print(f"\nTable 1 (FFHQ 1024, {weights}; device {device}; batch 1; torch threads {torch.get_num_threads()})")
    print(format_table(rows, ["method", "s_per_image", "speedup", "official", "x_official", "official_speedup",
                              "basis"], digits=2))
    print("speedup = our baseline (300 steps) / row; official = the same row with the official StyleGAN2 "
          "computation (benchmarks/_official.py) as g and g', measured in this run; x_official = official / "
          "ours; official_speedup = official baseline / official Re-Destyle 5-3-1")
    print("Paper (RTX 3090, 633 images, 1024 px): baseline 29.3 s/image, Re-Destyle 1.45 s/image, 20.1x")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", default="ffhq1024", choices=["tiny", "ffhq1024"],
                   help="ffhq1024 (default): full architectures, official weights when present, else random")
    p.add_argument("--weights", default=None, help="official weights folder (ffhq1024)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    p.add_argument("--data", default=None, help="tiny: folder of portraits (default: the 4 bundled samples)")
    p.add_argument("--images", type=int, default=4, help="tiny: images to time (default 4)")
    p.add_argument("--baseline-steps", type=int, default=None,
                   help="baseline steps actually run (default 2 at 1024, 5 on tiny)")
    p.add_argument("--restyle-iters", type=int, default=2, help="1024: ReStyle iterations timed (default 2)")
    p.add_argument("--style", default="cartoon", help="g' style folder for the baseline (default cartoon)")
    p.add_argument("--skip-baseline", action="store_true", help="tiny: Re-Destyle only")
    p.add_argument("--skip-official", action="store_true",
                   help="1024: do not time the official computation (halves the run)")
    args = p.parse_args(argv)
    if args.baseline_steps is None:
        args.baseline_steps = 2 if args.profile == "ffhq1024" else 5

    profile = get_profile(args.profile)
    device = zoo.resolve_device(args.device)
    if profile.needs_weights:
        return full_size_table(args, profile, device)
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
                x = torch.cat([imaging.load_image(src / f"{Path(n).stem}.png", size=size) for n in names]).to(device)
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
            rows.append({"method": "Baseline (300 steps)", "s_per_image": sec_k + (ds.BASELINE.steps - k) * step,
                         "basis": f"T({k}) + {ds.BASELINE.steps - k} x {step:.3f} s/step"})
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
