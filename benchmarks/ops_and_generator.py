"""Speed of the StyleGAN2 generator (and its ops): prints a table, asserts nothing.

Usage: python benchmarks/ops_and_generator.py [--repeats 3] [--batches 1 4] [--skip-1024]
       [--device auto|cpu|cuda] [--force-bf16]

Rows: G1024 and the tiny profile (size 64, style_dim 64), fp32 and bf16 autocast, reference ops and
(on a CUDA device) the compiled ops. Times are the minimum over ``--repeats`` runs after one warm-up
(other processes share this machine's cores: the minimum is the least disturbed run). ``naive`` is the
official computation order (NCHW, one grouped conv of per-sample weights, separate noise / bias /
activation passes, upfirdn2d blur) on the same weights and machine: the baseline for our fast path;
its ``max|diff|`` column checks the fast path against it. ``bf16 err`` = max|bf16 - fp32| / max|fp32|
of the output image.

bf16 on a CPU without native bf16 (avx512_bf16 / amx_bf16) runs oneDNN's emulation, tens of times
slower than fp32; those rows are skipped (with a note) for G1024 unless --force-bf16.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from _timing import timed  # benchmarks/_timing.py (the script's folder is on sys.path)

from redestyle.nets.stylegan2 import Generator
from redestyle.ops import fused_leaky_relu, upfirdn2d, use_backend

TINY = {"size": 64, "style_dim": 64, "channels": {4: 64, 8: 64, 16: 32, 32: 32, 64: 16}}


def cpu_has_native_bf16() -> bool:
    """True when this CPU has bf16 dot-product instructions (Linux /proc/cpuinfo flags)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def naive_decode(G: Generator, w_plus: torch.Tensor) -> torch.Tensor:
    """The official computation order on G's weights (registered noise): the baseline."""

    def modulated(m, x, style):
        b, c, h, w = x.shape
        k = m.kernel_size
        weight = m.scale * m.weight * m.modulation(style).view(b, 1, c, 1, 1)
        if m.demodulate:
            weight = weight * torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + 1e-8).view(b, -1, 1, 1, 1)
        x = x.reshape(1, b * c, h, w)
        if m.upsample:
            weight = weight.transpose(1, 2).reshape(b * c, m.out_channel, k, k)
            out = F.conv_transpose2d(x, weight, stride=2, groups=b)
            out = upfirdn2d(
                out.view(b, m.out_channel, *out.shape[2:]), m.blur.kernel, pad=m.blur.pad
            )
            return out
        out = F.conv2d(x, weight.reshape(b * m.out_channel, c, k, k), padding=m.padding, groups=b)
        return out.view(b, m.out_channel, *out.shape[2:])

    def styled(layer, x, style, noise):
        out = modulated(layer.conv, x, style) + layer.noise.weight * noise
        return fused_leaky_relu(out, layer.activate.bias)

    def to_rgb(layer, x, style, skip):
        out = modulated(layer.conv, x, style) + layer.bias
        if skip is not None:
            out = out + upfirdn2d(skip, layer.upsample.kernel, up=2, pad=layer.upsample.pad)
        return out

    noise = G.registered_noise()
    out = G.input.input.repeat(w_plus.shape[0], 1, 1, 1)
    out = styled(G.conv1, out, w_plus[:, 0], noise[0])
    skip = to_rgb(G.to_rgb1, out, w_plus[:, 1], None)
    for k in range(len(G.to_rgbs)):
        i = 2 * k + 1
        out = styled(G.convs[2 * k], out, w_plus[:, i], noise[i])
        out = styled(G.convs[2 * k + 1], out, w_plus[:, i + 1], noise[i + 1])
        skip = to_rgb(G.to_rgbs[k], out, w_plus[:, i + 2], skip)
    return skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--skip-1024", action="store_true", help="tiny profile only")
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

    def best_of(fn):
        """(min seconds over --repeats calls after one warm-up, last output)."""
        return timed(fn, device, repeats=args.repeats, warmup=True, reduce=min)

    backends = ["reference", "cuda"] if device.type == "cuda" else ["reference"]
    print(
        f"device: {device} ({torch.cuda.get_device_name() if device.type == 'cuda' else 'CPU'}), "
        f"threads {torch.get_num_threads()}, cpu capability {torch.backends.cpu.get_cpu_capability()}, "
        f"native bf16: {native_bf16}, torch {torch.__version__}"
    )

    configs = [] if args.skip_1024 else [("G1024", {"size": 1024})]
    configs.append(("tiny64", TINY))
    header = f"{'net':7s} {'batch':>5s} {'dtype':>5s} {'ops':>9s} {'fast s':>8s} {'naive s':>8s} {'speedup':>7s} {'max|diff|':>9s} {'bf16 err':>8s}"
    print(header)
    print("-" * len(header))
    torch.set_grad_enabled(False)
    for name, cfg in configs:
        torch.manual_seed(0)
        G = Generator(**cfg).eval().to(device)
        for batch in args.batches:
            w_plus = G.mapping(torch.randn(batch, G.style_dim, device=device))[:, None].repeat(
                1, G.n_latent, 1
            )
            for ops in backends:
                with use_backend(ops):
                    t_fast, ref = best_of(lambda G=G, w=w_plus: G.decode(w))
                    t_naive, naive = best_of(lambda G=G, w=w_plus: naive_decode(G, w))
                    diff = (ref - naive).abs().max().item()
                    print(
                        f"{name:7s} {batch:5d} {'fp32':>5s} {ops:>9s} {t_fast:8.3f} {t_naive:8.3f} "
                        f"{t_naive / t_fast:6.2f}x {diff:9.2e} {'':>8s}",
                        flush=True,
                    )
                    if not native_bf16 and name == "G1024" and not args.force_bf16:
                        print(
                            f"{name:7s} {batch:5d} {'bf16':>5s} {ops:>9s}  skipped: no native bf16 on this CPU "
                            "(oneDNN emulation; --force-bf16 to time it anyway)",
                            flush=True,
                        )
                        continue
                    with torch.autocast(device.type, dtype=torch.bfloat16):
                        t_bf, out_bf = best_of(lambda G=G, w=w_plus: G.decode(w))
                        t_nbf, _ = best_of(lambda G=G, w=w_plus: naive_decode(G, w))
                    err = ((out_bf.float() - ref).abs().max() / ref.abs().max()).item()
                    print(
                        f"{name:7s} {batch:5d} {'bf16':>5s} {ops:>9s} {t_bf:8.3f} {t_nbf:8.3f} "
                        f"{t_nbf / t_bf:6.2f}x {'':>9s} {err:8.2%}",
                        flush=True,
                    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
