"""One prepared GPU check: kernel parity, throughput grid, baseline step, fine-tune iteration -> JSON + table.

Usage (on a machine with one CUDA GPU; budget < 8 minutes):

    python benchmarks/gpu_check.py --out gpu_check.json            # the full check
    python benchmarks/gpu_check.py --dry-run                         # the plan only, nothing runs
    python benchmarks/gpu_check.py --profile tiny --device cpu --modes eager   # CPU smoke run

What it does, in this order (cells that would start after ``--budget`` seconds are recorded as
``skipped``, so the run ends in time whatever the GPU):

1. ``parity_tests``: ``pytest tests/ops/test_cuda_parity.py`` (the CUDA kernels vs the reference
   ops: values, 1st and 2nd-order gradients, fp32 and fp16), as a subprocess; counts and tail.
2. The throughput grid, one cell per (workload, batch, dtype, mode), in images/s:
   workloads ``g_forward`` (StyleGAN2 1024 W+ -> image), ``restyle_iteration`` (IR-SE50 encoder on
   cat(image, feedback) + 1024 synthesis + pool to 256) and ``redestyle_531`` (the whole Re-Destyle
   5-3-1: 9 iterations, exact hand-off); batches ``--batches`` (1 8 32); dtypes fp32 (TF32 off:
   exact), bf16 and fp16 autocast; modes ``eager`` (CUDA kernels of redestyle.ops), ``cuda_graph``
   (the whole call captured once and replayed; autocast without its weight cache) and ``compile``
   (``torch.compile`` of the generator's ``decode`` and of the encoder, reference ops so that
   nothing breaks the graph; its compile time is reported separately). ``rel_err`` = max|out -
   out_fp32_eager| / max|out_fp32_eager| of the output image of the same cell at fp32 eager.
   Eager cells run first, then the baseline and the fine-tune iteration, then CUDA graphs, then
   compile (the slowest to start).
3. ``baseline_step``: the optimisation baseline (DualStyleGAN destylize.py; g' forward + backward
   at 1024, LPIPS, ID), batch 1 fp32: mean seconds of steps 2-3.
4. ``finetune_iteration``: one DualStyleGAN fine-tune iteration per kind (benchmarks/finetune_speed.py),
   the 16-iteration cycle mean.

Every cell records its peak GPU memory (``torch.cuda.max_memory_allocated``, MiB). Weights are the
full architectures at seeded random init (the timing does not depend on weight values; the
error columns then measure random networks). Errors never stop the run: a failing cell records
its error line.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import torch

# sibling in benchmarks/ (the script's folder is on sys.path)
from _timing import sync as _sync
from _timing import timed

from redestyle.experiments import format_table

SCHEMA = 1
ROOT = Path(__file__).resolve().parents[1]
WORKLOADS = ("g_forward", "restyle_iteration", "redestyle_531")
DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
MODES = ("eager", "cuda_graph", "compile")
STATUSES = ("ok", "error", "skipped", "planned")
CELL_KEYS = ("kind", "workload", "batch", "dtype", "mode", "status", "seconds", "images_per_s",
             "peak_mem_mib", "rel_err", "compile_s", "note")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", default="ffhq1024", choices=["ffhq1024", "tiny"])
    p.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--dtypes", nargs="+", default=list(DTYPES), choices=list(DTYPES))
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    p.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    p.add_argument("--budget", type=float, default=400.0,
                   help="seconds after which no new cell starts (default 400: the run ends < 8 min)")
    p.add_argument("--skip-tests", action="store_true", help="do not run the CUDA parity tests")
    p.add_argument("--skip-train", action="store_true", help="no baseline step, no fine-tune iteration")
    p.add_argument("--out", default="gpu_check.json", help="JSON output (the table goes to stdout)")
    p.add_argument("--dry-run", action="store_true", help="write the plan (status 'planned'), run nothing")
    return p.parse_args(argv)


def new_cell(kind: str, workload: str, batch: int = 1, dtype: str = "fp32", mode: str = "eager") -> dict:
    """A result row with every schema key (status 'planned' until it runs)."""
    return {"kind": kind, "workload": workload, "batch": batch, "dtype": dtype, "mode": mode,
            "status": "planned", "seconds": None, "images_per_s": None, "peak_mem_mib": None,
            "rel_err": None, "compile_s": None, "note": ""}


def plan(args) -> list[dict]:
    """Every cell in run order: eager grid, training cells, CUDA graphs, compile."""
    def grid(mode):
        return [new_cell("throughput", w, b, d, mode)
                for w in args.workloads for b in args.batches for d in args.dtypes]

    cells = grid("eager") if "eager" in args.modes else []
    if not args.skip_train:
        cells += [new_cell("train", "baseline_step"), new_cell("train", "finetune_iteration")]
    for mode in ("cuda_graph", "compile"):
        if mode in args.modes:
            cells += grid(mode)
    return cells


def run_parity_tests(device: torch.device) -> dict:
    """pytest tests/ops/test_cuda_parity.py in a subprocess: {status, rc, passed, failed, skipped, tail}."""
    if device.type != "cuda":
        return {"status": "skipped", "rc": None, "passed": 0, "failed": 0, "skipped": 0,
                "tail": "no CUDA device"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/ops/test_cuda_parity.py"]
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
        out, rc = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        out, rc = f"timeout after 300 s\n{exc.stdout or ''}", -1
    counts = {k: 0 for k in ("passed", "failed", "skipped", "error")}
    for n, what in re.findall(r"(\d+) (passed|failed|skipped|error)", out.strip().splitlines()[-1] if out.strip() else ""):
        counts[what] = int(n)
    return {"status": "ok" if rc == 0 else "error", "rc": rc, "passed": counts["passed"],
            "failed": counts["failed"] + counts["error"], "skipped": counts["skipped"],
            "tail": "\n".join(out.strip().splitlines()[-15:])}


def build_models(profile: str, device: torch.device):
    """The destylization networks: seeded random weights at 1024, the tiny profile's otherwise."""
    from redestyle import zoo

    kwargs = dict(methods=["restyle_psp", "dsg_zplus"], with_lpips=True, g_prime_style=zoo.default_style(profile))
    if profile == "tiny":
        return zoo.build_models("tiny", device=device, **kwargs)
    from redestyle.nets.irse import Backbone, IDFeatures

    models = zoo.build_models(profile, random_weights=True, **kwargs)
    models.id_features = IDFeatures(Backbone(112, 50, "ir_se").eval()).eval()
    return models.to(device)


def workload(name: str, models, x: torch.Tensor, *, compiled: bool):
    """A no-argument callable running workload ``name`` on the batch ``x`` -> output image."""
    from redestyle.destylize import compile_networks, redestyle
    from redestyle.inversion import restyle

    enc, g = models.encoder("restyle_psp"), models.generator
    if compiled:  # what `redestyle destylize --compile` does
        enc, g = compile_networks(enc, g)
    avg, avg_image = models.latent_avg, models.avg_image
    if name == "g_forward":
        gen = torch.Generator(device="cpu").manual_seed(0)
        z = torch.randn(x.shape[0], g.style_dim, generator=gen).to(x.device)
        w_plus = g.mapping(z)[:, None].expand(-1, g.n_latent, -1).contiguous()
        return lambda: g.decode(w_plus)
    if name == "restyle_iteration":
        return lambda: restyle(enc, g, x, n_iters=1, latent_avg=avg, avg_image=avg_image)[-1].image
    if name == "redestyle_531":
        return lambda: redestyle(enc, g, x, schedule="5-3-1", latent_avg=avg, avg_image=avg_image).image
    raise ValueError(f"unknown workload {name!r}")


def capture(fn, device: torch.device):
    """``fn`` captured into a CUDA graph; the returned callable replays it and returns its (static) output."""
    stream = torch.cuda.Stream(device)
    stream.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(stream):
        fn()  # warm-up off the capture: allocator pools, cuBLAS / cuDNN workspaces, lazy builds
    torch.cuda.current_stream(device).wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fn()

    def replay():
        graph.replay()
        return out

    return replay


def _reset_peak(device):
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak(device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def _timed(fn, device, *, max_reps: int = 3, max_s: float = 3.0) -> tuple[float, object]:
    """(min seconds over up to ``max_reps`` calls, stopping after ``max_s``), last output."""
    seconds, out, start = [], None, time.perf_counter()
    while len(seconds) < max_reps and (not seconds or time.perf_counter() - start < max_s):
        sec, out = timed(fn, device)
        seconds.append(sec)
    return min(seconds), out


def run_throughput(cell: dict, models, x: torch.Tensor, device: torch.device, refs: dict) -> None:
    """Fill ``cell`` (a throughput cell) in place; ``refs`` holds the fp32 eager outputs."""
    from redestyle.ops import use_backend

    mode, dtype = cell["mode"], DTYPES[cell["dtype"]]
    if mode == "cuda_graph" and device.type != "cuda":
        cell.update(status="skipped", note="CUDA graphs need a CUDA device")
        return
    fn = workload(cell["workload"], models, x, compiled=mode == "compile")
    amp = (torch.autocast(device.type, dtype=dtype, cache_enabled=mode != "cuda_graph")
           if dtype is not None else contextlib.nullcontext())
    ops = use_backend("reference") if mode == "compile" else contextlib.nullcontext()

    def call():
        with torch.no_grad(), amp, ops:
            return fn()

    _reset_peak(device)
    start = time.perf_counter()
    if mode == "cuda_graph":
        call = capture(call, device)
    call()  # warm-up (compile: the compilation itself)
    _sync(device)
    if mode != "eager":
        cell["compile_s"] = time.perf_counter() - start
    sec, out = _timed(call, device)
    key = (cell["workload"], cell["batch"])
    out = out.float()
    if mode == "eager" and cell["dtype"] == "fp32":
        refs[key] = out.clone()
    if key in refs:
        ref = refs[key]
        cell["rel_err"] = ((out - ref).abs().max() / ref.abs().max()).item()
    cell.update(status="ok", seconds=sec, images_per_s=cell["batch"] / sec, peak_mem_mib=_peak(device))


def run_baseline_step(cell: dict, models, x: torch.Tensor, device: torch.device) -> None:
    """Mean seconds of baseline steps 2-3 (step 1 warms up), batch 1, fp32."""
    from redestyle import destylize as ds

    ticks = []

    def tick(i, loss):
        _sync(device)
        ticks.append(time.perf_counter())

    _reset_peak(device)
    fn = ds.make_destylizer(models, ds.DestyleOptions(method="baseline", steps=3), progress=tick)
    fn(x[:1])
    sec = (ticks[-1] - ticks[0]) / (len(ticks) - 1)
    cell.update(status="ok", seconds=sec, images_per_s=1 / sec, peak_mem_mib=_peak(device),
                note="s per Adam step (300 steps per image): mean of steps 2-3")


def run_finetune_iteration(cell: dict, profile: str, device: torch.device) -> None:
    """DualStyleGAN fine-tune iteration, 16-iteration cycle mean (benchmarks/finetune_speed.py)."""
    import finetune_speed  # sibling script (the script's folder is on sys.path)

    _reset_peak(device)
    rows = finetune_speed.bench(profile, device, argparse.Namespace(seed=0, batch=1, repeats=1,
                                                                    ckpt=None, weights=None))
    sec = rows[-1]["s_per_iter"]
    cell.update(status="ok", seconds=sec, images_per_s=1 / sec, peak_mem_mib=_peak(device),
                note="s per iteration (cycle mean, batch 1, ADA on); images_per_s = iterations/s")


def table(result: dict) -> str:
    """The cells as a fixed-width table (plus the parity-test line)."""
    t = result["parity_tests"]
    head = (f"CUDA kernel parity tests: {t['status']} ({t['passed']} passed, {t['failed']} failed, "
            f"{t['skipped']} skipped)")
    cols = ["workload", "batch", "dtype", "mode", "status", "images_per_s", "seconds", "peak_mem_mib",
            "rel_err", "compile_s"]
    rows = [{c: float("nan") if cell[c] is None else cell[c] for c in cols} for cell in result["cells"]]
    for row, cell in zip(rows, result["cells"]):
        if cell["rel_err"] is not None:
            row["rel_err"] = f"{cell['rel_err']:.1e}"
    return head + "\n" + format_table(rows, cols, digits=3)


def device_info(device: torch.device) -> dict:
    info = {"type": device.type, "torch": torch.__version__, "python": platform.python_version(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads()}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(name=props.name, memory_gib=props.total_memory / 2**30, cuda=torch.version.cuda,
                    capability=f"{props.major}.{props.minor}")
    return info


def main(argv=None) -> int:
    args = parse_args(argv)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else args.device.replace("auto", "cpu"))
    if device.type == "cuda":  # fp32 means fp32: no TF32 in matmuls or convolutions
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    t0 = time.perf_counter()
    cells = plan(args)
    result = {"schema": SCHEMA, "created": datetime.datetime.now(datetime.UTC).isoformat(),
              "profile": args.profile, "device": device_info(device), "budget_s": args.budget,
              "weights": "seeded random (full architectures)" if args.profile == "ffhq1024" else "tiny profile",
              "parity_tests": {"status": "planned", "rc": None, "passed": 0, "failed": 0, "skipped": 0,
                               "tail": ""},
              "cells": cells, "elapsed_s": None}
    if not args.dry_run:
        if not args.skip_tests:
            result["parity_tests"] = run_parity_tests(device)
        else:
            result["parity_tests"].update(status="skipped", tail="--skip-tests")
        print(f"parity tests: {result['parity_tests']['status']}", flush=True)
        models = build_models(args.profile, device)
        size = models.avg_image.shape[-1]
        gen = torch.Generator().manual_seed(0)
        images = (torch.rand(max(args.batches), 3, size, size, generator=gen) * 2 - 1).to(device)
        refs: dict = {}
        for cell in cells:
            if time.perf_counter() - t0 > args.budget:
                cell.update(status="skipped", note=f"time budget ({args.budget:.0f} s) spent")
                continue
            try:
                if cell["workload"] == "baseline_step":
                    run_baseline_step(cell, models, images, device)
                elif cell["workload"] == "finetune_iteration":
                    run_finetune_iteration(cell, args.profile, device)
                else:
                    run_throughput(cell, models, images[: cell["batch"]].contiguous(), device, refs)
            except Exception as exc:  # one failing cell (OOM, capture, compile) must not end the check
                cell.update(status="error", note=f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
                             if str(exc) else type(exc).__name__)
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            print(f"{cell['workload']} b{cell['batch']} {cell['dtype']} {cell['mode']}: {cell['status']} "
                  f"{cell['images_per_s'] or ''} {cell['note']}", flush=True)
    result["elapsed_s"] = time.perf_counter() - t0
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"\nGPU check ({result['device'].get('name', device.type)}, profile {args.profile}, "
          f"{result['weights']}; {result['elapsed_s']:.0f} s) -> {args.out}")
    print(table(result))
    ok = [c["images_per_s"] for c in cells if c["workload"] == "redestyle_531" and c["status"] == "ok"]
    if ok:
        print(f"best Re-Destyle 5-3-1 throughput: {max(ok):.2f} images/s (goal >= 100 on an H100-class "
              "GPU; paper: 0.69 on an RTX 3090)")
    return 0


def validate(result: dict) -> list[str]:
    """Problems with a gpu_check JSON (empty when it follows the schema); used by the tests."""
    problems = []
    for key in ("schema", "created", "profile", "device", "parity_tests", "cells", "elapsed_s"):
        if key not in result:
            problems.append(f"missing key {key!r}")
    for i, cell in enumerate(result.get("cells", [])):
        if set(cell) != set(CELL_KEYS):
            problems.append(f"cell {i}: keys {sorted(set(cell) ^ set(CELL_KEYS))} differ from the schema")
        if cell.get("status") not in STATUSES:
            problems.append(f"cell {i}: status {cell.get('status')!r}")
        if cell.get("status") == "ok" and not (cell.get("seconds") or 0) > 0:
            problems.append(f"cell {i}: ok without a positive time")
    return problems


if __name__ == "__main__":
    raise SystemExit(main())
