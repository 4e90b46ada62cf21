"""One run per output folder: a second process is refused, naming the folder and the holder's PID."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import redestyle
from redestyle.fileio import REPORT
from redestyle.folderlock import LOCK_NAME, FolderInUseError, lock_folder

ROOT = Path(redestyle.__file__).parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}


def hold(folder: Path) -> subprocess.Popen:
    """Another process that takes ``folder``'s lock, says so, and waits for its stdin to close."""
    code = ("import sys\nfrom redestyle.folderlock import lock_folder\n"
            f"with lock_folder({str(folder)!r}):\n    print('held', flush=True)\n    sys.stdin.read()\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env=ENV)
    assert proc.stdout.readline().strip() == "held"
    return proc


def release(proc: subprocess.Popen) -> None:
    proc.stdin.close()
    assert proc.wait(timeout=60) == 0


def test_second_process_is_refused_with_folder_and_pid(tmp_path):
    out = tmp_path / "out"
    holder = hold(out)
    try:
        with pytest.raises(FolderInUseError) as info, lock_folder(out):
            pass
        assert (info.value.folder, info.value.pid) == (out, holder.pid)
        assert str(info.value).startswith(f"{out}: output folder in use by another redestyle run (PID {holder.pid})")
    finally:
        release(holder)
    with lock_folder(out) as path:  # free again once the holder is done
        assert path == out / LOCK_NAME and path.read_text() == f"{os.getpid()}\n"
    assert not (out / LOCK_NAME).exists()  # a normal exit leaves no lock file


def test_lock_of_a_killed_process_is_not_stale(tmp_path):
    out = tmp_path / "out"
    holder = hold(out)
    os.kill(holder.pid, signal.SIGKILL)  # kill -9: no cleanup runs, the lock file stays
    holder.wait(timeout=60)
    assert (out / LOCK_NAME).read_text() == f"{holder.pid}\n"
    with lock_folder(out) as path:  # the kernel dropped the flock with the process
        assert path.read_text() == f"{os.getpid()}\n"


def test_leftover_lock_file_of_a_dead_pid_is_taken(tmp_path):
    (tmp_path / LOCK_NAME).write_text("999999999\n")  # e.g. copied along with the folder
    with lock_folder(tmp_path):
        pass


def test_lock_is_not_reentrant_within_a_process(tmp_path):
    """A second open of the lock conflicts even in the same process (flock is per open file)."""
    with lock_folder(tmp_path), pytest.raises(FolderInUseError, match=f"PID {os.getpid()}"), lock_folder(tmp_path):
        pass


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_unwritable_folder_is_named(tmp_path):
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(PermissionError) as info, lock_folder(tmp_path):
            pass
    finally:
        tmp_path.chmod(0o755)
    assert (info.value.filename, info.value.strerror) == (str(tmp_path), "output folder is not writable")


@pytest.fixture
def photos(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(src / name)
    return src


@pytest.mark.parametrize("verb", ["destylize", "align", "train"])
def test_cli_refuses_a_folder_in_use(verb, photos, tmp_path):
    """The verbs that write an output folder refuse one that another run holds, and touch nothing."""
    out = tmp_path / "out"
    argv = {"destylize": ["destylize", photos, "--out", out, "--schedule", "1"],
            "align": ["align", photos, out],
            "train": ["train", "pretrain", "--images", photos, "--out", out, "--profile", "tiny", "--iter", "1"],
            }[verb]
    holder = hold(out)
    try:
        run = subprocess.run([sys.executable, "-m", "redestyle", *map(str, argv)], capture_output=True, text=True,
                             env=ENV, cwd=tmp_path, timeout=600)
    finally:
        release(holder)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert f"redestyle {verb}: {out}: output folder in use by another redestyle run (PID {holder.pid})" \
        in run.stderr
    assert sorted(p.name for p in out.iterdir()) == []  # nothing written by the refused run


def test_destylize_folder_refused_while_held(photos, tmp_path):
    from redestyle import jobs

    out = tmp_path / "out"
    holder = hold(out)
    try:
        with pytest.raises(FolderInUseError):
            jobs.destylize_folder(photos, out, destylize=None, size=64, meta={"space": "W+"})
    finally:
        release(holder)
    assert not (out / jobs.META).exists() and not (out / REPORT).exists()
