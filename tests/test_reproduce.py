"""The papermill runner behind `redestyle reproduce`."""

import json
from pathlib import Path

import nbformat
import pytest

from redestyle import reproduce


def _notebook(path: Path, body: str) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "tiny"\nout_dir = "figures"\nseed = 0')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def _args(tmp_path, **kw):
    import argparse

    parser = argparse.ArgumentParser()
    reproduce.add_arguments(parser)
    argv = ["--notebooks", str(tmp_path / "nb"), "--figures", str(tmp_path / "fig"),
            "--executed", str(tmp_path / "exec")]
    for k, v in kw.items():
        argv += [f"--{k}", str(v)]
    return parser.parse_args(argv)


def test_find_notebooks_orders_and_filters(tmp_path):
    for name in ["02_b.ipynb", "01_a.ipynb", "notes.ipynb"]:
        (tmp_path / name).write_text("{}")
    assert [p.name for p in reproduce.find_notebooks(tmp_path)] == ["01_a.ipynb", "02_b.ipynb"]
    assert [p.name for p in reproduce.find_notebooks(tmp_path, ["2"])] == ["02_b.ipynb"]
    with pytest.raises(ValueError, match="no notebook numbered 07"):
        reproduce.find_notebooks(tmp_path, ["07"])


def _dumping_notebook(tmp_path, names: str) -> None:
    """nb/01_write.ipynb, which writes the parameters ``names`` ("a, b") to <out_dir>/p.json."""
    (tmp_path / "nb").mkdir()
    _notebook(tmp_path / "nb" / "01_write.ipynb",
              "import json, pathlib\n"
              "pathlib.Path(out_dir).mkdir(parents=True, exist_ok=True)\n"
              f"pathlib.Path(out_dir, 'p.json').write_text(json.dumps([{names}]))")


def test_runner_injects_parameters(tmp_path, capsys):
    _dumping_notebook(tmp_path, "profile, seed")
    code = reproduce.main(_args(tmp_path, seed=7))
    assert code == 0
    assert json.loads((tmp_path / "fig" / "p.json").read_text()) == ["mini", 7]  # the default profile
    assert (tmp_path / "exec" / "01_write.ipynb").is_file()
    assert "[1/1] 01_write.ipynb ... ok" in capsys.readouterr().out


def test_set_passes_notebook_parameters(tmp_path, capsys):
    _dumping_notebook(tmp_path, "n_iters, schedules, style")
    args = _args(tmp_path)
    args.set = ["n_iters=1", 'schedules=["1-1", "2"]', "style=cartoon"]
    assert reproduce.main(args) == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "fig" / "p.json").read_text()) == [1, ["1-1", "2"], "cartoon"]


@pytest.mark.parametrize("item, message", [("n_iters", "expected NAME=VALUE"), ("2x=1", "expected NAME=VALUE"),
                                           ("profile=tiny", "use reproduce's own option")])
def test_set_rejects_malformed_items(item, message):
    with pytest.raises(ValueError, match=message):
        reproduce.parse_settings([item])


def test_tiny_profile_warns_of_random_weights(tmp_path, capsys):
    (tmp_path / "nb").mkdir()
    _notebook(tmp_path / "nb" / "01_ok.ipynb", "x = 1")
    assert reproduce.main(_args(tmp_path, profile="tiny")) == 0
    captured = capsys.readouterr()
    assert "profile tiny" in captured.out and "tiny profile: random weights" in captured.err
    assert reproduce.main(_args(tmp_path)) == 0
    assert "warning" not in capsys.readouterr().err  # mini: trained weights


def test_failing_notebook_exits_nonzero_with_its_name(tmp_path, capsys):
    (tmp_path / "nb").mkdir()
    _notebook(tmp_path / "nb" / "01_ok.ipynb", "x = 1")
    _notebook(tmp_path / "nb" / "02_boom.ipynb", "raise RuntimeError('kaputt')")
    _notebook(tmp_path / "nb" / "03_never.ipynb", "x = 3")
    code = reproduce.main(_args(tmp_path))
    captured = capsys.readouterr()
    assert code == 1
    assert "02_boom.ipynb failed" in captured.err and "RuntimeError: kaputt" in captured.err
    assert not (tmp_path / "exec" / "03_never.ipynb").exists()


def test_no_notebooks_is_not_an_error(tmp_path, capsys):
    (tmp_path / "nb").mkdir()
    assert reproduce.main(_args(tmp_path)) == 0
    assert "no notebooks yet" in capsys.readouterr().out


@pytest.mark.slow
def test_every_notebook_runs_on_the_tiny_profile(tmp_path, capsys):
    """nbval checks the stored (mini) outputs; the random-weight tiny profile must keep running too."""
    root = Path(__file__).parents[1] / "notebooks"
    args = _args(tmp_path, profile="tiny")
    args.notebooks = str(root)
    assert reproduce.main(args) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert out.count(" ok (") == len(reproduce.find_notebooks(root))
    assert (tmp_path / "fig" / "fig1_encoder_comparison.png").is_file()
