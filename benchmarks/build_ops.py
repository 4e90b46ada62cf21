"""Compile (and import) the CUDA kernels of redestyle.ops, then print the backend report.

Usage: python benchmarks/build_ops.py [--fresh]
Works without a GPU when nvcc is installed (compile check only). --fresh builds into a new
temporary TORCH_EXTENSIONS_DIR so cached objects cannot hide a broken source.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fresh", action="store_true", help="build in a new temporary directory")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.fresh:
        os.environ["TORCH_EXTENSIONS_DIR"] = tempfile.mkdtemp(prefix="redestyle_ops_")
    os.environ.setdefault("REDESTYLE_OPS", "auto")
    from redestyle import ops  # after the environment is set up

    start = time.perf_counter()
    report = ops.build_all()
    elapsed = time.perf_counter() - start
    for op, (status, reason) in report.items():
        print(f"{op:10s} {status:9s} {reason}")
    print(f"build_all: {elapsed:.1f} s")
    failed = [op for op, (status, _) in report.items() if status != "cuda"]
    for op in failed:
        error = ops._plugin.load_plugin(op).error
        if error:
            print(f"--- {op} build log ---\n{error}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
