"""Style transfer semantics, the contextual loss and the VGG19 feature extractor."""

from __future__ import annotations

import argparse

import pytest
import torch

from redestyle.cli import add_transfer_arguments
from redestyle.losses import VGG19_LAYERS, VGG19Features, contextual_loss
from redestyle.train import build_train_models
from redestyle.transfer import stylize, transfer_grid


@pytest.fixture(scope="module")
def generator():
    g = build_train_models("tiny", seed=0, with_id=False).g_ema
    with torch.no_grad():  # move the extrinsic path away from its near-identity start
        for p in g.res.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return g


@pytest.fixture(scope="module")
def codes(generator):
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        w = generator.generator.mapping(torch.randn(5 * 10, 64, generator=g)).reshape(5, 10, 64)
    return w[:2], w[2:]  # 2 contents, 3 exemplars (W+)


def test_transfer_shapes_and_range(generator, codes):
    contents, exemplars = codes
    grid = transfer_grid(generator, contents, exemplars)
    assert grid.shape == (2, 3, 3, 64, 64)
    assert grid.min() >= -1 and grid.max() <= 1
    assert not torch.allclose(grid[0, 0], grid[0, 1])  # the exemplar matters


def test_zero_weights_give_the_intrinsic_only_image(generator, codes):
    contents, exemplars = codes
    with torch.no_grad():
        out = stylize(generator, contents, exemplars[:2], structure_weight=0.0, color_weight=0.0, truncation=1.0)
        plain = generator.generator.decode(contents).clamp(-1, 1)  # StyleGAN2, fixed noise
    assert torch.allclose(out, plain, atol=1e-5)
    with torch.no_grad():  # truncation pulls the intrinsic code toward w = 0, as the script does
        out = stylize(generator, contents, exemplars[:2], structure_weight=0.0, color_weight=0.0, truncation=0.75)
        plain = generator.generator.decode(0.75 * contents).clamp(-1, 1)
    assert torch.allclose(out, plain, atol=1e-5)


def test_zplus_codes_are_mapped_once(generator, codes):
    """z+ content/exemplar codes equal their W+ images under the per-layer mapping (C4)."""
    g = torch.Generator().manual_seed(2)
    z_in, z_ex = torch.randn(1, 10, 64, generator=g), torch.randn(1, 10, 64, generator=g)
    with torch.no_grad():
        w_in, w_ex = generator.mapping_plus(z_in), generator.mapping_plus(z_ex)
        a = stylize(generator, z_in, z_ex, instyle_space="z+", exstyle_space="z+")
        b = stylize(generator, w_in, w_ex, instyle_space="W+", exstyle_space="W+")
    assert torch.allclose(a, b, atol=1e-5)
    with pytest.raises(ValueError, match="instyle_space"):
        stylize(generator, w_in, w_ex, instyle_space="w+")


def test_transfer_cli_arguments():
    args = add_transfer_arguments(argparse.ArgumentParser()).parse_args(
        ["face.png", "--style-index", "3", "--codes", "codes", "--ckpt", "generator.pt", "--structure-weight",
         "0.6", "--color-weight", "1", "--wplus"])
    assert (args.style_index, args.structure_weight, args.color_weight, args.wplus) == (3, 0.6, 1.0, True)


def naive_contextual(x, y, h=0.2):
    """losses.md §3 written out with loops (independent of the vectorised version)."""
    n, c = x.shape[:2]
    mu = y.mean(dim=(0, 2, 3))
    total = 0.0
    for b in range(n):
        xs = [(x[b, :, i, j] - mu) for i in range(x.shape[2]) for j in range(x.shape[3])]
        ys = [(y[b, :, i, j] - mu) for i in range(y.shape[2]) for j in range(y.shape[3])]
        xs = [v / v.norm() for v in xs]
        ys = [v / v.norm() for v in ys]
        d = torch.tensor([[1 - float(a @ bb) for bb in ys] for a in xs])
        rel = d / (d.min(dim=1, keepdim=True).values + 1e-5)
        w = torch.exp((1 - rel) / h)
        cx = w / w.sum(dim=1, keepdim=True)
        total += -torch.log(cx.max(dim=0).values.mean() + 1e-5)
    return total / n


def test_contextual_loss_matches_the_definition():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(2, 5, 3, 3, generator=g), torch.randn(2, 5, 2, 4, generator=g)
    assert torch.allclose(contextual_loss(x, y), naive_contextual(x, y), atol=1e-5)
    assert contextual_loss(y, y) < contextual_loss(x, y)  # identical features match best


def test_vgg19_features_match_torchvision():
    torch.manual_seed(0)
    from torchvision.models import vgg

    features = vgg.make_layers(vgg.cfgs["E"]).eval()  # torchvision's vgg19().features, without the big head
    ours = VGG19Features({f"features.{k}": v for k, v in features.state_dict().items()}, layers=("relu1_1", "relu3_1"))
    assert len(ours.features) == VGG19_LAYERS["relu3_1"] + 1  # truncated after the deepest layer
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    with torch.no_grad():
        want = features[:12](((x + 1) / 2 - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1))
        got = ours(x)
    assert torch.allclose(got[1], want, atol=1e-5)
    assert got[0].shape == (1, 64, 32, 32)
    with pytest.raises(KeyError, match="features"):
        VGG19Features({"classifier.0.weight": torch.zeros(1)})
