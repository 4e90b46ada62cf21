"""HyperStyle: parity with the official hyperstyle_ffhq fixture, aliased keys, the delta hook, tiny profile."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from conftest import load_parity

from redestyle.inversion import hyperstyle_invert, iterate_hyperstyle, w_inversion
from redestyle.nets.hyperstyle import (
    LAYERS_TO_TUNE,
    HyperNetwork,
    WEncoder,
    layer_shapes_from_channels,
    layer_shapes_of,
    tuned_convs,
)
from redestyle.nets.stylegan2 import Generator, default_channels

FIXTURE = "hyperstyle_ffhq"
CASES = ("winv", "loop")  # output-name prefixes in meta["outputs"]


def _pool(img: torch.Tensor, size: int) -> torch.Tensor:
    return F.adaptive_avg_pool2d(img, (size, size))


# --------------------------------------------------------------------------------------------
# Parity: the official SharedWeightsHyperNetResNet + WEncoder + run_inversion, rule weights


@pytest.fixture(scope="module")
def parity_run():
    """Load the three networks strictly and run the fixture's inversion once (about a minute)."""
    fx = load_parity(FIXTURE)
    decoder = Generator(1024, 512, 8, channel_multiplier=2)
    decoder.load_state_dict(fx.weights("stylegan2_ffhq1024"), strict=True)
    w_encoder = WEncoder(50, "ir_se", n_latent=18)
    w_encoder.load_state_dict(fx.weights(manifest="manifest_w_encoder.json"), strict=True)
    # 333 M parameters (1.3 GB): build on the meta device and adopt the rule tensors (assign=True),
    # so that the weights exist once; the aliased keys all carry the one shared tensor.
    with torch.device("meta"):
        hypernet = HyperNetwork()
    hypernet.load_state_dict(
        fx.weights(manifest="manifest_hypernet.json"), strict=True, assign=True
    )
    for net in (decoder, w_encoder, hypernet):
        net.eval()

    x, latent_avg = fx.data["x"], fx.data["latent_avg"]
    got: dict[str, torch.Tensor] = {}
    imgs, rowsums, corners = [], [], []
    with torch.no_grad():
        codes, image = w_inversion(w_encoder, decoder, x, latent_avg=latent_avg)
        got["winv.codes"], got["winv.img64"] = codes, _pool(_pool(image, 256), 64)
        n_iters = fx.data["loop.img64"].shape[1]
        # Stream the iterations and keep only the fixture's summaries of the (large) deltas.
        for step in iterate_hyperstyle(
            hypernet, w_encoder, decoder, x, n_iters=n_iters, initial=(codes, image)
        ):
            tuned = [step.deltas[i] for i in LAYERS_TO_TUNE]
            imgs.append(_pool(step.image, 64))
            rowsums.append(torch.cat([d.sum(dim=(2, 3, 4)) for d in tuned], dim=1))
            corners.append(torch.cat([d[:, :4, :4].reshape(len(x), -1) for d in tuned], dim=1))
            last = step
    got["loop.latent"] = last.latent
    got["loop.img64"] = torch.stack(imgs, dim=1)
    got["loop.final_img256"] = _pool(last.image, 256)
    got["loop.delta_rowsum"] = torch.stack(rowsums, dim=1)
    got["loop.delta_corner"] = torch.stack(corners, dim=1)
    return fx, got, hypernet, decoder


def test_parity_cases_cover_fixture(parity_run):
    fx, got, _, _ = parity_run
    assert {name.split(".")[0] for name in fx.meta["outputs"]} == set(CASES)
    assert set(fx.meta["outputs"]) == set(got)


@pytest.mark.parametrize("case", CASES, ids=CASES)
def test_parity_hyperstyle_ffhq(parity_run, case):
    fx, got, _, _ = parity_run
    names = [name for name in fx.meta["outputs"] if name.split(".")[0] == case]
    assert names
    for name in names:
        fx.check(name, got[name])


def test_config_f_layer_shapes_match_checkpoint_and_generator(parity_run):
    _, _, hypernet, decoder = parity_run
    shapes = layer_shapes_from_channels(default_channels(2))
    assert len(shapes) == 26
    assert layer_shapes_of(decoder) == shapes
    # HyperStyle's refinement_blocks.PARAMETERS (kernel, in, out), e.g. index 14 and the last ToRGB
    assert shapes[14] == (3, 512, 256) and shapes[24] == (3, 32, 32) and shapes[25] == (1, 32, 3)
    sd = hypernet.state_dict()  # strictly loaded from the manifest: its keys and shapes
    for idx in LAYERS_TO_TUNE:
        head = sd.get(f"refinement_blocks.{idx}.output.1.weight")
        if head is not None:  # non-shared head: one output per (out, in) pair
            assert head.shape[0] == shapes[idx].in_channels * shapes[idx].out_channels
    assert [i for i, b in enumerate(hypernet.refinement_blocks) if b is not None] == list(
        LAYERS_TO_TUNE
    )


def test_checkpoint_aliases_share_one_tensor(parity_run):
    _, _, hypernet, _ = parity_run
    sd = hypernet.state_dict()
    for idx in hypernet.shared_layers:
        for name in ("w1", "b1", "w2", "b2"):
            alias = sd[f"refinement_blocks.{idx}.hypernet.{name}"]
            assert alias.data_ptr() == sd[f"shared_weight_hypernet.{name}"].data_ptr()


def test_hypernet_rejects_a_generator_of_another_shape():
    with torch.device("meta"):
        hypernet = HyperNetwork()
    images = torch.zeros(1, 3, 256, 256)
    with pytest.raises(ValueError, match="do not match the decoder"):
        iterate_hyperstyle(hypernet, None, _tiny_decoder(), images, initial=(None, None))


def test_inversion_checks_its_inputs(tiny):
    decoder, w_encoder, hypernet, images, latent_avg = tiny
    with pytest.raises(ValueError, match=r"images must be \[B, 3, 64, 64\]"):
        hyperstyle_invert(
            hypernet, w_encoder, decoder, images[:, :, :32, :32], latent_avg=latent_avg
        )
    with pytest.raises(ValueError, match="pass w_encoder and latent_avg"):
        hyperstyle_invert(hypernet, w_encoder, decoder, images)
    with pytest.raises(ValueError, match="n_iters"):
        hyperstyle_invert(hypernet, w_encoder, decoder, images, n_iters=0, latent_avg=latent_avg)


# --------------------------------------------------------------------------------------------
# Tiny profile: same classes, small widths (64 px generator, style_dim 32)

TINY_CHANNELS = {4: 32, 8: 32, 16: 32, 32: 16, 64: 8}
TINY_SHARED = (0, 2, 3, 5, 6)  # the 32 -> 32 convs; 8..12 change width, so they get their own heads
TINY_TUNED = (0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 13)  # includes ToRGB heads (1, 13)


def _tiny_decoder() -> Generator:
    torch.manual_seed(0)
    return Generator(64, 32, n_mlp=2, channels=TINY_CHANNELS).eval()


@pytest.fixture(scope="module")
def tiny():
    decoder = _tiny_decoder()
    torch.manual_seed(1)
    w_encoder = WEncoder(
        50, "ir_se", n_latent=decoder.n_latent, style_dim=32, widths=(8, 8, 16, 16)
    ).eval()
    hypernet = HyperNetwork(
        layer_shapes_of(decoder),
        layers_to_tune=TINY_TUNED,
        shared_layers=TINY_SHARED,
        input_size=64,
        widths=(8, 8, 16, 16),
        code_dim=16,
        hyper_inner=8,
        refine_inner=8,
    ).eval()
    # Larger deltas than the default init gives, so that the checks below see them.
    with torch.no_grad():
        for p in hypernet.parameters():
            p.mul_(3.0)
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2)).clamp(-1, 1)
    latent_avg = torch.randn(decoder.n_latent, 32, generator=torch.Generator().manual_seed(3))
    return decoder, w_encoder, hypernet, images, latent_avg


def test_tiny_inversion_shapes_and_fixed_latent(tiny):
    decoder, w_encoder, hypernet, images, latent_avg = tiny
    with torch.no_grad():
        codes, _ = w_inversion(w_encoder, decoder, images, latent_avg=latent_avg)
        steps = hyperstyle_invert(
            hypernet, w_encoder, decoder, images, n_iters=3, latent_avg=latent_avg
        )
    assert len(steps) == 3
    shapes = layer_shapes_of(decoder)
    for step in steps:
        torch.testing.assert_close(step.latent, codes, rtol=0, atol=0)
        assert step.image.shape == (2, 3, 64, 64) and torch.isfinite(step.image).all()
        assert len(step.deltas) == len(shapes) == 14
        for idx, (delta, (k, c_in, c_out)) in enumerate(zip(step.deltas, shapes)):
            if idx in TINY_TUNED:
                assert delta.shape == (2, c_out, c_in, k, k)
            else:
                assert delta is None
    # The codes are W: one vector repeated over the layers, plus latent_avg.
    w = codes - latent_avg
    torch.testing.assert_close(w, w[:, :1].expand_as(w))


def test_tiny_deltas_accumulate_from_the_previous_image(tiny):
    decoder, w_encoder, hypernet, images, latent_avg = tiny
    with torch.no_grad():
        codes, image0 = w_inversion(w_encoder, decoder, images, latent_avg=latent_avg)
        first, second = hyperstyle_invert(
            hypernet, None, decoder, images, n_iters=2, initial=(codes, image0)
        )
        pred1 = hypernet(torch.cat([images, _pool(image0, 64)], dim=1))
        pred2 = hypernet(torch.cat([images, _pool(first.image, 64)], dim=1))
        plain = decoder.decode(codes, randomize_noise=False)
        torch.testing.assert_close(plain, image0)
        torch.testing.assert_close(
            first.image, decoder.decode(codes, weights_deltas=pred1, randomize_noise=False)
        )
    for idx in TINY_TUNED:
        torch.testing.assert_close(first.deltas[idx], pred1[idx])
        torch.testing.assert_close(second.deltas[idx], pred1[idx] + pred2[idx])
    assert not torch.allclose(first.image, image0, atol=1e-3)
    assert not torch.allclose(second.image, first.image, atol=1e-3)


def test_zero_deltas_equal_the_plain_generator(tiny):
    decoder = tiny[0]
    codes = torch.randn(2, decoder.n_latent, 32, generator=torch.Generator().manual_seed(4))
    zeros = [torch.zeros(2, c_out, c_in, k, k) for k, c_in, c_out in layer_shapes_of(decoder)]
    with torch.no_grad():
        plain = decoder.decode(codes, randomize_noise=False)
        tuned = decoder.decode(codes, randomize_noise=False, weights_deltas=zeros)
    # fp32 rounding only: the delta path multiplies the weight by (1 + 0) in another order
    torch.testing.assert_close(tuned, plain, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("idx", [0, 1, 8, 13], ids=["conv1", "to_rgb1", "up_conv32", "to_rgb64"])
def test_delta_scales_its_layer_weight_per_sample(tiny, idx):
    """Output index idx multiplies exactly that layer's weight by (1 + delta), sample by sample."""
    decoder = tiny[0]
    codes = torch.randn(2, decoder.n_latent, 32, generator=torch.Generator().manual_seed(5))
    k, c_in, c_out = layer_shapes_of(decoder)[idx]
    # Random per element: a delta constant over (in, k, k) would be undone by demodulation.
    delta = 0.5 * torch.randn(2, c_out, c_in, k, k, generator=torch.Generator().manual_seed(6))
    deltas = [None] * 14
    deltas[idx] = delta
    with torch.no_grad():
        got = decoder.decode(codes, randomize_noise=False, weights_deltas=deltas)
        for b in range(2):
            scaled = copy.deepcopy(decoder)
            tuned_convs(scaled)[idx].weight.mul_(1 + delta[b])
            want = scaled.decode(codes[b : b + 1], randomize_noise=False)
            torch.testing.assert_close(got[b : b + 1], want, rtol=0, atol=1e-5)
        assert not torch.allclose(got, decoder.decode(codes, randomize_noise=False), atol=1e-3)


# --------------------------------------------------------------------------------------------
# The shared hypernetwork's aliased keys


def test_shared_hypernet_aliases_are_tied(tiny):
    hypernet = copy.deepcopy(tiny[2])
    keys = hypernet.state_dict().keys()
    for idx in TINY_SHARED:
        for name in ("w1", "b1", "w2", "b2"):
            assert f"refinement_blocks.{idx}.hypernet.{name}" in keys
    with torch.no_grad():
        hypernet.shared_weight_hypernet.w2[0, 0] = 123.0
    sd = hypernet.state_dict()
    for idx in TINY_SHARED:
        assert hypernet.refinement_blocks[idx].hypernet.w2[0, 0].item() == 123.0
        assert sd[f"refinement_blocks.{idx}.hypernet.w2"][0, 0].item() == 123.0


def test_aliases_load_from_separate_equal_tensors_and_stay_tied(tiny):
    hypernet = copy.deepcopy(tiny[2])
    sd = {
        k: v.clone() + (1.0 if "hypernet.w1" in k else 0.0) for k, v in tiny[2].state_dict().items()
    }
    hypernet.load_state_dict(sd, strict=True)
    torch.testing.assert_close(
        hypernet.refinement_blocks[3].hypernet.w1, sd["shared_weight_hypernet.w1"]
    )
    with torch.no_grad():
        hypernet.refinement_blocks[5].hypernet.b1.zero_()
    assert hypernet.shared_weight_hypernet.b1.abs().sum().item() == 0.0


def test_disagreeing_aliases_fail_to_load(tiny):
    hypernet = copy.deepcopy(tiny[2])
    sd = {k: v.clone() for k, v in tiny[2].state_dict().items()}
    sd["refinement_blocks.5.hypernet.b2"][0] += 1.0
    with pytest.raises(RuntimeError, match=r"refinement_blocks\.5\.hypernet\.b2 differs"):
        hypernet.load_state_dict(sd, strict=True)


def test_shared_layers_must_have_one_shape():
    shapes = layer_shapes_from_channels(TINY_CHANNELS)
    with pytest.raises(ValueError, match="shared layers must have one shape"):
        HyperNetwork(
            shapes, input_size=64, widths=(8, 8, 16, 16), code_dim=16
        )  # default shares 0..12
