"""``redestyle transfer`` out of the box on the mini profile: the shipped DualStyleGAN, its codes, its record."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from redestyle import checkpoints as ck
from redestyle import cli, zoo
from redestyle.imaging import load_image
from redestyle.miniature import models as mini_models
from redestyle.miniature import supervision
from redestyle.train.models import load_dualstylegan
from redestyle.transfer import encode_content, stylize, transfer_inputs

STATES = mini_models.SHIPPED_WEIGHTS_DIR.parents[2] / "states" / "miniature"


def test_mini_transfer_needs_no_files_of_the_user(tmp_path, capsys):
    assert cli.main(["transfer", "--style-index", "3", "--out", str(tmp_path), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "shipped DualStyleGAN dsg_redestyle.pt" in out and "style_0003.png" in out
    image = np.asarray(Image.open(tmp_path / "transfer_3_content.png"))
    overview = np.asarray(Image.open(tmp_path / "transfer_3_content_overview.png"))
    assert image.shape == (64, 64, 3) and overview.shape == (64, 192, 3)
    # the image is the shipped generator's transfer of the shipped content with exemplar 3's code
    gen, codes_dir = mini_models.dualstylegan_files()
    g = load_dualstylegan(gen, "mini")
    models = zoo.build_models("mini", methods=["restyle_psp"])
    codes = ck.load_codes(codes_dir / "exstyle_code.npy")
    with torch.no_grad():
        instyle = encode_content(models, load_image(codes_dir / mini_models.SAMPLE_CONTENT, size=64), space="W+")
        want = stylize(g, instyle, torch.from_numpy(codes["style_0003.png"]), instyle_space="W+", exstyle_space="W+")
    want = ((want[0].permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255).numpy()
    assert np.abs(image.astype(np.float64) - want).max() <= 1
    # the style is applied: the stylised face differs from the intrinsic-only reconstruction beside it
    assert np.abs(overview[:, 64:128].astype(float) - overview[:, 128:].astype(float)).mean() > 5


def test_shipped_dualstylegan_is_the_recorded_redestyle_run():
    gen, codes_dir = mini_models.dualstylegan_files()
    record = json.loads(gen.with_suffix(".json").read_text())
    assert record["stage"] == "dsg_redestyle" and record["seed"] == 0 and record["steps"] == 1500
    assert record["command"].startswith("python -m redestyle.miniature.supervision train --codes redestyle")
    assert record["seconds"] > 0 and record["final_losses"] and record["extra"]["where"]
    shipped = record["extra"]["shipped"]
    assert shipped["command"].startswith("python -m redestyle.miniature.supervision ship")
    assert 0 <= shipped["max_abs_output_change"] < 0.01  # float16 moves an output by under 1.3 grey levels
    # float16, strictly loadable; its intrinsic path is the shipped (frozen) generator.pt
    state = ck.load_container(gen)["g_ema"]
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())
    g = load_dualstylegan(gen, "mini")
    intrinsic = zoo.build_models("mini", methods=()).generator.state_dict()
    assert all(torch.equal(g.generator.state_dict()[k], v) for k, v in intrinsic.items())
    # the codes: the style set's Re-Destyle z_e (the committed codes file), W+, mini
    meta = json.loads((codes_dir / "codes_meta.json").read_text())
    assert (meta["space"], meta["profile"], meta["method"], meta["schedule"]) == ("W+", "mini", "redestyle", "5-3-1")
    codes = ck.load_codes(codes_dir / "exstyle_code.npy")
    z_e = np.load(STATES / record["extra"]["codes"]["file"])["z_e"]
    assert list(codes) == [f"style_{k:04d}.png" for k in range(supervision.N_STYLES)]
    assert np.array_equal(np.concatenate(list(codes.values())), z_e)
    # every mini weight file together stays under issue 13's budget
    total = sum(f.stat().st_size for f in mini_models.SHIPPED_WEIGHTS_DIR.rglob("*") if f.is_file())
    assert total < 60 * 2**20


def test_transfer_errors_are_one_line(tmp_path, monkeypatch, capsys):
    # only mini ships a DualStyleGAN
    assert cli.main(["transfer", "face.png", "--style-index", "0", "--profile", "tiny"]) == 1
    assert capsys.readouterr().err == ("redestyle transfer: profile tiny needs --codes and --ckpt (only the mini "
                                       "profile ships a DualStyleGAN, its codes and a sample content)\n")
    # a mini weights folder without it ($REDESTYLE_MINI_WEIGHTS of one's own) names the missing file
    monkeypatch.setattr(mini_models, "WEIGHTS_DIR", tmp_path)
    assert cli.main(["transfer", "--style-index", "0"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"redestyle transfer: {tmp_path / 'dsg_redestyle.pt'}: the mini profile has no shipped "
                          f"DualStyleGAN") and err.count("\n") == 1
    # inputs given in full need no shipped file (none is here now)
    assert transfer_inputs("a.png", str(tmp_path), "g.pt", None) == (
        Path("a.png"), tmp_path, Path("g.pt"), "mini", False)
