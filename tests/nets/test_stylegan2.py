"""StyleGAN2 Generator / Discriminator: official parity (rule weights) and behaviour on the tiny profile."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import load_parity

from redestyle.nets.stylegan2 import Discriminator, Generator

TINY_CHANNELS = {4: 64, 8: 64, 16: 32, 32: 32, 64: 16}


# --------------------------------------------------------------------------------------------------
# Parity with rosinality's model.py (stylegan2_ffhq1024, stylegan2_disc1024)
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def g1024():
    fx = load_parity("stylegan2_ffhq1024")
    torch.manual_seed(0)
    G = Generator(**fx.meta["constructor"]).eval()
    # our own FIR buffers must equal the official ones before anything is loaded over them
    man = fx.rule.load_manifest(str(fx.root))
    kernel_problems = fx.rule.check_keep_buffers(man, G.state_dict())
    G.load_state_dict(fx.weights(), strict=True)
    return fx, G, kernel_problems


@pytest.fixture(scope="module")
def d1024():
    fx = load_parity("stylegan2_disc1024")
    torch.manual_seed(0)
    D = Discriminator(**fx.meta["constructor"]).eval()
    man = fx.rule.load_manifest(str(fx.root))
    kernel_problems = fx.rule.check_keep_buffers(man, D.state_dict())
    D.load_state_dict(fx.weights(), strict=True)
    return fx, D, kernel_problems


def _check_images(fx, case: str, img: torch.Tensor) -> None:
    fx.check(f"{case}.img256", F.adaptive_avg_pool2d(img, 256))
    fx.check(f"{case}.img64", F.adaptive_avg_pool2d(img, 64))
    fx.check(f"{case}.crop1024", img[:, :, 480:544, 480:544])


@pytest.mark.parametrize("case", ["a", "b", "c"])
def test_parity_stylegan2_ffhq1024(g1024, case):
    fx, G, kernel_problems = g1024
    assert kernel_problems == []
    d = fx.data
    with torch.no_grad():
        if case == "a":
            img, latent = G([d["z"]], randomize_noise=False, return_latents=True)
            fx.check("a.w", G.style(d["z"]))
            fx.check("a.latent", latent)
            fx.check("mean_latent_check", G.style(d["z_mean"]).mean(0, keepdim=True))
        elif case == "b":
            img, latent = G(
                [d["z"]],
                truncation=0.7,
                truncation_latent=d["mean_latent"],
                randomize_noise=False,
                return_latents=True,
            )
            fx.check("b.latent", latent)
        else:
            img, latent = G([d["wplus"]], input_is_latent=True, randomize_noise=False)
            assert latent is None
    assert img.shape == (2, 3, 1024, 1024)
    _check_images(fx, case, img)


@pytest.mark.parametrize("case", ["a", "b"])
def test_parity_stylegan2_disc1024(d1024, case):
    fx, D, kernel_problems = d1024
    assert kernel_problems == []
    x = fx.rule.nearest_up(fx.data["x_base"], 4)
    with torch.no_grad():
        if case == "a":
            convs_out = D.convs(x.contiguous(memory_format=torch.channels_last))
            final_conv_out = D.final_conv(D.minibatch_stddev(convs_out))
            fx.check("a.convs_out", convs_out)
            fx.check("a.final_conv_out", final_conv_out)
            fx.check(
                "a.logits", D.final_linear(final_conv_out.flatten(1))
            )  # = D(x), without a second pass
        else:
            fx.check("b.logits", D(torch.cat([x, x.flip(3)])))


# --------------------------------------------------------------------------------------------------
# Behaviour on the tiny profile (size 64, style_dim 64)
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    G = Generator(64, style_dim=64, n_mlp=4, channels=TINY_CHANNELS).eval()
    # non-trivial noise strengths and biases so that noise / bias handling is visible
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise.weight") or name.endswith("activate.bias"):
                p.normal_(0.1, 0.05)
    return G


def _w(G, batch=2, seed=1):
    g = torch.Generator().manual_seed(seed)
    return G.mapping(torch.randn(batch, G.style_dim, generator=g))


def test_tiny_layout(tiny):
    G = tiny
    assert (G.num_layers, G.n_latent, G.log_size) == (9, 10, 6)
    assert [tuple(getattr(G.noises, f"noise_{i}").shape[-2:]) for i in range(9)] == [
        (4, 4), (8, 8), (8, 8), (16, 16), (16, 16), (32, 32), (32, 32), (64, 64), (64, 64)
    ]  # fmt: skip
    assert G.convs[-1].conv.weight.shape == (1, 16, 16, 3, 3)
    assert G.to_rgbs[0].upsample.kernel.sum().item() == pytest.approx(4.0)


def test_strict_load_names_renamed_key(tiny):
    sd = dict(tiny.state_dict())
    sd["convs.3.conv.weights"] = sd.pop("convs.3.conv.weight")
    fresh = Generator(64, style_dim=64, n_mlp=4, channels=TINY_CHANNELS)
    with pytest.raises(RuntimeError) as err:
        fresh.load_state_dict(sd, strict=True)
    assert "convs.3.conv.weight" in str(err.value) and "convs.3.conv.weights" in str(err.value)


def test_state_dict_has_kernel_and_noise_buffers(tiny):
    keys = set(tiny.state_dict())
    assert {
        "noises.noise_0",
        "noises.noise_8",
        "convs.0.conv.blur.kernel",
        "to_rgbs.0.upsample.kernel",
    } <= keys
    assert "to_rgb1.upsample.kernel" not in keys and "convs.1.conv.blur.kernel" not in keys


@torch.no_grad()
def test_w_and_wplus_broadcast_equal(tiny):
    G = tiny
    w = _w(G)
    img_w, lat = G([w], input_is_latent=True, randomize_noise=False, return_latents=True)
    wplus = w[:, None].repeat(1, G.n_latent, 1)
    img_wp, _ = G([wplus], input_is_latent=True, randomize_noise=False)
    assert torch.equal(lat, wplus)
    torch.testing.assert_close(img_w, img_wp, rtol=0, atol=1e-6)
    torch.testing.assert_close(G.decode(wplus), img_wp, rtol=0, atol=1e-6)


@torch.no_grad()
def test_truncation(tiny):
    G = tiny
    z = torch.randn(2, G.style_dim, generator=torch.Generator().manual_seed(2))
    w = G.mapping(z)
    mean = G.mean_latent(256, generator=torch.Generator().manual_seed(3))
    assert mean.shape == (1, G.style_dim)
    _, lat1 = G(
        [z], truncation=1.0, truncation_latent=mean, randomize_noise=False, return_latents=True
    )
    torch.testing.assert_close(lat1, w[:, None].expand(-1, G.n_latent, -1), rtol=0, atol=0)
    _, lat_half = G(
        [z], truncation=0.5, truncation_latent=mean, randomize_noise=False, return_latents=True
    )
    torch.testing.assert_close(lat_half[:, 3], mean + 0.5 * (w - mean), rtol=1e-6, atol=1e-6)
    # truncation 0 collapses every z onto the mean latent: identical images across the batch
    img0, lat0 = G(
        [z], truncation=0.0, truncation_latent=mean, randomize_noise=False, return_latents=True
    )
    torch.testing.assert_close(lat0, mean[:, None].expand(2, G.n_latent, -1), rtol=0, atol=1e-6)
    torch.testing.assert_close(img0[0], img0[1], rtol=0, atol=1e-5)
    # DualStyleGAN truncates toward 0
    _, lat_zero = G(
        [z], truncation=0.7, truncation_latent=0, randomize_noise=False, return_latents=True
    )
    torch.testing.assert_close(lat_zero[:, 0], 0.7 * w, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="truncation_latent"):
        G([z], truncation=0.7)


@torch.no_grad()
def test_style_mixing_inject_index(tiny):
    G = tiny
    w1, w2 = _w(G, seed=4), _w(G, seed=5)
    for k in (1, 4, G.n_latent - 1):
        _, lat = G(
            [w1, w2],
            input_is_latent=True,
            inject_index=k,
            randomize_noise=False,
            return_latents=True,
        )
        assert torch.equal(lat[:, :k], w1[:, None].expand(-1, k, -1))
        assert torch.equal(lat[:, k:], w2[:, None].expand(-1, G.n_latent - k, -1))
    # two W+ entries (DualStyleGAN): slices of each
    p1 = torch.randn(2, G.n_latent, G.style_dim, generator=torch.Generator().manual_seed(6))
    p2 = torch.randn(2, G.n_latent, G.style_dim, generator=torch.Generator().manual_seed(7))
    _, lat = G(
        [p1, p2], input_is_latent=True, inject_index=6, randomize_noise=False, return_latents=True
    )
    assert torch.equal(lat, torch.cat([p1[:, :6], p2[:, 6:]], 1))
    # switching at the end / start is the first / second code alone
    only1, _ = G([w1], input_is_latent=True, randomize_noise=False)
    mix_end, _ = G([w1, w2], input_is_latent=True, inject_index=G.n_latent, randomize_noise=False)
    mix_start, _ = G([w1, w2], input_is_latent=True, inject_index=0, randomize_noise=False)
    only2, _ = G([w2], input_is_latent=True, randomize_noise=False)
    torch.testing.assert_close(mix_end, only1, rtol=0, atol=1e-6)
    torch.testing.assert_close(mix_start, only2, rtol=0, atol=1e-6)
    # the default crossover is random in [1, n_latent - 1]
    torch.manual_seed(8)
    _, lat = G([w1, w2], input_is_latent=True, randomize_noise=False, return_latents=True)
    first2 = (lat == w2[:, None]).all(-1).all(0).nonzero()
    assert 1 <= first2.min().item() <= G.n_latent - 1


@torch.no_grad()
def test_noise_modes(tiny):
    G = tiny
    w = _w(G)
    fixed1, _ = G([w], input_is_latent=True, randomize_noise=False)
    fixed2, _ = G([w], input_is_latent=True, randomize_noise=False)
    assert torch.equal(fixed1, fixed2)
    rand1, _ = G([w], input_is_latent=True, randomize_noise=True)
    rand2, _ = G([w], input_is_latent=True, randomize_noise=True)
    assert (rand1 - rand2).abs().max() > 1e-3
    assert (rand1 - fixed1).abs().max() > 1e-3
    explicit, _ = G([w], input_is_latent=True, noise=[n.clone() for n in G.registered_noise()])
    torch.testing.assert_close(explicit, fixed1, rtol=0, atol=0)
    fresh = G.make_noise(generator=torch.Generator().manual_seed(9))
    assert [n.shape for n in fresh] == [n.shape for n in G.registered_noise()]
    a, _ = G([w], input_is_latent=True, noise=fresh)
    b, _ = G(
        [w], input_is_latent=True, noise=G.make_noise(generator=torch.Generator().manual_seed(9))
    )
    assert torch.equal(a, b) and (a - fixed1).abs().max() > 1e-3
    with pytest.raises(ValueError, match="noise must have 9 entries"):
        G([w], input_is_latent=True, noise=fresh[:3])


@torch.no_grad()
def test_stop_at_and_features(tiny):
    G = tiny
    w = _w(G)
    for res in (4, 8, 16, 32, 64):
        assert G.decode(w, stop_at=res).shape == (2, 3, res, res)
    torch.testing.assert_close(G.decode(w, stop_at=64), G.decode(w), rtol=0, atol=0)
    img, feat = G([w], input_is_latent=True, randomize_noise=False, return_features=True)
    assert feat.shape == (2, 16, 64, 64)
    with pytest.raises(ValueError, match="stop_at"):
        G.decode(w, stop_at=24)


@torch.no_grad()
def test_batch_equals_per_sample():
    """On the CPU a large generator synthesises a batch one sample at a time: exactly the batch-1
    images (a 512 px generator with narrow layers; small ones stay batched, next test)."""
    from redestyle.nets.stylegan2 import CPU_PER_SAMPLE_MIN_SIZE

    torch.manual_seed(0)
    size = CPU_PER_SAMPLE_MIN_SIZE
    G = Generator(size, style_dim=8, n_mlp=1, channels={2**i: 4 for i in range(2, 10)}).eval()
    w = _w(G, batch=3)
    noise = [torch.randn(3, *n.shape[1:], generator=torch.Generator().manual_seed(3)) for n in G.registered_noise()]
    batched = G.decode(w, noise=noise)
    single = torch.cat([G.decode(w[i : i + 1], noise=[n[i : i + 1] for n in noise]) for i in range(3)])
    assert torch.equal(batched, single)


@torch.no_grad()
def test_small_generator_batch_equals_per_sample(tiny):
    """Batch > 1 on a small generator (activation-side modulation) equals batch-1 runs (per-sample weights)."""
    G = tiny
    w = _w(G, batch=3)
    batched = G.decode(w)
    single = torch.cat([G.decode(w[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(batched, single, rtol=1e-5, atol=1e-5)


@torch.no_grad()
def test_bf16_autocast_images_within_1_percent(tiny):
    """bf16 autocast (style path in fp32, FIR and phase convs computed in fp32 on the CPU): the
    image is within 1 % of fp32 (relative L2; measured 0.5 %, max-abs 0.7 % of the image range)."""
    G = tiny
    w = _w(G, batch=3)
    ref = G.decode(w)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = G.decode(w)
    assert out.dtype == torch.float32  # the fp32 ToRGB bias promotes the last sum
    assert (out - ref).norm() <= 0.01 * ref.norm()
    assert (out - ref).abs().max() <= 0.02 * ref.abs().max()


@torch.no_grad()
def test_folded_batch_modulation_equals_per_sample_weights(tiny):
    """A layer called with a batch (DualStyleGAN's own loop, CUDA) folds the modulation into the
    activations: the same math as per-sample weights (rosinality fused=False vs fused=True)."""
    g = torch.Generator().manual_seed(4)
    for layer in (tiny.convs[2], tiny.convs[3], tiny.to_rgbs[1]):
        conv = layer.conv
        x = torch.randn(3, conv.in_channel, 8, 8, generator=g)
        s = torch.randn(3, tiny.style_dim, generator=g)
        folded = conv(x, s)
        single = torch.cat([conv(x[i : i + 1], s[i : i + 1]) for i in range(3)])
        torch.testing.assert_close(folded, single, rtol=1e-5, atol=1e-5)


def test_up_conv_by_phases_equals_transposed_conv():
    from redestyle.nets.stylegan2 import _conv_transpose3x3_s2

    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 4, 5, 7, generator=g, dtype=torch.float64)
    weight = torch.randn(3, 4, 3, 3, generator=g, dtype=torch.float64)
    want = F.conv_transpose2d(x, weight.transpose(0, 1), stride=2)
    got = _conv_transpose3x3_s2(x, weight)
    assert got.shape == want.shape == (2, 3, 11, 15)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    # gradients flow through the four phase convolutions like through the transposed one
    xg = x.clone().requires_grad_()
    _conv_transpose3x3_s2(xg, weight).square().sum().backward()
    xr = x.clone().requires_grad_()
    F.conv_transpose2d(xr, weight.transpose(0, 1), stride=2).square().sum().backward()
    torch.testing.assert_close(xg.grad, xr.grad, rtol=1e-12, atol=1e-12)


@torch.no_grad()
def test_z_plus_latent_is_per_layer_mapping(tiny):
    G = tiny
    z_plus = torch.randn(2, G.n_latent, G.style_dim, generator=torch.Generator().manual_seed(10))
    w_plus = G.mapping_plus(z_plus)
    for i in (0, 7):
        torch.testing.assert_close(w_plus[:, i], G.mapping(z_plus[:, i]), rtol=1e-5, atol=1e-5)
    img_z, lat = G([z_plus], z_plus_latent=True, randomize_noise=False, return_latents=True)
    img_w, _ = G([w_plus], input_is_latent=True, randomize_noise=False)
    torch.testing.assert_close(lat, w_plus, rtol=0, atol=0)
    torch.testing.assert_close(img_z, img_w, rtol=0, atol=0)
    with pytest.raises(ValueError, match="z_plus_latent"):
        G([z_plus], randomize_noise=False)


def _deltas(G, batch, scale, seed):
    """One HyperStyle-style delta per conv/ToRGB, [batch, out, in, k, k]."""
    g = torch.Generator().manual_seed(seed)
    layers = [G.conv1, G.to_rgb1]
    for k in range(len(G.to_rgbs)):
        layers += [G.convs[2 * k], G.convs[2 * k + 1], G.to_rgbs[k]]
    return [
        scale * torch.randn(batch, *layer.conv.weight.shape[1:], generator=g) for layer in layers
    ]


@torch.no_grad()
def test_weights_deltas(tiny):
    G = tiny
    w = _w(G)
    plain = G.decode(w)
    zeros = _deltas(G, 2, 0.0, 0)
    # (per-sample weights vs. the shared-weight path: same math, different rounding)
    torch.testing.assert_close(G.decode(w, weights_deltas=zeros), plain, rtol=1e-5, atol=2e-5)
    # per-sample deltas: sample 0 gets none, sample 1 gets some; None entries skip layers
    deltas = _deltas(G, 2, 0.2, 11)
    for d in deltas:
        d[0] = 0
    deltas[1] = None
    out = G.decode(w, weights_deltas=deltas)
    torch.testing.assert_close(out[0], plain[0], rtol=1e-5, atol=2e-5)
    assert (out[1] - plain[1]).abs().max() > 1e-2
    with pytest.raises(ValueError, match="weights_deltas must have 14 entries"):
        G.decode(w, weights_deltas=deltas[:5])


@torch.no_grad()
def test_weight_offset_hook(tiny):
    G = tiny
    layer = G.convs[2].conv
    x = torch.randn(2, layer.in_channel, 16, 16, generator=torch.Generator().manual_seed(12))
    s = _w(G)
    plain = layer(x, s)
    zero = torch.zeros_like(layer.weight)
    torch.testing.assert_close(layer(x, s, weight_offset=zero), plain, rtol=0, atol=0)
    # weight * (1 + d) == weight + weight * d: both hooks describe the same weight
    d = 0.3 * torch.randn(layer.weight.shape[1:], generator=torch.Generator().manual_seed(13))
    by_delta = layer(x, s, weight_delta=d)
    by_offset = layer(x, s, weight_offset=layer.weight[0] * d)
    torch.testing.assert_close(by_delta, by_offset, rtol=0, atol=1e-5)
    assert (by_delta - plain).abs().max() > 1e-2


def test_tiny_forward_backward(tiny):
    G = Generator(64, style_dim=64, n_mlp=4, channels=TINY_CHANNELS)
    G.load_state_dict(tiny.state_dict())
    z = torch.randn(2, G.style_dim, generator=torch.Generator().manual_seed(14))
    img, _ = G([z])
    assert img.shape == (2, 3, 64, 64) and torch.isfinite(img).all()
    img.square().mean().backward()
    for name, p in G.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def _tiny_disc(size=16, dtype=torch.float32):
    torch.manual_seed(15)
    return Discriminator(size, channels={4: 8, 8: 8, 16: 4}).to(dtype)


def test_discriminator_shapes_and_batch_check():
    D = _tiny_disc()
    assert D(torch.randn(4, 3, 16, 16)).shape == (4, 1)
    assert len(D.convs) == 3  # fromRGB + ResBlocks 16->8->4
    with pytest.raises(ValueError, match="stddev group"):
        D(torch.randn(6, 3, 16, 16))


def test_discriminator_r1_double_backward():
    """R1 penalty: d/dtheta |d D(x) / dx|^2 (second order through blur, convs, lrelu, stddev)."""
    D = _tiny_disc(dtype=torch.float64)
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(D(x).sum(), x, create_graph=True)
    penalty = grad.pow(2).flatten(1).sum(1).mean()
    penalty.backward()
    # every weight shapes dD/dx (the last bias does not, so it gets no gradient)
    for name, p in D.named_parameters():
        if name.endswith("weight"):
            assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, (
                name
            )
    # the analytic d(penalty)/d(theta) matches a central difference along one weight direction
    weight = D.convs[1].conv1[0].weight
    direction = torch.randn(
        weight.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(16)
    )
    analytic = (weight.grad * direction).sum()

    def r1(eps):
        with torch.no_grad():
            weight.add_(eps * direction)
        (g,) = torch.autograd.grad(D(x).sum(), x)
        with torch.no_grad():
            weight.sub_(eps * direction)
        return g.pow(2).flatten(1).sum(1).mean()

    numeric = (r1(1e-5) - r1(-1e-5)) / 2e-5
    torch.testing.assert_close(analytic, numeric, rtol=1e-5, atol=1e-8)
