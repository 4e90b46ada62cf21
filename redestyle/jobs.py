"""Folder runners: the only code of the pipeline that touches disk.

``destylize_folder`` turns a folder of aligned portraits into DualStyleGAN-ready code files:

* ``exstyle_code.npy`` / ``instyle_code.npy``: ``np.save`` of a dict file name -> float32
  [1, n_latent, D] (DualStyleGAN's layout; read with ``np.load(p, allow_pickle=True).item()``,
  or safely with ``checkpoints.load_codes``), keys in the folder's sorted order,
* ``codes_meta.json``: the latent space (W+ or z+), method, schedule, profile, options,
* ``previews/<name>.png``: input | reconstruction | destylized, under a strip naming the columns,
* ``report.json``: per-image status, error and seconds, and a summary.

Inputs are processed in sorted order; every batch's results (one image at the default batch 1)
are committed at once through a temporary file and ``os.replace`` (``fileio.atomic_write``),
so a kill loses at most the batch in flight, and a re-run skips what is done and gives the same
codes as an uninterrupted run.

Input policy (``imaging.load_image``): inputs are FFHQ-aligned square faces. Any readable image
that converts to RGB (greyscale, palette, CMYK, 16-bit, RGBA composited over white; EXIF
orientation applied) is accepted and resized to the encoder size. A file that is not an image,
empty, truncated or unreadable, not square, smaller than ``imaging.MIN_SIDE`` px or larger than
``imaging.MAX_PIXELS`` is not guessed at: it is recorded in report.json with one line naming the
file and the problem (non-square and too-small files are told to run ``redestyle align``), the
run goes on, and ``redestyle destylize`` exits with status 1. ``cli_destylize`` is that verb.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from . import destylize as ds
from . import zoo
from .checkpoints import load_codes, save_codes
from .config import Schedule, get_profile
from .fileio import FolderJob, atomic_write, folder_job, save_json
from .folderlock import FolderInUseError
from .imaging import ImageReadError, list_images, load_image, pool, to_uint8

log = logging.getLogger(__name__)

EXSTYLE, INSTYLE, META = "exstyle_code.npy", "instyle_code.npy", "codes_meta.json"
PREVIEWS = "previews"


def _read_codes(path: Path) -> dict[str, np.ndarray]:
    """Existing codes of an earlier run (empty when the file is not there yet)."""
    return load_codes(path) if path.exists() else {}


def _check_meta(meta_path: Path, meta: dict) -> None:
    """Refuse to add codes made differently to a folder (mixed codes would be silently wrong)."""
    if not meta_path.exists():
        return
    old = json.loads(meta_path.read_text())
    differ = sorted(k for k in set(old) | set(meta) if old.get(k) != meta.get(k))
    if differ:
        detail = ", ".join(f"{k}: existing {old.get(k)!r} vs this run {meta.get(k)!r}" for k in differ)
        raise ValueError(f"{meta_path}: the codes in this folder were made differently ({detail}); "
                         "use another --out folder or the same options")


def destylize_folder(
    in_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    destylize: Callable[[torch.Tensor], object],
    size: int,
    meta: dict,
    batch: int = 1,
    device: str | torch.device = "cpu",
    save_preview: bool = True,
    progress: Callable[[int, int, str], None] | None = None,
) -> dict:
    """Destylize every image of ``in_dir`` into ``out_dir`` (see the module docstring).

    ``out_dir`` is locked for the run (``fileio.folder_job``): a second run on the folder is
    refused with ``folderlock.FolderInUseError`` naming the folder and the holder's PID, before
    anything is read or written.

    destylize: images [B, 3, size, size] in [-1, 1] -> a ``destylize.Destylized`` (it owns its
    grad mode); batches are moved to ``device`` first. meta: written to codes_meta.json (must
    hold ``space``); a folder whose existing meta differs in any field is refused rather than
    mixed. progress(done, total, name): done = images with codes, called once before the first
    batch (name "") and after each successful batch. Returns the report dict
    ({"images": {name: {...}}, "summary", "failed": {name: one-line error}}); entries of earlier
    runs are kept, the summary counts this run's inputs.
    """
    # the codes accumulate over runs, and so do the report's entries
    with folder_job(out_dir, keep_earlier=True) as job:
        _destylize_into(job, Path(in_dir), destylize=destylize, size=size, meta=meta, batch=batch,
                        device=device, save_preview=save_preview, progress=progress)
    return job.report()


def _destylize_into(job: FolderJob, in_dir: Path, *, destylize: Callable[[torch.Tensor], object], size: int,
                    meta: dict, batch: int, device: str | torch.device, save_preview: bool,
                    progress: Callable[[int, int, str], None] | None) -> None:
    """destylize_folder's body, run while ``job`` holds the output folder; commits after each batch."""
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    if "space" not in meta:
        raise ValueError("meta must state the latent space ('W+' or 'z+')")
    out_dir = job.out_dir
    paths = list_images(in_dir)
    inside = out_dir.resolve()
    paths = [p for p in paths if inside not in p.resolve().parents]  # never our own previews
    names = [p.relative_to(in_dir).as_posix() for p in paths]
    job.names = names
    meta_path = out_dir / META
    _check_meta(meta_path, meta)
    save_json(meta_path, meta)
    exstyle, instyle = _read_codes(out_dir / EXSTYLE), _read_codes(out_dir / INSTYLE)
    images = job.images
    order = {n: i for i, n in enumerate(names)}

    def ordered(codes):  # folder order = DualStyleGAN's style_id numbering, also after a resume
        return dict(sorted(codes.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))

    todo = [(n, p) for n, p in zip(names, paths) if not (n in exstyle and n in instyle)]
    done = len(paths) - len(todo)
    log.info("%d images, %d done, %d to do", len(paths), done, len(todo))
    if progress is not None:
        progress(done, len(paths), "")
    for i in range(0, len(todo), batch):
        chunk, tensors = [], []
        for name, path in todo[i : i + batch]:
            try:
                tensors.append(load_image(path, size=size))
                chunk.append(name)
            except ImageReadError as err:
                images[name] = {"status": "failed", "error": str(err)}
                log.info("%s", err)  # reported per file by the caller (cli_destylize prints it)
        if not chunk:
            job.commit()
            continue
        start = time.perf_counter()
        try:
            result = destylize(torch.cat(tensors).to(device))
        except Exception as err:  # a failing batch is recorded; the run goes on
            for name in chunk:
                images[name] = {"status": "failed", "error": f"{type(err).__name__}: {err}"}
            log.info("batch %s failed: %s: %s", chunk, type(err).__name__, err)
            job.commit()
            continue
        seconds = (time.perf_counter() - start) / len(chunk)
        for j, name in enumerate(chunk):
            exstyle[name] = result.z_e[j : j + 1].detach().float().cpu().numpy()
            instyle[name] = result.z_i[j : j + 1].detach().float().cpu().numpy()
            images[name] = {"status": "ok", "seconds": round(seconds, 4)}
            if save_preview:
                _save_preview(out_dir / PREVIEWS / Path(name).with_suffix(".png"),
                              [tensors[j][0], result.reconstruction[j], result.image[j]], size)
        save_codes(out_dir / EXSTYLE, ordered(exstyle))
        save_codes(out_dir / INSTYLE, ordered(instyle))
        job.commit()
        done += len(chunk)
        if progress is not None:
            progress(done, len(paths), chunk[-1])


PREVIEW_LABELS = ("input", "reconstruction", "destylized")


def _save_preview(path: Path, images: list[torch.Tensor], size: int) -> None:
    row = np.concatenate([to_uint8(pool(im.unsqueeze(0), size)[0]) for im in images], axis=1)
    row = np.concatenate([_label_strip(PREVIEW_LABELS, size), row], axis=0)
    with atomic_write(path) as f:
        Image.fromarray(row).save(f, format="PNG")


def _label_strip(labels: tuple[str, ...], width: int) -> np.ndarray:
    """A white strip [H, len(labels) * width, 3] uint8 with each label centred over its column.

    The font shrinks until the longest label fits its column (64 px columns on mini/tiny: about
    6 px type; 256 px at 1024); H = max(12, width // 8).
    """
    height = max(12, width // 8)
    strip = Image.new("RGB", (width * len(labels), height), "white")
    draw = ImageDraw.Draw(strip)
    for font_size in range(height - 2, 5, -1):
        font = ImageFont.load_default(size=font_size)
        if all(draw.textlength(label, font=font) <= width - 2 for label in labels):
            break
    _, top, _, bottom = draw.textbbox((0, 0), "".join(labels), font=font)  # one baseline for all
    for k, label in enumerate(labels):
        left, _, right, _ = draw.textbbox((0, 0), label, font=font)
        draw.text((k * width + (width - right - left) / 2, (height - bottom - top) / 2), label, fill="black",
                  font=font)
    return np.asarray(strip)


# ------------------------------------------------------------------------------------------------
# `redestyle destylize`


def cli_destylize(args: argparse.Namespace) -> int:
    """Run the ``destylize`` verb; exit status 0 when every image succeeded, 1 otherwise.

    Progress lines and one line per failed image (name and problem) go to stdout; bad options,
    missing weights or a mismatched output folder are one line on stderr (exit 1).
    """
    try:
        profile = get_profile(args.profile)
        style = args.style
        if args.method == "baseline" and style is None:
            if profile.needs_weights:
                raise ValueError("--method baseline needs --style NAME (g' = <weights>/NAME/finetune-000600.pt)")
            # tiny: a seeded stand-in g' (zoo.tiny_g_prime); mini: its trained g' (zoo.MINI_STYLE)
            style = profile.baseline_style
        # the one parse of --schedule: a typed Schedule from here to the loop (errors: one line, exit 1)
        options = ds.DestyleOptions(method=args.method, schedule=Schedule.parse(args.schedule),
                                    preserve_color=args.preserve_color, truncation=args.truncation,
                                    handoff=args.handoff, steps=args.steps,
                                    style=style if args.method == "baseline" else None,
                                    joint_batch=args.method == "baseline" and args.joint_batch,
                                    autocast=args.autocast,
                                    compile=args.compile)
        device = zoo.resolve_device(args.device)
        methods = ["restyle_psp"] if options.method == "redestyle" else ["dsg_zplus"]
        models = zoo.build_models(profile, methods=methods, weights_dir=args.weights, seed=args.seed,
                                  device=device, with_lpips=options.method == "baseline",
                                  with_id=options.method == "baseline",
                                  g_prime_style=options.style,
                                  allow_random_loss_nets=args.allow_random_loss_nets)
    except (ValueError, OSError, RuntimeError) as err:  # bad option, missing or broken weights
        print(f"redestyle destylize: {err}", file=sys.stderr)
        return 1
    if not models.pretrained:
        print(f"redestyle destylize: warning: {profile.label}: the codes show mechanics only, not "
              "destylization (use --profile mini or ffhq1024)", file=sys.stderr)
    fn = ds.make_destylizer(models, options, seed=args.seed)
    meta = {**options.meta(), "profile": profile.name, "n_latent": profile.generator.n_latent,
            "style_dim": profile.generator.style_dim, "pretrained": models.pretrained,
            "format": "np.save dict {file name: float32 (1, n_latent, style_dim)}"}
    if models.loss_nets:
        meta["loss_nets"] = models.loss_nets  # what the baseline's losses ran on

    use_bar = not getattr(args, "no_progress", False) and sys.stderr.isatty()
    bar = None

    def progress(done: int, total: int, name: str) -> None:
        nonlocal bar
        if not use_bar:
            if name:
                print(f"[{done}/{total}] {name}", flush=True)
            return
        if bar is None:
            from tqdm import tqdm

            bar = tqdm(total=total, initial=done, unit="image", desc="destylize", file=sys.stderr)
        bar.update(done - bar.n)
        if name:
            bar.set_postfix_str(name, refresh=True)

    try:
        report = destylize_folder(args.in_dir, args.out_dir, destylize=fn, size=profile.pool_size,
                                  meta=meta, batch=args.batch, device=device,
                                  save_preview=not args.no_previews,
                                  progress=progress)
    except (ValueError, OSError, FolderInUseError) as err:  # missing input, mismatched meta, folder in use
        print(f"redestyle destylize: {err}", file=sys.stderr)
        return 1
    finally:
        if bar is not None:
            bar.close()
    for name, error in report["failed"].items():
        print(f"FAILED {name}: {error}")
    s = report["summary"]
    print(f"destylized {s['ok']} of {s['images']} images, {s['failed']} failed ({meta['space']} codes, "
          f"profile {profile.name}, {'trained' if models.pretrained else 'random'} weights) -> "
          f"{Path(args.out_dir)}")
    if models.loss_nets:
        print("loss networks: " + ", ".join(f"{k} = {v}" for k, v in models.loss_nets.items()))
    return 1 if s["failed"] else 0
