"""Figures of a training run: loss curves from the per-iteration history that ``run`` returns."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

#: the fine-tuning terms worth plotting (the lambda-weighted terms of the generator loss, D's loss)
FINETUNE_CURVES = ("d", "g_adv", "cx", "fm", "perc", "id")


def loss_curves(
    history: Sequence[Mapping[str, float]],
    *,
    keys: Sequence[str] = FINETUNE_CURVES,
    title: str | None = None,
    smooth: int = 5,
):
    """A matplotlib figure with one panel per loss: raw values (dots) and a running mean of ``smooth``.

    Iterations where a loss is absent (e.g. the perceptual loss on unpaired iterations) are skipped.
    """
    import matplotlib.pyplot as plt

    keys = [k for k in keys if any(k in h for h in history)]
    fig, axes = plt.subplots(1, len(keys), figsize=(2.6 * len(keys), 2.4), squeeze=False)
    for ax, key in zip(axes[0], keys):
        steps = [int(h["step"]) for h in history if key in h]
        values = [h[key] for h in history if key in h]
        ax.plot(steps, values, ".", markersize=3, alpha=0.5)
        if len(values) >= smooth:
            mean = [sum(values[i - smooth + 1 : i + 1]) / smooth for i in range(smooth - 1, len(values))]
            ax.plot(steps[smooth - 1 :], mean, "-", linewidth=1.5)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("iteration", fontsize=8)
        ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
