"""benchmarks/_official.py: the official computation the benchmarks time ours against.

It must be the official computation (it reproduces the rosinality parity fixture, computed by the
official code) and it must equal our fast path (generator output, ReStyle iteration, destylization
baseline losses) within float tolerance; otherwise the benchmarks compare different things.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import load_parity

from redestyle import destylize as ds
from redestyle import zoo
from redestyle.inversion import restyle
from redestyle.nets.stylegan2 import Generator
from redestyle.ops import upfirdn2d

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str):
    """Import benchmarks/<name>.py (the benchmarks folder is not a package)."""
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))  # the scripts import their siblings (_timing, _official)
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


official = _load("_official")
TINY_CHANNELS = {4: 64, 8: 64, 16: 32, 32: 32, 64: 16}


@pytest.mark.parametrize("case", [dict(up=2, pad=(2, 1)), dict(pad=(1, 1)), dict(pad=(2, 1)),
                                  dict(down=2, pad=(1, 1)), dict(up=2, pad=(-1, 2))],
                         ids=["up", "blur", "blur_asym", "down", "negpad"])
def test_upfirdn2d_native_equals_ours(case):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 9, 9, generator=g, dtype=torch.float64)
    kernel = torch.rand(4, 4, generator=g, dtype=torch.float64)  # asymmetric: catches a missing flip
    want = upfirdn2d(x, kernel, **case)
    got = official.upfirdn2d_native(x, kernel, **case)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_fused_leaky_relu_native_is_bias_then_scaled_lrelu():
    x = torch.tensor([[-1.0, 2.0], [0.5, -3.0]])
    got = official.fused_leaky_relu_native(x, torch.tensor([0.5, 1.0]))
    want = torch.tensor([[-0.1, 3.0], [1.0, -0.4]]) * 2**0.5
    torch.testing.assert_close(got, want)


@pytest.fixture(scope="module")
def tiny_g():
    torch.manual_seed(0)
    G = Generator(64, style_dim=64, n_mlp=4, channels=TINY_CHANNELS).eval()
    with torch.no_grad():  # non-zero noise strengths and biases: their handling shows
        for name, p in G.named_parameters():
            if name.endswith("noise.weight") or name.endswith("activate.bias") or name.endswith("to_rgb1.bias"):
                p.normal_(0.1, 0.05)
    return G


@pytest.mark.parametrize("batch", [1, 3], ids=["batch1", "batch3"])  # per-sample / folded fast paths
def test_official_generator_equals_fast_path(tiny_g, batch):
    G = tiny_g
    gen = torch.Generator().manual_seed(batch)
    z = torch.randn(batch, G.n_latent, G.style_dim, generator=gen)
    ref = official.OfficialGenerator(G)
    with torch.no_grad():
        w_plus = G.mapping_plus(z)
        torch.testing.assert_close(ref.mapping(z[:, 0]), w_plus[:, 0], rtol=1e-5, atol=1e-5)
        want = G.decode(w_plus)
        got = ref.decode(w_plus)
        assert got.shape == want.shape == (batch, 3, 64, 64)
        assert (got - want).abs().max() <= 1e-4 * want.abs().max()
        # the baseline's call: z+ mapped per layer, truncation toward 0, given noise
        noise = [torch.randn(batch, *n.shape[1:], generator=gen) for n in G.registered_noise()]
        want = G([z], z_plus_latent=True, noise=noise, randomize_noise=False, truncation=0.7,
                 truncation_latent=0)[0]
        got = ref([z], z_plus_latent=True, noise=noise, randomize_noise=False, truncation=0.7,
                  truncation_latent=0)[0]
        assert (got - want).abs().max() <= 1e-4 * want.abs().max()


def test_official_generator_reproduces_official_fixture():
    """Case c of the rosinality parity fixture (W+ input, registered noise) at 1024, batch 1."""
    fx = load_parity("stylegan2_ffhq1024")
    G = Generator(**fx.meta["constructor"]).eval()
    G.load_state_dict(fx.weights(), strict=True)
    with torch.no_grad():
        img = official.OfficialGenerator(G).decode(fx.data["wplus"][:1])
    tol = fx.tol("c.img64")
    torch.testing.assert_close(F.adaptive_avg_pool2d(img, 64), fx.data["c.img64"][:1], **tol)
    tol = fx.tol("c.crop1024")
    torch.testing.assert_close(img[:, :, 480:544, 480:544], fx.data["c.crop1024"][:1], **tol)


@pytest.fixture(scope="module")
def tiny():
    return zoo.build_models("tiny", methods=["restyle_psp", "dsg_zplus"], with_lpips=True,
                            g_prime_style=zoo.default_style("tiny"))


def test_restyle_iteration_official_equals_ours(tiny):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 64, 64, generator=g) * 2 - 1
    kwargs = dict(n_iters=2, latent_avg=tiny.latent_avg, avg_image=tiny.avg_image)
    enc = tiny.encoder("restyle_psp")
    with torch.no_grad():
        ours = restyle(enc, tiny.generator, x, **kwargs)
        ref = restyle(enc, official.OfficialGenerator(tiny.generator), x, **kwargs)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(b.latent, a.latent, rtol=1e-4, atol=1e-4)
        assert (b.image - a.image).abs().max() <= 1e-4 * a.image.abs().max()


def test_baseline_step_official_equals_ours(tiny):
    """Two baseline steps through the official g' give the same losses (backward included)."""
    g = torch.Generator().manual_seed(2)
    x = torch.rand(1, 3, 64, 64, generator=g) * 2 - 1
    # the baseline seeds each image's noise maps from ``seed`` and the image: both runs draw the same
    kwargs = dict(lpips=tiny.lpips, id_embed=tiny.id_features, n_steps=2, seed=0)
    runs = []
    for g_prime in (tiny.g_prime, official.OfficialGenerator(tiny.g_prime)):
        runs.append(ds.baseline(tiny.encode_zplus, g_prime, tiny.generator, x, **kwargs))
    torch.testing.assert_close(runs[1].losses, runs[0].losses, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(runs[1].z_i, runs[0].z_i, rtol=1e-4, atol=1e-4)
