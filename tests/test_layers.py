"""The import contract of DESIGN.md: layers only point down, no cycles, imports at module top.

The graph is read from the source (``ast``), not by importing, so an import hidden in a function
body counts as much as one at the top. Every module of the package must be given a layer here:
a new module fails this test until its place in the map (README "Layout") is decided.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "redestyle"

#: Layer of each module (the longest matching dotted prefix wins). Each layer imports only from
#: its own layer and the ones below; README "Layout" is the same map in words.
LAYERS: dict[str, int] = {
    # 0: networks and kernels (official key names), nothing of the package above them
    "redestyle.ops": 0,
    "redestyle.nets": 0,
    # 1: images in/out and the one input policy; atomic writes and the report layout; profiles
    "redestyle": 1,  # the package __init__ (version only)
    "redestyle.imaging": 1,
    "redestyle.fileio": 1,
    "redestyle.folderlock": 1,
    "redestyle.config": 1,
    "redestyle.miniature.render": 1,  # numpy only: the procedural faces
    # 2: weight files (official registry, the mini profile's shipped files); model bundles per profile
    "redestyle.checkpoints": 2,
    "redestyle.miniature.models": 2,
    "redestyle.miniature.idnet": 2,  # the mini profile's ID network (architecture, data, measure)
    "redestyle.miniature.perceptual": 2,  # the mini profile's LPIPS trunk and distance
    "redestyle.zoo": 2,
    # 3: inversion loops and losses
    "redestyle.inversion": 3,
    "redestyle.losses": 3,
    # 4: algorithms over tensors; alignment; the bundled samples
    "redestyle.destylize": 4,
    "redestyle.metrics": 4,
    "redestyle.stats": 4,  # bootstrap intervals over units, paired differences (numpy)
    "redestyle.align": 4,
    "redestyle.data": 4,
    # 5: training (DualStyleGAN, miniature world), style transfer, evaluation sets and measures
    "redestyle.train": 5,
    "redestyle.transfer": 5,
    "redestyle.miniature": 5,
    "redestyle.accuracy": 5,
    "redestyle.miniature.protocol": 5,  # the held-out accuracy protocol (oracle-judged, with intervals)
    # 6: the presentation layer: the paper's experiments, figures, grids, widgets (notebooks call these)
    "redestyle.experiments": 6,
    "redestyle.viz": 6,
    # 7: folder jobs, the notebook runner
    "redestyle.jobs": 7,
    "redestyle.reproduce": 7,
    # 8: the command line
    "redestyle.cli": 8,
    "redestyle.__main__": 8,
}

#: The command line loads a verb's modules only when that verb runs, so that ``redestyle --help``
#: and every verb's ``--help`` import no torch (tests/test_cli.py); the parsers live in these two.
LAZY_ENTRY_POINTS = {"redestyle.cli", "redestyle.train.cli"}

#: Third-party modules that may be imported inside a function: heavy or optional ones that most
#: callers never need (DESIGN.md), plus the CUDA build machinery and progress/summary writers.
LAZY_ALLOWED = {
    "dlib", "matplotlib", "papermill", "lpips", "ipywidgets", "IPython", "skimage", "scipy",
    "tqdm", "torch.utils.tensorboard", "torch.utils.cpp_extension", "torchvision", "torch.distributed",
}


def _modules() -> dict[str, Path]:
    mods = {}
    for f in PACKAGE.rglob("*.py"):
        parts = f.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mods[name] = f
    return mods


MODULES = _modules()


def _layer(name: str) -> int:
    best = max((p for p in LAYERS if name == p or name.startswith(p + ".")), key=len, default=None)
    if best is None:
        raise KeyError(name)
    return LAYERS[best]


def _targets(cur: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """Dotted names an import statement reaches (absolute; ``from x import y`` gives x and x.y)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = node.module or ""
    if node.level:
        parts = cur.split(".") if MODULES[cur].name == "__init__.py" else cur.split(".")[:-1]
        parts = parts[: len(parts) - (node.level - 1)]
        base = ".".join(parts + ([base] if base else []))
    return [base] + [f"{base}.{a.name}" for a in node.names]


def _imports():
    """(module, line, imported module or package-internal target, inside a function?) for every import."""
    out = []
    for cur, path in MODULES.items():
        tree = ast.parse(path.read_text())
        inside = set()
        for fn in ast.walk(tree):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                inside.update(id(n) for n in ast.walk(fn) if n is not fn)
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            internal = set()
            for t in _targets(cur, node):
                while t and t not in MODULES:
                    t = t.rpartition(".")[0]
                if t and t != cur and not cur.startswith(t + "."):  # a parent __init__ is no dependency
                    internal.add(t)
            if internal:
                out += [(cur, node.lineno, t, id(node) in inside, True) for t in sorted(internal)]
            elif not (isinstance(node, ast.ImportFrom) and node.level):
                name = (f"{node.module}.{node.names[0].name}" if isinstance(node, ast.ImportFrom)
                        else node.names[0].name)
                out.append((cur, node.lineno, name, id(node) in inside, False))
    return out


IMPORTS = _imports()


def test_every_module_has_a_layer():
    missing = []
    for name in MODULES:
        try:
            _layer(name)
        except KeyError:
            missing.append(name)
    assert not missing, f"modules without a layer in tests/test_layers.py LAYERS: {missing}"


def test_layers_only_point_down():
    upward = [f"{cur}:{line} (layer {_layer(cur)}) imports {t} (layer {_layer(t)})"
              for cur, line, t, _, internal in IMPORTS if internal and _layer(t) > _layer(cur)]
    assert not upward, "imports that point up:\n" + "\n".join(upward)


def test_no_import_cycles():
    edges: dict[str, set[str]] = {m: set() for m in MODULES}
    for cur, _, t, _, internal in IMPORTS:
        if internal:
            edges[cur].add(t)
    cycles, state = [], {}

    def visit(v, stack):  # depth-first search; a back edge closes a cycle
        state[v] = "open"
        stack.append(v)
        for w in sorted(edges[v]):
            if state.get(w) == "open":
                cycles.append(stack[stack.index(w):] + [w])
            elif w not in state:
                visit(w, stack)
        stack.pop()
        state[v] = "done"

    for v in sorted(edges):
        if v not in state:
            visit(v, [])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_imports_sit_at_module_top():
    hidden = [f"{cur}:{line} imports {t} inside a function"
              for cur, line, t, inside, internal in IMPORTS
              if inside and cur not in LAZY_ENTRY_POINTS
              and (internal or not any(t == a or t.startswith(a + ".") for a in LAZY_ALLOWED))]
    assert not hidden, ("move these imports to the module top (only heavy optional third-party "
                        "modules may be imported lazily):\n" + "\n".join(hidden))


@pytest.mark.parametrize("name, layer", [("redestyle.nets.stylegan2", 0), ("redestyle.nets.lpips_vgg", 0),
                                         ("redestyle.zoo", 2), ("redestyle.miniature.world", 5),
                                         ("redestyle.miniature.models", 2), ("redestyle.train.cli", 5)])
def test_layer_lookup(name, layer):
    assert _layer(name) == layer


def test_the_contract_sees_hidden_and_upward_imports(tmp_path, monkeypatch):
    """The checks fail on what they exist to catch (a function-level upward import)."""
    pkg = tmp_path / "redestyle"
    (pkg / "nets").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "nets" / "__init__.py").write_text("")
    (pkg / "nets" / "x.py").write_text("def f():\n    from ..jobs import run\n")
    (pkg / "jobs.py").write_text("from .nets import x\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", pkg)
    monkeypatch.setattr(sys.modules[__name__], "MODULES", _modules())
    found = _imports()
    assert ("redestyle.nets.x", 2, "redestyle.jobs", True, True) in found
    monkeypatch.setattr(sys.modules[__name__], "IMPORTS", found)
    with pytest.raises(AssertionError, match="redestyle.nets.x:2 .layer 0. imports redestyle.jobs .layer 7."):
        test_layers_only_point_down()
    with pytest.raises(AssertionError, match="inside a function"):
        test_imports_sit_at_module_top()
    with pytest.raises(AssertionError, match="redestyle.jobs -> redestyle.nets.x -> redestyle.jobs"):
        test_no_import_cycles()
