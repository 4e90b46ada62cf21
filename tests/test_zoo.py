"""zoo: loss networks are loud when their files are missing (official weights), seeded otherwise."""

from __future__ import annotations

import pytest
import torch

from redestyle import zoo
from redestyle.checkpoints import MissingWeightsError


@pytest.fixture
def folder(tmp_path):
    """A weights folder with a generator in the official container and no loss-network files.

    The generator is the tiny one (the loader infers the architecture from the shapes), so the
    ffhq1024 code path runs without the 1024 weights.
    """
    tiny = zoo.build_models("tiny", methods=())
    torch.save({"g_ema": tiny.generator.state_dict()}, tmp_path / zoo.GENERATOR_FILE)
    return tmp_path


@pytest.mark.parametrize("kwargs, missing", [({"with_lpips": True}, zoo.VGG16_FILE),
                                             ({"with_id": True}, zoo.ID_FILE)])
def test_missing_loss_network_is_an_error_with_official_weights(folder, kwargs, missing):
    with pytest.raises(MissingWeightsError) as err:
        zoo.build_models("ffhq1024", methods=(), weights_dir=folder, **kwargs)
    text = str(err.value)
    assert f"missing weights file {missing!r}" in text and "published at:" in text
    assert "needed by:" in text and zoo.ALLOW_RANDOM_LOSS_NETS in text


def test_allow_random_loss_nets_runs_and_records_what_ran(folder):
    models = zoo.build_models("ffhq1024", methods=(), weights_dir=folder, with_lpips=True, with_id=True,
                              allow_random_loss_nets=True)
    assert not models.lpips.pretrained_backbone and models.id_features is None
    assert models.loss_nets == {"lpips_vgg16": "random VGG16 (seed 0)", "id": "none (no ID term)"}


def test_present_loss_networks_are_loaded_and_recorded(folder):
    vgg = {k: v for k, v in zoo.build_models("tiny", methods=(), with_lpips=True, seed=5).lpips.net.net
           .state_dict().items()}
    # torchvision layout: slice<k>.<i>.* of lpips' VGG16 is features.<i>.*
    torch.save({f"features.{k.split('.', 1)[1]}": v for k, v in vgg.items()}, folder / zoo.VGG16_FILE)
    models = zoo.build_models("ffhq1024", methods=(), weights_dir=folder, with_lpips=True)
    assert models.lpips.pretrained_backbone and models.loss_nets == {"lpips_vgg16": zoo.VGG16_FILE}
    for k, v in models.lpips.net.net.state_dict().items():
        assert torch.equal(v, vgg[k])


def test_random_lpips_backbone_is_seeded_and_leaves_the_global_rng_alone():
    from redestyle.nets.lpips_vgg import LPIPS

    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a, b, c = LPIPS(seed=0), LPIPS(seed=0), LPIPS(seed=1)
    assert torch.equal(torch.random.get_rng_state(), before)
    key = "slice1.0.weight"
    sa, sb, sc = (m.net.net.state_dict()[key] for m in (a, b, c))
    assert torch.equal(sa, sb) and not torch.equal(sa, sc)


def test_loss_networks_of_the_baseline_are_frozen():
    models = zoo.build_models("tiny", methods=("dsg_zplus",), g_prime_style="cartoon", with_lpips=True)
    for net in (models.g_prime, models.lpips):
        assert not any(p.requires_grad for p in net.parameters())
    assert models.loss_nets == {"lpips_vgg16": "random VGG16 (seed 0)"}
