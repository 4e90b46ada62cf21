"""Figure helpers: grids, where figures are written."""

from pathlib import Path

import torch

from redestyle import viz


def test_relative_out_dir_goes_to_the_checkout_root(tmp_path, monkeypatch):
    monkeypatch.delenv("REDESTYLE_FIGURES_DIR", raising=False)
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    assert viz.resolve_out_dir("figures") == tmp_path / "figures"
    assert viz.resolve_out_dir(tmp_path / "x") == tmp_path / "x"
    monkeypatch.setenv("REDESTYLE_FIGURES_DIR", str(tmp_path / "scratch"))
    assert viz.resolve_out_dir("figures") == tmp_path / "scratch"


def test_save_figure_writes_atomically(tmp_path):
    fig = viz.image_grid([[torch.zeros(3, 8, 8), None]], col_labels=["a", "b"], title="t")
    path = viz.save_figure(fig, tmp_path, "f.png")
    assert path == tmp_path / "f.png" and path.read_bytes()[:4] == b"\x89PNG"
    assert [p.name for p in tmp_path.iterdir()] == ["f.png"]


def test_save_text_writes_one_newline_terminated_file(tmp_path):
    path = viz.save_text("a  b\n1  2", tmp_path / "sub", "t.txt")
    assert path.read_text() == "a  b\n1  2\n"
    assert [p.name for p in path.parent.iterdir()] == ["t.txt"]


def test_checkout_root_ignores_the_figures_override(tmp_path, monkeypatch):
    root = Path(__file__).resolve().parents[1]
    monkeypatch.setenv("REDESTYLE_FIGURES_DIR", str(tmp_path / "scratch"))
    monkeypatch.chdir(root / "notebooks")
    assert viz.checkout_root() == root  # where the committed records are, even under nbval
    monkeypatch.chdir(tmp_path)
    assert viz.checkout_root() is None
