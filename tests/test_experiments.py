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


def _interval_rows():
    rows = [{"method": m, "metric": k, "value": v, "lo": v - 0.1, "hi": v + 0.2, "better": "lower"}
            for m, base in (("baseline", 1.0), ("redestyle 5-3-1", 0.5)) for k, v in (("identity", base),
                                                                                     ("pose", base / 2))]
    paired = [{"method": "redestyle 5-3-1", "metric": "identity", "baseline": "baseline", "value": -0.5,
               "lo": -0.6, "hi": -0.4, "better": "lower"}]
    return rows, paired


def test_interval_table_shows_value_and_interval_per_method_and_metric():
    rows, paired = _interval_rows()
    lines = experiments.interval_table(rows, metrics=["pose", "identity"], digits=2).splitlines()
    assert lines[0].split() == ["method", "pose", "identity"]
    assert lines[2].split() == ["baseline", "0.50", "[0.40,", "0.70]", "1.00", "[0.90,", "1.20]"]
    assert lines[3].startswith("redestyle 5-3-1") and len(lines) == 4
    assert "redestyle 5-3-1 - baseline" in experiments.interval_table(paired)
    assert "-0.500 [-0.600, -0.400]" in experiments.interval_table(paired)


def test_interval_figure_has_a_panel_per_metric_with_intervals():
    rows, paired = _interval_rows()
    fig = experiments.interval_figure(rows, title="t", columns=4)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["identity (lower is better)", "pose (lower is better)"]
    assert [t.get_text() for t in axes[0].get_yticklabels()] == ["baseline", "redestyle 5-3-1"]
    segments = axes[0].collections[0].get_segments()  # the interval bars, one per method
    assert [list(s[:, 0]) for s in segments] == [pytest.approx([0.9, 1.2]), pytest.approx([0.4, 0.7])]
    stacked = experiments.interval_figure(rows, title="t", columns=1)  # two rows of panels: both labelled
    assert [[t.get_text() for t in ax.get_yticklabels()] for ax in stacked.axes] == [["baseline", "redestyle 5-3-1"]] * 2
    fig = experiments.interval_figure(paired, title="t")
    assert fig.axes[0].get_title() == "identity (lower is better) - baseline"
    assert any(tuple(line.get_xdata()) == (0, 0) for line in fig.axes[0].lines)  # the zero line


def test_supervision_figure_puts_both_generators_side_by_side():
    from redestyle.miniature.supervision import SupervisionResult

    c, e = 3, 2
    out = {name: torch.full((c, e, 3, 8, 8), k / 4) for k, name in enumerate(
        ("redestyle", "redestyle, weight 0", "baseline", "baseline, weight 0"))}
    result = SupervisionResult([], [], c, e, 10, 0, 0.95, outputs=out, contents=torch.zeros(c, 3, 8, 8),
                               exemplars=torch.ones(e, 3, 8, 8))
    fig = experiments.supervision_figure(result, title="t", n_contents=2)
    axes = fig.axes
    assert len(axes) == (1 + 2 * 2) * (2 + e)  # exemplar row + (content, kind) rows; photo, weight 0, exemplars
    assert [ax.get_ylabel() for ax in axes[:: 2 + e]] == ["exemplar", "content 0\nRe-Destyle codes",
                                                          "content 0\nbaseline codes", "content 1\nRe-Destyle codes",
                                                          "content 1\nbaseline codes"]
    # row "content 0, baseline codes": the photo, its weight-0 face (3/4 -> grey 223), its transfers (2/4 -> 191)
    row = axes[2 * (2 + e) : 3 * (2 + e)]
    assert [int(ax.images[0].get_array()[0, 0, 0]) for ax in row] == [128, 223, 191, 191]
