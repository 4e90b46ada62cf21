"""The generator_sup stage: its losses, both phases, its shipped file and its committed carry state."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from redestyle.miniature import supervised as sup
from redestyle.miniature import train, world
from redestyle.miniature.models import load_into
from redestyle.miniature.render import HAIR_STYLES
from redestyle.nets.stylegan2 import Generator


def test_kl_to_prior_is_zero_at_the_prior_and_matches_the_closed_form():
    zeros = torch.zeros(3, 8)
    assert sup.kl_to_prior(zeros, zeros) == 0
    # one dimension N(1, e^-2): 0.5 (1 + e^-2 + 2 - 1)
    mean, logvar = torch.tensor([[1.0]]), torch.tensor([[-2.0]])
    assert abs(sup.kl_to_prior(mean, logvar).item() - 0.5 * (2 + np.exp(-2.0))) < 1e-6


def test_laplacian_l1_weighs_fine_detail():
    x = torch.zeros(1, 3, 64, 64)
    fine = x.clone()
    fine[..., ::2, ::2] = 0.5  # a one-pixel pattern: eyes, rims, lines
    assert sup.laplacian_l1(x, x) == 0
    # nearly all of the fine pattern is band-pass detail, counted once more beside its mean
    assert sup.laplacian_l1(fine, x) > 1.5 * (fine - x).abs().mean()


def test_encode_params_ranges():
    faces = world.draw_faces(200, 7)
    enc = sup.encode_params(np.stack([f.to_vector() for f in faces]))
    assert enc.shape == (200, sup.PARAM_FEATURES)
    assert enc.min() >= -1 and enc.max() <= 1
    hair = enc[:, 20:20 + len(HAIR_STYLES)]
    assert torch.equal(hair.sum(1), torch.ones(200))
    assert set(enc[:, -1].tolist()) == {-1.0, 1.0}


def test_generator_sup_runs_both_phases_ships_and_resumes_from_its_carry(tmp_path, capsys):
    work, ship, carry = tmp_path / "work", tmp_path / "ship", tmp_path / "carry"

    def run(steps: int):
        rc = train.main(["generator_sup", "--steps", str(steps), "--sup-steps", "1", "--batch", "2",
                         "--eval-every", "0", "--save-every", "1", "--threads", "1", "--out", str(work),
                         "--ship", str(ship), "--carry", str(carry)])
        assert rc == 0

    run(2)  # step 0 supervised, step 1 adversarial
    record = json.loads((ship / "generator_sup.json").read_text())
    assert record["steps"] == 2 and record["extra"]["face_stream_seed"] == train_seed()
    assert {"pix", "lap", "kl", "d", "g"} <= set(record["final_losses"])
    g = Generator(**torch.load(ship / "generator_sup.pt")["generator_kwargs"])  # weights_only
    payload = load_into(g, ship / "generator_sup.pt", what="generator_sup")  # strict
    assert set(payload["params_to_z"]) == set(sup.ParamsToZ().state_dict())
    assert g.channels[64] == sup.CHANNELS[64] and g.n_latent == train.build_generator().n_latent  # W+ as mini
    small = torch.load(carry / "generator_sup-carry.pt", weights_only=False)
    assert small["step"] == 2 and small["modules"]["g"]["input.input"].dtype == torch.float16
    # a fresh clone has no working state, only the committed carry: it continues from it
    for f in work.glob("generator_sup-*"):
        f.unlink()
    capsys.readouterr()
    run(3)
    assert "carried over at step 2" in capsys.readouterr().out
    assert json.loads((ship / "generator_sup.json").read_text())["steps"] == 3
    assert torch.load(carry / "generator_sup-carry.pt", weights_only=False)["step"] == 3


def _sup_args(steps: int, work, ship, carry, *, sup_steps: int = 1) -> list[str]:
    return ["generator_sup", "--steps", str(steps), "--sup-steps", str(sup_steps), "--batch", "2",
            "--eval-every", "0", "--save-every", "2", "--threads", "1", "--out", str(work), "--ship", str(ship),
            "--carry", str(carry)]


def test_generator_sup_resumes_bit_for_bit_from_its_state(tmp_path):
    """Saved at step 2 of 3 and resumed there (the global and face random streams, the code pool
    and Adam's moments all in <stage>-state.pt): the same weights as the uninterrupted run."""
    full, part = tmp_path / "full", tmp_path / "part"
    assert train.main(_sup_args(3, full / "work", full / "ship", full / "carry")) == 0
    state = torch.load(full / "work" / "generator_sup-state.pt", weights_only=False)
    assert state["step"] == 2 and set(state) == {"step", "modules", "optims", "log", "elapsed", "rng"}
    (part / "work").mkdir(parents=True)
    (part / "work" / "generator_sup-state.pt").write_bytes((full / "work" / "generator_sup-state.pt").read_bytes())
    assert train.main(_sup_args(3, part / "work", part / "ship", part / "carry")) == 0
    a = torch.load(full / "ship" / "generator_sup.pt", weights_only=True)
    b = torch.load(part / "ship" / "generator_sup.pt", weights_only=True)
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k


def test_the_committed_carry_still_resumes(tmp_path, capsys):
    """states/miniature/generator_sup-carry.pt (written by the long run, issue 13) is read by the
    current code: one more step from it, in a temporary folder, continues its weights and its log."""
    committed = Path(__file__).resolve().parents[2] / "states" / "miniature" / "generator_sup-carry.pt"
    old = torch.load(committed, map_location="cpu", weights_only=False)
    carry = tmp_path / "carry"
    carry.mkdir()
    (carry / committed.name).write_bytes(committed.read_bytes())
    step = old["step"]
    assert train.main(_sup_args(step + 1, tmp_path / "work", tmp_path / "ship", carry, sup_steps=40000)) == 0
    assert f"carried over at step {step}" in capsys.readouterr().out
    new = torch.load(carry / committed.name, weights_only=False)
    assert new["step"] == step + 1 and new["log"][:-1] == old["log"] and new["log"][-1]["step"] == step + 1
    assert set(new["states"]) == set(old["states"]) == {"rngs", "pool"}
    # one EMA step (beta ~0.998) moves g_ema by a small fraction of its weights: it was continued,
    # not restarted from a fresh initialisation
    for k, w in old["modules"]["g_ema"].items():
        if w.is_floating_point() and w.numel() > 1:
            moved = (new["modules"]["g_ema"][k].float() - w.float()).abs().max()
            assert moved <= 0.02 * w.float().abs().max() + 1e-3, k


def train_seed() -> int:
    from redestyle.miniature.seeds import training_seed

    return training_seed("generator_sup", 0)
