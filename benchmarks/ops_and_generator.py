"""Speed of the StyleGAN2 generator (and its ops): prints a table, asserts nothing.

Usage: python benchmarks/ops_and_generator.py [--repeats 3] [--batches 1 8] [--skip-1024]
       [--device auto|cpu|cuda] [--force-bf16] [--skip-official]

Rows: G1024 and the tiny profile (size 64, style_dim 64), fp32 and bf16 autocast, reference ops and
(on a CUDA device) the compiled ops. ``official`` is the official computation
(``benchmarks/_official.py``: rosinality's model with its CPU fallback ops, NCHW, per-sample weights
and one grouped conv, ``upfirdn2d_native``, separate noise / bias / activation passes) on the same
weights, timed in the same run: after one warm-up of each, ours and the official alternate for
``--repeats`` rounds (other processes share this machine's cores: alternating spreads their load
over both), and the table gives the min (the least disturbed run) and the median, per image.
``x official`` = official min / our min; ``max|diff|`` checks our output against the official one.
``bf16 err`` = max|bf16 - fp32| / max|fp32| of the output image (the official code has no bf16 path:
bf16 rows are compared with the official fp32 time).

bf16 on a CPU without native bf16 (avx512_bf16 / amx_bf16) runs oneDNN's emulation, tens of times
slower than fp32; those rows are skipped (with a note) for G1024 unless --force-bf16.
"""

from __future__ import annotations

import argparse
import statistics

import torch

# siblings in benchmarks/ (the script's folder is on sys.path)
from _official import OfficialGenerator
from _timing import alternating

from redestyle.experiments import format_table
from redestyle.nets.stylegan2 import Generator
from redestyle.ops import use_backend

TINY = {"size": 64, "style_dim": 64, "channels": {4: 64, 8: 64, 16: 32, 32: 32, 64: 16}}


def cpu_has_native_bf16() -> bool:
    """True when this CPU has bf16 dot-product instructions (Linux /proc/cpuinfo flags)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--skip-1024", action="store_true", help="tiny profile only")
    parser.add_argument("--skip-official", action="store_true", help="time ours only")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument(
        "--force-bf16", action="store_true", help="time G1024 bf16 even without native bf16"
    )
    args = parser.parse_args()
    device = torch.device(
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else args.device.replace("auto", "cpu")
    )
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    native_bf16 = device.type == "cuda" or cpu_has_native_bf16()

    backends = ["reference", "cuda"] if device.type == "cuda" else ["reference"]
    print(
        f"device: {device} ({torch.cuda.get_device_name() if device.type == 'cuda' else 'CPU'}), "
        f"threads {torch.get_num_threads()}, cpu capability {torch.backends.cpu.get_cpu_capability()}, "
        f"native bf16: {native_bf16}, torch {torch.__version__}"
    )

    configs = [] if args.skip_1024 else [("G1024", {"size": 1024})]
    configs.append(("tiny64", TINY))
    cols = ["net", "batch", "dtype", "ops", "ours_min", "ours_med", "official_min", "official_med",
            "x_official", "max|diff|", "bf16_err"]
    rows = []
    torch.set_grad_enabled(False)
    for name, cfg in configs:
        torch.manual_seed(0)
        G = Generator(**cfg).eval().to(device)
        official = OfficialGenerator(G)
        for batch in args.batches:
            w_plus = G.mapping(torch.randn(batch, G.style_dim, device=device))[:, None].repeat(
                1, G.n_latent, 1
            )
            for ops in backends:
                with use_backend(ops):
                    fns = {"ours": lambda G=G, w=w_plus: G.decode(w)}
                    if not args.skip_official:
                        fns["official"] = lambda w=w_plus, o=official: o.decode(w)
                    res = alternating(fns, device, repeats=args.repeats)
                    secs, ref = res["ours"]
                    row = {"net": name, "batch": batch, "dtype": "fp32", "ops": ops,
                           "ours_min": min(secs) / batch, "ours_med": statistics.median(secs) / batch}
                    off_min = float("nan")
                    if "official" in res:
                        off, out_off = res["official"]
                        off_min = min(off) / batch
                        row.update(official_min=off_min, official_med=statistics.median(off) / batch,
                                   x_official=off_min / row["ours_min"],
                                   **{"max|diff|": (ref - out_off).abs().max().item()})
                    rows.append(row)
                    print(_line(row, cols), flush=True)
                    if not native_bf16 and name == "G1024" and not args.force_bf16:
                        print(f"{name} batch {batch} bf16: skipped, no native bf16 on this CPU "
                              "(oneDNN emulation; --force-bf16 to time it anyway)", flush=True)
                        continue
                    with torch.autocast(device.type, dtype=torch.bfloat16):
                        res = alternating({"ours": fns["ours"]}, device, repeats=args.repeats)
                    secs, out_bf = res["ours"]
                    err = ((out_bf.float() - ref).abs().max() / ref.abs().max()).item()
                    row = {"net": name, "batch": batch, "dtype": "bf16", "ops": ops,
                           "ours_min": min(secs) / batch, "ours_med": statistics.median(secs) / batch,
                           "official_min": off_min, "x_official": off_min / (min(secs) / batch),
                           "bf16_err": err}
                    rows.append(row)
                    print(_line(row, cols), flush=True)
    print("\nseconds per image (batch time / batch); official = benchmarks/_official.py, same run")
    table = [{c: r.get(c, float("nan")) for c in cols} for r in rows]
    for r in table:  # errors in scientific notation (the fixed 3 decimals would print 0.000)
        for c in ("max|diff|", "bf16_err"):
            r[c] = "n/a" if r[c] != r[c] else f"{r[c]:.1e}"
    print(format_table(table, cols, digits=3))
    return 0


def _line(row: dict, cols: list[str]) -> str:
    return " ".join(f"{c}={row[c]:.3g}" if isinstance(row.get(c), float) else f"{c}={row.get(c, '')}"
                    for c in cols if c in row)


if __name__ == "__main__":
    raise SystemExit(main())
