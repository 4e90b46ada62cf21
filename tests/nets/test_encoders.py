"""pSp / e4e / ReStyle encoders: parity with the official modules, tiny-profile invariants."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import load_parity

from redestyle.nets.encoders import (
    BackboneEncoder,
    Encoder4Editing,
    GradualStyleEncoder,
    ProgressiveBackboneEncoder,
    ResNetBackboneEncoder,
    ResNetProgressiveBackboneEncoder,
    n_styles_for,
)

TINY = {"n_styles": 10, "style_dim": 64, "input_size": 64, "widths": (8, 16, 32, 64)}

# Official fixture -> our class and the constructor arguments of meta["constructor"].
PARITY_NETS = {
    "psp_encoder": (GradualStyleEncoder, {"input_nc": 3, "n_styles": 18}),
    "dsg_encoder_zplus": (GradualStyleEncoder, {"input_nc": 3, "n_styles": 18}),
    "e4e_encoder": (Encoder4Editing, {"n_styles": n_styles_for(1024)}),
    "restyle_psp_encoder": (BackboneEncoder, {"input_nc": 6, "n_styles": 18}),
    "restyle_e4e_ffhq_encoder": (ProgressiveBackboneEncoder, {"input_nc": 6, "n_styles": 18}),
    "restyle_e4e_encoder": (ResNetBackboneEncoder, {"input_nc": 6, "n_styles": 18}),
}

_weights: dict[str, dict] = {}


def encoder_for(name: str, cls=None):
    """(fixture, encoder of ``cls`` holding the fixture's rule weights).

    Generating the ~210M rule weights is the slow part, and psp/e4e/dsg (and the two FFHQ
    ReStyle fixtures) share one manifest: keep the last state dict and let every encoder
    built from an identical manifest use its tensors (meta-device init + ``assign=True``).
    """
    default_cls, kwargs = PARITY_NETS[name]
    fx = load_parity(name)
    manifest = (fx.root / "manifest.json").read_text()
    if manifest not in _weights:
        _weights.clear()  # ~0.9 GB each: never hold two
        _weights[manifest] = fx.weights()
    with torch.device("meta"):
        net = (cls or default_cls)(**kwargs)
    net.load_state_dict(_weights[manifest], strict=True, assign=True)
    return fx, net.eval()


_codes: dict = {}


@torch.no_grad()
def codes_for(name: str, cls=None):
    """(fixture, encoder(stored input)), computed once per fixture and class.

    ReStyle fixtures feed the encoder-only case [x, x mirrored] (6 channels), as their meta says.
    """
    key = (name, cls)
    if key not in _codes:
        fx, enc = encoder_for(name, cls)
        x = fx.data["x"]
        if enc.input_nc == 6:
            x = torch.cat([x, x.flip(-1)], dim=1)
        _codes[key] = (fx, enc(x))
    return _codes[key]


@pytest.fixture(scope="module")
def decoder():
    """The stylegan2_ffhq1024 fixture generator (the decoder of every composite fixture)."""
    from redestyle.nets.stylegan2 import Generator

    fx = load_parity("stylegan2_ffhq1024")
    gen = Generator(1024, 512, 8, channel_multiplier=2)
    gen.load_state_dict(fx.weights(), strict=True)
    return gen.eval()


@pytest.mark.parametrize("case", ["enc", "full"])
@torch.no_grad()
def test_parity_psp_encoder(case, request):
    fx, codes = codes_for("psp_encoder")
    if case == "enc":
        fx.check("enc.codes", codes)
        return
    gen = request.getfixturevalue("decoder")
    latent = codes + fx.data["latent_avg"]  # start_from_latent_avg: [18, 512] broadcast per sample
    img, _ = gen([latent], input_is_latent=True, randomize_noise=False)
    img256 = F.adaptive_avg_pool2d(img, 256)  # pSp's face_pool
    fx.check("full.latent", latent)
    fx.check("full.img256", img256)
    fx.check("full.img64", F.adaptive_avg_pool2d(img256, 64))


@pytest.mark.parametrize("case", ["enc", "full"])
@torch.no_grad()
def test_parity_e4e_encoder(case, request):
    fx, codes = codes_for("e4e_encoder")
    if case == "enc":
        fx.check("enc.codes", codes)
        return
    gen = request.getfixturevalue("decoder")
    latent = codes + fx.data["latent_avg"]
    img, _ = gen([latent], input_is_latent=True, randomize_noise=False)
    fx.check("full.latent", latent)
    fx.check("full.img64", F.adaptive_avg_pool2d(F.adaptive_avg_pool2d(img, 256), 64))


@pytest.mark.parametrize("case", ["z", "w"])
@torch.no_grad()
def test_parity_dsg_encoder_zplus(case, decoder):
    # meta: start_from_latent_avg=False, so the encoder output is the z+ code itself, and the
    # decoder maps each of its 18 entries through the mapping network separately.
    fx, zplus = codes_for("dsg_encoder_zplus")
    if case == "z":
        fx.check("zplus", zplus)
        img = decoder.decode(decoder.mapping_plus(zplus), randomize_noise=False)
        fx.check("img256", F.adaptive_avg_pool2d(img, 256))
        fx.check("img64", F.adaptive_avg_pool2d(img, 64))
    else:
        fx.check("wplus", decoder.mapping_plus(zplus))


@pytest.mark.parametrize("case", ["enc"])
def test_parity_restyle_psp_encoder(case):
    fx, codes = codes_for("restyle_psp_encoder")
    fx.check("enc.codes", codes)


@pytest.mark.parametrize("case", ["enc"])
def test_parity_restyle_e4e_ffhq_encoder(case):
    fx, codes = codes_for("restyle_e4e_ffhq_encoder")
    fx.check("enc.codes", codes)


@pytest.mark.parametrize("case", ["enc", "prog"])
def test_parity_restyle_e4e_encoder(case):
    cls = ResNetBackboneEncoder if case == "enc" else ResNetProgressiveBackboneEncoder
    fx, codes = codes_for("restyle_e4e_encoder", cls)
    fx.check(f"{case}.codes", codes)


# ----------------------------------------------------------------------------- tiny profile

ALL_CLASSES = [
    GradualStyleEncoder,
    Encoder4Editing,
    BackboneEncoder,
    ProgressiveBackboneEncoder,
    ResNetBackboneEncoder,
    ResNetProgressiveBackboneEncoder,
]


def tiny(cls, **overrides):
    torch.manual_seed(0)
    kwargs = {**TINY, **overrides}
    if cls in (ResNetBackboneEncoder, ResNetProgressiveBackboneEncoder):
        return cls(**kwargs)
    return cls(50, "ir_se", **kwargs)


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda c: c.__name__)
def test_tiny_forward_backward(cls):
    net = tiny(cls).train()
    x = torch.randn(2, net.input_nc, 64, 64)
    codes = net(x)
    assert codes.shape == (2, 10, 64)
    codes.square().mean().backward()
    first = next(net.parameters())
    assert first.grad is not None and first.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "plain, progressive",
    [
        (GradualStyleEncoder, Encoder4Editing),
        (BackboneEncoder, ProgressiveBackboneEncoder),
        (ResNetBackboneEncoder, ResNetProgressiveBackboneEncoder),
    ],
    ids=["e4e", "restyle-e4e", "resnet"],
)
@torch.no_grad()
def test_progressive_codes_are_w0_plus_heads(plain, progressive):
    """Same weights: e4e entry i = head 0 + head i, pSp entry i = head i (the keys are identical)."""
    base = tiny(plain).eval()
    prog = tiny(progressive).eval()
    prog.load_state_dict(base.state_dict(), strict=True)
    x = torch.randn(2, base.input_nc, 64, 64)
    heads, codes = base(x), prog(x)
    torch.testing.assert_close(codes[:, 0], heads[:, 0])
    torch.testing.assert_close(codes[:, 1:], heads[:, :1] + heads[:, 1:])


def test_progressive_stage_limits_deltas():
    net = tiny(Encoder4Editing)
    net.progressive_stage = 2  # w0 + deltas 1, 2; entries 3.. equal w0
    codes = net(torch.randn(1, 3, 64, 64))
    torch.testing.assert_close(codes[:, 3:], codes[:, :1].expand(-1, 7, -1))
    assert not torch.allclose(codes[:, 1], codes[:, 0])
    codes.sum().backward()
    assert net.styles[3].linear.weight.grad is None  # unused heads are not even evaluated
    assert net.latlayer1.weight.grad is None  # nor the pyramid levels only they read


def test_pyramid_heads_depend_on_their_level():
    """pSp styles 0-2 read the 1/16 map only: changing latlayer1 (1/8 level) leaves them alone."""
    net = tiny(GradualStyleEncoder).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        before = net(x)
        net.latlayer1.bias.add_(1.0)
        after = net(x)
    torch.testing.assert_close(after[:, :3], before[:, :3])
    assert (after[:, 3:] - before[:, 3:]).abs().amax(dim=-1).min() > 0


def test_bad_inputs_are_named():
    net = tiny(BackboneEncoder)
    with pytest.raises(ValueError, match=r"expects \[B, 6, H, W\]"):
        net(torch.zeros(1, 3, 64, 64))
    with pytest.raises(ValueError, match="power of two"):
        tiny(GradualStyleEncoder, input_size=96)
    with pytest.raises(ValueError, match="1x1"):
        net(torch.zeros(1, 6, 128, 128))


def test_n_styles_for():
    assert [n_styles_for(s) for s in (1024, 256, 64)] == [18, 14, 10]
    with pytest.raises(ValueError, match="power of two"):
        n_styles_for(1000)
