"""DualStyleGAN fine-tuning on the tiny profile: steps, learning, exact resume, W+/z+ handling."""

from __future__ import annotations

import math

import pytest
import torch

from redestyle import data, zoo
from redestyle.train import (
    FinetuneConfig,
    PairedSet,
    RealBatches,
    Trainer,
    build_train_models,
    paired_batch,
    run,
)
from redestyle.train.data import destylized_pairs


@pytest.fixture(scope="module")
def pairs() -> PairedSet:
    """Re-Destyle W+ codes of the bundled portraits from the tiny pipeline (a short 2-1 schedule)."""
    models = zoo.build_models("tiny", methods=["restyle_psp"], seed=0)
    return destylized_pairs(models, data.sample_portraits(models.profile.pool_size), schedule="2-1")


def make_trainer(pairs: PairedSet, **overrides) -> Trainer:
    config = FinetuneConfig(**{"batch": 2, "iter": 8, "loss_size": 64, **overrides})
    models = build_train_models("tiny", seed=0)
    return Trainer(models, config, real=RealBatches(pairs.images, config.batch, seed=0), paired=pairs)


def clone_params(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def test_tiny_codes_share_the_generator_they_were_made_with(pairs):
    """The tiny DualStyleGAN's intrinsic path is the zoo generator whose W+ the codes live in."""
    models = build_train_models("tiny", seed=0)
    zoo_g = zoo.build_models("tiny", methods=(), seed=0).generator
    for (k, a), b in zip(models.generator.generator.state_dict().items(), zoo_g.state_dict().values()):
        assert torch.equal(a, b), k
    assert pairs.space == "W+" and pairs.exstyle.shape == (4, 10, 64)


def test_one_step_updates_res_style_d_and_ema_only(pairs):
    trainer = make_trainer(pairs)
    g0, d0 = clone_params(trainer.g), clone_params(trainer.d)
    ema0 = clone_params(trainer.g_ema)
    losses = trainer.finetune_step()  # step 0: unpaired, R1 and path-length both due
    for key in ("d", "r1", "g_adv", "cx", "fm", "id", "reg", "g", "path"):
        assert math.isfinite(losses[key]), key
    g1, ema1 = dict(trainer.g.named_parameters()), dict(trainer.g_ema.named_parameters())
    changed = {k for k in g0 if not torch.equal(g0[k], g1[k])}
    assert any(k.startswith("res.") for k in changed) and any(k.startswith("style.") for k in changed)
    assert not any(k.startswith("generator.") for k in changed)  # the intrinsic path stays frozen
    assert any(not torch.equal(d0[k], v) for k, v in trainer.d.named_parameters())
    ema_changed = {k for k in ema0 if not torch.equal(ema0[k], ema1[k])}
    # official EMA quirk: only g_ema.res is averaged
    assert ema_changed and all(k.startswith("res.") for k in ema_changed)
    assert trainer.step == 1
    paired = trainer.finetune_step()
    assert paired["paired"] == 1.0 and math.isfinite(paired["perc"])


def test_perceptual_loss_decreases_when_overfitting_one_pair(pairs):
    """One pair, a fixed target: no jitter (subspace_std 0) and no re-drawn intrinsic entries
    (random_ind = n_latent = 10), so that only the networks' own learning moves the loss.

    Margin (issue 15): with the official re-draw of entries 8-9 the GAN noise made the last/first
    ratio 0.77-0.93 when the starting weights were perturbed by 1e-6 (relative; a stand-in for the
    rounding of other CPU kernels), and an AVX-512 machine gave 0.906 against the 0.9 bar. With the
    fixed target it measured 0.65-0.74 under 1e-6 and 0.73-0.79 under 1e-4 perturbations (AVX2,
    9 runs), at least 0.11 below the bar.
    """
    one = PairedSet(pairs.names[:1], pairs.images[:1], pairs.exstyle[:1], pairs.instyle[:1], "W+")
    trainer = make_trainer(one, iter=24, lr=0.005, subspace_std=0.0, random_ind=one.instyle.shape[1])
    trainer.real = RealBatches(one.images, 2)
    perc = [h["perc"] for h in (trainer.finetune_step() for _ in range(24)) if "perc" in h]
    assert len(perc) == 12
    first, last = sum(perc[:4]) / 4, sum(perc[-4:]) / 4
    assert last < 0.9 * first, (first, last)


def test_resume_continues_exactly(pairs, tmp_path):
    straight = make_trainer(pairs)
    expected = [straight.finetune_step() for _ in range(5)]

    first = make_trainer(pairs)
    for _ in range(3):
        first.finetune_step()
    path = first.save(tmp_path / "last.pt")
    resumed = make_trainer(pairs)  # fresh models: everything must come from the file
    resumed.load(path)
    assert resumed.step == 3
    got = [resumed.finetune_step() for _ in range(2)]
    assert got == expected[3:]
    for (k, a), b in zip(straight.g_ema.state_dict().items(), resumed.g_ema.state_dict().values()):
        assert torch.equal(a, b), k


def test_checkpoint_has_the_official_layout(pairs, tmp_path):
    from redestyle import checkpoints as ck
    from redestyle.train import load_dualstylegan

    trainer = make_trainer(pairs, iter=2, save_every=1, save_begin=2)
    run(trainer, out_dir=tmp_path, progress=False)
    payload = ck.load_checkpoint(tmp_path / "last.pt")
    assert {"g", "d", "g_ema", "g_optim", "d_optim", "args", "ada_aug_p"} <= set(payload)
    assert payload["step"] == 2
    assert sorted(p.name for p in tmp_path.glob("generator-*.pt")) == ["generator-000002.pt"]
    g = load_dualstylegan(tmp_path / "generator-000002.pt", "tiny")  # {"g_ema"} only, as upstream
    assert all(torch.equal(a, b) for a, b in zip(g.state_dict().values(), trainer.g_ema.state_dict().values()))
    assert list((tmp_path / "tb").iterdir())  # TensorBoard event file


def test_paired_batch_wplus_keeps_codes_and_redraws_colour_layers_in_w(pairs):
    """C4: W+ instyle codes are not mapped; entries >= random_ind become mapping(z), not raw z."""
    mapping = build_train_models("tiny", seed=0, with_id=False).generator.generator.mapping
    gen = torch.Generator().manual_seed(3)
    instyle, exstyle, images = paired_batch(pairs, 5, mapping=mapping, random_ind=8, subspace_std=0.0, generator=gen)
    index = torch.randint(len(pairs), (5,), generator=torch.Generator().manual_seed(3))
    assert torch.equal(instyle[:, :8], pairs.instyle[index, :8])
    z = torch.randn(5 * 2, 64, generator=torch.Generator().manual_seed(3).set_state(_after_index(3, 5)))
    with torch.no_grad():
        assert torch.allclose(instyle[:, 8:], mapping(z).reshape(5, 2, 64))
    assert torch.equal(exstyle, pairs.exstyle[index])
    assert images.shape == (5, 3, 64, 64) and images.min() >= -1 and images.max() <= 1


def _after_index(seed: int, n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    torch.randint(4, (n,), generator=g)
    return g.get_state()


def test_zplus_codes_follow_the_official_path(pairs):
    """z+ codes: colour layers redrawn as raw N(0, I) z and fed with z_plus_latent (official script)."""
    zplus = PairedSet(pairs.names, pairs.images, pairs.exstyle, torch.randn(4, 10, 64), "z+")
    instyle, _, _ = paired_batch(zplus, 3, mapping=None, random_ind=8, subspace_std=0.0,
                                 generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)
    index = torch.randint(4, (3,), generator=g)
    assert torch.equal(instyle[:, 8:], torch.randn(6, 64, generator=g).reshape(3, 2, 64))
    assert torch.equal(instyle[:, :8], zplus.instyle[index, :8])
    trainer = make_trainer(zplus, space="z+")
    assert trainer._intrinsic_kwargs(True) == {"z_plus_latent": True}
    with pytest.raises(ValueError, match="space"):
        make_trainer(zplus)  # config says W+, codes say z+


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="augment_p"):
        FinetuneConfig(augment=True, augment_p=2.0)
    with pytest.raises(ValueError, match="space"):
        FinetuneConfig(space="w")
    with pytest.raises(ValueError, match="batch"):
        FinetuneConfig(batch=0)
