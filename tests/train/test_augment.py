"""Non-leaking ADA: the augmentation pipeline, the adaptive p, and fine-tuning with ``augment=True``."""

from __future__ import annotations

import math

import pytest
import torch

from redestyle.train import FinetuneConfig, PairedSet, RealBatches, Trainer, build_train_models
from redestyle.train.augment import AdaptiveAugment, _warp, augment, geometric_matrix


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(4, 3, 16, 16, generator=gen(1)) * 2 - 1


# ------------------------------------------------------------------ the pipeline


def test_p0_is_the_identity_and_draws_as_much_as_p1(images):
    g0, g1 = gen(), gen()
    assert augment(images, 0.0, generator=g0) is images
    augment(images, 1.0, generator=g1)
    assert torch.equal(g0.get_state(), g1.get_state())  # the stream stays aligned whatever p is


def test_p1_changes_every_image_keeps_shape_dtype_and_is_differentiable(images):
    x = images.double().requires_grad_(True)
    out = augment(x, 1.0, generator=gen())
    assert out.shape == x.shape and out.dtype == torch.float64 and torch.isfinite(out).all()
    assert all(not torch.allclose(o, i) for o, i in zip(out, x))
    # R1 goes through the augmentation: second-order gradients must reach D's weights
    w = torch.randn(2, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    pred = torch.nn.functional.conv2d(out, w).pow(2).sum()
    (grad,) = torch.autograd.grad(pred, x, create_graph=True)
    assert grad.abs().sum() > 0
    grad.pow(2).sum().backward()
    assert torch.isfinite(w.grad).all() and w.grad.abs().sum() > 0


def test_same_generator_state_same_augmentation(images):
    assert torch.equal(augment(images, 0.7, generator=gen(5)), augment(images, 0.7, generator=gen(5)))
    assert not torch.equal(augment(images, 0.7, generator=gen(5)), augment(images, 0.7, generator=gen(6)))


def test_geometric_only_stays_in_range_and_keeps_flat_images_flat(images):
    """Bilinear sampling with reflected borders: convex combinations of the input, no fill colour."""
    out = augment(images, 1.0, generator=gen(), color=False)
    assert out.min() >= images.min() - 1e-6 and out.max() <= images.max() + 1e-6
    flat = torch.full((3, 3, 16, 16), 0.3)
    assert torch.allclose(augment(flat, 1.0, generator=gen(), color=False), flat, atol=1e-6)


def test_warp_matches_flip_rot90_and_integer_shift(images):
    flip = torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)).repeat(4, 1, 1)
    assert torch.allclose(_warp(images, flip), torch.flip(images, [3]), atol=1e-5)
    # output (x, y) reads input (-y, x): a quarter turn
    quarter = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    turned = _warp(images, quarter.repeat(4, 1, 1))
    assert any(torch.allclose(turned, torch.rot90(images, k, (2, 3)), atol=1e-5) for k in (1, 3))
    shift = torch.tensor([[1.0, 0.0, 3.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    shifted = _warp(images, shift.repeat(4, 1, 1))  # output column j reads input column j + 3
    assert torch.allclose(shifted[..., :-3], images[..., 3:], atol=1e-5)
    # beyond the border the image is mirrored about its outer edge (columns 16, 17, 18 read 15, 14, 13)
    assert torch.allclose(shifted[..., -3:], torch.flip(images[..., -3:], [3]), atol=1e-5)


def test_colour_only_is_per_pixel_affine_and_keeps_grey_grey(images):
    out = augment(images, 1.0, generator=gen(), geometric=False)
    assert not torch.allclose(out, images)
    flat = torch.rand(4, 3, 1, 1, generator=gen(2)).expand(4, 3, 8, 8).contiguous()
    flat_out = augment(flat, 1.0, generator=gen(3), geometric=False)
    assert torch.allclose(flat_out, flat_out[..., :1, :1].expand_as(flat_out), atol=1e-6)  # no spatial change
    # every colour transform maps the luma axis to itself: grey stays grey (r = g = b)
    grey = torch.rand(4, 1, 8, 8, generator=gen(4)).repeat(1, 3, 1, 1) * 2 - 1
    grey_out = augment(grey, 1.0, generator=gen(), geometric=False)
    assert torch.allclose(grey_out[:, :1].expand_as(grey_out), grey_out, atol=1e-5)
    assert not torch.allclose(grey_out, grey)


def test_transform_probabilities_follow_p():
    """P(identity) = (1 - p/2)(1 - 3p/4)(1 - p)^4 (1 - p_rot)^2 with p_rot = 1 - sqrt(1 - p) (ADA)."""
    p, n = 0.5, 100_000
    m = geometric_matrix(p, n, 1024, 1024, generator=gen())
    identity = torch.isclose(m, torch.eye(3, dtype=torch.float64)).flatten(1).all(1).float().mean().item()
    p_rot = 1 - math.sqrt(1 - p)
    expected = (1 - p / 2) * (1 - 3 * p / 4) * (1 - p) ** 4 * (1 - p_rot) ** 2
    assert abs(identity - expected) < 0.1 * expected, (identity, expected)
    with pytest.raises(ValueError, match="probability"):
        augment(torch.zeros(1, 3, 4, 4), 1.5, generator=gen())


# ------------------------------------------------------------------ adaptive p


def test_adaptive_p_rises_when_d_is_overconfident_on_reals_and_falls_otherwise():
    ada = AdaptiveAugment(target=0.6, length=64, update_every=8)
    confident, unsure = torch.ones(4, 1), torch.tensor([[1.0], [1.0], [-1.0], [-1.0]])
    assert [ada.tune(confident) for _ in range(7)] == [0.0] * 7  # only every 8th call updates
    assert ada.tune(confident) == pytest.approx(0.5) and ada.r_t == 1.0  # + 8 * 4 / 64
    assert [ada.tune(unsure) for _ in range(8)][-1] == pytest.approx(0.0) and ada.r_t == 0.0
    for _ in range(8):
        ada.tune(unsure)
    assert ada.p == 0.0  # clamped at 0
    for _ in range(40):
        ada.tune(confident)
    assert ada.p == 1.0  # clamped at 1
    ties = AdaptiveAugment(target=0.5, length=64, update_every=1, p=0.5)
    assert ties.tune(torch.tensor([[1.0], [1.0], [1.0], [-1.0]])) == pytest.approx(0.5 - 4 / 64)  # r_t = target


def test_adaptive_state_round_trips_mid_accumulation():
    a = AdaptiveAugment(length=64, update_every=8)
    for _ in range(5):
        a.tune(torch.ones(4, 1))
    b = AdaptiveAugment(length=64, update_every=8)
    b.load_state_dict(a.state_dict())
    assert [a.tune(torch.ones(4, 1)) for _ in range(3)] == [b.tune(torch.ones(4, 1)) for _ in range(3)]
    assert a.p > 0


# ------------------------------------------------------------------ training with augment=True


@pytest.fixture(scope="module")
def pairs() -> PairedSet:
    """Random W+ codes and images at the tiny size (the step only needs the shapes to be right)."""
    g = gen(7)
    images = (torch.rand(4, 3, 64, 64, generator=g) * 255).to(torch.uint8)
    return PairedSet([f"s{i}" for i in range(4)], images, torch.randn(4, 10, 64, generator=g),
                     torch.randn(4, 10, 64, generator=g), "W+")


def make_trainer(pairs: PairedSet, **overrides) -> Trainer:
    config = FinetuneConfig(**{"batch": 2, "iter": 8, "loss_size": 64, "augment": True, "ada_length": 16,
                               "ada_every": 1, "d_reg_every": 2, "id_loss": 0.0, **overrides})
    models = build_train_models("tiny", seed=0)
    return Trainer(models, config, real=RealBatches(pairs.images, config.batch, seed=0), paired=pairs)


def test_augmented_step_is_finite_and_checkpoints_the_real_p(pairs):
    trainer = make_trainer(pairs)
    trainer.ada.p = 0.5  # make the augmentation do something from the first step
    losses = [trainer.finetune_step() for _ in range(2)]
    for key in ("d", "r1", "g_adv", "cx", "fm", "g", "ada_aug_p", "r_t"):
        assert math.isfinite(losses[0][key]), key
    # ada_length 16, one update per D step of 2 images: p moves by 1/8 per step
    assert losses[0]["ada_aug_p"] == pytest.approx(0.5 + (0.125 if losses[0]["r_t"] > 0.6 else -0.125))
    payload = trainer.checkpoint()
    assert payload["ada_aug_p"] == trainer.ada_aug_p == trainer.ada.p == losses[-1]["ada_aug_p"]
    assert payload["ada"]["p"] == trainer.ada_aug_p
    fixed = make_trainer(pairs, augment_p=0.3)
    assert fixed.ada is None and fixed.checkpoint()["ada_aug_p"] == 0.3
    assert make_trainer(pairs, augment=False).checkpoint()["ada_aug_p"] == 0.0


def test_resume_with_augment_continues_exactly(pairs, tmp_path):
    def start() -> Trainer:
        trainer = make_trainer(pairs)
        trainer.ada.p = 0.5
        return trainer

    straight = start()
    expected = [straight.finetune_step() for _ in range(4)]
    first = start()
    for _ in range(2):
        first.finetune_step()
    path = first.save(tmp_path / "last.pt")
    resumed = make_trainer(pairs)  # p = 0: everything must come from the file
    resumed.load(path)
    assert resumed.ada_aug_p == first.ada_aug_p > 0
    assert [resumed.finetune_step() for _ in range(2)] == expected[2:]


def test_config_validates_the_ada_fields():
    assert FinetuneConfig(augment=True).augment
    for field, value in (("augment_p", 1.5), ("ada_target", -0.1), ("ada_length", 0), ("ada_every", 0)):
        with pytest.raises(ValueError, match=field):
            FinetuneConfig(**{field: value})
