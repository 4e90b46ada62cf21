"""Shared test helpers: parity fixtures (DESIGN.md 'Test contracts') and op backends."""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).parent
DEFAULT_PARITY_DIR = HERE / "fixtures" / "parity"


def parity_dir() -> Path:
    """tests/fixtures/parity, or $REDESTYLE_PARITY_DIR (same layout as ../shared/parity)."""
    return Path(os.environ.get("REDESTYLE_PARITY_DIR") or DEFAULT_PARITY_DIR)


@dataclass
class ParityFixture:
    name: str
    root: Path
    meta: dict
    data: dict
    rule: object

    def weights(self, name: str | None = None, *, manifest: str = "manifest.json", prefix: str = "") -> dict:
        """Rule-generated state dict of fixture ``name`` (default: this one), fingerprint-verified."""
        folder = str(self.root.parent / (name or self.name))
        return self.rule.build_weights(folder, which=manifest, prefix=prefix)

    def tol(self, output: str) -> dict:
        tol = self.meta["per_output"][output]["tolerance"]
        return {"atol": tol["atol"], "rtol": tol.get("rtol", 0.0)}

    def check(self, output: str, got: torch.Tensor) -> None:
        """Assert ``got`` matches the stored official output within the fixture tolerance."""
        want = self.data[output]
        assert got.shape == want.shape, f"{output}: shape {tuple(got.shape)} != {tuple(want.shape)}"
        tol = self.tol(output)
        err = (got.detach().double().cpu() - want.double()).abs().max().item()
        limit = tol["atol"] + tol["rtol"] * want.abs().max().item()
        assert err <= limit, f"{self.name} {output}: max abs err {err:.3g} > atol {limit:.3g}"


def samples_dir() -> Path:
    """DualStyleGAN's sample images: $REDESTYLE_DATA or ../shared/data beside the checkout.

    They are not part of the repository (their licences forbid it): tests that need them skip
    with this reason when the folder is absent.
    """
    root = Path(os.environ.get("REDESTYLE_DATA") or HERE.parents[1] / "shared" / "data")
    folder = root / "dualstylegan-samples"
    if not folder.is_dir():
        pytest.skip(f"sample images not found at {folder} (set REDESTYLE_DATA to the folder "
                    "holding dualstylegan-samples/)")
    return folder


def _load_rule(root: Path):
    spec = importlib.util.spec_from_file_location("parity_rule", root / "rule.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_parity(name: str) -> ParityFixture:
    """Load one parity fixture; a missing fixture fails (never skips)."""
    root = parity_dir()
    folder = root / name
    if not (folder / "data.pt").is_file():
        pytest.fail(f"parity fixture {name!r} missing: {folder}/data.pt (REDESTYLE_PARITY_DIR={root})")
    meta = json.loads((folder / "meta.json").read_text())
    data = torch.load(folder / "data.pt", map_location="cpu", weights_only=True)
    return ParityFixture(name, folder, meta, data, _load_rule(root))


@pytest.fixture(autouse=True)
def _reference_ops(request):
    """Every test runs the reference ops unless it is marked ``cuda``."""
    from redestyle.ops import use_backend

    if request.node.get_closest_marker("cuda"):
        yield
        return
    with use_backend("reference"):
        yield


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="no CUDA device on this machine (run on the lent GPU)")
    for item in items:
        if item.get_closest_marker("cuda"):
            item.add_marker(skip)
