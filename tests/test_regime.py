"""The regime map: methods against KD per cell (teacher × transfer-set size), paired by seed, as a table
(results.regime_comparisons) and as a figure (plots.gain_over_baseline) that draw the same numbers."""
from __future__ import annotations

import io
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402

from mmkd_core import plots  # noqa: E402
from mmkd_core.results import paired_seed_differences, regime_comparisons  # noqa: E402

KD_ACCURACY = [0.70, 0.71, 0.72]  # seeds 0, 1, 2
T_975_2 = 4.302652729911275  # Student t, 97.5% quantile, 2 degrees of freedom
# Gram's per-seed differences to KD, in points, in three cells whose readings differ
CELL_DIFFERENCES = {("from scratch", 0): [1.0, 2.0, 3.0],  # mean 2.0 ± 2.484: ties
                    ("from scratch", 2000): [2.0, 3.0, 4.0],  # mean 3.0 ± 2.484: helps
                    ("pretrained two-tower", 2000): [-3.0, -4.0, -5.0]}  # mean −4.0 ± 2.484: hurts


def _run(method: str, teacher: str, rows: int, seed: int, accuracy: float) -> dict:
    return {"task": "ve", "method": method, "seed": seed, "teacher": teacher, "transfer rows": rows,
            "test/accuracy": accuracy, "validation/accuracy": accuracy}


def _regime_runs() -> pd.DataFrame:
    """KD at 70, 71, 72% in every cell and Gram at KD + :data:`CELL_DIFFERENCES`; Gram also ran a seed KD did not (3),
    and a cell where only KD ran, neither of which may enter a comparison."""
    runs = []
    for (teacher, rows), differences in CELL_DIFFERENCES.items():
        for seed, (kd, difference) in enumerate(zip(KD_ACCURACY, differences)):
            runs.append(_run("KD", teacher, rows, seed, kd))
            runs.append(_run("Gram", teacher, rows, seed, kd + difference / 100))
        runs.append(_run("Gram", teacher, rows, 3, 0.99))  # unpaired: KD has no seed 3
    runs.append(_run("KD", "pretrained two-tower", 0, 0, 0.75))  # a cell with the baseline only
    return pd.DataFrame(runs)


def _line(table: pd.DataFrame, teacher: str, rows: int) -> pd.Series:
    chosen = table[(table["teacher"] == teacher) & (table["transfer rows"] == rows)]
    assert len(chosen) == 1
    return chosen.iloc[0]


def test_regime_comparisons_golden_values_per_cell():
    table = regime_comparisons(_regime_runs())
    assert list(table.columns) == ["task", "teacher", "transfer rows", "comparison", "metric",
                                   "paired difference (points)", "resolvable difference (points)", "separated",
                                   "pairs", "method", "baseline", "verdict", "reading"]
    assert len(table) == 3  # no line for the baseline-only cell
    half = T_975_2 * 1.0 / math.sqrt(3)  # per-seed differences with standard deviation 1 point: 2.484 points
    assert round(half, 3) == 2.484

    ties = _line(table, "from scratch", 0)
    assert ties["comparison"] == "Gram − KD" and ties["metric"] == "test/accuracy" and ties["task"] == "ve"
    assert ties["paired difference (points)"] == pytest.approx(2.0)
    assert ties["resolvable difference (points)"] == pytest.approx(half, abs=0.005)
    assert ties["pairs"] == 3  # seed 3 has no KD run
    assert not ties["separated"] and ties["reading"] == "ties"
    assert ties["verdict"] == "the difference (+2.0 points, resolvable ±2.5) is below what this experiment resolves"
    # both sides over the paired seeds only (not Gram's seed 3): KD 70, 71, 72 → 71.0 ± t · 1/√3;
    # Gram = KD + 1, 2, 3 = 71, 73, 75 → 73.0 ± t · 2/√3
    assert ties["baseline"] == "71.0 ± 2.5" and ties["method"] == "73.0 ± 5.0"

    helps = _line(table, "from scratch", 2000)
    assert helps["paired difference (points)"] == pytest.approx(3.0) and helps["separated"]
    assert helps["reading"] == "helps"
    assert helps["verdict"] == "Gram beats KD by 3.0 points (paired interval excludes 0)"

    hurts = _line(table, "pretrained two-tower", 2000)
    assert hurts["paired difference (points)"] == pytest.approx(-4.0) and hurts["separated"]
    assert hurts["reading"] == "hurts"
    assert hurts["verdict"] == "KD beats Gram by 4.0 points (paired interval excludes 0)"


def test_regime_comparisons_single_pair_cannot_separate_and_by_may_be_one_column():
    runs = pd.DataFrame([_run("KD", "from scratch", 0, 0, 0.70), _run("Gram", "from scratch", 0, 0, 0.80)])
    line = regime_comparisons(runs, by="teacher").iloc[0]
    assert "transfer rows" not in line and line["pairs"] == 1
    assert math.isnan(line["resolvable difference (points)"]) and not line["separated"]
    assert line["verdict"] == "the difference (+10.0 points) is below what this experiment resolves"


def test_regime_comparisons_names_the_accepted_methods_for_an_unknown_baseline():
    with pytest.raises(ValueError, match=r"baseline 'CE' has no runs.*\['KD', 'Gram'\]"):
        regime_comparisons(_regime_runs(), baseline="CE")


def test_regime_comparisons_refuses_missing_columns_and_ambiguous_cells():
    with pytest.raises(ValueError, match=r"no column \['transfer rows'\]"):
        regime_comparisons(_regime_runs().drop(columns="transfer rows"))
    runs = _regime_runs()
    twice = pd.concat([runs, runs.iloc[:1]], ignore_index=True)  # two KD runs of seed 0 in one cell
    with pytest.raises(ValueError, match="one run per method and seed"):
        regime_comparisons(twice)


def _figure_means(ax) -> dict[str, np.ndarray]:
    """Each labelled errorbar's means (the y of its data line), by label."""
    return {container.get_label(): container.lines[0].get_ydata() for container in ax.containers}


def test_gain_over_baseline_panels_zero_line_and_the_table_numbers():
    runs = _regime_runs()
    fig = plots.gain_over_baseline(runs)
    assert len(fig.axes) == 2  # one per teacher that has a comparison
    scratch, pretrained = fig.axes
    assert scratch.get_title() == "teacher: from scratch" and pretrained.get_title() == "teacher: pretrained two-tower"
    assert "points" in scratch.get_ylabel() and scratch.get_ylabel().startswith("test accuracy − KD")
    low, high = scratch.get_ylim()
    assert low < 0 < high and pretrained.get_ylim() == (low, high)  # shared y axis
    assert [t.get_text() for t in scratch.get_xticklabels()] == ["labelled rows only", "2,000 rows"]
    # the figure's means are the table's paired differences
    table = regime_comparisons(runs)
    assert _figure_means(scratch)["Gram"] == pytest.approx(
        table[table["teacher"] == "from scratch"]["paired difference (points)"].to_numpy(), abs=0.005)
    # one dot per paired seed, at its difference
    dots = np.concatenate([c.get_offsets() for c in scratch.collections if isinstance(c, PathCollection)])
    assert sorted(dots[:, 1].round(6)) == [1.0, 2.0, 2.0, 3.0, 3.0, 4.0]
    legend = pretrained.get_legend()
    assert legend.get_bbox_to_anchor().transformed(pretrained.transAxes.inverted()).x0 > 1  # outside the data
    plt.close(fig)


def test_gain_over_baseline_keeps_zero_in_view_and_one_colour_per_method():
    runs = _regime_runs()
    runs = runs[runs["transfer rows"] == 2000]
    helps_only = runs[runs["teacher"] == "from scratch"]  # every difference positive: 0 must still show
    fig = plots.gain_over_baseline(helps_only)
    assert fig.axes[0].get_ylim()[0] < 0
    plt.close(fig)
    extra = runs.assign(method=runs["method"].replace({"Gram": "MSD instance"}))
    both = pd.concat([runs, extra[extra["method"] == "MSD instance"]], ignore_index=True)
    fig = plots.gain_over_baseline(both, x_names={2000: "2k"})
    colours = [{c.get_label(): c.lines[0].get_color() for c in ax.containers} for ax in fig.axes]
    assert colours[0] == colours[1] and len(set(colours[0].values())) == 2
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["2k"]
    plt.close(fig)


def test_gain_over_baseline_is_deterministic_and_refuses_mixed_tasks():
    runs = _regime_runs()

    def png() -> bytes:
        fig, buffer = plots.gain_over_baseline(runs), io.BytesIO()
        fig.savefig(buffer, format="png")
        plt.close(fig)
        return buffer.getvalue()

    assert png() == png()
    with pytest.raises(ValueError, match="several tasks"):
        plots.gain_over_baseline(pd.concat([runs, runs.assign(task="nlvr")], ignore_index=True))


def test_paired_seed_differences_keep_only_seeds_both_ran():
    differences = paired_seed_differences(_regime_runs())
    assert list(differences.columns) == ["task", "teacher", "transfer rows", "method", "seed", "difference (points)"]
    assert set(differences["seed"]) == {0, 1, 2} and set(differences["method"]) == {"Gram"}
    cell = differences[(differences["teacher"] == "from scratch") & (differences["transfer rows"] == 0)]
    assert cell["difference (points)"].to_numpy() == pytest.approx([1.0, 2.0, 3.0])
