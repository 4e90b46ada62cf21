"""Importing any module builds, opens, downloads and prints nothing (STYLE.md)."""

import pkgutil
import subprocess
import sys
from pathlib import Path

import redestyle


def _modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(redestyle.__path__, "redestyle.")
                  if not m.name.endswith("__main__"))


def test_every_module_imports_silently(tmp_path):
    code = (
        "import importlib, sys, torch\n"
        f"for name in {_modules()!r}:\n"
        "    importlib.import_module(name)\n"
        "assert not torch.cuda.is_initialized(), 'CUDA was initialised at import'\n"
        "import redestyle.ops._plugin as p\n"
        "assert p.load_plugin.cache_info().currsize == 0 if hasattr(p.load_plugin, 'cache_info') else True\n"
    )
    env = {"CUDA_VISIBLE_DEVICES": "", "PATH": "", "HOME": str(tmp_path), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(Path(redestyle.__file__).parents[1])}  # the tree under test, not the install
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "", f"importing printed: {out.stdout!r}"
    assert out.stderr == "", f"importing wrote to stderr: {out.stderr!r}"
    assert list(tmp_path.iterdir()) == [], "importing created files"
