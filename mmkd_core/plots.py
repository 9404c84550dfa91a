"""Figures the notebooks share, in one style; each returns the Figure so notebooks can save it.

The figure standard of the collection, set here once:

- :func:`use_style` (applied on import): one palette, readable font sizes, no top/right spines;
- accuracies are shown in percent on axes labelled in words with their unit (:func:`percent_axis`);
- bars start at 0 (an untruncated axis); where methods all score far from 0 and differ by a few points,
  :func:`bar_with_ci` draws points with intervals on a zoomed axis whose cut is marked (:func:`mark_zoom`);
  wherever an interval is drawn, the per-seed values are drawn as dots on it (:func:`bar_with_ci`,
  :func:`grouped_bars`);
- differences to a baseline (:func:`gain_over_baseline`) are drawn in percentage points on an axis that keeps 0
  in view, with a line at 0;
- intervals are Student-t 95% CIs over seeds (:func:`mmkd_core.evaluation.stats.mean_ci`), never
  seaborn's bootstrap, whose resampling is unseeded and made two identical runs draw different figures;
- legends sit outside the data (:func:`legend_outside`); panels compared by colour share one colour
  scale and one colorbar (:func:`shared_colorbar`).
"""
from __future__ import annotations

import math
import warnings
from typing import Iterable, Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import NullFormatter, PercentFormatter

from . import reporting
from .evaluation.stats import mean_ci
from .figure_checks import figure_problems

PALETTE = sns.color_palette("deep")
STYLE = {
    "font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "xtick.labelsize": 8, "ytick.labelsize": 8,
    "legend.fontsize": 8, "legend.title_fontsize": 8, "legend.frameon": False,
    "axes.spines.top": False, "axes.spines.right": False,
    "axes.prop_cycle": mpl.cycler(color=PALETTE), "image.cmap": "viridis",
    "savefig.dpi": 120, "savefig.bbox": "tight",
}
DOT_STYLE = dict(color="black", s=10, zorder=3, linewidths=0)  # per-seed values on bars
LOG_LANE_DECADES = 0.02  # lines_with_ci(log_x=True): the outer lanes sit a factor 10^±0.02 (about ±5%) from their x


def save_figure(fig, name: str, reports_dir=None, dpi: int = 120, caption: str | None = None):
    """Check ``fig`` (:func:`~mmkd_core.figure_checks.figure_problems`: overlapping texts, code names in labels),
    then write it with :func:`mmkd_core.reporting.save_figure`. In the CI setting (``MMKD_FAST=1``, where every
    notebook draws its figures on small data) a problem is an error; elsewhere a warning, and the figure is written.
    The check lives here, not in :mod:`~mmkd_core.reporting`: that module is in every run's import closure, and
    editing a figure rule must not invalidate the run cache."""
    problems = figure_problems(fig)
    if problems:
        message = f"figure {name!r} cannot be read at a glance: " + "; ".join(problems)
        if reporting.is_fast():
            raise ValueError(message)
        warnings.warn(message, stacklevel=2)
    return reporting.save_figure(fig, name, reports_dir, dpi=dpi, caption=caption)


def use_style() -> None:
    """Apply the collection's figure style (:data:`STYLE`) to matplotlib. Called once on import."""
    mpl.rcParams.update(STYLE)


def words(key: str) -> str:
    """A logged key in words: ``"validation/accuracy"`` -> ``"validation accuracy"``."""
    return key.replace("/", " ").replace("_", " ")


TASK_WORDS = {"easy_vqa": "easy-VQA"}  # task keys whose name in a figure differs from the key


def task_words(task: str) -> str:
    """A task key as a figure names it: ``"easy_vqa"`` -> ``"easy-VQA"``, ``"ve-pretrained"`` -> ``"ve, pretrained
    teacher"`` (the notebooks' own names: ve, nlvr and memes stay as they are)."""
    base, pretrained = (task[: -len("-pretrained")], True) if task.endswith("-pretrained") else (task, False)
    name = TASK_WORDS.get(base, words(base))
    return f"{name}, pretrained teacher" if pretrained else name


def percent_axis(ax, label: str, axis: str = "y", xmax: float = 100.0, decimals: int = 0) -> None:
    """Label ``axis`` in words with "(%)" and write its ticks as percentages.

    ``xmax`` is the data value that means 100%: 100 for data already in percent, 1 for fractions.
    """
    label = words(label)
    label = label if label.rstrip().endswith("(%)") else f"{label} (%)"
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_formatter(PercentFormatter(xmax=xmax, decimals=decimals))
    target.set_label_text(label)


def legend_outside(ax, title: str | None = None, handles_from: Sequence | None = None, **legend_options):
    """The axes' legend to the right of the plot, where it cannot hide data (None when nothing is labelled).

    ``handles_from``: the axes whose labelled artists the legend lists, each label once, in the order first met
    (default: ``ax``'s own): side-by-side panels that each draw some of the lines share one legend.
    """
    handles, labels = ax.get_legend_handles_labels()
    if handles_from is not None:
        named = {}
        for other in handles_from:
            for handle, label in zip(*other.get_legend_handles_labels()):
                named.setdefault(label, handle)
        handles, labels = list(named.values()), list(named)
    if not handles:
        return None
    return ax.legend(handles, labels, title=title, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                     borderaxespad=0.0, **legend_options)


def shared_colorbar(fig, axes, mappable, label: str):
    """One colour scale and one colorbar for panels compared by colour.

    Every image and colour mesh in ``axes`` takes ``mappable``'s colour scale (norm and colormap), so a
    cell reads the same on every panel; the colorbar, labelled ``label``, spans all of them. Call it after
    the panels are drawn (and after ``tight_layout``, which would squeeze the colorbar).
    """
    axes = list(np.ravel(axes))
    for ax in axes:
        for artist in [*ax.images, *ax.collections]:
            if isinstance(artist, mpl.cm.ScalarMappable) and artist.get_array() is not None:
                artist.set_norm(mappable.norm)
                artist.set_cmap(mappable.cmap)
    return fig.colorbar(mappable, ax=axes, label=label, shrink=0.9)


def _bar_limits(ax, highest: float, percent: bool) -> None:
    # Bars start at 0: a truncated axis turns small differences into large-looking ones. A percent axis ends a
    # little above 100% when a value reaches it, so that a marker at 100% is drawn whole, not cut in half.
    top = highest * 1.08 if highest > 0 else 1.0
    if percent and highest <= 100:
        top = 103.0 if highest > 98 else min(100.0, top)
    ax.set_ylim(0, top)


def _dots(ax, x: float, values: np.ndarray, width: float) -> None:
    # Fixed (not random) horizontal offsets: the figure is the same on every run.
    offsets = np.linspace(-width / 4, width / 4, len(values)) if len(values) > 1 else np.zeros(1)
    ax.scatter(x + offsets, values, **DOT_STYLE)


def sample_grid(dataset, n: int = 12, columns: int = 4, width: int = 32):
    """Images with their statement (wrapped) and label name, in a grid."""
    names = dataset.features["label"].names
    rows = math.ceil(n / columns)
    # constrained layout makes room for each title's lines, so a title never runs into the image above
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 2.6, rows * 3.2), layout="constrained")
    for ax, i in zip(np.ravel(axes), range(n)):
        row = dataset[i]
        ax.imshow(row["image"], interpolation="nearest")
        line_words, lines, line = row["text"].split(), [], ""
        for word in line_words:
            if len(line) + len(word) > width // 1.3:
                lines.append(line)
                line = ""
            line = f"{line} {word}".strip()
        lines.append(line)
        ax.set_title("\n".join(lines) + f"\n→ {names[row['label']]}", fontsize=8)
        ax.axis("off")
    for ax in np.ravel(axes)[n:]:
        ax.axis("off")
    return fig


def grouped_bars(frame: pd.DataFrame, x: str, hue: str, y: str, ax=None, order: Sequence[str] | None = None,
                 hue_order: Sequence[str] | None = None, scale: float = 100.0, label: str | None = None,
                 legend_title: str | None = None):
    """Bars of the mean of ``y`` per (``x``, ``hue``), with a t 95% CI and one dot per row when a group
    has several rows (seeds); a percent axis from 0 when ``scale`` is 100 (fractions shown in %)."""
    order = list(order) if order is not None else list(dict.fromkeys(frame[x]))
    hue_order = list(hue_order) if hue_order is not None else list(dict.fromkeys(frame[hue]))
    if ax is None:
        fig, ax = plt.subplots(figsize=(1.2 + 0.5 * len(order) * len(hue_order), 3.2))
    else:
        fig = ax.figure
    width = 0.8 / len(hue_order)
    highest = 0.0
    for j, level in enumerate(hue_order):
        for i, group_key in enumerate(order):
            values = frame.loc[(frame[x] == group_key) & (frame[hue] == level), y].dropna().to_numpy() * scale
            if len(values) == 0:
                continue
            mean, half = mean_ci(values)
            position = i - 0.4 + width * (j + 0.5)
            ax.bar(position, mean, width * 0.9, color=PALETTE[j % len(PALETTE)], label=level if i == 0 else None,
                   yerr=None if math.isnan(half) else half, capsize=3, error_kw=dict(lw=1))
            if len(values) > 1:
                _dots(ax, position, values, width)
            highest = max(highest, mean + (0 if math.isnan(half) else half), float(values.max()))
    ax.set_xticks(range(len(order)), order)
    ax.set_xlabel(words(x))
    if scale == 100.0:
        percent_axis(ax, label or words(y))
    else:
        ax.set_ylabel(label or words(y))
    _bar_limits(ax, highest, scale == 100.0)
    legend_outside(ax, title=legend_title or words(hue))
    return fig


def softened_distributions(logits, label_names: Sequence[str], temperatures: Iterable[float], top_k: int = 6,
                           title: str = "one teacher prediction, softened by each temperature"):
    """A teacher's prediction for one row, softmax(z / T), at each temperature: the ``top_k`` answers it ranks
    highest at T = 1, and the mass of all the others as one bar, so a 13-answer task reads like a 3-way one."""
    logits = np.asarray(logits, dtype=float)
    if logits.ndim != 1 or len(logits) != len(label_names):
        raise ValueError(f"softened_distributions needs one row of logits with one entry per label name; got shape "
                         f"{logits.shape} for {len(label_names)} label names")
    ranked = list(np.argsort(-logits, kind="stable"))
    shown, rest = ranked[:top_k], ranked[top_k:]
    names = [str(label_names[i]) for i in shown] + ([f"the other {len(rest)} answers"] if rest else [])
    rows = []
    for t in temperatures:
        z = logits / t
        p = np.exp(z - z.max())
        p /= p.sum()
        values = [p[i] for i in shown] + ([p[rest].sum()] if rest else [])
        rows += [{"answer": name, "temperature": f"T = {t:g}", "probability": v} for name, v in zip(names, values)]
    fig, ax = plt.subplots(figsize=(max(6.4, 1.5 + 0.9 * len(names)), 3.2))
    grouped_bars(pd.DataFrame(rows), x="answer", hue="temperature", y="probability", ax=ax, label="probability (%)",
                 legend_title="temperature")
    ax.set_xlabel("answer, in the teacher's order at T = 1")
    if len(names) > 4:
        plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def label_balance(datasets_by_split: dict, title: str = "label balance per split"):
    """Share of each label per split (bars, in %); returns the figure and the frame of fractions."""
    frames = []
    for split, ds in datasets_by_split.items():
        names = ds.features["label"].names
        counts = np.bincount(ds["label"], minlength=len(names))
        frames.append(pd.DataFrame({"split": split, "label": names, "fraction": counts / counts.sum()}))
    frame = pd.concat(frames)
    fig, ax = plt.subplots(figsize=(6.5, 3))
    grouped_bars(frame, x="label", hue="split", y="fraction", ax=ax, label="share of the split")
    ax.set_title(title)
    fig.tight_layout()
    return fig, frame


def _drawn_range(summary: pd.DataFrame, metric: str, runs: pd.DataFrame | None, order, scale: float):
    """(frame, means, errors, per-method seed values, lowest, highest) of what :func:`bar_with_ci` draws."""
    frame = summary.set_index("method").loc[list(order)] if order is not None else summary.set_index("method")
    means = frame[f"{metric} mean"].to_numpy() * scale
    errors = np.nan_to_num(frame[f"{metric} ci95"].to_numpy() * scale)
    seeds = {method: runs.loc[runs["method"] == method, metric].dropna().to_numpy() * scale
             for method in frame.index} if runs is not None else {}
    drawn = np.concatenate([means + errors, means - errors] + [v for v in seeds.values() if len(v)]) \
        if len(frame) else np.zeros(1)
    return frame, means, errors, seeds, float(np.nanmin(drawn)), float(np.nanmax(drawn))


def bar_with_ci(summary: pd.DataFrame, metric: str, ax=None, label: str | None = None, order: Sequence[str] | None = None,
                scale: float = 100.0, runs: pd.DataFrame | None = None, zoom: bool | str = "auto",
                value_range: tuple[float, float] | None = None):
    """Each method's ``<metric> mean`` with its ``<metric> ci95`` whiskers (from ``summarize``).

    ``runs`` (optional): the per-run rows (one per method × seed, with ``method`` and ``metric`` columns,
    e.g. ``rows_frame(rows)``); each run is drawn as a dot on its method. With ``scale=100`` the axis reads in
    percent, labelled ``label`` (default: ``metric`` in words).
    ``zoom``: False draws bars on an axis from 0. True draws each mean as a point with its interval on an axis
    that starts just below the lowest value, and marks the cut (:func:`mark_zoom`): bars from 0 would flatten a
    difference of a few points between methods that all score 70-80%. ``"auto"`` (default) zooms when the lowest
    value drawn is above half the highest. ``value_range``: the (lowest, highest) the axis must show, for panels
    that share one axis (:func:`splits_with_ci`); default: this panel's own.
    """
    frame, means, errors, seeds, lowest, highest = _drawn_range(summary, metric, runs, order, scale)
    if value_range is not None:
        lowest, highest = value_range
    if ax is None:
        fig, ax = plt.subplots(figsize=(1.0 + 0.9 * len(frame), 3.2))
    else:
        fig = ax.figure
    zoomed = (lowest > highest / 2) if zoom == "auto" else bool(zoom)
    colors = [PALETTE[i % len(PALETTE)] for i in range(len(frame))]
    if zoomed:
        for i, (mean, error) in enumerate(zip(means, errors)):
            ax.errorbar(i, mean, yerr=error, fmt="o", color=colors[i], markersize=7, capsize=5, lw=1.5, zorder=2)
    else:
        ax.bar(range(len(frame)), means, yerr=errors, capsize=4, color=colors, error_kw=dict(lw=1))
    for i, method in enumerate(frame.index):
        if len(seeds.get(method, ())):
            _dots(ax, i + (0.18 if zoomed else 0.0), seeds[method], 0.3 if zoomed else 0.8)
    ax.set_xticks(range(len(frame)), frame.index, rotation=30, ha="right")
    if scale == 100.0:
        percent_axis(ax, label or metric)
    else:
        ax.set_ylabel(words(label or metric))
    _bar_limits(ax, highest, scale == 100.0)
    if zoomed:
        mark_zoom(ax, lowest, scale == 100.0)
    fig.tight_layout()
    return fig


def splits_with_ci(summary: pd.DataFrame, metric: str = "test/accuracy", runs: pd.DataFrame | None = None,
                   order: Sequence[str] | None = None, splits: Sequence[str] = ("validation", "test"), title: str = ""):
    """:func:`bar_with_ci` once per split (``metric`` names the test one: ``"test/accuracy"``), side by side on
    one y axis, with one zoom decision for all panels so that a reader compares like with like."""
    keys = [metric.replace("test", split, 1) for split in splits]
    ranges = [_drawn_range(summary, key, runs, order, 100.0)[4:] for key in keys]
    value_range = (min(r[0] for r in ranges), max(r[1] for r in ranges))
    methods = len(order) if order is not None else len(summary)
    fig, axes = plt.subplots(1, len(splits), figsize=(1.5 + 1.1 * methods * len(splits), 3.8), sharey=True,
                             squeeze=False)
    for ax, split, key in zip(axes[0], splits, keys):
        bar_with_ci(summary, key, ax=ax, label=f"{split} {words(key.split('/', 1)[1])} (%)", order=order, runs=runs,
                    zoom=value_range[0] > value_range[1] / 2, value_range=value_range)
        ax.set_title(split)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def mark_zoom(ax, lowest: float, percent: bool) -> float:
    """Start the y axis a round step below ``lowest`` (5 points for percentages) and mark the cut so that it cannot
    go unnoticed: a dashed red bottom spine and, inside the axes, "axis starts at ..., not 0". Returns the start."""
    top = ax.get_ylim()[1]
    step = 5.0 if percent else (abs(top) / 20 or 1.0)
    start = max(0.0, step * math.floor(lowest / step) - step)
    ax.set_ylim(start, top)
    ax.spines["bottom"].set(linestyle="--", color="red")
    ax.text(0.01, 0.01, f"axis starts at {start:g}{'%' if percent else ''}, not 0", transform=ax.transAxes,
            color="red", fontsize=7, ha="left", va="bottom")
    return start


# The loss terms the methods log (training/methods), in words for legends.
LOSS_TERM_WORDS = {
    "ce": "cross-entropy, labelled rows", "kd": "KD, soft targets", "total": "total (what the step minimises)",
    "kd_joint": "KD, joint view", "kd_text": "KD, text-only view", "kd_image": "KD, image-only view",
    "weighted_text": "weighted KD, text-only view", "weighted_image": "weighted KD, image-only view",
    "ce_joint": "cross-entropy, joint view", "ce_text": "cross-entropy, text-only view",
    "ce_image": "cross-entropy, image-only view", "gram": "Gram relation (MSE)",
}


def loss_term_words(term: str) -> str:
    """A logged loss term in words (:data:`LOSS_TERM_WORDS`; any other: its key in words)."""
    return LOSS_TERM_WORDS.get(term, words(term))


def loss_curves(runs: dict[str, pd.DataFrame], terms: Iterable[str] | None = None, smooth: int = 5,
                title: str = "training loss per term"):
    """One panel per run: every logged loss term per step (rolling mean over ``smooth`` steps)."""
    fig, axes = plt.subplots(1, len(runs), figsize=(4.2 * len(runs), 3.0), squeeze=False)
    colors: dict[str, tuple] = {}  # one colour per term across panels, so one legend reads them all
    handles: dict[str, object] = {}
    for ax, (name, steps) in zip(axes[0], runs.items()):
        columns = [c for c in steps.columns if c not in ("step", "epoch", "lr")]
        if terms is not None:
            columns = [c for c in columns if c in terms]
        for column in columns:
            color = colors.setdefault(column, PALETTE[len(colors) % len(PALETTE)])
            # "total" is drawn wide and pale underneath: a term equal to it (CE alone) stays visible on top
            style = dict(lw=3, alpha=0.35, zorder=1) if column == "total" else dict(lw=1.2, zorder=2)
            (line,) = ax.plot(steps["step"], steps[column].rolling(smooth, min_periods=1).mean(),
                              label=loss_term_words(column), color=color, **style)
            handles.setdefault(loss_term_words(column), line)
        ax.set_title(name)
        ax.set_xlabel("optimisation step")
        ax.set_ylabel(f"loss (mean of {smooth} steps)")
        ax.set_ylim(bottom=0)  # every term is a loss, never below 0
    fig.suptitle(title)
    fig.tight_layout()
    fig.legend(list(handles.values()), list(handles), title="loss term", loc="upper left",
               bbox_to_anchor=(1.0, 0.9))
    return fig


def validation_curves(runs: dict[str, pd.DataFrame], warmup_steps: dict[str, int | None], title: str,
                      kept_steps: dict[str, int] | None = None, floor_step: int | None = None,
                      metric: str = "val/joint/accuracy"):
    """Validation accuracy (%) against the optimisation step, one line per run (name → its evaluation log), with
    the runs' warm-up shaded (name → its warm-up steps; None: none drawn), the step floor before which no run stops
    (``floor_step``) and each run's kept checkpoint as a dot (``kept_steps``). Shows whether a run kept a
    checkpoint well past its warm-up, or stopped inside it."""
    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    longest_warmup = max([w for w in warmup_steps.values() if w] or [0])
    if longest_warmup:
        ax.axvspan(0, longest_warmup, color="0.9", zorder=0, label="learning-rate warm-up")
    if floor_step:
        ax.axvline(floor_step, color="0.45", ls=":", lw=1.2, label="no stop before this step")
    for i, (name, log) in enumerate(runs.items()):
        color = PALETTE[i % len(PALETTE)]
        ax.plot(log["step"], 100 * log[metric], color=color, lw=1.2, label=name)
        kept = (kept_steps or {}).get(name)
        if kept is not None and (log["step"] == kept).any():
            ax.plot([kept], [100 * float(log.loc[log["step"] == kept, metric].iloc[0])], "o", color=color, ms=6,
                    label="kept checkpoint" if i == 0 else None)
    ax.set_xlabel("optimisation step")
    ax.set_ylabel("validation accuracy (%)")
    lowest = min(100 * float(log[metric].min()) for log in runs.values())
    ax.set_ylim(top=100)
    mark_zoom(ax, lowest, percent=True)
    ax.set_title(title)
    legend_outside(ax)
    fig.tight_layout()
    return fig


use_style()


def against_kd_panel(row) -> str:
    """The panel of a claims row in :func:`difference_forest`: each method against KD, or everything else (against
    the CE student, the teacher and the labels), whose differences are often ten times larger."""
    return ("each method against KD" if str(row["comparison"]).endswith("− KD (transfer set)")
            else "against the CE student, the teacher and the labels")


def difference_forest(claims: pd.DataFrame, title: str = "differences of means, with the resolvable difference",
                      panels=None, paper_bands: dict[str, tuple[float, float]] | None = None):
    """One line per comparison: the difference of means (points) and its 95% CI (the resolvable difference),
    against a zero line. Comparisons whose method intervals separate are drawn filled, the others hollow; one whose
    both sides scored 100% in every run (``at ceiling``) is a grey square labelled "(both at 100%)".

    ``panels``: a function of a claims row giving the name of its panel (None: one panel). Each panel gets its own
    x axis, so that rows of a few points are not squeezed by rows of tens of points (notebook 05: differences
    against CE beside differences against KD). ``paper_bands``: comparison-name prefix → (low, high), the gain a
    paper reports for that comparison, drawn as a shaded band on the rows it applies to.
    """
    frame = claims.reset_index(drop=True)
    names = [panels(row) for _, row in frame.iterrows()] if panels else [""] * len(frame)
    order = list(dict.fromkeys(names))
    fig, axes = plt.subplots(len(order), 1, squeeze=False, figsize=(7.5, 0.45 * len(frame) + 1.4 + 0.5 * len(order)),
                             gridspec_kw={"height_ratios": [names.count(name) + 1 for name in order]})
    for ax, name in zip(axes[:, 0], order):
        banded = False
        part = frame[[n == name for n in names]].reset_index(drop=True)
        for i, row in part.iterrows():
            for prefix, (low, high) in (paper_bands or {}).items():
                if str(row["comparison"]).startswith(prefix):
                    ax.fill_betweenx([i - 0.4, i + 0.4], low, high, color=PALETTE[1], alpha=0.3, lw=0)
                    banded = True
            half = row["resolvable difference (points)"]
            half = 0.0 if half != half else half
            separated = not row["CIs overlap"]
            if bool(row.get("at ceiling", False)):  # both sides at 100%: a grey square, and said in the label
                ax.plot(row["difference (points)"], i, "s", color="0.55", markerfacecolor="white")
                continue
            ax.errorbar(row["difference (points)"], i, xerr=half, fmt="o", capsize=4, color=PALETTE[0],
                        markerfacecolor=PALETTE[0] if separated else "white")
        ax.axvline(0.0, color="0.4", lw=1)
        labels = [(f"{task_words(r['task'])}: {r['comparison']}" if "task" in part else r["comparison"])
                  + (" (both at 100%)" if bool(r.get("at ceiling", False)) else "") for _, r in part.iterrows()]
        ax.set_yticks(range(len(part)), labels)
        ax.set_ylim(len(part) - 0.5, -0.5)
        ax.set_xlabel("difference of test accuracy (percentage points), 95% CI")
        band_words = "shaded: the gain the paper reports" if banded else ""
        if name or band_words:
            ax.set_title("; ".join(words for words in (name, band_words) if words), fontsize="medium")
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / fig.get_figheight()))  # the top 0.45 inch for the figure's title
    return fig


def interval_table(frame: pd.DataFrame, by: list[str], metric: str) -> pd.DataFrame:
    """Mean, 95% t-interval half-width and count of ``metric`` per group (what :func:`lines_with_ci` draws)."""
    lines = []
    for keys, group in frame.groupby(by, sort=False):
        mean, half = mean_ci(group[metric])
        lines.append({**dict(zip(by, keys if isinstance(keys, tuple) else (keys,))), "mean": mean,
                      "ci95": half, "runs": len(group)})
    return pd.DataFrame(lines)


def lines_with_ci(frame: pd.DataFrame, x: str, hue: str, y: str, xlabel: str, ylabel: str, title: str = "",
                  scale: float = 100.0, order: Sequence | None = None, x_names=str, reference: str | None = None,
                  reference_label: str | None = None, zoom: bool = False, legend_title: str | None = None,
                  log_x: bool = False):
    """One line per ``hue`` value across ``x``: means with 95% t-intervals, every run as a dot, y from 0.

    ``order``: the ``x`` values drawn as evenly spaced categories, in this order, each named by ``x_names(value)``
    (notebook 01's label budgets 5, 10, 25, all); None: ``x`` is numeric and drawn at its values.
    ``log_x`` (numeric ``x`` only): a log x axis whose ticks are the data's ``x`` values as plain numbers ("1,000"),
    with no minor tick labels; the lanes are then offset by a factor, x · 10^d with d within ±
    :data:`LOG_LANE_DECADES`, so every point sits the same visual distance from its ``x`` (notebook 06's curve).
    ``reference``: a ``hue`` value drawn apart, as a black square with no line, just right of the lines at its ``x``
    (notebook 01's teacher: one model, trained with every label); named ``reference_label`` in the legend.
    ``zoom``: a second panel of the same data whose y axis starts just below the lowest value drawn; its title says
    where the axis starts and its bottom spine is dashed red, so the truncation cannot go unnoticed.
    """
    if log_x:
        _check_log_x(frame[x], order)
    hues = [name for name in dict.fromkeys(frame[hue]) if name != reference]
    lanes = len(hues) + (reference is not None)  # the reference gets the rightmost lane
    if order is not None:
        positions = {value: float(i) for i, value in enumerate(order)}
        offsets = np.linspace(-0.2, 0.2, lanes) if lanes > 1 else np.zeros(1)
        spread = 0.03  # a category's runs side by side within their lane, so that equal values stay countable
    elif log_x:
        positions = {value: float(value) for value in sorted(frame[x].unique())}
        offsets = np.linspace(-LOG_LANE_DECADES, LOG_LANE_DECADES, lanes) if lanes > 1 else np.zeros(1)
        spread = 0.0
    else:
        values = sorted(frame[x].unique())
        positions = {value: float(value) for value in values}
        offsets = np.linspace(-0.015, 0.015, lanes) * (max(values) - min(values) or 1.0)
        spread = 0.0
    panels = 2 if zoom else 1
    fig, axes = plt.subplots(1, panels, figsize=(6.4 * panels, 3.6), squeeze=False)
    axes = list(axes[0])
    for ax in axes:
        if log_x:
            ax.set_xscale("log")
        lowest, highest = math.inf, 0.0
        for lane, name in enumerate(hues + ([reference] if reference is not None else [])):
            drawn = _line_with_ci(ax, frame[frame[hue] == name], x, y, _lane_positions(positions, offsets[lane], log_x),
                                  spread, scale, color="black" if name == reference else PALETTE[lane % len(PALETTE)],
                                  joined=name != reference,
                                  label=(reference_label or name) if name == reference else name)
            lowest, highest = min(lowest, drawn[0]), max(highest, drawn[1])
        if order is not None:
            ax.set_xticks(range(len(order)), [x_names(value) for value in order])
        elif log_x:
            ax.set_xticks(list(positions), [plain_number(value) for value in positions])
            # the log scale's own minor labels (2×10², 3×10², ...) would print over the data's ticks
            ax.xaxis.set_minor_formatter(NullFormatter())
        else:
            ax.set_xticks(list(positions))
        ax.set_xlabel(xlabel)
        if scale == 100.0:
            percent_axis(ax, ylabel)
        else:
            ax.set_ylabel(ylabel)
        _bar_limits(ax, highest, scale == 100.0)
    if zoom:
        start = mark_zoom(axes[1], lowest, scale == 100.0)
        axes[1].set_title(f"zoom: the y axis starts at {start:g}{'%' if scale == 100.0 else ''}, not 0")
        axes[0].set_title("y axis from 0")
        fig.suptitle(title)
    else:
        axes[0].set_title(title)
    legend_outside(axes[-1], title=legend_title)
    fig.tight_layout()
    return fig


def _check_log_x(values: pd.Series, order) -> None:
    """A log x axis needs numeric ``x`` drawn at its values (no ``order``), all of them above 0."""
    if order is not None:
        raise ValueError("log_x draws a numeric x at its values; it cannot be combined with order (categories)")
    if (values <= 0).any():
        raise ValueError(f"log_x needs every x above 0; got {sorted(values[values <= 0].unique())}")


def _lane_positions(positions: dict, offset: float, log_x: bool) -> dict:
    """Where one lane draws each ``x``: ``position + offset`` on a linear axis, ``position · 10^offset`` on a log
    axis (``offset`` in decades), so that a lane is the same visual distance from its ``x`` at every ``x``."""
    if log_x:
        return {value: position * 10 ** offset for value, position in positions.items()}
    return {value: position + offset for value, position in positions.items()}


def plain_number(value: float) -> str:
    """A tick label without scientific notation: ``1000`` → ``"1,000"``, ``2.5`` → ``"2.5"``."""
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,g}"


def _line_with_ci(ax, part: pd.DataFrame, x: str, y: str, positions: dict, spread: float,
                  scale: float, color, joined: bool, label: str) -> tuple[float, float]:
    """One hue of :func:`lines_with_ci`: means ± t 95% CI at ``positions[x]`` (the hue's lane, offset already applied)
    and every run as a dot, the runs of one point spaced evenly over ± ``spread``; returns the lowest and highest value
    drawn (interval ends, dots)."""
    table = interval_table(part, [x], y)
    table = table.assign(_position=table[x].map(positions)).dropna(subset=["_position"]).sort_values("_position")
    xs = table["_position"].to_numpy(dtype=float)
    means, halves = scale * table["mean"].to_numpy(), scale * np.nan_to_num(table["ci95"].to_numpy())
    ax.errorbar(xs, means, yerr=halves, capsize=4, marker="o" if joined else "s", linestyle="-" if joined else "none",
                color=color, label=label)
    lowest, highest = float(np.min(means - halves, initial=math.inf)), float(np.max(means + halves, initial=0.0))
    for value, position in zip(table[x], xs):
        runs = part[part[x] == value][y].to_numpy() * scale
        beside = np.linspace(-spread, spread, len(runs)) if len(runs) > 1 else np.zeros(len(runs))
        ax.scatter(position + beside, runs, s=12, color=color, alpha=0.5, zorder=3)
        if len(runs):
            lowest, highest = min(lowest, float(runs.min())), max(highest, float(runs.max()))
    return lowest, highest


GAIN_LANES = 0.6  # gain_over_baseline: the share of a category's width its methods' lanes fill


def transfer_rows_name(rows: int) -> str:
    """A transfer-set size in words: ``0`` → "labelled rows only", ``6000`` → "6,000 rows"."""
    return "labelled rows only" if rows == 0 else f"{int(rows):,} rows"


def _namer(x_names):
    """``x_names`` as a function: a mapping is looked up, a callable called, None names transfer-set sizes."""
    if x_names is None:
        return transfer_rows_name
    if callable(x_names):
        return x_names
    return lambda value: x_names[value]


def _gain_lane(ax, part: pd.DataFrame, x: str, categories: list, centre: float, width: float, color,
               label: str) -> None:
    """One method in one panel: at each category (at index + ``centre``), the mean per-seed difference with its 95%
    t-interval, mean_s d_s ± t_{0.975, n−1} · s_d / √n (no bar for a single seed), joined across categories, and
    every seed's difference as a dot just right of the mean, inside the lane of ``width``."""
    xs, means, halves = [], [], []
    for index, category in enumerate(categories):
        seeds = part.loc[part[x] == category, "difference (points)"].to_numpy()
        if len(seeds) == 0:
            continue
        mean, half = mean_ci(seeds)
        xs.append(index + centre - width / 5)
        means.append(mean)
        halves.append(0.0 if math.isnan(half) else half)
        # fixed offsets, spread so that equal differences stay countable: the same figure on every run
        beside = np.linspace(0.0, width / 3, len(seeds)) if len(seeds) > 1 else np.array([width / 6])
        ax.scatter(index + centre + beside, seeds, s=9, color=color, alpha=0.6, linewidths=0, zorder=3)
    ax.errorbar(xs, means, yerr=halves, capsize=3, marker="o", markersize=4, linestyle="-", lw=1.2, color=color,
                label=label, zorder=4)


def _with_zero_in_view(ax) -> None:
    """Widen the y axis, when needed, so that 0 (no difference) is inside it with a margin."""
    low, high = ax.get_ylim()
    margin = 0.05 * (high - low)
    ax.set_ylim(min(low, -margin), max(high, margin))


def gain_over_baseline(runs: pd.DataFrame, baseline: str = "KD", metric: str = "test/accuracy",
                       x: str = "transfer rows", panel: str = "teacher", hue: str = "method", x_names=None):
    """The regime map as a figure: each ``hue`` value's per-seed difference to ``baseline``, in percentage points.

    One panel per ``panel`` value (side by side, one shared y axis); ``x`` (the transfer-set size) as evenly spaced
    categories named by ``x_names`` (a callable or a mapping; default :func:`transfer_rows_name`); per method a line
    through the mean per-seed difference d̄ = mean_s 100 · (method_s − baseline_s) with its 95% paired t-interval
    d̄ ± t_{0.975, n−1} · s_d / √n (:func:`~mmkd_core.evaluation.stats.mean_ci`, the same numbers as
    :func:`mmkd_core.results.regime_comparisons`), each seed's difference as a dot beside it; a line at 0; one colour
    per method on every panel; the legend outside. The runs must be of one task (pairs are made within a task).
    """
    # results imports torch: imported here, so that drawing other figures does not need it
    from .results import paired_seed_differences

    differences = paired_seed_differences(runs, baseline, metric, by=(panel, x), column=hue)
    if differences.empty:
        raise ValueError(f"no {words(hue)} shares a seed with {baseline!r} in any ({panel}, {x}) cell: "
                         f"nothing to draw")
    if "task" in differences and differences["task"].nunique() > 1:
        raise ValueError(f"the runs are of several tasks {list(dict.fromkeys(differences['task']))}; "
                         f"draw one at a time, e.g. runs[runs['task'] == ...]")
    name = _namer(x_names)
    panels = list(dict.fromkeys(differences[panel]))
    categories = sorted(differences[x].unique())
    methods = list(dict.fromkeys(differences[hue]))
    width = GAIN_LANES / len(methods)
    fig, axes = plt.subplots(1, len(panels), figsize=(1.6 + (0.6 + 1.1 * len(categories)) * len(panels), 3.6),
                             sharey=True, squeeze=False)
    axes = list(axes[0])
    for ax, value in zip(axes, panels):
        in_panel = differences[differences[panel] == value]
        for lane, method in enumerate(methods):
            centre = -GAIN_LANES / 2 + width * (lane + 0.5)
            _gain_lane(ax, in_panel[in_panel[hue] == method], x, categories, centre, width,
                       PALETTE[lane % len(PALETTE)], method)
        ax.axhline(0.0, color="0.4", lw=1, zorder=1)
        ax.set_xticks(range(len(categories)), [name(category) for category in categories])
        ax.set_xlim(-0.5, len(categories) - 0.5)
        ax.set_xlabel(words(x))
        ax.set_title(f"{words(panel)}: {value}")
    axes[0].set_ylabel(f"{words(metric)} − {baseline} (percentage points)")
    _with_zero_in_view(axes[0])  # the y axis is shared: one call widens every panel
    legend_outside(axes[-1], title=words(hue), handles_from=axes)
    fig.suptitle(f"each {words(hue)} − {baseline}, paired by seed: mean with 95% t-interval, dots = seeds")
    fig.tight_layout()
    return fig


GRAM_LABELS = ("text", "image", "joint")


def _heatmap(ax, matrix, vmin: float, vmax: float, cmap: str, title: str):
    image = ax.imshow(np.asarray(matrix), vmin=vmin, vmax=vmax, cmap=cmap)
    for (i, j), value in np.ndenumerate(np.asarray(matrix)):
        dark = (value - vmin) < 0.55 * (vmax - vmin)  # viridis is dark at the low end, Reds at the high end
        ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=8,
                color="white" if dark != (cmap == "Reds") else "black")
    ax.set_xticks(range(3), GRAM_LABELS)
    ax.set_yticks(range(3), GRAM_LABELS)
    ax.set_title(title, fontsize=9)
    return image


def gram_panels(matrices: dict, vmax: float = 1.0, colorbar_label: str = "G entry", vmin: float = 0.0):
    """Side-by-side 3×3 Gram matrices on one colour scale, with one colorbar."""
    fig, axes = plt.subplots(1, len(matrices), figsize=(3.2 * len(matrices) + 0.8, 3.0), squeeze=False)
    image = None
    for ax, (name, matrix) in zip(axes[0], matrices.items()):
        image = _heatmap(ax, matrix, vmin, vmax, "viridis", f"{name}: G = A·Aᵀ")
    fig.tight_layout()
    shared_colorbar(fig, list(axes[0]), image, colorbar_label)
    return fig


def gram_over_training(teacher_gram, snapshots: list, best_step: int | None = None):
    """Figure 2: the teacher's G once, the student's G at a few steps of one run (top row, one colour scale),
    and $|G_t - G_s|$ at the same steps (bottom row, its own shared scale)."""
    n = len(snapshots)
    fig, axes = plt.subplots(2, n + 1, figsize=(3.0 * (n + 1) + 1.2, 5.8), squeeze=False)
    teacher = np.asarray(teacher_gram)
    grams = [np.asarray(g) for _, g in snapshots]
    top = max([teacher.max(), *[g.max() for g in grams]])
    differences = [np.abs(teacher - g) for g in grams]
    worst = max(float(d.max()) for d in differences) if differences else 1.0
    g_image = _heatmap(axes[0][0], teacher, 0.0, top, "viridis", "teacher G")
    axes[1][0].axis("off")
    for k, ((step, _), gram, diff) in enumerate(zip(snapshots, grams, differences), start=1):
        kept = " (kept)" if best_step is not None and step == best_step else ""
        _heatmap(axes[0][k], gram, 0.0, top, "viridis", f"student G, step {step}{kept}")
        d_image = _heatmap(axes[1][k], diff, 0.0, worst, "Reds", f"$|G_t - G_s|$, step {step}")
        # rows share the view labels of their first panel: repeated tick labels would run into the panel on the left
        axes[0][k].tick_params(labelleft=False)
        if k > 1:
            axes[1][k].tick_params(labelleft=False)
    fig.tight_layout()
    shared_colorbar(fig, list(axes[0]), g_image, "G entry")
    if differences:
        shared_colorbar(fig, list(axes[1][1:]), d_image, "|difference|")
    return fig


def accuracy_vs_cost(runs: pd.DataFrame, task: str, order: Sequence[str] | None = None,
                     metric: str = "test/accuracy"):
    """Each method's mean accuracy (95% CI, seeds as dots) against the mean training time of one run.

    Log time axis with plain-number ticks; methods are spread vertically only by their values, so points
    are drawn hollow and labelled in the legend (outside the data).
    """
    from matplotlib.ticker import FuncFormatter, LogLocator

    frame = runs[runs["task"] == task]
    methods = list(order) if order is not None else list(dict.fromkeys(frame["method"]))
    fig, ax = plt.subplots(figsize=(7.6, 4.0))
    drawn = []
    for i, method in enumerate(m for m in methods if m in set(frame["method"])):
        group = frame[frame["method"] == method]
        mean, half = mean_ci(group[metric])
        half = 0.0 if half != half else half
        seconds = float(group["train_seconds"].mean())
        color = PALETTE[i % len(PALETTE)]
        ax.errorbar(seconds, 100 * mean, yerr=100 * half, fmt="o", capsize=4, color=color, label=method, markersize=7)
        ax.scatter(group["train_seconds"], 100 * group[metric], s=10, color=color, alpha=0.45)
        drawn += [100 * (mean - half), 100 * (mean + half)] + list(100 * group[metric].dropna())
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_minor_locator(LogLocator(base=10, subs=()))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.set_xlabel("training time of one run (s, log scale)")
    percent_axis(ax, f"{task_words(task)} {words(metric)} (%)")
    lowest, highest = (min(drawn), max(drawn)) if drawn else (0.0, 100.0)
    _bar_limits(ax, highest, percent=True)
    if lowest > highest / 2:  # methods within a few points of each other: zoom, and mark the cut
        mark_zoom(ax, lowest, percent=True)
    ax.set_title(f"accuracy vs cost ({task_words(task)}); dots = seeds")
    legend_outside(ax)
    fig.tight_layout()
    return fig


def knob_study(frame: pd.DataFrame, knob_label: str = "setting"):
    """Notebook 00's knob study (:func:`mmkd_core.experiments.knobs.knob_study` rows): test accuracy per input view
    for each ``(text_cue, image_cue)`` setting, mean ± 95% t-interval over seeds with one dot per seed, chance dotted."""
    frame = frame.copy()
    frame["setting"] = frame.apply(lambda r: f"text {r['text_cue']:.1f} / image {r['image_cue']:.1f}", axis=1)
    fig, ax = plt.subplots(figsize=(8, 3.4))
    # mean ± t 95% CI over seeds with one dot per seed (seaborn's bootstrap CI is unseeded)
    grouped_bars(frame, x="setting", hue="view", y="accuracy", ax=ax, label="test accuracy")
    ax.axhline(100 * frame["chance"].iloc[0], color="grey", ls=":", label="chance")
    ax.set_xlabel(knob_label)
    ax.set_ylim(0, 100)
    legend_outside(ax, title="input view")
    ax.set_title("test accuracy by input view, per knob setting")
    fig.tight_layout()
    return fig
