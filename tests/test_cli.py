"""The command line: --help without torch, one default profile, and one line per error (no traceback)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import redestyle
from redestyle import cli
from redestyle.cli import build_parser
from redestyle.config import DEFAULT_PROFILE

ROOT = Path(redestyle.__file__).parents[1]
MINI_G_PRIME = ROOT / "redestyle" / "miniature" / "weights" / "g_prime.pt"


def _verbs() -> list[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "verb")
    return sorted(sub.choices)


def _env(tmp_path, **extra) -> dict:
    env = {"CUDA_VISIBLE_DEVICES": "", "PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path),
           "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "MPLCONFIGDIR": str(tmp_path / "mpl")}
    return {**env, **extra}


def redestyle_cmd(args, tmp_path, **env):
    """``python -m redestyle ARGS`` in a fresh process (the tree under test, no weights folder)."""
    return subprocess.run([sys.executable, "-m", "redestyle", *map(str, args)], capture_output=True, text=True,
                          env=_env(tmp_path, **env), cwd=tmp_path, timeout=600)


def test_top_level_help(tmp_path):
    out = redestyle_cmd(["--help"], tmp_path)
    assert out.returncode == 0, out.stderr
    assert "reproduce" in out.stdout and "weights" in out.stdout and "--debug" in out.stdout


@pytest.mark.parametrize("verb", _verbs())
def test_verb_help(verb, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([verb, "--help"])
    assert exit_info.value.code == 0
    assert verb in capsys.readouterr().out


def test_help_imports_no_torch(tmp_path):
    """Issue 15: building the parser (every verb's --help) must not import torch (it took 2.6-3.9 s)."""
    code = (
        "import sys\n"
        "from redestyle.cli import build_parser\n"
        f"for argv in [['--help'], *[[v, '--help'] for v in {_verbs()!r}]]:\n"
        "    try:\n"
        "        build_parser().parse_args(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision', 'lpips', 'dlib'))\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(tmp_path),
                         cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stderr, out.stderr[-2000:]


def test_min_side_in_help_matches_the_input_policy():
    from redestyle.imaging import MIN_SIDE

    assert cli.MIN_SIDE == MIN_SIDE


def test_every_verb_defaults_to_the_same_profile():
    parser = build_parser()
    assert DEFAULT_PROFILE == "mini"
    common = {"destylize": ["in", "--out", "o"], "train": ["finetune", "--images", "i", "--out", "o"],
              "reproduce": []}
    for verb, argv in common.items():
        assert parser.parse_args([verb, *argv]).profile == DEFAULT_PROFILE, verb
    # transfer follows the codes' codes_meta.json, else the default (cli_transfer)
    assert parser.parse_args(["transfer", "c.png", "--style-index", "0", "--codes", "c", "--ckpt", "g.pt"]).profile \
        is None


def test_unknown_profile_is_a_clear_error():
    from redestyle.config import get_profile

    with pytest.raises(ValueError, match="unknown profile 'ffhq512'; known: tiny, mini, ffhq1024"):
        get_profile("ffhq512")


def test_error_line_names_the_file_and_cuts_long_messages():
    assert cli.error_line(FileNotFoundError(2, "No such file or directory", "x/a.pt")) == \
        "x/a.pt: No such file or directory"
    assert cli.error_line(ValueError("bad value")) == "bad value"
    assert cli.error_line(KeyError("k")) == "'k'"
    assert cli.error_line(ZeroDivisionError("division by zero")) == "ZeroDivisionError: division by zero"
    long = cli.error_line(ValueError("\n".join(f"line {i}" for i in range(20))))
    assert len(long.splitlines()) == cli.MAX_ERROR_LINES + 1 and "12 more lines" in long


# --- every verb's error cases: one line `redestyle <verb>: ...`, a non-zero exit, no traceback -----


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """Input folders and code folders for the error cases."""
    root = tmp_path_factory.mktemp("scene")
    photos = root / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(photos / name)
    other = root / "other"
    other.mkdir()
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(other / "zz.png")
    (root / "a_file").write_text("not a folder")
    codes = root / "codes_mini"
    codes.mkdir()
    code = {n: rng.standard_normal((1, 10, 64)).astype(np.float32) for n in ("a.png", "b.png")}
    for name in ("exstyle_code.npy", "instyle_code.npy"):
        np.save(codes / name, code, allow_pickle=True)
    (codes / "codes_meta.json").write_text(json.dumps({"space": "W+", "profile": "mini"}))
    return root


# verb, arguments (paths relative to the scene), what the one line must say
ERROR_CASES = {
    "align-missing-input": (["align", "nope", "out"], "nope: input folder does not exist"),
    "align-unwritable-output": (["align", "photos", "a_file/out"], "a_file/out"),
    "align-bad-upsample": (["align", "photos", "out", "--upsample", "-1"], "--upsample must be >= 0"),
    "destylize-missing-input": (["destylize", "nope", "--out", "out"], "nope"),
    "destylize-no-weights": (["destylize", "photos", "--out", "out", "--profile", "ffhq1024"],
                             "missing weights file 'stylegan2-ffhq-config-f.pt'"),
    "transfer-missing-ckpt": (["transfer", "photos/a.png", "--style-index", "0", "--codes", "codes_mini",
                               "--ckpt", "nope.pt"], "nope.pt: no such DualStyleGAN generator file"),
    "transfer-other-profile": (["transfer", "photos/a.png", "--style-index", "0", "--codes", "codes_mini",
                                "--ckpt", MINI_G_PRIME, "--profile", "ffhq1024"],
                               "made with profile 'mini', this run uses 'ffhq1024'; pass --profile mini"),
    "transfer-not-a-dualstylegan": (["transfer", "photos/a.png", "--style-index", "0", "--codes", "codes_mini",
                                     "--ckpt", MINI_G_PRIME], "no 'g_ema' entry"),
    "transfer-bad-index": (["transfer", "photos/a.png", "--style-index", "7", "--codes", "codes_mini",
                            "--ckpt", MINI_G_PRIME], "--style-index 7 out of range"),
    "train-no-weights": (["train", "finetune", "--codes", "codes_mini", "--images", "photos", "--out", "run",
                          "--profile", "ffhq1024"], "made with profile 'mini'"),
    # pretraining starts from the FFHQ StyleGAN2, as pretrain_dualstylegan.py does
    "train-pretrain-no-weights": (["train", "pretrain", "--images", "photos", "--out", "run",
                                   "--profile", "ffhq1024"], "missing weights file 'stylegan2-ffhq-config-f.pt'"),
    "train-no-codes": (["train", "finetune", "--images", "photos", "--out", "run"], "needs --codes DIR"),
    "train-names-do-not-match": (["train", "finetune", "--codes", "codes_mini", "--images", "other", "--out",
                                  "run"], "no image for 2 of the 2 codes"),
    "reproduce-unknown-notebook": (["reproduce", "--only", "99"], "no notebook numbered 99"),
}


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_errors_are_one_line_without_traceback(case, scene):
    argv, message = ERROR_CASES[case]
    verb = argv[0]
    out = redestyle_cmd(argv, scene, REDESTYLE_WEIGHTS="")
    assert out.returncode != 0
    text = out.stdout + out.stderr
    assert "Traceback" not in text, text
    lines = [line for line in out.stderr.splitlines() if not line.startswith(("  ", "WARNING", "redestyle "
                                                                               f"{verb}: warning"))]
    assert lines == [next(line for line in lines if line.startswith(f"redestyle {verb}: "))], out.stderr
    assert message in out.stderr, out.stderr


def test_debug_shows_the_trace(scene):
    out = redestyle_cmd(["align", "nope", "out", "--debug"], scene)
    assert out.returncode != 0
    assert "Traceback" in out.stderr and "NotADirectoryError: nope: input folder does not exist" in out.stderr


def test_weights_without_ffhq1024_is_a_warning(scene):
    out = redestyle_cmd(["destylize", "nope", "--out", "out", "--weights", "w"], scene)
    assert out.returncode == 1
    assert out.stderr.splitlines()[0] == ("redestyle destylize: warning: --weights is read only by --profile "
                                          "ffhq1024; this run uses mini")
