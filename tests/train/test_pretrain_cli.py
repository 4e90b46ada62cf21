"""Pretraining step and the ``redestyle train`` / ``transfer`` command bodies on the tiny profile."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import torch
from PIL import Image

from redestyle import zoo
from redestyle.cli import add_transfer_arguments
from redestyle.imaging import to_uint8_batch
from redestyle.train import PretrainConfig, RealBatches, Trainer, build_train_models
from redestyle.train.cli import add_train_arguments, cli_train
from redestyle.transfer import cli_transfer


def test_pretrain_step_trains_the_extrinsic_path():
    models = build_train_models("tiny", seed=0, with_id=False)
    encoder = zoo.build_models("tiny", methods=["dsg_zplus"], seed=0).encoder("dsg_zplus")
    images = to_uint8_batch(torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1)
    config = PretrainConfig(iter=10, batch=2, loss_size=64)
    trainer = Trainer(models, config, real=RealBatches(images, 2),
                      encode_wplus=lambda x: models.generator.mapping_plus(encoder(x)))
    assert trainer.pretrain_schedule() == [(1, 7), (1, 6), (10, 5)]
    before = [p.detach().clone() for p in models.generator.res.parameters()]
    for inject in (7, 6, 5):  # one iteration per stage: z+/W+ (stage_iter 0) then the next stage
        assert trainer.pretrain_position()[2] == inject
        losses = trainer.train_step()
        assert all(math.isfinite(v) for v in losses.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, models.generator.res.parameters()))


def test_train_and_transfer_commands_on_codes_written_to_disk(tmp_path):
    from redestyle.jobs import save_codes, save_json

    images_dir, codes_dir, run_dir = tmp_path / "style", tmp_path / "codes", tmp_path / "run"
    images_dir.mkdir()
    g = torch.Generator().manual_seed(0)
    mapping = build_train_models("tiny", seed=0, with_id=False).generator.generator.mapping
    ex, ins = {}, {}
    for k in range(3):
        pixels = (torch.rand(64, 64, 3, generator=g) * 255).to(torch.uint8).numpy()
        Image.fromarray(pixels).save(images_dir / f"s{k}.png")
        with torch.no_grad():
            ex[f"s{k}.png"] = mapping(torch.randn(10, 64, generator=g))[None].numpy().astype(np.float32)
            ins[f"s{k}.png"] = mapping(torch.randn(10, 64, generator=g))[None].numpy().astype(np.float32)
    save_codes(codes_dir / "exstyle_code.npy", ex)
    save_codes(codes_dir / "instyle_code.npy", ins)
    save_json(codes_dir / "codes_meta.json", {"space": "W+"})

    parser = add_train_arguments(argparse.ArgumentParser())
    args = parser.parse_args(["finetune", "--codes", str(codes_dir), "--images", str(images_dir), "--out",
                              str(run_dir), "--profile", "tiny", "--device", "cpu", "--iter", "2", "--batch",
                              "2", "--save_begin", "2", "--no-progress"])
    assert cli_train(args) == 0
    assert (run_dir / "last.pt").exists() and (run_dir / "generator-000002.pt").exists()

    args = add_transfer_arguments(argparse.ArgumentParser()).parse_args(
        [str(images_dir / "s0.png"), "--style-index", "2", "--codes", str(codes_dir), "--ckpt",
         str(run_dir / "generator-000002.pt"), "--profile", "tiny", "--device", "cpu", "--out", str(tmp_path / "out")])
    assert cli_transfer(args) == 0
    out = np.asarray(Image.open(tmp_path / "out" / "transfer_2_s0.png"))
    assert out.shape == (64, 64, 3)
    assert json.loads((codes_dir / "codes_meta.json").read_text())["space"] == "W+"
