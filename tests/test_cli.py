"""The command line: --help of every verb works without weights or a GPU."""

import subprocess
import sys

import pytest

from redestyle.cli import build_parser


def _verbs() -> list[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "verb")
    return sorted(sub.choices)


def test_top_level_help():
    out = subprocess.run([sys.executable, "-m", "redestyle", "--help"], capture_output=True,
                         text=True, env={"CUDA_VISIBLE_DEVICES": "", "PATH": ""}, check=True)
    assert "reproduce" in out.stdout and "weights" in out.stdout


@pytest.mark.parametrize("verb", _verbs())
def test_verb_help(verb, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([verb, "--help"])
    assert exit_info.value.code == 0
    assert verb in capsys.readouterr().out


def test_unknown_profile_is_a_clear_error():
    from redestyle.config import get_profile

    with pytest.raises(ValueError, match="unknown profile 'ffhq512'; known: tiny, mini, ffhq1024"):
        get_profile("ffhq512")
