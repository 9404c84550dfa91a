"""The figure standard of mmkd_core.plots: percent axes from 0, per-seed dots, legends outside, shared
colour scales, and byte-identical PNGs from identical inputs (no unseeded bootstrap)."""
from __future__ import annotations

import io
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from mmkd_core import plots  # noqa: E402

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
    fig = plots.bar_with_ci(SUMMARY, "validation/accuracy", label="validation/accuracy", order=["KD", "CE"], zoom=False)
    ax = fig.axes[0]
    assert ax.get_ylim()[0] == 0
    assert ax.get_ylabel() == "validation accuracy (%)"
    assert ax.yaxis.get_major_formatter()(50, 0) == "50%"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["KD", "CE"]
    plt.close(fig)


def test_bar_with_ci_zooms_on_close_methods_and_marks_the_cut():
    """54% against 56%: bars from 0 would flatten the difference. The auto zoom draws points with intervals on an
    axis from the 5-point step below the lowest value (CE's 52% seed: 45%), with a dashed red spine and a note."""
    fig = plots.bar_with_ci(SUMMARY, "validation/accuracy", runs=RUNS)
    ax = fig.axes[0]
    assert ax.get_ylim()[0] == 45 and not ax.patches  # no bars
    assert ax.spines["bottom"].get_linestyle() == "--"
    assert any(t.get_text() == "axis starts at 45%, not 0" for t in ax.texts)
    plt.close(fig)
    far = SUMMARY.assign(**{"validation/accuracy mean": [0.2, 0.9]})
    fig = plots.bar_with_ci(far, "validation/accuracy")  # 20% against 90%: bars from 0 show it
    assert fig.axes[0].get_ylim()[0] == 0 and len(fig.axes[0].patches) == 2
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
    first, second = plots.knob_study(knobs), plots.knob_study(knobs)
    assert first.axes[0].get_ylabel() == "test accuracy (%)" and first.axes[0].get_ylim() == (0, 100)
    assert _png(first) == _png(second)


@pytest.mark.parametrize("style_key", ["axes.spines.top", "legend.frameon"])
def test_style_is_set_on_import(style_key):
    assert matplotlib.rcParams[style_key] == plots.STYLE[style_key]


def _budget_frame() -> pd.DataFrame:
    """Two students at k = 5 and every label (-1), three seeds each, and one teacher run at every label."""
    rows = [{"method": method, "k": k, "accuracy": base + 0.01 * seed}
            for method, k, base in [("KD", 5, 0.80), ("KD", -1, 0.90), ("CE", 5, 0.70), ("CE", -1, 0.88)]
            for seed in range(3)]
    return pd.DataFrame(rows + [{"method": "teacher", "k": -1, "accuracy": 0.95}])


def test_lines_with_ci_on_categories_with_a_reference_marker_and_a_marked_zoom():
    frame = _budget_frame()
    fig = plots.lines_with_ci(frame, x="k", hue="method", y="accuracy", xlabel="labels per class", ylabel="accuracy",
                              title="label efficiency", order=[5, -1], x_names=lambda k: "all" if k < 0 else str(k),
                              reference="teacher", reference_label="teacher (one model)", zoom=True)
    full, zoom = fig.axes
    for ax in (full, zoom):
        assert [t.get_text() for t in ax.get_xticklabels()] == ["5", "all"]
        dots = np.concatenate([c.get_offsets() for c in ax.collections if isinstance(c, PathCollection)])
        assert sorted(dots[:, 1].round(6)) == sorted((100 * frame["accuracy"]).round(6))  # every run, on every panel
        assert ax.get_ylabel() == "accuracy (%)"
    # lanes: KD and CE left of the categories' centres, the teacher alone on the right of "all" (category 1)
    teacher_x = {x for x, y in dots if round(y, 6) == 95.0}
    assert teacher_x == {1.2}
    handles, labels = full.get_legend_handles_labels()
    lines = {label: handle[0] for handle, label in zip(handles, labels)}  # an errorbar's first artist: its line
    assert lines["teacher (one model)"].get_linestyle() == "None" and lines["teacher (one model)"].get_marker() == "s"
    assert lines["KD"].get_linestyle() == "-"
    assert full.get_ylim() == (0, 100)
    # the lowest value drawn is CE's interval at k = 5: 71 - t(0.975, 2) · 1 / √3 = 68.5, so the zoom starts at
    # the multiple of 5 below it, minus 5
    assert zoom.get_ylim() == (60, 100) and zoom.spines["bottom"].get_linestyle() == "--"
    assert "starts at 60%" in zoom.get_title() and fig._suptitle.get_text() == "label efficiency"
    legend = zoom.get_legend()
    assert legend.get_bbox_to_anchor().transformed(zoom.transAxes.inverted()).x0 > 1  # right of the data
    assert [t.get_text() for t in legend.get_texts()] == ["KD", "CE", "teacher (one model)"]
    plt.close(fig)


def test_lines_with_ci_on_numbers_draws_at_the_values_and_stays_deterministic():
    frame = _budget_frame().query("method != 'teacher'").assign(k=lambda f: f["k"].abs())
    first = plots.lines_with_ci(frame, x="k", hue="method", y="accuracy", xlabel="k", ylabel="accuracy")
    second = plots.lines_with_ci(frame, x="k", hue="method", y="accuracy", xlabel="k", ylabel="accuracy")
    assert len(first.axes) == 1 and list(first.axes[0].get_xticks()) == [1, 5]
    assert _png(first) == _png(second)


def test_lines_with_ci_log_x_keeps_points_at_their_values_with_plain_ticks():
    rows = [300, 1000, 6000]
    frame = pd.DataFrame([{"teacher": teacher, "rows": n, "accuracy": base + 0.01 * seed + 0.001 * i}
                          for teacher, base in (("pretrained", 0.8), ("from scratch", 0.5))
                          for i, n in enumerate(rows) for seed in range(3)])
    fig = plots.lines_with_ci(frame, x="rows", hue="teacher", y="accuracy", xlabel="labelled rows",
                              ylabel="accuracy", log_x=True)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    drawn = np.concatenate([*(c.get_offsets()[:, 0] for c in ax.collections if isinstance(c, PathCollection)),
                            *(line.get_xdata() for line in ax.lines)])
    nearest = np.array([min(rows, key=lambda n: abs(math.log(x / n))) for x in drawn])
    assert np.all(np.abs(drawn / nearest - 1) < 0.05)  # within 5% of its x, in ratio
    assert len(set(np.round(drawn, 6))) == 2 * len(rows)  # the two lanes apart at every x
    assert list(ax.get_xticks()) == rows
    assert [t.get_text() for t in ax.get_xticklabels()] == ["300", "1,000", "6,000"]
    assert isinstance(ax.xaxis.get_minor_formatter(), NullFormatter)
    plt.close(fig)
    with pytest.raises(ValueError, match="log_x"):
        plots.lines_with_ci(frame, x="rows", hue="teacher", y="accuracy", xlabel="", ylabel="", order=rows, log_x=True)
    with pytest.raises(ValueError, match="above 0"):
        plots.lines_with_ci(frame.assign(rows=0), x="rows", hue="teacher", y="accuracy", xlabel="", ylabel="",
                            log_x=True)


def test_softened_distributions_keeps_the_top_answers_and_sums_the_rest():
    logits = np.array([0.0, 3.0, 1.0, -1.0, 2.0])
    fig = plots.softened_distributions(logits, ["a", "b", "c", "d", "e"], temperatures=(1.0, 4.0), top_k=2)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["b", "e", "the other 3 answers"]
    heights = sorted(round(p.get_height(), 4) for p in ax.patches)
    soft = np.exp(logits) / np.exp(logits).sum()  # T = 1
    expected_t1 = [soft[1], soft[4], soft[[0, 2, 3]].sum()]
    for value in expected_t1:
        assert round(100 * value, 4) in heights
    assert ax.get_ylabel() == "probability (%)"
    plt.close(fig)
    with pytest.raises(ValueError, match="one entry per label name"):
        plots.softened_distributions(logits, ["a", "b"], temperatures=(1.0,))


def test_splits_with_ci_takes_one_zoom_decision_for_panels_that_share_an_axis():
    """Validation spans 30-70% (bars from 0 alone), test 50-56%: both panels must use the same mode and show
    every value, or the validation bars would stand on a cut axis."""
    summary = pd.DataFrame({"method": ["CE", "KD"], "validation/accuracy mean": [0.47, 0.50],
                            "validation/accuracy ci95": [0.10, 0.20], "test/accuracy mean": [0.54, 0.56],
                            "test/accuracy ci95": [0.02, 0.03]})
    fig = plots.splits_with_ci(summary, "test/accuracy")
    validation, test = fig.axes
    assert validation.get_ylim()[0] == 0 and len(validation.patches) == 2 and len(test.patches) == 2
    close = summary.assign(**{"validation/accuracy ci95": [0.02, 0.02]})
    fig2 = plots.splits_with_ci(close, "test/accuracy")
    validation, test = fig2.axes
    assert validation.get_ylim() == test.get_ylim() and validation.get_ylim()[0] == 40  # 45% lowest, one step below
    assert not validation.patches and not test.patches
    assert [ax.get_title() for ax in fig2.axes] == ["validation", "test"]
    plt.close(fig)
    plt.close(fig2)


@pytest.mark.parametrize("task,name", [("ve", "ve"), ("easy_vqa", "easy-VQA"),
                                       ("easy_vqa-pretrained", "easy-VQA, pretrained teacher"),
                                       ("ve-pretrained", "ve, pretrained teacher")])
def test_task_words(task, name):
    assert plots.task_words(task) == name


def test_difference_forest_gives_each_panel_its_axis_and_shades_the_papers_band():
    from matplotlib.collections import PolyCollection
    from mmkd_core.figure_checks import figure_problems

    claims = pd.DataFrame([
        {"task": "ve", "comparison": "KD (transfer set) − CE (no teacher)", "difference (points)": 30.0,
         "resolvable difference (points)": 2.0, "CIs overlap": False},
        {"task": "ve", "comparison": "Gram − KD (transfer set)", "difference (points)": 0.3,
         "resolvable difference (points)": 0.8, "CIs overlap": True},
        {"task": "nlvr", "comparison": "MSD population − KD (transfer set)", "difference (points)": -0.5,
         "resolvable difference (points)": 0.6, "CIs overlap": True}])
    fig = plots.difference_forest(claims, title="every claim", paper_bands={"Gram − KD": (1.2, 1.7)},
                                  panels=plots.against_kd_panel)
    top, bottom = fig.axes
    assert top.get_title() == "against the CE student, the teacher and the labels"
    assert bottom.get_title().startswith("each method against KD; shaded")
    assert bottom.get_xlim()[1] < 5 < 30 < top.get_xlim()[1]   # the small differences keep their own axis
    bands = [c for c in bottom.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 1 and np.allclose(sorted(set(bands[0].get_paths()[0].vertices[:, 0])), [1.2, 1.7])
    assert [t.get_text() for t in bottom.get_yticklabels()] == ["ve: Gram − KD (transfer set)",
                                                                "nlvr: MSD population − KD (transfer set)"]
    assert not figure_problems(fig)
    plt.close(fig)


def test_difference_forest_title_clears_a_long_first_panel_title():
    from mmkd_core.figure_checks import figure_problems

    claims = pd.DataFrame([{"task": "easy_vqa-pretrained", "difference (points)": i,
                            "comparison": f"KD (transfer set) − KD (transfer set, from-scratch teacher {i})",
                            "resolvable difference (points)": 1.0, "CIs overlap": True} for i in range(2)])
    fig = plots.difference_forest(claims, title="every claim: difference of means with its 95% CI (filled: "
                                  "intervals separate)", panels=lambda row: "against the CE student, the teacher "
                                  "and the labels")
    assert not figure_problems(fig)
    plt.close(fig)


def test_difference_forest_marks_a_comparison_at_the_ceiling():
    claims = pd.DataFrame([
        {"task": "memes", "comparison": "Gram − KD (transfer set)", "difference (points)": 0.0,
         "resolvable difference (points)": 0.0, "CIs overlap": True, "at ceiling": True},
        {"task": "ve", "comparison": "Gram − KD (transfer set)", "difference (points)": 0.4,
         "resolvable difference (points)": 1.0, "CIs overlap": True, "at ceiling": False}])
    fig = plots.difference_forest(claims)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels[0].endswith("(both at 100%)") and not labels[1].endswith("(both at 100%)")
    plt.close(fig)


def test_validation_curves_shade_the_warm_up_mark_the_floor_and_the_kept_checkpoints():
    logs = {f"seed {s}": pd.DataFrame({"step": [40, 80, 120, 160], "val/joint/accuracy": [0.40, 0.55, 0.61 + s / 100,
                                                                                           0.60]}) for s in (0, 1)}
    fig = plots.validation_curves(logs, {"seed 0": 60, "seed 1": 60}, "CE runs", floor_step=100,
                                  kept_steps={"seed 0": 120, "seed 1": 120})
    ax = fig.axes[0]
    assert ax.get_xlabel() == "optimisation step" and ax.get_ylabel() == "validation accuracy (%)"
    labels = ax.get_legend().get_texts()
    assert [t.get_text() for t in labels] == ["learning-rate warm-up", "no stop before this step", "seed 0",
                                              "kept checkpoint", "seed 1"]
    assert any("axis starts at 35%" in t.get_text() for t in ax.texts)  # the cut axis is marked
    dots = [line for line in ax.lines if line.get_marker() == "o"]
    assert [tuple(line.get_xydata()[0]) for line in dots] == [(120, pytest.approx(61.0)), (120, pytest.approx(62.0))]
    plt.close(fig)
