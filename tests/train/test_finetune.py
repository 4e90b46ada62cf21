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
    assert payload["args"]["loss_nets"] == {"vgg19": "random narrow VGG19 (seed 0, tiny profile)",
                                            "id": "random narrow IR-SE50 (seed 0, tiny profile)"}
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


def _spy_forward(trainer, calls):
    forward = trainer.g.forward

    def spy(styles, exstyle, **kwargs):
        calls.append({"styles": [s.clone() for s in styles], "exstyle": exstyle, **kwargs})
        return forward(styles, exstyle, **kwargs)

    trainer.g.forward = spy


def test_paired_iteration_draws_a_fresh_pair_for_the_generator_step(pairs):
    """finetune_dualstylegan.py calls get_paired_data again for the G step of a paired iteration."""
    trainer = make_trainer(pairs, subspace_freq=2, id_loss=0.0)
    trainer.finetune_step()  # step 0: unpaired
    draws, calls = [], []
    pairs_of = trainer._pairs
    trainer._pairs = lambda b: draws.append(pairs_of(b)) or draws[-1]
    _spy_forward(trainer, calls)
    assert trainer.finetune_step()["paired"] == 1.0  # step 1: paired, no path-length step
    assert len(draws) == 2 and len(calls) == 2
    (d_in, d_ex, _), (g_in, g_ex, _) = draws
    assert torch.equal(calls[0]["styles"][0], d_in) and torch.equal(calls[0]["exstyle"], d_ex)
    assert torch.equal(calls[1]["styles"][0], g_in) and torch.equal(calls[1]["exstyle"], g_ex)
    assert not torch.equal(d_in, g_in)


def test_content_image_of_the_id_loss_draws_its_own_crossover(pairs):
    """The ID loss' content image is a separate generator call: its own random inject index."""
    trainer = make_trainer(pairs, subspace_freq=1, mixing=1.0)  # unpaired, always two z's
    trainer.finetune_step()  # step 0 (with the path-length step)
    values = iter([2, 3, 4])
    trainer._inject_index = lambda: next(values)
    calls = []
    _spy_forward(trainer, calls)
    trainer.finetune_step()  # step 1: D fake, G fake, content (use_res=False)
    assert [c["inject_index"] for c in calls] == [2, 3, 4]
    assert calls[2]["use_res"] is False
    assert all(torch.equal(a, b) for a, b in zip(calls[1]["styles"], calls[2]["styles"]))


def test_finetuning_continues_the_adam_states_of_its_ckpt(pairs, tmp_path):
    """finetune_dualstylegan.py loads g_optim / d_optim from generator-pretrain.pt when present."""
    trainer = make_trainer(pairs)
    for _ in range(2):
        trainer.finetune_step()
    torch.save(trainer.checkpoint(), tmp_path / "generator-pretrain.pt")
    models = build_train_models("tiny", ckpt=tmp_path / "generator-pretrain.pt", seed=0)
    assert set(models.optim_states) == {"g_optim", "d_optim"}
    config = FinetuneConfig(batch=2, iter=8, loss_size=64)
    fresh = Trainer(models, config, real=RealBatches(pairs.images, 2, seed=0), paired=pairs)
    for mine, saved in ((fresh.g_optim, trainer.g_optim), (fresh.d_optim, trainer.d_optim)):
        got, want = mine.state_dict()["state"], saved.state_dict()["state"]
        assert got.keys() == want.keys() and got
        for k in want:
            assert torch.equal(got[k]["exp_avg"], want[k]["exp_avg"])
            assert torch.equal(got[k]["exp_avg_sq"], want[k]["exp_avg_sq"])


def test_paper_setting_example_is_the_official_cartoon_command():
    """The module docstring's command parses to the README's Cartoon setting, --augment included."""
    import shlex

    from redestyle.cli import build_parser
    from redestyle.train import cli as train_cli

    lines = train_cli.__doc__.split("::", 1)[1].strip().split("\n\n")[0]
    command = shlex.split(lines.replace("\\\n", " "))
    args = build_parser().parse_args(command[command.index("train"):])
    config = train_cli._config(args, FinetuneConfig, space="z+")
    assert (config.iter, config.batch, config.l2_reg_loss, config.augment) == (1500, 4, 0.015, True)
    assert (config.style_loss, config.cx_loss, config.perc_loss, config.id_loss) == (0.25, 0.25, 1.0, 1.0)
