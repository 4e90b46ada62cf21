"""Inversion: ReStyle's official loop (parity), the unified interface, projection mechanics."""

import pytest
import torch
from conftest import load_parity

from redestyle import zoo
from redestyle.config import METHODS
from redestyle.imaging import pool
from redestyle.inversion import invert, restyle

LOOP_FIXTURES = {"restyle_psp_encoder": "restyle_psp", "restyle_e4e_ffhq_encoder": "restyle_e4e"}


def _official_folder(tmp_path, fx, method):
    """Write the fixture's rule weights as the official files: the generator container and the
    ReStyle container (state_dict with encoder./decoder. prefixes, latent_avg, opts).

    The generator file holds *another* StyleGAN2 (the dsg_destylize_step g', seed 1) and another
    latent_avg: the official ReStyle inference decodes with its own checkpoint's decoder and
    latent_avg, so the fixture's outputs are reached only if the loader makes the same choice.
    """
    dec = fx.weights("stylegan2_ffhq1024")
    other = fx.weights("dsg_destylize_step", manifest="manifest_gprime.json")
    torch.save({"g_ema": other, "latent_avg": torch.zeros(512)}, tmp_path / zoo.GENERATOR_FILE)
    del other
    encoder_type = {"restyle_psp": "BackboneEncoder", "restyle_e4e": "ProgressiveBackboneEncoder"}[method]
    torch.save({"state_dict": {**{f"encoder.{k}": v for k, v in fx.weights().items()},
                               **{f"decoder.{k}": v for k, v in dec.items()}},
                "latent_avg": fx.data["latent_avg"].clone(),
                "opts": {"encoder_type": encoder_type, "input_nc": 6, "output_size": 1024,
                         "dataset_type": "ffhq_encode", "n_iters_per_batch": 5}},
               tmp_path / zoo.ENCODER_FILES[method])
    return tmp_path


def _check_loop(fixture, tmp_path):
    """The official ReStyle inference loop (5 iterations) through our checkpoint loaders and
    ``inversion.invert``, the interface the notebooks and the CLI use."""
    fx = load_parity(fixture)
    method = LOOP_FIXTURES[fixture]
    models = zoo.build_models("ffhq1024", methods=[method],
                              weights_dir=_official_folder(tmp_path, fx, method))
    assert models.decoder_for(method) is not models.generator  # the ReStyle file's own decoder
    torch.testing.assert_close(models.latent_avg_for(method), fx.data["latent_avg"].float())
    with torch.no_grad():
        fx.check("loop.avg_image", models.avg_image_for(method))
        steps = invert(method, fx.data["x"], models, n_iters=5).steps
    fx.check("loop.latents", torch.stack([s.latent for s in steps], dim=1))
    fx.check("loop.img64", torch.stack([pool(s.image, 64) for s in steps], dim=1))
    if "loop.final_img256" in fx.data:
        fx.check("loop.final_img256", pool(steps[-1].image, 256))


@pytest.mark.parametrize("case", ["loop"])
def test_parity_restyle_psp_encoder(case, tmp_path):
    _check_loop("restyle_psp_encoder", tmp_path)


@pytest.mark.parametrize("case", ["loop"])
def test_parity_restyle_e4e_ffhq_encoder(case, tmp_path):
    _check_loop("restyle_e4e_ffhq_encoder", tmp_path)


@pytest.fixture(scope="module")
def tiny():
    return zoo.build_models("tiny", methods=[m for m in METHODS if m != "optimization"], with_lpips=True)


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(1)
    return torch.rand(2, 3, 64, 64, generator=g) * 2 - 1


def test_restyle_first_iteration_is_encoder_plus_latent_avg(tiny, images):
    enc, g = tiny.encoder("restyle_psp"), tiny.generator
    with torch.no_grad():
        steps = restyle(enc, g, images, n_iters=3, latent_avg=tiny.latent_avg, avg_image=tiny.avg_image)
        first = enc(torch.cat([images, tiny.avg_image.expand(2, -1, -1, -1)], 1)) + tiny.latent_avg
        second = enc(torch.cat([images, pool(steps[0].image, 64)], 1)) + steps[0].latent
    assert len(steps) == 3
    torch.testing.assert_close(steps[0].latent, first)
    torch.testing.assert_close(steps[1].latent, second)


def test_restyle_is_a_prefix_of_a_longer_run(tiny, images):
    args = dict(latent_avg=tiny.latent_avg, avg_image=tiny.avg_image)
    with torch.no_grad():
        short = restyle(tiny.encoder("restyle_psp"), tiny.generator, images, n_iters=2, **args)
        long = restyle(tiny.encoder("restyle_psp"), tiny.generator, images, n_iters=4, **args)
    for a, b in zip(short, long):
        torch.testing.assert_close(a.latent, b.latent)
        torch.testing.assert_close(a.image, b.image)


def test_restyle_rejects_zero_iterations(tiny, images):
    with pytest.raises(ValueError, match="n_iters must be >= 1"):
        restyle(tiny.encoder("restyle_psp"), tiny.generator, images, n_iters=0,
                latent_avg=tiny.latent_avg, avg_image=tiny.avg_image)


@pytest.mark.parametrize("method", METHODS)
def test_invert_every_method_returns_wplus_and_images(tiny, images, method):
    result = invert(method, images, tiny, n_iters=2, n_steps=3)
    n_latent, dim = tiny.latent_avg.shape
    assert result.latent.shape == (2, n_latent, dim)
    assert result.image.shape == (2, 3, 64, 64)
    assert torch.isfinite(result.image).all()
    expected_steps = {"restyle_psp": 2, "restyle_e4e": 2, "hyperstyle": 2}.get(method, 1)
    assert len(result.steps) == expected_steps
    assert result.seconds > 0


def test_invert_unknown_method_lists_the_known_ones(tiny, images):
    with pytest.raises(ValueError, match="unknown inversion method 'pti'; choose from psp, e4e"):
        invert("pti", images, tiny)


def test_projection_lowers_its_loss_and_records_steps(tiny, images):
    from redestyle.inversion import project

    steps, losses = project(tiny.generator, images[:1], lpips=tiny.lpips, n_steps=12, n_mean_latent=256,
                            record_every=4, generator=torch.Generator().manual_seed(0))
    assert len(losses) == 12 and len(steps) == 3
    assert min(losses[6:]) < losses[0]


def test_early_feedback_is_approximate_but_close_in_shape(tiny, images):
    args = dict(latent_avg=tiny.latent_avg, avg_image=tiny.avg_image, n_iters=3)
    with torch.no_grad():
        exact = restyle(tiny.encoder("restyle_psp"), tiny.generator, images, **args)
        fast = restyle(tiny.encoder("restyle_psp"), tiny.generator, images, early_feedback=True, **args)
    torch.testing.assert_close(exact[0].latent, fast[0].latent)  # iteration 1 sees the same input
    assert fast[-1].image.shape == exact[-1].image.shape


# --- single-pass encoders through the official-file loaders (zoo) and inversion.invert --------------

#: fixture -> (method, the container's opts as the official training wrote them)
ENCODER_FIXTURES = {
    "psp_encoder": ("psp", {"encoder_type": "GradualStyleEncoder", "input_nc": 3, "output_size": 1024,
                            "start_from_latent_avg": True, "learn_in_w": False}),
    "e4e_encoder": ("e4e", {"encoder_type": "Encoder4Editing", "input_nc": 3, "output_size": 1024,
                            "start_from_latent_avg": True}),
    "dsg_encoder_zplus": ("dsg_zplus", {"encoder_type": "GradualStyleEncoder", "input_nc": 3, "label_nc": 0,
                                        "output_size": 1024, "start_from_latent_avg": False,
                                        "learn_in_w": False}),
}


def _encoder_models(fixture, tmp_path):
    """The fixture's rule weights as stylegan2-ffhq-config-f.pt + the encoder's official container,
    loaded by ``zoo.build_models("ffhq1024")``."""
    fx = load_parity(fixture)
    method, opts = ENCODER_FIXTURES[fixture]
    dec = fx.weights("stylegan2_ffhq1024")
    torch.save({"g_ema": dec, "latent_avg": fx.data["latent_avg"][0].clone()}, tmp_path / zoo.GENERATOR_FILE)
    torch.save({"state_dict": {**{f"encoder.{k}": v for k, v in fx.weights().items()},
                               **{f"decoder.{k}": v for k, v in dec.items()}},
                "latent_avg": fx.data["latent_avg"].clone(), "opts": opts},
               tmp_path / zoo.ENCODER_FILES[method])
    del dec
    return fx, method, zoo.build_models("ffhq1024", methods=[method], weights_dir=tmp_path)


@pytest.mark.parametrize("case", ["loader"])
@torch.no_grad()
def test_parity_psp_encoder(case, tmp_path):
    fx, method, models = _encoder_models("psp_encoder", tmp_path)
    step = invert(method, fx.data["x"], models).steps[-1]  # inversion.encode_once
    fx.check("full.latent", step.latent)
    fx.check("full.img256", pool(step.image, 256))
    fx.check("full.img64", pool(pool(step.image, 256), 64))


@pytest.mark.parametrize("case", ["loader"])
@torch.no_grad()
def test_parity_e4e_encoder(case, tmp_path):
    fx, method, models = _encoder_models("e4e_encoder", tmp_path)
    step = invert(method, fx.data["x"], models).steps[-1]
    fx.check("full.latent", step.latent)
    fx.check("full.img64", pool(pool(step.image, 256), 64))


@pytest.mark.parametrize("case", ["loader"])
@torch.no_grad()
def test_parity_dsg_encoder_zplus(case, tmp_path):
    fx, method, models = _encoder_models("dsg_encoder_zplus", tmp_path)
    assert not models.zplus_from_avg  # the file's opts: start_from_latent_avg False
    zplus = models.encode_zplus(fx.data["x"])
    fx.check("zplus", zplus)
    g = models.generator
    fx.check("wplus", g.mapping_plus(zplus))
    image = g([zplus], z_plus_latent=True, randomize_noise=False)[0]  # as destylize.baseline decodes z+
    fx.check("img256", pool(image, 256))
    fx.check("img64", pool(image, 64))
