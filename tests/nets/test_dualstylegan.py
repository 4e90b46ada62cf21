"""DualStyleGAN generator: official parity (generator.pt g_ema layout) and path invariants."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import load_parity

from redestyle.config import PROFILES
from redestyle.nets.dualstylegan import DualStyleGAN, style_transfer

# ------------------------------------------------------------------ official 1024 network


@pytest.fixture(scope="module")
def dsg1024():
    fx = load_parity("dualstylegan1024")
    net = DualStyleGAN(**fx.meta["constructor"])
    net.load_state_dict(fx.weights(), strict=True)
    return fx, net.eval()


def _check_outputs(fx, case: str, img: torch.Tensor) -> None:
    """Compare every stored output of ``case`` (pools and the centre crop, meta.json 'outputs')."""
    names = [k for k in fx.data if k.startswith(f"{case}.")]
    assert names, f"no outputs stored for case {case}"
    for name in names:
        kind = name.split(".", 1)[1]
        if kind == "crop1024":
            got = img[:, :, 480:544, 480:544]
        else:  # img256 / img64
            got = F.adaptive_avg_pool2d(img, int(kind[3:]))
        fx.check(name, got)


def _structure_color(fx) -> list[float]:
    return list(fx.meta["interp_weights_style_transfer"])


@pytest.mark.parametrize("case", ["a", "b", "c", "d", "e"], ids=["a", "b", "c", "d", "e"])
@torch.no_grad()
def test_parity_dualstylegan1024(dsg1024, case):
    fx, net = dsg1024
    d = fx.data
    weights = _structure_color(fx) if case in "bcd" else None
    truncation = {"truncation": 0.75, "truncation_latent": 0} if case in "cd" else {}
    if case == "d":  # style_transfer.py's default z+ call
        img, _ = net(
            [d["z_in"]],
            d["exstyle"],
            z_plus_latent=True,
            randomize_noise=False,
            interp_weights=weights,
            **truncation,
        )
    else:
        img, _ = net(
            [d["instyle"]],
            d["exstyle"],
            input_is_latent=True,
            randomize_noise=False,
            use_res=case != "e",
            interp_weights=weights,
            **truncation,
        )
    _check_outputs(fx, case, img)


@torch.no_grad()
def test_zero_interp_weights_give_the_official_plain_image(dsg1024):
    # Official semantics: ModRes with weight 0 returns its input, a T_c blend with weight 0 is the
    # intrinsic w, so the extrinsic path vanishes and case e (use_res=False) must come out.
    fx, net = dsg1024
    img, _ = net(
        [fx.data["instyle"]],
        fx.data["exstyle"],
        input_is_latent=True,
        randomize_noise=False,
        interp_weights=[0.0] * net.n_latent,
    )
    _check_outputs(fx, "e", img)


@torch.no_grad()
def test_style_transfer_matches_the_official_script_calls(dsg1024):
    fx, net = dsg1024
    d = fx.data
    assert net.default_interp_weights() == _structure_color(fx)
    # z+ content code and the z+ exemplar code as stored in exstyle_code.npy (case d) ...
    _check_outputs(fx, "d", style_transfer(net, d["z_in"], d["z_ex"], clamp=False))
    # ... and the --wplus call: W+ content code, z+ exemplar code (case c).
    _check_outputs(fx, "c", style_transfer(net, d["instyle"], d["z_ex"], wplus=True, clamp=False))


# ------------------------------------------------------------------ tiny profile

TINY = PROFILES["tiny"].generator


def _tiny(seed: int = 0) -> DualStyleGAN:
    torch.manual_seed(seed)
    net = DualStyleGAN(
        TINY.size,
        TINY.style_dim,
        TINY.n_mlp,
        TINY.channel_multiplier,
        channels=TINY.channels,
        structure_mlp=2,
    )
    # Move every ModRes / T_c / T_s weight away from its near-identity init so each path is visible.
    with torch.no_grad():
        for name, p in net.named_parameters():
            if not name.startswith("generator."):
                p.add_(0.3 * torch.randn_like(p) * p.abs().mean().clamp_min(0.1))
    return net.eval()


@pytest.fixture(scope="module")
def tiny():
    return _tiny()


def _codes(net: DualStyleGAN, batch: int = 2, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    shape = (batch, net.n_latent, net.style_dim)
    return torch.randn(shape, generator=g), torch.randn(shape, generator=g)


def test_tiny_layout(tiny):
    assert tiny.n_latent == 10 and tiny.res_index == 6
    kinds = ["ModRes" if hasattr(m, "norm") else "T_c" for m in tiny.res]
    assert kinds == ["ModRes"] * 7 + ["T_c"] * 3
    assert [k for k in tiny.state_dict() if k.startswith("style.")] == [
        "style.1.weight",
        "style.1.bias",
        "style.2.weight",
        "style.2.bias",
    ]
    # res_index is rounded down to even, as upstream (ModRes come in pairs per resolution)
    odd = DualStyleGAN(
        TINY.size,
        TINY.style_dim,
        TINY.n_mlp,
        TINY.channel_multiplier,
        res_index=5,
        channels=TINY.channels,
    )
    assert odd.res_index == 4 and sum(hasattr(m, "norm") for m in odd.res) == 5


def test_strict_load_names_a_renamed_key(tiny):
    sd = tiny.state_dict()
    sd["res.7.linear_weight"] = sd.pop("res.7.weight")
    fresh = _tiny(seed=3)
    with pytest.raises(RuntimeError) as err:
        fresh.load_state_dict(sd, strict=True)
    assert "res.7.weight" in str(err.value) and "res.7.linear_weight" in str(err.value)


def test_tiny_forward_backward():
    net = _tiny().train()
    wplus, ex = _codes(net)
    img, latent = net([wplus], ex, input_is_latent=True, return_latents=True)
    assert img.shape == (2, 3, TINY.size, TINY.size) and torch.isfinite(img).all()
    assert torch.equal(latent, wplus)
    img.square().mean().backward()
    for name, p in net.named_parameters():
        if name.startswith("generator.style."):  # the mapping is unused for W+ input
            assert p.grad is None, name
        else:
            assert p.grad is not None and p.grad.abs().sum() > 0, name


@torch.no_grad()
def test_zero_weights_and_fuse_index_0_switch_the_extrinsic_path_off(tiny):
    wplus, ex = _codes(tiny)
    kw = {"input_is_latent": True, "randomize_noise": False}
    plain, _ = tiny([wplus], ex, use_res=False, **kw)
    torch.testing.assert_close(plain, tiny.generator.decode(wplus), rtol=0, atol=1e-5)
    assert torch.equal(tiny([wplus], ex, interp_weights=[0.0] * 10, **kw)[0], plain)
    assert torch.equal(tiny([wplus], ex, fuse_index=0, **kw)[0], plain)
    assert torch.equal(tiny.synthesize(wplus), plain)
    styled, _ = tiny([wplus], ex, **kw)
    assert (styled - plain).abs().max() > 0.1


@torch.no_grad()
def test_fuse_index_keeps_only_the_layers_up_to_it(tiny):
    # fuse_index = res_index keeps the structure (ModRes 0..6) and drops every T_c colour layer.
    wplus, ex = _codes(tiny)
    kw = {"input_is_latent": True, "randomize_noise": False}
    structure_only, _ = tiny([wplus], ex, fuse_index=6, **kw)
    zero_color, _ = tiny([wplus], ex, interp_weights=[1.0] * 7 + [0.0] * 3, **kw)
    assert torch.equal(structure_only, zero_color)
    full, _ = tiny([wplus], ex, **kw)
    assert (full - structure_only).abs().max() > 0.1


@torch.no_grad()
def test_z_plus_equals_per_layer_mapping_then_w_plus(tiny):
    z_plus, ex = _codes(tiny)
    w_plus = torch.stack(
        [tiny.generator.mapping(z_plus[:, k]) for k in range(tiny.n_latent)], dim=1
    )
    kw = {"randomize_noise": False, "truncation": 0.75, "truncation_latent": 0}
    via_z, latent = tiny([z_plus], ex, z_plus_latent=True, return_latents=True, **kw)
    via_w, _ = tiny([w_plus], ex, input_is_latent=True, **kw)
    torch.testing.assert_close(latent, 0.75 * w_plus, rtol=0, atol=1e-5)
    torch.testing.assert_close(via_z, via_w, rtol=0, atol=1e-5)


@torch.no_grad()
def test_w_exstyle_is_broadcast_to_every_layer(tiny):
    wplus, ex = _codes(tiny)
    w = ex[:, 0]
    a = tiny.synthesize(wplus, w)
    b = tiny.synthesize(wplus, w[:, None].repeat(1, tiny.n_latent, 1))
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


@torch.no_grad()
def test_mixing_two_w_plus_codes(tiny):
    a, b = _codes(tiny)
    _, latent = tiny([a, b], b, input_is_latent=True, inject_index=4, return_latents=True)
    assert torch.equal(latent[:, :4], a[:, :4]) and torch.equal(latent[:, 4:], b[:, 4:])
    w = a[:, 0]  # two W codes: mixing after broadcast
    _, latent = tiny([w, b[:, 0]], b, input_is_latent=True, inject_index=3, return_latents=True)
    assert torch.equal(latent[:, 2], w) and torch.equal(latent[:, 3], b[:, 0])


@torch.no_grad()
def test_style_transfer_preserve_color_ignores_exemplar_colour_layers(tiny):
    instyle, exstyle = _codes(tiny)
    recoloured = exstyle.clone()
    recoloured[:, tiny.res_index + 1 :] = torch.randn_like(recoloured[:, tiny.res_index + 1 :])
    for wplus in (False, True):
        kw = {"wplus": wplus, "preserve_color": True, "clamp": False}
        a = style_transfer(tiny, instyle, exstyle, **kw)
        b = style_transfer(tiny, instyle, recoloured, **kw)
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
        c = style_transfer(tiny, instyle, recoloured, wplus=wplus, clamp=False)
        assert (c - b).abs().max() > 1e-3
    out = style_transfer(tiny, instyle, exstyle[:1])  # one exemplar for a batch of faces, clamped
    assert out.shape == (2, 3, TINY.size, TINY.size) and out.abs().max() <= 1


def test_bad_arguments_are_named(tiny):
    wplus, ex = _codes(tiny)
    with pytest.raises(ValueError, match="interp_weights needs 10"):
        tiny([wplus], ex, input_is_latent=True, interp_weights=[1.0] * 18)
    with pytest.raises(ValueError, match="truncation_latent"):
        tiny([wplus], ex, input_is_latent=True, truncation=0.5)
    with pytest.raises(ValueError, match="exstyle must be"):
        tiny.synthesize(wplus, ex[:, :5])
