"""destylize_folder and `redestyle destylize`: DualStyleGAN code files, reports, resume, refusals."""

import argparse
import json

import numpy as np
import pytest
import torch
from PIL import Image

from redestyle import destylize as ds
from redestyle import jobs, zoo
from redestyle.checkpoints import load_codes
from redestyle.cli import add_destylize_arguments
from redestyle.fileio import REPORT
from redestyle.imaging import load_image, to_uint8

NAMES = ["a.png", "b.png", "c.png"]


@pytest.fixture(scope="module")
def tiny():
    return zoo.build_models("tiny", methods=["restyle_psp"])


@pytest.fixture(scope="module")
def fn(tiny):
    return ds.make_destylizer(tiny, ds.DestyleOptions(schedule="2-1"))


@pytest.fixture
def folder(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    for name in NAMES:
        Image.fromarray(rng.integers(0, 256, (80, 80, 3), dtype=np.uint8)).save(src / name)
    (src / "broken.png").write_bytes(b"not an image")
    return src


META = {"space": "W+", "method": "redestyle", "schedule": "2-1", "profile": "tiny"}


def run(src, out, fn, **kwargs):
    kwargs = {"size": 64, "meta": META, **kwargs}
    return jobs.destylize_folder(src, out, destylize=fn, **kwargs)


def counting(fn, calls, fail_at=None, error=KeyboardInterrupt):
    def wrapped(x):
        calls.append(x.shape[0])
        if fail_at is not None and len(calls) == fail_at:
            raise error("stopped")
        return fn(x)

    return wrapped


def test_codes_in_dualstylegan_format(folder, tmp_path, fn):
    out = tmp_path / "out"
    report = run(folder, out, fn, batch=2)
    codes = {k: np.load(out / f, allow_pickle=True).item() for k, f in
             [("ex", jobs.EXSTYLE), ("in", jobs.INSTYLE)]}
    for d in codes.values():
        assert list(d) == NAMES  # folder order (DualStyleGAN's style ids)
        for v in d.values():
            assert v.dtype == np.float32 and v.shape == (1, 10, 64)
    with torch.no_grad():
        want = fn(load_image(folder / "b.png", size=64))
    np.testing.assert_allclose(codes["ex"]["b.png"], want.z_e.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(codes["in"]["b.png"], want.z_i.numpy(), rtol=1e-4, atol=1e-5)
    assert load_codes(out / jobs.INSTYLE).keys() == codes["in"].keys()  # the safe reader agrees
    meta = json.loads((out / jobs.META).read_text())
    assert meta["space"] == "W+" and meta["schedule"] == "2-1"
    assert report["summary"] == {"images": 4, "ok": 3, "failed": 1}
    assert report["failed"]["broken.png"] == f"{folder / 'broken.png'}: not an image (the format cannot be identified)"
    assert sorted(p.name for p in (out / "previews").iterdir()) == NAMES
    preview = np.asarray(Image.open(out / "previews" / "a.png").convert("RGB"))
    assert preview.shape == (12 + 64, 3 * 64, 3)  # a 12 px label strip over input | recon | destylized
    strip = preview[:12].min(axis=2)
    for k in range(3):  # each column has its label: dark text on white, inside its own column
        column = strip[:, k * 64:(k + 1) * 64]
        assert column.min() < 128 and (column[:, :1] == 255).all() and (column[:, -1:] == 255).all(), k
    np.testing.assert_array_equal(preview[12:, :64], to_uint8(load_image(folder / "a.png", size=64)))
    assert not list(out.glob(".*tmp"))  # no temporary files left behind


def test_rerun_skips_done_images(folder, tmp_path, fn):
    out = tmp_path / "out"
    run(folder, out, fn)
    before = (out / jobs.INSTYLE).read_bytes()
    calls = []
    report = run(folder, out, counting(fn, calls))
    assert calls == []  # only the broken file is retried (and fails to load again)
    assert (out / jobs.INSTYLE).read_bytes() == before
    assert report["summary"]["ok"] == 3


def test_interruption_loses_nothing_written_and_resume_completes(folder, tmp_path, fn):
    full = tmp_path / "full"
    run(folder, full, fn)
    out = tmp_path / "out"
    calls = []
    with pytest.raises(KeyboardInterrupt):
        run(folder, out, counting(fn, calls, fail_at=2))
    assert list(load_codes(out / jobs.EXSTYLE)) == ["a.png"]  # batch 1 was written, batch 2 lost
    calls = []
    run(folder, out, counting(fn, calls))
    assert calls == [1, 1]  # b and c only
    for f in (jobs.EXSTYLE, jobs.INSTYLE):
        got, want = load_codes(out / f), load_codes(full / f)
        assert list(got) == list(want) == NAMES
        for k in NAMES:
            np.testing.assert_array_equal(got[k], want[k])


@pytest.mark.parametrize("k", [1, 3])
def test_kill_after_k_images_loses_only_the_image_in_flight(folder, tmp_path, fn, k):
    """batch 1: a kill while image k + 1 runs keeps exactly k codes; the resume equals a full run."""
    for name in ["d.png", "e.png"]:
        Image.fromarray(np.random.default_rng(len(name) + ord(name[0])).integers(
            0, 256, (80, 80, 3), dtype=np.uint8)).save(folder / name)
    names = NAMES + ["d.png", "e.png"]
    full = tmp_path / "full"
    run(folder, full, fn)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        run(folder, out, counting(fn, [], fail_at=k + 1))
    for f in (jobs.EXSTYLE, jobs.INSTYLE):
        assert list(load_codes(out / f)) == names[:k]
    report = json.loads((out / REPORT).read_text())
    assert sorted(n for n, r in report["images"].items() if r["status"] == "ok") == names[:k]
    calls = []
    run(folder, out, counting(fn, calls))
    assert len(calls) == len(names) - k
    for f in (jobs.EXSTYLE, jobs.INSTYLE):
        got, want = load_codes(out / f), load_codes(full / f)
        assert list(got) == list(want) == names
        for name in names:
            np.testing.assert_array_equal(got[name], want[name])
    assert not list(out.glob(".*tmp"))


def test_deleted_entry_is_redone(folder, tmp_path, fn):
    out = tmp_path / "out"
    run(folder, out, fn)
    instyle = load_codes(out / jobs.INSTYLE)
    kept = instyle.pop("b.png")
    jobs.save_codes(out / jobs.INSTYLE, instyle)
    calls = []
    run(folder, out, counting(fn, calls))
    assert calls == [1]
    again = load_codes(out / jobs.INSTYLE)
    assert list(again) == NAMES  # back in folder order
    np.testing.assert_array_equal(again["b.png"], kept)


def test_failing_batch_is_reported_and_the_run_goes_on(folder, tmp_path, fn):
    out = tmp_path / "out"
    report = run(folder, out, counting(fn, [], fail_at=1, error=RuntimeError))
    assert report["images"]["a.png"] == {"status": "failed", "error": "RuntimeError: stopped"}
    assert list(load_codes(out / jobs.EXSTYLE)) == ["b.png", "c.png"]
    assert report["summary"] == {"images": 4, "ok": 2, "failed": 2}


def test_mismatched_meta_is_refused(folder, tmp_path, fn):
    out = tmp_path / "out"
    run(folder, out, fn)
    with pytest.raises(ValueError, match=r"schedule: existing '2-1' vs this run '5-3-1'"):
        run(folder, out, fn, meta={**META, "schedule": "5-3-1"})
    with pytest.raises(ValueError, match="space"):
        run(folder, out, fn, meta={**META, "space": "z+"})


def test_output_inside_input_is_not_read_back(folder, fn):
    report = run(folder, folder / "codes", fn)
    report = run(folder, folder / "codes", fn)  # previews/*.png now exist under the input folder
    assert report["summary"]["images"] == 4


# --- CLI -------------------------------------------------------------------------------------------


def cli(argv):
    return jobs.cli_destylize(add_destylize_arguments(argparse.ArgumentParser()).parse_args(argv))


def test_cli_redestyle(folder, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli([str(folder), "--out", str(out), "--schedule", "2-1", "--batch", "2", "--device", "cpu"]) == 1
    text = capsys.readouterr().out
    assert "[2/4] b.png" in text and "[3/4] c.png" in text
    assert [line for line in text.splitlines() if "broken.png" in line] == [
        next(line for line in text.splitlines() if line.startswith("FAILED broken.png: "))]
    # the default profile (mini, trained) is named in the summary
    assert "destylized 3 of 4 images, 1 failed (W+ codes, profile mini, trained weights)" in text
    meta = json.loads((out / jobs.META).read_text())
    assert (meta["space"], meta["method"], meta["schedule"], meta["profile"]) == ("W+", "redestyle", "2-1", "mini")
    (folder / "broken.png").unlink()
    assert cli([str(folder), "--out", str(out), "--schedule", "2-1"]) == 0  # resumed, nothing failed
    assert cli([str(folder), "--out", str(out), "--schedule", "3-1"]) == 1  # refused: other schedule
    assert "made differently" in capsys.readouterr().err


def test_cli_bad_input_corpus_one_line_each_and_exit_1(tmp_path, capsys):
    from test_imaging import make_corpus

    src = tmp_path / "in"
    src.mkdir()
    cases = make_corpus(src)
    out = tmp_path / "out"
    assert cli([str(src), "--out", str(out), "--schedule", "1", "--no-previews"]) == 1
    lines = capsys.readouterr().out.splitlines()
    report = json.loads((out / REPORT).read_text())
    bad = sorted(n for n, want in cases.items() if isinstance(want, str))
    assert sorted(report["failed"]) == bad
    for name in bad:
        mine = [line for line in lines if name in line and not line.startswith("[")]
        assert mine == [f"FAILED {name}: {report['failed'][name]}"]
        assert cases[name] in mine[0] and str(src / name) in mine[0]
    good = sorted(n for n, want in cases.items() if not isinstance(want, str))
    assert sorted(load_codes(out / jobs.INSTYLE)) == good  # CMYK, 16-bit, RGBA, grey, palette converted
    assert f"destylized {len(good)} of {len(cases)} images, {len(bad)} failed" in lines[-1]


def test_cli_progress_bar_on_a_terminal(folder, tmp_path, capsys, monkeypatch):
    (folder / "broken.png").unlink()
    monkeypatch.setattr(__import__("sys").stderr, "isatty", lambda: True)
    assert cli([str(folder), "--out", str(tmp_path / "a"), "--schedule", "1"]) == 0
    captured = capsys.readouterr()
    assert "3/3" in captured.err and "destylize" in captured.err
    assert not any(line.startswith("[") for line in captured.out.splitlines())  # bar instead of lines
    assert cli([str(folder), "--out", str(tmp_path / "b"), "--schedule", "1", "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "3/3" not in captured.err and "[3/3] c.png" in captured.out


@pytest.mark.parametrize("argv, message", [
    (["--schedule", "0-1"], "positive integers"),
    (["--truncation", "1.5"], "truncation must be in"),
    (["--profile", "ffhq1024"], "missing weights file"),
    (["--profile", "ffhq1024", "--method", "baseline"], "needs --style"),
])
def test_cli_errors_are_one_message_and_exit_1(folder, tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.delenv("REDESTYLE_WEIGHTS", raising=False)
    assert cli([str(folder), "--out", str(tmp_path / "out"), *argv]) == 1
    assert message in capsys.readouterr().err


def test_cli_missing_input_folder(tmp_path, capsys):
    assert cli([str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_cli_baseline_tiny(folder, tmp_path, capsys):
    out = tmp_path / "out"
    (folder / "broken.png").unlink()
    assert cli([str(folder), "--out", str(out), "--method", "baseline", "--steps", "2", "--batch", "3",
                "--profile", "tiny"]) == 0
    assert "tiny profile (random weights)" in capsys.readouterr().err  # random weights: a warning
    meta = json.loads((out / jobs.META).read_text())
    assert (meta["space"], meta["steps"], meta["truncation"], meta["optimisation"]) == ("z+", 2, 0.7, "per image")
    codes = np.load(out / jobs.INSTYLE, allow_pickle=True).item()
    exstyle = np.load(out / jobs.EXSTYLE, allow_pickle=True).item()
    assert list(codes) == NAMES
    for k in NAMES:  # colour preservation: z_i[8:] = z_e[8:]
        np.testing.assert_array_equal(codes[k][:, ds.COLOR_FROM:], exstyle[k][:, ds.COLOR_FROM:])


def _cli_process(folder, out, *extra):
    import os
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "redestyle", "destylize", str(folder), "--out", str(out), "--method",
           "baseline", "--profile", "tiny", "--steps", "3", "--no-previews", "--device", "cpu", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_cli_baseline_same_codes_in_every_process_and_after_kill_9(folder, tmp_path):
    """Every random network of the tiny baseline (LPIPS' VGG16 included) and its noise are seeded:
    two processes write the same bytes, and a run killed with SIGKILL after its first image resumes
    to the same codes."""
    import signal

    (folder / "broken.png").unlink()
    runs = [tmp_path / "a", tmp_path / "b"]
    for out in runs:
        proc = _cli_process(folder, out)
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
    for f in (jobs.EXSTYLE, jobs.INSTYLE):
        assert (runs[0] / f).read_bytes() == (runs[1] / f).read_bytes()
    killed = tmp_path / "killed"
    proc = _cli_process(folder, killed)
    for line in proc.stdout:  # "[1/3] a.png" is printed once a.png's codes are committed
        if line.startswith("[1/"):
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=600)
    assert proc.returncode == -signal.SIGKILL
    assert "a.png" in load_codes(killed / jobs.INSTYLE)
    proc = _cli_process(folder, killed)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    for f in (jobs.EXSTYLE, jobs.INSTYLE):
        got, want = load_codes(killed / f), load_codes(runs[0] / f)
        assert list(got) == list(want) == NAMES
        for name in NAMES:
            np.testing.assert_array_equal(got[name], want[name])


def test_cli_autocast_bf16_codes_close_to_fp32_and_recorded(folder, tmp_path):
    (folder / "broken.png").unlink()
    argv = [str(folder), "--profile", "tiny", "--schedule", "2-1", "--batch", "2", "--device", "cpu",
            "--no-previews"]
    assert cli([*argv, "--out", str(tmp_path / "fp32")]) == 0
    assert cli([*argv, "--out", str(tmp_path / "bf16"), "--autocast", "bf16"]) == 0
    meta32 = json.loads((tmp_path / "fp32" / jobs.META).read_text())
    meta16 = json.loads((tmp_path / "bf16" / jobs.META).read_text())
    assert "autocast" not in meta32 and "compile" not in meta32  # the default keeps the old record
    assert meta16["autocast"] == "bf16"
    fp32 = load_codes(tmp_path / "fp32" / jobs.INSTYLE)
    bf16 = load_codes(tmp_path / "bf16" / jobs.INSTYLE)
    for name in fp32:  # bf16 ran (the codes differ) and stayed close through 3 encoder + G passes
        assert bf16[name].dtype == np.float32
        diff = np.linalg.norm(bf16[name] - fp32[name])
        assert 0 < diff <= 0.02 * np.linalg.norm(fp32[name])
    # resuming a bf16 folder with fp32 settings is refused: the codes were made differently
    assert cli([*argv, "--out", str(tmp_path / "bf16")]) == 1


def test_cli_compile_wraps_encoder_and_decode(folder, tmp_path, monkeypatch):
    """--compile: torch.compile sees the encoder and the generator's decode (identity here: the
    plumbing, not inductor, is under test), under the reference ops."""
    from redestyle import ops

    (folder / "broken.png").unlink()
    seen = []

    def fake_compile(fn, **kwargs):
        def wrapped(*args, **kw):
            seen.append((getattr(fn, "__name__", type(fn).__name__), ops.backend()))
            return fn(*args, **kw)
        return wrapped

    monkeypatch.setattr(torch, "compile", fake_compile)
    out = tmp_path / "out"
    assert cli([str(folder), "--out", str(out), "--schedule", "1", "--device", "cpu", "--compile",
                "--no-previews"]) == 0
    assert ("decode", "reference") in seen and ("BackboneEncoder", "reference") in seen
    assert json.loads((out / jobs.META).read_text())["compile"] is True


def test_cli_speed_flags_refused_for_the_baseline(folder, tmp_path, capsys):
    assert cli([str(folder), "--out", str(tmp_path / "o"), "--method", "baseline", "--autocast", "bf16"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("redestyle destylize: autocast and compile apply to the redestyle method only")
    assert len(err.strip().splitlines()) == 1
