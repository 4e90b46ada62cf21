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
    from redestyle.fileio import save_json
    from redestyle.jobs import save_codes

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


def _pretrainer(models, **overrides):
    encoder = zoo.build_models("tiny", methods=["dsg_zplus"], seed=0).encoder("dsg_zplus")
    images = to_uint8_batch(torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1)
    config = PretrainConfig(**{"iter": 10, "batch": 2, "loss_size": 64, **overrides})
    return Trainer(models, config, real=RealBatches(images, 2),
                   encode_wplus=lambda x: models.generator.mapping_plus(encoder(x)))


def test_each_pretraining_stage_restarts_path_length_mean_and_ada(monkeypatch):
    """pretrain_dualstylegan.py runs train() once per stage: mean_path_length = 0 and a fresh ADA."""
    from redestyle.train import trainer as trainer_module

    trainer = _pretrainer(build_train_models("tiny", seed=0, with_id=False), augment=True, g_reg_every=1)
    trainer.train_step()  # stage 1 (inject 7), its only iteration
    seen = []
    path_regularize = trainer_module.g_path_regularize

    def spy(fake, latent, mean_path_length, **kwargs):
        seen.append(float(mean_path_length))
        return path_regularize(fake, latent, mean_path_length, **kwargs)

    monkeypatch.setattr(trainer_module, "g_path_regularize", spy)
    trainer.mean_path_length = torch.tensor(5.0)
    trainer.ada.p, old_ada = 0.5, trainer.ada
    assert trainer.pretrain_position()[:2] == (1, 0)
    trainer.train_step()  # stage 2's first iteration
    assert seen == [0.0] and trainer.ada is not old_ada and trainer.ada.p < 0.5
    trainer.mean_path_length = torch.tensor(5.0)
    trainer.train_step()  # stage 3's first iteration restarts too
    assert seen[1] == 0.0
    trainer.mean_path_length = torch.tensor(5.0)
    trainer.train_step()  # inside stage 3: the mean carries on
    assert seen[2] == 5.0


def test_pretraining_starts_from_a_stylegan2_container(tmp_path):
    """A StyleGAN2 file (g_ema, d; e.g. stylegan2-ffhq-config-f.pt) fills the intrinsic generators and
    D, as the official pretraining does; res / T_s keep their seeded init and g_ema equals g."""
    from redestyle.nets.stylegan2 import Discriminator

    g = zoo.build_models("tiny", methods=(), seed=3).generator
    d = Discriminator(64, 1, channels=get_tiny_channels())
    torch.save({"g_ema": g.state_dict(), "d": d.state_dict(), "g_optim": {"state": {}}},
               tmp_path / zoo.GENERATOR_FILE)
    models = build_train_models("tiny", ckpt=tmp_path / zoo.GENERATOR_FILE, seed=0, with_id=False,
                                stage="pretrain")
    for k, v in g.state_dict().items():
        assert torch.equal(models.generator.generator.state_dict()[k], v), k
        assert torch.equal(models.g_ema.generator.state_dict()[k], v), k
    assert all(torch.equal(a, b) for a, b in zip(models.discriminator.state_dict().values(), d.state_dict().values()))
    seeded = build_train_models("tiny", seed=0, with_id=False)
    for (k, a), b in zip(models.generator.res.state_dict().items(), seeded.generator.res.state_dict().values()):
        assert torch.equal(a, b), k
    assert models.optim_states == {}
    _pretrainer(models).train_step()


def get_tiny_channels():
    from redestyle.config import get_profile

    return get_profile("tiny").generator.channels
