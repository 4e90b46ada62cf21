"""experiments (the presentation layer): figures built from results, the notebooks' default portraits."""

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

from redestyle import experiments  # noqa: E402
from redestyle.inversion import Inversion, Step  # noqa: E402


def test_encoder_figure_has_an_input_column_and_one_per_method():
    portraits = torch.zeros(2, 3, 8, 8)
    results = {m: Inversion(m, [Step(torch.zeros(2, 4, 4), torch.full((2, 3, 16, 16), v))], 0.0)
               for m, v in (("psp", 0.5), ("e4e", -0.5))}
    comparison = experiments.EncoderComparison(["a", "b"], portraits, results, [])
    fig = experiments.encoder_figure(comparison, title="Fig. 1")
    assert len(fig.axes) == 6 and [ax.get_title() for ax in fig.axes[:3]] == ["input", "psp", "e4e"]
    assert fig.axes[1].images[0].get_array().shape == (8, 8, 3)  # pooled to the portraits' size
    assert [ax.get_ylabel() for ax in fig.axes[::3]] == ["a", "b"]


def test_loss_curves_skip_absent_losses():
    history = [{"step": 1, "d": 1.0, "g_adv": 2.0}, {"step": 2, "d": 0.5, "g_adv": 1.5, "perc": 3.0}]
    fig = experiments.loss_curves(history, smooth=2)
    assert [ax.get_title() for ax in fig.axes] == ["d", "g_adv", "perc"]
    assert list(fig.axes[0].lines[1].get_ydata()) == [0.75]  # running mean of 2


@pytest.mark.parametrize("profile, first", [("mini", None), ("tiny", "astronaut_photo")])
def test_default_portraits_follow_the_profile_field(profile, first, monkeypatch):
    calls = []
    monkeypatch.setattr(experiments.world, "named_portraits", lambda size: calls.append(size) or {"w": size})
    monkeypatch.setattr(experiments.data, "sample_portraits", lambda size: {"astronaut_photo": size})
    got = experiments.default_portraits(profile, 16)
    assert got == ({"w": 16} if first is None else {first: 16}) and calls == ([16] if first is None else [])
