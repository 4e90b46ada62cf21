"""The paper's experiments and figures (layer 6, the presentation layer): what the notebooks call.

Each experiment returns plain results (tensors, rows of numbers); the figure functions turn them
into matplotlib figures (grids, curves) or widgets, so every figure is one call from its notebook.
The algorithms below this layer return data only. Nothing here writes files (``viz.save_figure``
does, from the notebook).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from . import accuracy, data, metrics
from . import destylize as ds
from .config import METHODS, Profile, get_profile
from .imaging import pool
from .inversion import Inversion, invert
from .miniature import protocol, world
from .transfer import transfer_grid
from .viz import image_grid


def default_portraits(profile: str | Profile, size: int) -> dict[str, torch.Tensor]:
    """The portraits the notebooks use without a ``data_dir``: name -> [1, 3, size, size].

    By ``Profile.samples``: ``"world"`` (mini): portrait-domain renders of the miniature world
    (:func:`redestyle.miniature.world.named_portraits`, whose answers are known); ``"photos"``:
    :func:`redestyle.data.sample_portraits`.
    """
    if get_profile(profile).samples == "world":
        return world.named_portraits(size=size)
    return data.sample_portraits(size)


@dataclass
class EncoderComparison:
    """Fig. 1: every method's inversion of every portrait, and a metric row per method."""

    names: list[str]  # portrait names, in row order
    portraits: torch.Tensor  # [N, 3, P, P]
    results: dict[str, Inversion]  # method -> inversion of the whole batch
    rows: list[dict]  # one per method: metrics (see compare_encoders)


def _mean_or_nan(values) -> float:
    values = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def compare_encoders(
    models,
    portraits: Mapping[str, torch.Tensor],
    *,
    methods: Sequence[str] = METHODS,
    n_iters: int = 5,
    n_steps: int = 1000,
    seed: int = 0,
    dlib_identity: bool = True,
) -> EncoderComparison:
    """Invert the portraits with every method and measure the reconstructions.

    portraits: name -> [1, 3, P, P] in [-1, 1] at the encoder resolution. Per method: ``mse`` and
    ``lpips`` against the input (LPIPS-VGG of ``models.lpips``), ``id_irse`` (IR-SE50 cosine
    similarity; NaN when its weights are absent), ``id_dlib`` (dlib face-recognition cosine
    similarity, averaged over the pairs where dlib finds both faces; ``dlib_found`` counts them)
    and ``sec_per_image`` (wall time of the batch / N).
    """
    names = list(portraits)
    x = torch.cat([portraits[n] for n in names])
    size = x.shape[-1]
    results, rows = {}, []
    for method in methods:
        gen = torch.Generator(device=x.device).manual_seed(seed)
        result = invert(method, x, models, n_iters=n_iters, n_steps=n_steps, generator=gen)
        results[method] = result
        recon = pool(result.image.detach(), size)
        row = {
            "method": method,
            "mse": F.mse_loss(recon, x, reduction="none").mean(dim=(1, 2, 3)).mean().item(),
            "lpips": models.lpips(recon, x).mean().item() if models.lpips is not None else float("nan"),
            "id_irse": float("nan"),
            "id_dlib": float("nan"),
            "dlib_found": 0,
            "sec_per_image": result.seconds / len(names),
        }
        if models.id_features is not None:
            with torch.no_grad():
                a, b = models.id_features(pool(x, 256)), models.id_features(pool(recon, 256))
            row["id_irse"] = (a * b).sum(dim=1).mean().item()
        if dlib_identity:
            sims, _failures = metrics.paired_identity_similarity(list(x), list(recon), names=names)
            row["id_dlib"] = _mean_or_nan(sims.tolist())
            row["dlib_found"] = int(np.sum(~np.isnan(sims)))
        rows.append(row)
    return EncoderComparison(names, x, results, rows)



def encoder_figure(comparison: EncoderComparison, *, title: str):
    """Fig. 1 as a figure: one row per portrait, its input then each method's reconstruction.

    Reconstructions are pooled to the portraits' resolution P; columns follow ``comparison.results``.
    """
    size = comparison.portraits.shape[-1]
    rows = [[x] + [pool(result.image[i : i + 1], size)[0] for result in comparison.results.values()]
            for i, x in enumerate(comparison.portraits)]
    return image_grid(rows, row_labels=comparison.names, col_labels=["input", *comparison.results], title=title)

def format_table(rows: Sequence[Mapping], columns: Sequence[str], *, digits: int = 4) -> str:
    """A fixed-width text table; floats rounded to ``digits`` decimals, NaN shown as 'n/a'."""

    def cell(v):
        if isinstance(v, float):
            return "n/a" if math.isnan(v) else f"{v:.{digits}f}"
        return str(v)

    body = [[cell(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(b[i]) for b in body)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(b, widths)))
              for b in body]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# Estimates with intervals (miniature.protocol rows: method, metric, value, lo, hi[, baseline])


def _row_label(r: Mapping) -> str:
    """A row's method, with " - <baseline>" for a paired row."""
    return r["method"] + (f" - {r['baseline']}" if "baseline" in r else "")


def interval_table(rows: Sequence[Mapping], *, metrics: Sequence[str] | None = None, digits: int = 3) -> str:
    """A methods x metrics text table of estimates, each cell ``value [lo, hi]``.

    rows: ``{"method", "metric", "value", "lo", "hi"}`` dicts (``protocol.evaluate``'s ``rows``
    or ``paired``; paired rows get "- <baseline>" in the method column); metrics: columns to show,
    in order (default: every metric, first-seen order). A missing pair shows empty.
    """
    metrics = list(metrics or dict.fromkeys(r["metric"] for r in rows))
    table: dict[str, dict] = {}
    for r in rows:
        if r["metric"] not in metrics:
            continue
        label = _row_label(r)
        table.setdefault(label, {"method": label})[r["metric"]] = (
            f"{r['value']:.{digits}f} [{r['lo']:.{digits}f}, {r['hi']:.{digits}f}]")
    return format_table(list(table.values()), ["method", *metrics], digits=digits)


@dataclass
class ProtocolStudy:
    """The held-out protocol (``miniature.protocol``) for one post-processing setting."""

    postprocessing: str  # a key of accuracy.POSTPROCESSING, applied to every method
    result: protocol.ProtocolResult
    runs: dict[str, accuracy.MethodRun]  # method -> faces, codes, wall time

    def seconds_rows(self) -> list[dict]:
        """One row per method: wall seconds per portrait (this machine, this run)."""
        return [{"method": m, "sec_per_image": r.sec_per_image} for m, r in self.runs.items()]


def protocol_study(models, pset: world.PortraitSet, oracle, *, postprocessing: str, batch_size: int = 24,
                   baseline_steps: int | None = None, seed: int = 0, device=None) -> ProtocolStudy:
    """Every protocol method (``accuracy.protocol_destylizers``) on ``pset``, judged by the oracle.

    The baseline runs its official schedule (``baseline_steps`` None: 300 steps) and optimises
    every portrait on its own, ``batch_size`` portraits per Adam run (``joint_baseline``); the
    paired differences are taken against it. ``device``: where the methods run (None: the
    generator's).
    """
    device = device if device is not None else next(models.generator.parameters()).device
    destylizers = accuracy.protocol_destylizers(models, postprocessing=postprocessing, baseline_steps=baseline_steps,
                                                joint_baseline=True, seed=seed)
    portraits = pset.portraits.to(device)
    runs = {name: accuracy.run_destylizer(d, portraits, batch_size=batch_size) for name, d in destylizers.items()}
    result = protocol.evaluate({name: run.faces.cpu() for name, run in runs.items()}, pset, oracle,
                               avg_image=models.avg_image, seed=seed)
    return ProtocolStudy(postprocessing, result, runs)


def interval_markdown(rows: Sequence[Mapping], *, metrics: Sequence[str] | None = None,
                      methods: Sequence[str] | None = None, digits: Mapping[str, int] | int = 3) -> str:
    """A methods x metrics Markdown table of ``value [lo, hi]`` cells (the README's form).

    rows as in :func:`interval_table` (plain dicts, e.g. from a ``protocol.record`` read back
    from JSON); methods: rows to show, in order (default: all, first-seen order); digits: one
    number for every metric, or per metric (default 3 for a metric it does not name).
    """
    metrics = list(metrics or dict.fromkeys(r["metric"] for r in rows))
    labels = {_row_label(r): r["method"] for r in rows}
    order = [lab for lab in labels if methods is None or labels[lab] in methods]
    if methods is not None:
        order.sort(key=lambda lab: list(methods).index(labels[lab]))
    cells = {(_row_label(r), r["metric"]): r for r in rows}

    def cell(lab: str, metric: str) -> str:
        r = cells.get((lab, metric))
        if r is None:
            return ""
        d = digits if isinstance(digits, int) else digits.get(metric, 3)
        return f"{r['value']:.{d}f} [{r['lo']:.{d}f}, {r['hi']:.{d}f}]"

    lines = ["| method | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
    lines += ["| " + lab + " | " + " | ".join(cell(lab, m) for m in metrics) + " |" for lab in order]
    return "\n".join(lines)


#: Digits per metric in the README's protocol tables (others: 3).
PROTOCOL_DIGITS = {"realism_fd": 1, "glasses_kept": 2, "hair_kept": 2}


def protocol_readme_tables(recorded: Mapping) -> dict[str, str]:
    """The README's protocol tables from a recorded run (``figures/protocol_full.json``).

    recorded: ``{"settings": {setting: protocol.record(...)}}`` as notebook 03 writes it.
    Returns ``{"<setting>": rows table, "<setting> paired": method - baseline table}`` in
    Markdown (:func:`interval_markdown`); ``tests/miniature/test_protocol_record.py`` checks that
    the README quotes exactly these.
    """
    out = {}
    for setting, rec in recorded["settings"].items():
        out[setting] = interval_markdown(rec["rows"], digits=PROTOCOL_DIGITS)
        paired = [r for r in rec["paired"] if r["method"] not in ("photo (answer)", "average face")]
        out[f"{setting} paired"] = interval_markdown(paired, digits=PROTOCOL_DIGITS)
    return out


def supervision_readme_tables(recorded: Mapping) -> dict[str, str]:
    """The README's §4.4 tables from a recorded run (``figures/supervision_full.json``, a
    ``miniature.supervision.record``): ``{"rows": ..., "paired": ...}`` in Markdown (Fréchet
    distance with 1 digit); ``tests/miniature/test_supervision.py`` checks that the README quotes them."""
    return {part: interval_markdown(recorded[part], digits={"style_fd": 1}) for part in ("rows", "paired")}


def interval_figure(rows: Sequence[Mapping], *, title: str, metrics: Sequence[str] | None = None,
                    columns: int = 4):
    """Dot plot with intervals: one panel per metric, one line per method (value, lo-hi bar).

    rows as in :func:`interval_table`; paired rows (with ``baseline``) get a line at 0. Panels
    say which direction is better when the rows carry ``better``. Returns the matplotlib figure.
    """
    import matplotlib.pyplot as plt  # only when a figure is drawn

    metrics = list(metrics or dict.fromkeys(r["metric"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    n_rows = math.ceil(len(metrics) / columns)
    fig, axes = plt.subplots(n_rows, min(columns, len(metrics)), squeeze=False, sharey=True,
                             figsize=(3.2 * min(columns, len(metrics)), 0.35 * len(methods) * n_rows + 1.2))
    for ax, metric in zip(axes.flat, metrics):
        mine = {r["method"]: r for r in rows if r["metric"] == metric}
        ys = [i for i, m in enumerate(methods) if m in mine]
        vals = np.array([[mine[methods[i]][k] for k in ("value", "lo", "hi")] for i in ys]).reshape(-1, 3)
        # A percentile interval need not contain its point estimate (a statistic biased under
        # resampling, e.g. the Fréchet distance): the bar then starts at the point.
        ax.errorbar(vals[:, 0], ys, xerr=[(vals[:, 0] - vals[:, 1]).clip(min=0), (vals[:, 2] - vals[:, 0]).clip(min=0)],
                    fmt="o", ms=4, capsize=2)
        ax.plot(vals[:, 1:].T, [ys, ys], color="C0", lw=1)  # the interval itself, wherever it lies
        paired = any("baseline" in r for r in mine.values())
        if paired:
            ax.axvline(0, color="grey", lw=0.8)
        better = next((r["better"] for r in mine.values() if "better" in r), None)
        ax.set_title(metric + (f" ({better} is better)" if better else "") + (" - baseline" if paired else ""),
                     fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(metrics):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:  # shared y: one label column per row of panels
        ax.set_yticks(range(len(methods)), methods)
    axes[0, 0].invert_yaxis()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------------
# Figures 2-3 (notebooks/02_n_schedule_destylization.ipynb)


def schedule_grid(portraits: Mapping[str, torch.Tensor], results: Mapping[str, ds.Destylized]):
    """Fig. 2 layout: one row per (portrait, schedule): input, then each round's output image.

    Returns (rows of [3, H, W] images or None, row labels, column labels) for ``viz.image_grid``.
    """
    n_cols = max(len(r.rounds) for r in results.values())
    rows, labels = [], []
    for i, name in enumerate(portraits):
        for spec, result in results.items():
            size = result.rounds[0].input.shape[-1]
            rows.append([portraits[name][0]] + [pool(r.image[i : i + 1], size)[0] for r in result.rounds])
            labels.append(f"{name}\n{spec}")
    cols = ["input"] + [f"round {k + 1}" for k in range(n_cols)]
    return rows, labels, cols


def destylized_grid(portraits: Mapping[str, torch.Tensor], results: Mapping[str, ds.Destylized]):
    """Fig. 3 layout: per portrait: input, reconstruction (z_e), the destylized face per schedule."""
    first = next(iter(results.values()))
    size = first.rounds[0].input.shape[-1] if first.rounds else first.image.shape[-1]
    rows = []
    for i, name in enumerate(portraits):
        row = [portraits[name][0], pool(first.reconstruction[i : i + 1], size)[0]]
        row += [pool(r.image[i : i + 1], size)[0] for r in results.values()]
        rows.append(row)
    cols = ["input", "z_e* (round 1)"] + [f"z_i* {spec}" for spec in results]
    return rows, list(portraits), cols


def widgets_live() -> bool:
    """True inside a Jupyter kernel started by a Jupyter server (a live frontend) with ipywidgets.

    jupyter_server exports ``JPY_SESSION_NAME`` to the kernels it starts; papermill, nbconvert
    and nbval start kernels without it, so headless runs return False.
    """
    if not os.environ.get("JPY_SESSION_NAME"):
        return False
    try:
        import ipywidgets  # noqa: F401
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def schedule_explorer(models, portraits: Mapping[str, torch.Tensor], *, schedules: Sequence[str] = (
        "5-3-1", "6-4-2", "4-2", "3-1", "5", "1")):
    """An ipywidgets slider over schedules showing every round's image; None when not live.

    Returns the widget (display it as the cell's value) or None (headless: nothing to show).
    """
    if not widgets_live():
        return None
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    def show(schedule: str):
        rows, labels, cols = schedule_grid(portraits, ds.run_schedules(models, portraits, [schedule]))
        image_grid(rows, row_labels=labels, col_labels=cols, title=f"{schedule} ({models.label})")
        plt.show()

    return widgets.interactive(show, schedule=widgets.SelectionSlider(options=list(schedules),
                                                                     value=schedules[0]))


def round_detail_grid(portrait: torch.Tensor, result: ds.Destylized, *, index: int = 0):
    """Fig. 2 detail for one portrait: one row per round: its input, every ReStyle iteration, its output.

    portrait: [1, 3, P, P] (only for the shapes' sake: round 1's input is the portrait itself);
    index: which image of ``result``'s batch. Row labels give the round and its N; images are
    pooled to P. Returns (rows, row labels, column labels) for ``viz.image_grid``.
    """
    size = portrait.shape[-1]
    n_max = max(r.n_iters for r in result.rounds)
    rows, labels = [], []
    for k, r in enumerate(result.rounds):
        iters = [pool(s.image[index : index + 1], size)[0] for s in r.steps]
        rows.append([r.input[index]] + iters + [None] * (n_max - len(iters)) + [iters[-1]])
        labels.append(f"round {k + 1}\nN = {r.n_iters}")
    cols = ["round input"] + [f"iteration {t + 1}" for t in range(n_max)] + ["round output"]
    return rows, labels, cols


def tradeoff_figure(rows: Sequence[Mapping], *, title: str):
    """Matplotlib figure of :func:`tradeoff_rows`: distance to latent_avg and MSE to the portrait per round."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    for spec in dict.fromkeys(r["schedule"] for r in rows):
        mine = [r for r in rows if r["schedule"] == spec]
        rounds = [r["round"] for r in mine]
        for ax, key in zip(axes, ("dist_to_avg", "mse_to_portrait")):
            ax.plot(rounds, [r[key] for r in mine], marker="o", label=spec)
    axes[0].set_ylabel("||w - latent_avg|| (mean over layers)")
    axes[1].set_ylabel("MSE(round output, portrait)")
    for ax in axes:
        ax.set_xlabel("round")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend(title="schedule", fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------------
# Fig. 6 (notebooks/04_dualstylegan_training.ipynb)


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
    import matplotlib.pyplot as plt  # only when a figure is drawn

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


@dataclass
class TransferFigure:
    """Fig. 6: DualStyleGAN style transfer of content codes with every exemplar of a style set."""

    contents: torch.Tensor  # [C, n_latent, D] W+ content codes (two of the set, then random faces)
    grid: torch.Tensor  # [C, E, 3, S, S] content x exemplar, structure and colour weights as set
    plain: torch.Tensor  # [C, 1, 3, S, S] weights 0: the intrinsic-only face of each content
    figure: object  # the matplotlib figure (style row, then one row per content)


@torch.no_grad()
def transfer_figure(g_ema, pairs, *, seed: int, title: str, n_random: int = 2) -> TransferFigure:
    """Fig. 6: the first and last codes of ``pairs`` (a ``train.data.PairedSet``) and ``n_random``
    random faces (z seeded by ``seed``, mapped to W) restyled with every exemplar of the set.

    Row 0 shows the style images, each content row its intrinsic-only face, then its transfers.
    """
    dev = next(g_ema.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    random_faces = g_ema.generator.mapping(torch.randn(n_random, g_ema.style_dim, generator=gen).to(dev))
    contents = torch.cat([pairs.instyle[[0, -1]].to(dev), random_faces[:, None].expand(-1, g_ema.n_latent, -1)])
    exemplars = pairs.exstyle.to(dev)
    grid = transfer_grid(g_ema, contents, exemplars)
    plain = transfer_grid(g_ema, contents, exemplars[:1], structure_weight=0.0, color_weight=0.0)
    rows = [[None, *[pairs.image(torch.tensor([j]))[0] for j in range(len(pairs))]]]
    rows += [[plain[i, 0].cpu(), *grid[i].cpu()] for i in range(len(contents))]
    names = [n.replace("astronaut_", "") for n in pairs.names]
    labels = ["style", f"z_i* {names[0]}", f"z_i* {names[-1]}", *[f"random {k + 1}" for k in range(n_random)]]
    fig = image_grid(rows, col_labels=["content", *names], row_labels=labels, title=title)
    return TransferFigure(contents, grid, plain, fig)


#: How Fig. 6's §4.4 grid names each code kind (``miniature.supervision.CODE_KINDS``).
CODE_KIND_LABELS = {"redestyle": "Re-Destyle codes", "baseline": "baseline codes"}


def supervision_figure(result, *, title: str, n_contents: int = 4, kinds: Sequence[str] = ("redestyle", "baseline")):
    """Fig. 6 (§4.4): each content under each generator side by side, one row per (content, kind).

    result: ``miniature.supervision.measure``'s (its ``outputs``, ``contents`` and ``exemplars``).
    Row 0: the exemplar portraits; then, for each of the first ``n_contents`` contents and each kind,
    the content photo, the kind's intrinsic-only face (every weight 0) and its transfer with every
    exemplar. Returns the matplotlib figure.
    """
    n = min(n_contents, len(result.contents))
    rows = [[None, None, *result.exemplars]]
    labels = ["exemplar"]
    for c in range(n):
        for kind in kinds:
            rows.append([result.contents[c], result.outputs[f"{kind}, weight 0"][c, 0], *result.outputs[kind][c]])
            labels.append(f"content {c}\n{CODE_KIND_LABELS.get(kind, kind)}")
    cols = ["content photo", "weight 0", *[f"exemplar {e}" for e in range(len(result.exemplars))]]
    return image_grid(rows, row_labels=labels, col_labels=cols, title=title, cell_inches=1.1)
