"""The figure standard of mmkd_core.plots: percent axes from 0, per-seed dots, legends outside, shared
colour scales, and byte-identical PNGs from identical inputs (no unseeded bootstrap)."""
from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from mmkd_core import plots  # noqa: E402
from mmkd_core.experiments.knobs import plot_knob_study  # noqa: E402

SUMMARY = pd.DataFrame({"method": ["CE", "KD"], "validation/accuracy mean": [0.54, 0.56],
                        "validation/accuracy ci95": [0.02, 0.03]})
RUNS = pd.DataFrame({"method": ["CE", "CE", "CE", "KD", "KD", "KD"],
                     "validation/accuracy": [0.52, 0.54, 0.56, 0.53, 0.56, 0.59]})


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def test_bar_with_ci_old_call_reads_in_percent_from_zero():
    fig = plots.bar_with_ci(SUMMARY, "validation/accuracy", label="validation/accuracy", order=["KD", "CE"])
    ax = fig.axes[0]
    assert ax.get_ylim()[0] == 0
    assert ax.get_ylabel() == "validation accuracy (%)"
    assert ax.yaxis.get_major_formatter()(50, 0) == "50%"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["KD", "CE"]
    plt.close(fig)


def test_bar_with_ci_draws_one_dot_per_seed():
    fig = plots.bar_with_ci(SUMMARY, "validation/accuracy", runs=RUNS)
    dots = np.concatenate([c.get_offsets() for c in fig.axes[0].collections if isinstance(c, PathCollection)])
    assert sorted(dots[:, 1].round(6)) == sorted((100 * RUNS["validation/accuracy"]).round(6))
    assert fig.axes[0].get_ylim()[1] >= 100 * RUNS["validation/accuracy"].max()
    plt.close(fig)


def test_percent_axis_and_legend_outside():
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0.2, 0.4], label="a")
    plots.percent_axis(ax, "test accuracy", xmax=1)
    legend = plots.legend_outside(ax)
    assert ax.get_ylabel() == "test accuracy (%)" and ax.yaxis.get_major_formatter()(0.5, 0) == "50%"
    assert legend.get_bbox_to_anchor().transformed(ax.transAxes.inverted()).x0 > 1  # right of the axes
    plt.close(fig)


def test_shared_colorbar_puts_panels_on_one_scale():
    fig, axes = plt.subplots(1, 2)
    first = axes[0].imshow(np.full((3, 3), 0.33), vmin=0, vmax=1)
    axes[1].imshow(np.eye(3) * 0.5)
    colorbar = plots.shared_colorbar(fig, axes, first, "Gram entry")
    assert axes[1].images[0].norm.vmin == 0 and axes[1].images[0].norm.vmax == 1
    assert colorbar.ax.get_ylabel() == "Gram entry"
    plt.close(fig)


def test_knob_figure_is_deterministic_with_dots_and_percent():
    knobs = pd.DataFrame([{"text_cue": t, "image_cue": 0.0, "seed": s, "view": v, "chance": 1 / 3,
                           "accuracy": 0.33 + 0.3 * t * (v == "text only") + 0.02 * s}
                          for t in (0.0, 0.6) for s in (0, 1, 2) for v in ("text + image", "text only")])
    first, second = plot_knob_study(knobs), plot_knob_study(knobs)
    assert first.axes[0].get_ylabel() == "test accuracy (%)" and first.axes[0].get_ylim() == (0, 100)
    assert _png(first) == _png(second)


@pytest.mark.parametrize("style_key", ["axes.spines.top", "legend.frameon"])
def test_style_is_set_on_import(style_key):
    assert matplotlib.rcParams[style_key] == plots.STYLE[style_key]
