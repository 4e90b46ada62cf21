"""The ffhq1024 profile end to end, as a user runs it with a real weights folder (issue 17 item 13).

A complete weights folder (every ``checkpoints.REGISTRY`` file in its official container layout,
with the parity rule weights: ``tests/official_folder.py``) is written once for the module; then
``align`` -> ``destylize`` (Re-Destyle and the baseline) -> ``train finetune`` -> ``transfer`` ->
``reproduce --profile ffhq1024`` over every notebook run through ``redestyle.cli.main``, the entry
point of ``python -m redestyle``. Full-size networks on a CPU are slow, so every step is as short
as the command allows: two aligned portraits, ``--schedule 1-1``, two baseline steps on one
portrait, two training iterations at batch 1, and the notebooks on one portrait with the quick
parameters below (notebook 03 on 2 people x 2 portraits, the least its consistency accepts). The
networks are untrained: only files, shapes, code paths and outputs are checked, never image
quality.

Cost, measured on a shared 2-core machine with one thread (OMP_NUM_THREADS=1) while other jobs
held the machine (load average 4-5): 993 s of CPU time (16.5 min, notebook kernels included) in
32 min of wall time: reproduce 1019 s (notebook 04's one training iteration 388 s, 01 234 s, 03
155 s, then on one portrait, 00 82 s, 02 41 s), train 492 s, writing the weights 162 s, baseline
124 s, the rest 140 s. With notebook 03 on 2 people x 2 portraits (its ``batch_size=1``: one 1024
backward at a time) the whole file took 28 min of wall time on 2026-12-08, load 3-4.
Full-size backward passes at 1024 dominate (one fine-tuning iteration with R1 and the path-length
term: ~200 s of CPU). Disk: about 11 GB in the temporary folder (removed at the end); memory: 8 GB
resident. Marked slow; CI runs it (``make test`` selects every test). It needs the sample images
(``conftest.samples_dir``) and skips, saying why, without them or without the disk space.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import parity_dir, samples_dir
from official_folder import STYLE, registry_names, write_folder
from PIL import Image

from redestyle import checkpoints as ck
from redestyle.cli import main

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[1]
#: disk the weights folder needs (about 10 GB of float32 files) plus headroom
NEEDED_BYTES = 12 * 2**30
#: notebook parameters of the quick run (every default is the paper's / the figure's setting)
QUICK = ["n_fd=2", "n_recon=1", "n_samples=2",  # 00: sets of the Fréchet / encoder checks
         "n_iters=1", "n_steps=1",  # 01: ReStyle / HyperStyle iterations, optimisation steps
         'schedules=["1-1"]',  # 02 and 03: the Re-Destyle schedules
         "restyle_iters=1", "baseline_steps=1", "batch_size=1",  # 03 (one 1024 backward at a time)
         "iters=1", "batch=1", "schedule=1"]  # 04: fine-tuning iterations and its codes' schedule
PORTRAITS = {"p1": "content/006750.jpg", "p2": "cartoon/Cartoons_00003_01.jpg"}


def _run(capsys, *argv: str) -> str:
    """``python -m redestyle ARGV`` in this process; asserts exit 0 and returns stdout."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 0, f"redestyle {argv[0]} exited {code}:\n{err}\n{out}"
    return out


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("ffhq1024")
    free = shutil.disk_usage(root).free
    if free < NEEDED_BYTES:
        pytest.skip(f"the official weights folder needs about 12 GB in {root}; {free / 2**30:.1f} GB free")
    samples = samples_dir()
    for person, name in PORTRAITS.items():  # one sub-folder per person: notebook 03 groups by it
        (root / "raw" / person).mkdir(parents=True)
        shutil.copy(samples / name, root / "raw" / person)
    try:
        write_folder(root / "weights", parity_dir())
        yield root
    finally:  # pytest keeps the last three runs' temporary folders: not their 11 GB of weights
        for big in ("weights", "run"):
            shutil.rmtree(root / big, ignore_errors=True)


def test_weights_list_finds_every_registry_file(work, capsys):
    out = _run(capsys, "weights", "list", "--weights", work / "weights")
    n = len(registry_names())
    assert f"{n} of {n} present" in out, out


def test_align(work, capsys):
    _run(capsys, "align", work / "raw", work / "aligned", "--size", 1024)
    aligned = sorted((work / "aligned").rglob("*.png"))
    assert [p.parent.name for p in aligned] == ["p1", "p2"]
    assert all(Image.open(p).size == (1024, 1024) for p in aligned)


def _codes(folder: Path) -> tuple[dict, dict]:
    meta = json.loads((folder / "codes_meta.json").read_text())
    codes = {name: ck.load_codes(folder / name) for name in ("exstyle_code.npy", "instyle_code.npy")}
    return meta, codes


def test_destylize_redestyle(work, capsys):
    out = _run(capsys, "destylize", work / "aligned", "--out", work / "codes_rd", "--profile", "ffhq1024",
               "--weights", work / "weights", "--schedule", "1-1", "--device", "cpu", "--no-progress")
    assert "destylized 2 of 2 images" in out and "trained weights" in out
    meta, codes = _codes(work / "codes_rd")
    assert (meta["profile"], meta["space"], meta["schedule"], meta["pretrained"]) == ("ffhq1024", "W+", "1-1", True)
    for file_codes in codes.values():
        assert sorted(file_codes) == ["p1/006750.png", "p2/Cartoons_00003_01.png"]
        assert all(v.shape == (1, 18, 512) and v.dtype == np.float32 and np.isfinite(v).all()
                   for v in file_codes.values())


def test_destylize_baseline(work, capsys):
    out = _run(capsys, "destylize", work / "aligned" / "p1", "--out", work / "codes_bl", "--method", "baseline",
               "--style", STYLE, "--steps", 2, "--profile", "ffhq1024", "--weights", work / "weights",
               "--device", "cpu", "--no-progress")
    assert "destylized 1 of 1 images" in out and "z+ codes" in out
    meta, codes = _codes(work / "codes_bl")
    assert (meta["space"], meta["steps"], meta["style"]) == ("z+", 2, STYLE)
    # the official loss networks of the folder ran, none random
    assert meta["loss_nets"] == {"lpips_vgg16": "vgg16-397923af.pth", "id": "model_ir_se50.pth"}
    z_e, z_i = codes["exstyle_code.npy"]["006750.png"], codes["instyle_code.npy"]["006750.png"]
    assert z_e.shape == z_i.shape == (1, 18, 512)
    np.testing.assert_array_equal(z_i[:, 8:], z_e[:, 8:])  # the baseline's colour copy from layer 8


def test_train_finetune(work, capsys):
    out = _run(capsys, "train", "finetune", "--codes", work / "codes_rd", "--images", work / "aligned",
               "--out", work / "run", "--profile", "ffhq1024", "--weights", work / "weights", "--iter", 2,
               "--batch", 1, "--save_begin", 2, "--save_every", 2, "--n_sample", 1, "--device", "cpu",
               "--no-progress")
    assert "starting from the official generator-pretrain.pt" in out and "finished at iteration 2" in out
    assert "vgg19 = vgg19-dcbb9e9d.pth" in out and "id = model_ir_se50.pth" in out
    last = ck.load_container(work / "run" / "last.pt")
    assert {"g", "d", "g_ema", "g_optim", "d_optim", "args", "ada_aug_p"} <= set(last)
    released = ck.load_container(work / "run" / "generator-000002.pt")
    assert set(released) >= {"g_ema"}
    assert all(torch.isfinite(v).all() for v in released["g_ema"].values() if v.is_floating_point())


def _png(path: Path, size: tuple[int, int]) -> None:
    assert path.is_file(), path
    assert Image.open(path).size == size


def test_transfer_with_the_trained_generator(work, capsys):
    content = work / "aligned" / "p1" / "006750.png"
    out = _run(capsys, "transfer", content, "--style-index", 1, "--codes", work / "codes_rd",
               "--ckpt", work / "run" / "last.pt", "--weights", work / "weights", "--out", work / "out_rd",
               "--device", "cpu")
    assert "(W+ codes), content code W+, profile ffhq1024 (trained encoder)" in out
    _png(work / "out_rd" / "transfer_1_006750.png", (1024, 1024))
    _png(work / "out_rd" / "transfer_1_006750_overview.png", (3 * 1024, 1024))


def test_transfer_with_the_official_style_folder(work, capsys):
    """The released ``<style>/`` folder: generator.pt and z+ codes without codes_meta.json; the
    refined codes are preferred, as style_transfer.py does."""
    style = work / "weights" / STYLE
    content = work / "aligned" / "p1" / "006750.png"
    out = _run(capsys, "transfer", content, "--style-index", 0, "--codes", style, "--ckpt", style / "generator.pt",
               "--profile", "ffhq1024", "--weights", work / "weights", "--out", work / "out_official",
               "--device", "cpu")
    first = next(iter(ck.load_codes(style / "refined_exstyle_code.npy")))
    assert f"exemplar {first} (z+ codes), content code z+, profile ffhq1024" in out
    _png(work / "out_official" / "transfer_0_006750.png", (1024, 1024))


def test_reproduce_every_notebook(work, capsys):
    """Every notebook on ffhq1024 with the quick parameters, on one portrait; notebook 03 on two
    people with two portraits each (each aligned portrait and its mirror), the least its
    same-person consistency accepts (``accuracy.group_by_folder``)."""
    one = work / "one" / "p1"
    one.mkdir(parents=True)
    shutil.copy(work / "aligned" / "p1" / "006750.png", one)
    pairs = work / "pairs"
    for person in PORTRAITS:
        (aligned,) = (work / "aligned" / person).glob("*.png")
        (pairs / person).mkdir(parents=True)
        shutil.copy(aligned, pairs / person)
        mirror = Image.open(aligned).transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        mirror.save(pairs / person / f"{aligned.stem}_mirror.png")
    notebooks = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    others = ",".join(nb.name[:2] for nb in notebooks if not nb.name.startswith("03_"))
    args = ["reproduce", "--profile", "ffhq1024", "--weights", work / "weights",
            "--notebooks", ROOT / "notebooks", "--figures", work / "figures", "--executed", work / "executed",
            "--device", "cpu", *[a for item in QUICK for a in ("--set", item)]]
    out = _run(capsys, *args, "--data", work / "one", "--only", others)
    out += _run(capsys, *args, "--data", pairs, "--only", "03")
    assert out.count(" ok (") == len(notebooks), out
    figures = {p.name for p in (work / "figures").glob("*.png")}
    assert {"fig0_generator_samples.png", "fig1_encoder_comparison.png", "fig2_schedule.png",
            "fig3_destylized.png", "fig4_consistency.png", "fig5_expression.png",
            "fig6_dualstylegan.png"} <= figures, sorted(figures)
    executed = (work / "executed" / "01_encoder_comparison.ipynb").read_text()
    assert "FFHQ 1024 (official weights)" in executed
