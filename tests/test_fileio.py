"""fileio: atomic writes leave either the old file or the new one; the one folder-report layout."""

import json

import pytest
import torch

from redestyle import fileio
from redestyle.folderlock import LOCK_NAME, FolderInUseError


def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="interrupted"), fileio.atomic_write(target) as f:
        f.write(b"partial")
        raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_save_atomic_and_save_json_round_trip(tmp_path):
    path = fileio.save_atomic({"w": torch.arange(3)}, tmp_path / "sub" / "w.pt")
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.arange(3))
    j = fileio.save_json(tmp_path / "r.json", {"b": 1, "a": [1, 2]})
    assert json.loads(j.read_text()) == {"a": [1, 2], "b": 1} and j.read_text().endswith("}\n")


def test_folder_report_counts_this_runs_inputs():
    images = {"a.png": {"status": "ok"}, "b.png": {"status": "failed", "error": "b.png: not an image"},
              "c.txt": {"status": "ignored"}, "old.png": {"status": "failed", "error": "gone"}}
    report = fileio.folder_report(images, names=["a.png", "b.png", "c.txt"], size=64)
    assert report["size"] == 64 and report["images"] == images  # earlier runs' entries are kept
    assert report["summary"] == {"images": 3, "ok": 1, "failed": 1, "ignored": 1}
    assert report["failed"] == {"b.png": "b.png: not an image"}
    assert fileio.folder_report({})["summary"] == {"images": 0, "ok": 0, "failed": 0}


def test_folder_job_locks_keeps_or_drops_earlier_entries_and_commits_on_exit(tmp_path):
    out = tmp_path / "out"
    with fileio.folder_job(out, keep_earlier=True, size=64) as job:
        assert (out / LOCK_NAME).exists() and job.images == {}
        with pytest.raises(FolderInUseError), fileio.folder_job(out, keep_earlier=True):
            pass  # a second run on the folder is refused (the lock is not re-entrant)
        job.images["a.png"] = {"status": "ok"}
        job.images["b.png"] = {"status": "failed", "error": "b.png: not an image"}
    first = json.loads((out / fileio.REPORT).read_text())
    assert first == fileio.folder_report(job.images, size=64) and not (out / LOCK_NAME).exists()

    with fileio.folder_job(out, keep_earlier=True) as job:  # accumulating jobs (codes) start from it
        assert job.images == first["images"]
        job.names = ["b.png"]
        job.images["b.png"] = {"status": "ok"}
    second = json.loads((out / fileio.REPORT).read_text())
    assert second["summary"] == {"images": 1, "ok": 1, "failed": 0} and set(second["images"]) == {"a.png", "b.png"}

    with pytest.raises(KeyboardInterrupt), fileio.folder_job(out, keep_earlier=False) as job:
        assert job.images == {}  # each run reports only its own inputs
        job.images["c.png"] = {"status": "ok"}
        raise KeyboardInterrupt
    assert json.loads((out / fileio.REPORT).read_text()) == second  # only commits count
