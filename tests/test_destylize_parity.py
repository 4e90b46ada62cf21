"""DualStyleGAN's destylize.py optimisation (the baseline) against the official run: dsg_destylize_step.

Everything goes through the code `redestyle destylize --method baseline --profile ffhq1024` runs:
the rule weights are written as the official files (``encoder.pt``, ``stylegan2-ffhq-config-f.pt``,
``<style>/finetune-000600.pt``, ``model_ir_se50.pth``, ``vgg16-397923af.pth``), loaded by
``zoo.build_models`` and run by ``destylize.baseline`` with ``destylize.baseline_arguments``.
Only the initial noise maps (the fixture's, rule-generated) and the stop after K = 3 of the 300
iterations are the fixture's; the cases are those of the fixture's README section.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import load_parity

from redestyle import destylize as ds
from redestyle import zoo
from redestyle.imaging import pool

NAME = "dsg_destylize_step"
STYLE = "cartoon"
K = 3  # iterations the fixture ran


def write_official_folder(fx, folder):
    """The fixture's networks as the official files (layouts of the published checkpoints)."""
    g = fx.weights("stylegan2_ffhq1024")
    enc = load_parity("dsg_encoder_zplus")
    torch.save({"g_ema": g, "latent_avg": torch.zeros(512)}, folder / zoo.GENERATOR_FILE)
    torch.save({"state_dict": {**{f"encoder.{k}": v for k, v in enc.weights().items()},
                               **{f"decoder.{k}": v for k, v in g.items()}},
                "latent_avg": enc.data["latent_avg"].clone(),
                "opts": {"encoder_type": "GradualStyleEncoder", "input_nc": 3, "label_nc": 0,
                         "output_size": 1024, "start_from_latent_avg": False, "learn_in_w": False}},
               folder / zoo.ENCODER_FILES["dsg_zplus"])
    del g, enc
    (folder / STYLE).mkdir()
    torch.save({"g_ema": fx.weights(manifest="manifest_gprime.json")}, folder / zoo._g_prime_file(STYLE))
    torch.save(fx.weights("irse50_backbone"), folder / zoo.ID_FILE)
    torch.save(fx.weights(manifest="manifest_vgg16.json"), folder / zoo.VGG16_FILE)
    return folder


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    """(fixture, outputs computed our way), once for every case (the 1024 runs are the slow part)."""
    fx = load_parity(NAME)
    folder = write_official_folder(fx, tmp_path_factory.mktemp("weights"))
    models = zoo.build_models("ffhq1024", methods=["dsg_zplus"], weights_dir=folder, with_lpips=True,
                              with_id=True, g_prime_style=STYLE)
    assert models.lpips.pretrained_backbone and models.id_features is not None
    kwargs = ds.baseline_arguments(models, ds.DestyleOptions(method="baseline", style=STYLE))
    assert kwargs["n_steps"] == 300 and kwargs["truncation"] == 0.7
    noise = fx.rule.build_weights(str(fx.root), which="manifest_noise.json")
    noise = [noise[f"noise_{i}"] for i in range(len(noise))]
    x = fx.data["x"]
    got: dict[str, torch.Tensor] = {}

    # step 0's per-term gradients, by the loss function the loop uses
    latent = fx.data["latent_e"].clone().requires_grad_(True)
    maps = [n.clone().requires_grad_(True) for n in noise]
    terms, _ = ds.baseline_terms(models.g_prime, latent, maps, x, lpips=models.lpips,
                                 id_embed=models.id_features, weights=ds.BASELINE.weights)
    for term in ("Lperc", "LID"):
        got[f"step0.grad_latent_{term}"] = torch.autograd.grad(terms[term].sum(), latent, retain_graph=True)[0]
    del terms, latent, maps

    records: list[ds.BaselineStep] = []
    latents, grads = [], []

    def on_step(step: ds.BaselineStep) -> None:
        records.append(step)
        latents.append(step.latent.detach().clone())
        grads.append(step.latent.grad.detach().clone())

    run = ds.baseline(portraits=x, **{**kwargs, "noise": noise, "stop_after": K, "on_step": on_step})
    for term in ("Lperc", "LID", "Lreg", "Lnoise", "loss"):
        got[f"steps.{term}"] = torch.cat([r.terms[term] for r in records])
        got[f"step0.{term}"] = records[0].terms[term][0]
    got["step0.grad_latent"] = grads[0]
    got["step0.img64"] = pool(records[0].image, 64)
    got["steps.latent"] = torch.stack(latents)
    for i, n in enumerate(records[-1].noises):
        if n.shape[-1] <= 256:
            got[f"steps.noise_{i}"] = n.detach()
        else:
            c = n.shape[-1] // 2
            got[f"steps.noise_{i}.crop"] = n.detach()[..., c - 32 : c + 32, c - 32 : c + 32]
            got[f"steps.noise_{i}.pool64"] = F.adaptive_avg_pool2d(n.detach(), 64)
    got["latent_e"] = run.z_e
    _post(got, "post", run, models)
    got["post.latent"] = run.optimized
    got["post.exstyle_code"] = run.z_e

    iter0 = ds.baseline(portraits=x, **{**kwargs, "noise": noise, "n_steps": 0})
    assert torch.equal(iter0.z_e, run.z_e)
    _post(got, "post_iter0", iter0, models)
    return fx, got


def _post(got, prefix, run, models):
    with torch.no_grad():
        img_dsty = pool(run.rendered, 256)
        got[f"{prefix}.img_dsty"] = img_dsty
        got[f"{prefix}.img_dsty_crop1024"] = run.rendered[:, :, 480:544, 480:544]
        raw = models.encode_zplus(img_dsty)
        got[f"{prefix}.latent_i_raw"] = raw
        got[f"{prefix}.img_refine64"] = pool(pool(run.image, 256), 64)
    # instyle = the raw re-encoding with the colour copy: the entries before COLOR_FROM are raw's
    assert torch.equal(run.z_i[:, : ds.COLOR_FROM], raw[:, : ds.COLOR_FROM])
    got[f"{prefix}.instyle_code"] = run.z_i


CASES = {
    "enc": ["latent_e"],
    "step0": ["step0.Lperc", "step0.LID", "step0.Lreg", "step0.Lnoise", "step0.loss", "step0.grad_latent",
              "step0.grad_latent_Lperc", "step0.grad_latent_LID", "step0.img64"],
    "steps": ["steps.Lperc", "steps.LID", "steps.Lreg", "steps.Lnoise", "steps.loss", "steps.latent",
              *(f"steps.noise_{i}" for i in range(13)),
              *(f"steps.noise_{i}.{part}" for i in range(13, 17) for part in ("crop", "pool64"))],
    "post": ["post.latent", "post.img_dsty", "post.img_dsty_crop1024", "post.latent_i_raw",
             "post.instyle_code", "post.img_refine64", "post.exstyle_code"],
    "post_iter0": ["post_iter0.img_dsty", "post_iter0.img_dsty_crop1024", "post_iter0.latent_i_raw",
                   "post_iter0.instyle_code", "post_iter0.img_refine64"],
}


def test_cases_cover_every_stored_output():
    fx = load_parity(NAME)
    covered = {o for outputs in CASES.values() for o in outputs}
    assert covered == set(fx.meta["per_output"]), sorted(covered ^ set(fx.meta["per_output"]))


@pytest.mark.parametrize("case", list(CASES))
def test_parity_dsg_destylize_step(official, case):
    fx, got = official
    for output in CASES[case]:
        fx.check(output, got[output])
        median = fx.meta["per_output"][output].get("median_atol")
        if median is not None:  # Adam-amplified outputs: most elements must still agree closely
            diff = (got[output].detach().double() - fx.data[output].double()).abs().median().item()
            assert diff <= median, f"{NAME} {output}: median abs err {diff:.3g} > median_atol {median:.3g}"
