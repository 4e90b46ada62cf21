"""IR-SE backbone (model_ir_se50.pth layout), ID-loss features and ReStyle's input surgery."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import load_parity

from redestyle.nets.irse import (
    STAGE_UNITS,
    Backbone,
    IDFeatures,
    init_from_irse,
    make_body,
    stage_ends,
    widen_input_layer,
)

TINY = (8, 16, 32, 64)


@pytest.fixture(scope="module")
def irse50():
    fx = load_parity("irse50_backbone")
    cfg = fx.meta["constructor"]
    net = Backbone(cfg["input_size"], cfg["num_layers"], cfg["mode"], cfg["drop_ratio"])
    net.load_state_dict(fx.weights(), strict=True)
    return fx, net.eval()


@pytest.mark.parametrize("case", ["a", "b"], ids=["a", "b"])
@torch.no_grad()
def test_parity_irse50_backbone(irse50, case):
    fx, net = irse50
    if case == "a":
        x = fx.data["x112"]
        fx.check("a.feat_prenorm", net.embed(x))
        fx.check("a.feat", net(x))
    else:
        fx.check("b.feat", IDFeatures(net)(fx.data["x256"]))


def test_stage_layout():
    assert stage_ends(50) == (2, 6, 20, 23)
    for depth, units in STAGE_UNITS.items():
        body = make_body(depth, "ir", TINY).eval()
        assert len(body) == sum(units)
        # the first unit of every stage halves the resolution, the rest keep it
        x = torch.zeros(1, TINY[0], 16, 16)
        assert body(x).shape == (1, TINY[-1], 1, 1)


def test_ir_mode_has_no_se_keys():
    ir = Backbone(32, 50, "ir", widths=TINY).state_dict()
    ir_se = Backbone(32, 50, "ir_se", widths=TINY).state_dict()
    assert not any(".5.fc" in k for k in ir)
    assert sum(".res_layer.5.fc1.weight" in k for k in ir_se) == 24
    assert set(ir) < set(ir_se)


def test_state_dict_matches_official_manifest():
    fx = load_parity("irse50_backbone")
    official = {e["key"]: tuple(e["shape"]) for e in fx.rule.load_manifest(str(fx.root))["entries"]}
    ours = {k: tuple(v.shape) for k, v in Backbone().state_dict().items()}
    assert ours == official


def test_tiny_backbone_unit_norm_and_grad():
    torch.manual_seed(0)
    net = Backbone(32, 50, "ir_se", widths=TINY).eval()
    x = torch.randn(2, 3, 32, 32, requires_grad=True)
    feat = net(x)
    assert feat.shape == (2, 64)
    torch.testing.assert_close(feat.norm(dim=1), torch.ones(2))
    feat.sum().backward()
    assert x.grad.abs().sum() > 0


def test_id_features_crop():
    index = torch.arange(256.0)
    x = (index[:, None] * 1000 + index).expand(1, 3, 256, 256)  # value = 1000 * row + column
    crop = IDFeatures.crop(x)
    assert crop.shape[-2:] == (188, 188)
    assert crop[0, 0, 0, 0] == 35_032 and crop[0, 0, -1, -1] == 222_219
    # other sizes take the same fractions of the image
    assert IDFeatures.crop(torch.zeros(1, 3, 64, 64)).shape[-2:] == (47, 47)
    with pytest.raises(ValueError, match="square"):
        IDFeatures.crop(torch.zeros(1, 3, 64, 32))


@torch.no_grad()
def test_id_features_pool_large_images_to_256_first():
    ids = IDFeatures(Backbone(32, 50, "ir_se", widths=TINY))
    x = torch.randn(1, 3, 512, 512)
    torch.testing.assert_close(ids(x), ids(F.avg_pool2d(x, 2)))


def test_id_features_stay_in_eval_mode():
    ids = IDFeatures(Backbone(32, 50, "ir_se", widths=TINY))
    ids.train()
    assert not ids.backbone.training
    assert ids.training


def test_widen_input_layer():
    sd = Backbone(32, 50, "ir_se", widths=TINY).state_dict()
    before = sd["input_layer.0.weight"].clone()
    wide = widen_input_layer(sd, 6, generator=torch.Generator().manual_seed(0))
    w = wide["input_layer.0.weight"]
    assert w.shape == (TINY[0], 6, 3, 3)
    torch.testing.assert_close(w[:, :3], before)
    assert w[:, 3:].std() > 0.5  # ReStyle draws the new channels from N(0, 1)
    assert torch.equal(sd["input_layer.0.weight"], before)  # input untouched
    assert wide["body.0.res_layer.1.weight"] is sd["body.0.res_layer.1.weight"]
    with pytest.raises(ValueError, match="narrow"):
        widen_input_layer(wide, 3)
    with pytest.raises(KeyError, match="input_layer.0.weight"):
        widen_input_layer({}, 6)


def test_init_from_irse_loads_trunk_of_a_six_channel_encoder():
    from redestyle.nets.encoders import BackboneEncoder

    src = Backbone(64, 50, "ir_se", widths=TINY).state_dict()
    enc = BackboneEncoder(input_nc=6, n_styles=4, style_dim=16, input_size=64, widths=TINY)
    init_from_irse(enc, src)
    got = enc.state_dict()
    torch.testing.assert_close(got["input_layer.0.weight"][:, :3], src["input_layer.0.weight"])
    torch.testing.assert_close(got["body.23.res_layer.3.weight"], src["body.23.res_layer.3.weight"])
    with pytest.raises(KeyError, match="missing"):
        init_from_irse(enc, {k: v for k, v in src.items() if not k.startswith("body.23.")})


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_layers"):
        Backbone(112, 34)
    with pytest.raises(ValueError, match="mode"):
        Backbone(112, 50, "se")
    with pytest.raises(ValueError, match="multiple of 16"):
        Backbone(100)
