"""The miniature world's perceptual network: the LPIPS distance on its trunk, and the shipped file."""

from __future__ import annotations

import pytest
import torch

from redestyle import zoo
from redestyle.imaging import to_tensor
from redestyle.miniature import perceptual, world
from redestyle.miniature.models import (
    ID_NETWORK_LABEL,
    PERCEPTUAL_LABEL,
    VGG_STANDIN_LABEL,
    load_lpips,
)
from redestyle.train import models as train_models


def _faces(n: int = 8, domain: str = "photo") -> torch.Tensor:
    return to_tensor(world.render_set(n, domain=domain, seed=2000)[0])


def test_the_distance_is_lpips_shaped_zero_on_equal_images_and_symmetric():
    torch.manual_seed(0)
    lp = perceptual.WorldLPIPS(perceptual.Trunk())
    x, y = _faces(), _faces().flip(0)
    d = lp(x, y)
    assert d.shape == (8,) and (d > 0).all()
    assert torch.allclose(lp(x, x), torch.zeros(8), atol=1e-6)
    assert torch.allclose(d, lp(y, x), rtol=1e-5)
    assert not any(p.requires_grad for p in lp.parameters())
    lp.train()
    assert not lp.trunk.training  # a loss network: BatchNorm statistics stay fixed


def test_the_distance_by_hand_on_one_tap():
    # LPIPS' lpips=False computation: unit channel vectors, squared difference summed over channels,
    # averaged over positions, summed over taps (here: a trunk of one stage)
    trunk = perceptual.Trunk(widths=(4,))
    torch.manual_seed(1)
    x, y = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8)
    lp = perceptual.WorldLPIPS(trunk)
    fx, fy = trunk.taps(x)[0], trunk.taps(y)[0]
    nx, ny = (f / (f.norm(dim=1, keepdim=True) + 1e-10) for f in (fx, fy))  # eps: all-zero ReLU positions
    assert torch.allclose(lp(x, y), ((nx - ny) ** 2).sum(1).mean((1, 2)), rtol=1e-4)


def test_the_shipped_trunk_sees_a_small_shift_as_smaller_than_another_face():
    lp = load_lpips()
    x = _faces(32)
    shift, other = lp(x, x.roll(1, 3)).mean(), lp(x, x.roll(1, 0)).mean()
    assert shift < 0.5 * other


def test_the_mini_profile_runs_lpips_on_the_in_world_trunk():
    models = zoo.build_models("mini", methods=(), with_lpips=True)
    assert isinstance(models.lpips, perceptual.WorldLPIPS)
    assert models.loss_nets["lpips_vgg16"] == PERCEPTUAL_LABEL


def test_trunk_features_are_the_trunk_stages_under_vgg19_names():
    torch.manual_seed(0)
    trunk = perceptual.Trunk()
    feats = perceptual.TrunkFeatures(trunk, layers=("relu3_1", "relu1_1"))
    x = _faces(2)
    taps = trunk.eval().taps(x)
    out = feats(x)
    assert feats.layers == ("relu3_1", "relu1_1")
    assert torch.equal(out[0], taps[2]) and torch.equal(out[1], taps[0])  # requested order, same resolution as VGG19
    assert out[0].shape == (2, perceptual.WIDTHS[2], 16, 16)
    feats.train()
    assert not feats.trunk.training and not any(p.requires_grad for p in feats.parameters())
    with pytest.raises(ValueError, match="relu3_2"):
        perceptual.TrunkFeatures(trunk, layers=("relu3_2",))


def test_the_mini_dualstylegan_losses_run_on_the_in_world_networks():
    tm = train_models.build_train_models("mini", seed=0)
    assert isinstance(tm.vgg, perceptual.TrunkFeatures) and tm.loss_nets["vgg19"] == VGG_STANDIN_LABEL
    assert tm.loss_nets["id"] == ID_NETWORK_LABEL
    # the shipped trunk, not a random one: the same features as the LPIPS network's
    assert torch.equal(tm.vgg(_faces(2))[0], load_lpips().trunk.taps(_faces(2))[0])
    assert tm.vgg.layers == train_models.VGG_LAYERS
