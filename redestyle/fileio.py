"""Writing files so that a reader never sees a partial one, and the one report.json layout (layer 1).

Every output of the package (weights, codes, previews, figures, reports, render caches) is
written through :func:`atomic_write`: a temporary file in the same folder, flushed and fsynced,
then ``os.replace``-d over the target. A killed run therefore leaves either the old file or the
new one, and a resumed run can trust whatever exists.

Folder jobs (``align``, ``destylize``) run through one runner, :func:`folder_job`: the output
folder locked for the run (:mod:`redestyle.folderlock`), per-input entries, and ``report.json``
committed atomically in one layout (:func:`folder_report`)::

    {<header fields>, "images": {name: {"status": "ok"|"failed"|..., "error"?, "seconds"?, ...}},
     "summary": {"images": n, "ok": n_ok, "failed": n_failed, <other statuses>: n},
     "failed": {name: one-line error}}
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import torch

from .folderlock import lock_folder

REPORT = "report.json"


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file next to ``path``; on success rename it over ``path`` (os.replace).

    If the body raises, the temporary file is removed and ``path`` is untouched, so a reader
    never sees a partial file (and a resumed run never trusts one). Missing parent folders are
    created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_atomic(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save(obj, path)`` through a temporary file and os.replace; returns the path."""
    path = Path(path)
    with atomic_write(path) as f:
        torch.save(obj, f)
    return path


def save_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented, key-sorted JSON (UTF-8, trailing newline) atomically."""
    path = Path(path)
    with atomic_write(path) as f:
        f.write((json.dumps(obj, indent=1, sort_keys=True) + "\n").encode())
    return path


def folder_report(images: Mapping[str, Mapping[str, Any]], *, names: Iterable[str] | None = None,
                  **header: Any) -> dict[str, Any]:
    """The report of a folder job in the one layout (module docstring).

    images: name -> entry holding at least ``"status"`` (and ``"error"`` when failed); entries
    of earlier runs are kept. names: the inputs of this run, which the summary and ``failed``
    count (default: every entry). header: job fields stored beside them (e.g. ``size``).
    """
    names = list(images) if names is None else list(names)
    statuses = [images[n]["status"] for n in names if n in images]
    summary = {"images": len(names), "ok": statuses.count("ok"), "failed": statuses.count("failed")}
    for status in sorted(set(statuses) - {"ok", "failed"}):
        summary[status] = statuses.count(status)
    failed = {n: images[n].get("error") for n in names if images.get(n, {}).get("status") == "failed"}
    return {**header, "images": dict(images), "summary": summary, "failed": failed}


class FolderJob:
    """One run of a folder job (:func:`folder_job`): entries per input and the report they make.

    images: name -> entry (``"status"``, ``"error"`` when failed, anything else the job records);
    with ``keep_earlier`` it starts from the entries of the folder's existing report.json.
    names: this run's inputs, which the summary counts (None: every entry).
    """

    def __init__(self, out_dir: Path, header: dict[str, Any], images: dict[str, dict[str, Any]]) -> None:
        self.out_dir, self.header, self.images = out_dir, header, images
        self.names: list[str] | None = None

    @property
    def report_path(self) -> Path:
        return self.out_dir / REPORT

    def report(self) -> dict[str, Any]:
        """The report in the one layout (:func:`folder_report`) as it stands."""
        return folder_report(self.images, names=self.names, **self.header)

    def commit(self) -> dict[str, Any]:
        """Write report.json atomically (a kill leaves the previous report or this one); returns it."""
        report = self.report()
        save_json(self.report_path, report)
        return report


@contextlib.contextmanager
def folder_job(out_dir: str | os.PathLike, *, keep_earlier: bool, **header: Any) -> Iterator[FolderJob]:
    """Run a folder job on ``out_dir``: hold its lock, yield a :class:`FolderJob`, commit its report.

    The lock (``folderlock.lock_folder``, which creates the folder) is taken first, so a refused
    second run (``FolderInUseError``) reads and writes nothing. keep_earlier: start from the
    entries of an existing report.json (a job whose outputs accumulate, e.g. codes); without it
    every run reports only its own inputs. header: job fields stored in the report (e.g. ``size``).
    On a normal exit the report is committed; on an exception only what the job committed stays.
    """
    out_dir = Path(out_dir)
    with lock_folder(out_dir):
        path = out_dir / REPORT
        images = json.loads(path.read_text())["images"] if keep_earlier and path.exists() else {}
        job = FolderJob(out_dir, header, images)
        yield job
        job.commit()
