"""The miniature world's perceptual network: the LPIPS distance on its trunk, and the shipped file."""

from __future__ import annotations

import torch

from redestyle import zoo
from redestyle.imaging import to_tensor
from redestyle.miniature import perceptual, world
from redestyle.miniature.models import PERCEPTUAL_LABEL, load_lpips


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
