"""Notebook 05: gather the per-run results of notebooks 02–04 and compare every method.

Everything here reads CSVs that papermill runs of the notebooks wrote (``*_runs.csv`` under
``reports/tables``); nothing is typed in. Runs of the same (task, method, seed) written by two notebooks
are identical by construction (same configuration, same cached teacher, deterministic training), so the
first one is kept.
"""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .evaluation.stats import format_mean_ci, mean_ci

RUN_FILES = ("02_vanilla_kd_runs.csv", "03_msd_runs.csv", "04_table1_runs.csv")
METHOD_ORDER = ["teacher", "CE (no teacher)", "KD", "MSD population", "MSD instance", "MSD meta",
                "CE×3 + KD (no Gram)", "Gram", "MSD + Gram"]
PAPER_GRAM_GAIN = (1.2, 1.7)  # points over KD, Liu, Table 1 (single runs)


def collect_runs(tables_dir: str | Path) -> pd.DataFrame:
    tables_dir = Path(tables_dir)
    frames = []
    for name in RUN_FILES:
        path = tables_dir / name
        if path.exists():
            frames.append(pd.read_csv(path).assign(source=name.split("_")[0]))
    if not frames:
        raise FileNotFoundError(f"no per-run results in {tables_dir} (expected {list(RUN_FILES)}); run notebooks "
                                f"02-04 first, e.g. with `make reproduce`")
    runs = pd.concat(frames, ignore_index=True)
    return runs.drop_duplicates(subset=["task", "method", "seed"], keep="first").reset_index(drop=True)


def _ordered(methods) -> list[str]:
    known = [m for m in METHOD_ORDER if m in set(methods)]
    return known + sorted(set(methods) - set(known))


def side_by_side(runs: pd.DataFrame, tables_dir: str | Path | None = None) -> pd.DataFrame:
    """Rows: method; per task: test and validation accuracy (and AUROC) as mean ± CI; cost columns."""
    throughput = {}
    if tables_dir is not None and (Path(tables_dir) / "02_vanilla_kd.csv").exists():
        frame = pd.read_csv(Path(tables_dir) / "02_vanilla_kd.csv")
        throughput = dict(zip(frame["method"], frame.get("samples/s", pd.Series(dtype=float))))
    student_speed = throughput.get("KD", math.nan)
    lines = []
    for method in _ordered(runs["method"]):
        group = runs[runs["method"] == method]
        line = {"method": method, "seeds": int(group.groupby("task")["seed"].count().max())}
        for task, per_task in group.groupby("task", sort=False):
            for metric in ("test/accuracy", "validation/accuracy", "test/auroc"):
                if metric in per_task and per_task[metric].notna().any():
                    line[f"{task} {metric.replace('/accuracy', '').replace('/', ' ')}"] = format_mean_ci(per_task[metric])
        line["params"] = int(group["params"].iloc[0])
        line["train s"] = round(float(group["train_seconds"].mean()), 1)
        line["samples/s"] = throughput.get("teacher", math.nan) if method == "teacher" else student_speed
        lines.append(line)
    return pd.DataFrame(lines)


def accuracy_vs_cost(runs: pd.DataFrame, task: str | None = None):
    task = task or runs["task"].iloc[0]
    frame = runs[runs["task"] == task]
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for method in _ordered(frame["method"]):
        group = frame[frame["method"] == method]
        mean, half = mean_ci(group["test/accuracy"])
        ax.errorbar(group["train_seconds"].mean(), 100 * mean, yerr=0 if math.isnan(half) else 100 * half,
                    fmt="o", capsize=4, label=method)
    ax.set_xscale("log")
    ax.set_xlabel("training time of one run (s, log scale)")
    ax.set_ylabel(f"{task} test accuracy (%)")
    ax.legend(fontsize=7, loc="best")
    ax.set_title(f"accuracy vs cost ({task})")
    fig.tight_layout()
    return fig


def _compare(runs, task, method, baseline, metric="test/accuracy"):
    a = runs[(runs["task"] == task) & (runs["method"] == method)][metric]
    b = runs[(runs["task"] == task) & (runs["method"] == baseline)][metric]
    if a.empty or b.empty:
        return None
    (ma, ha), (mb, hb) = mean_ci(a), mean_ci(b)
    ha, hb = (0.0 if math.isnan(h) else h for h in (ha, hb))  # a single run is a point, not an interval
    overlap = not (ma - ha > mb + hb or mb - hb > ma + ha)
    return {"task": task, "comparison": f"{method} − {baseline}", "metric": metric,
            "difference (points)": round(100 * (ma - mb), 2), f"{method}": format_mean_ci(a),
            "baseline": format_mean_ci(b), "CIs overlap": overlap, "seeds": f"{len(a)} vs {len(b)}"}


def claims_check(runs: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for task in runs["task"].unique():
        rows.append(_compare(runs, task, "teacher", "CE (no teacher)"))
        for method in ("Gram", "CE×3 + KD (no Gram)", "MSD + Gram", "MSD population", "MSD instance", "MSD meta",
                       "KD"):
            baseline = "CE (no teacher)" if method == "KD" else "KD"
            rows.append(_compare(runs, task, method, baseline))
        if "auroc" in "".join(runs.columns) and runs[runs["task"] == task].get("test/auroc", pd.Series()).notna().any():
            rows.append(_compare(runs, task, "Gram", "KD", metric="test/auroc"))
    frame = pd.DataFrame([r for r in rows if r is not None])
    return frame[[c for c in frame.columns if c not in METHOD_ORDER]] if not frame.empty else frame


def claims_text(claims: pd.DataFrame) -> list[str]:
    """Plain sentences, computed from the table, about each claim."""
    lines = []
    for _, row in claims.iterrows():
        verdict = "CIs overlap: not separated at this size" if row["CIs overlap"] else "CIs do not overlap"
        text = f"{row['task']}: {row['comparison']} = {row['difference (points)']:+.2f} points ({row['metric']}; {verdict})"
        if row["comparison"] == "Gram − KD" and row["metric"] == "test/accuracy":
            low, high = PAPER_GRAM_GAIN
            inside = low <= row["difference (points)"] <= high
            text += f"; the paper reports +{low}–{high}: ours is {'inside' if inside else 'outside'} that range"
        if row["comparison"] == "teacher − CE (no teacher)":
            text += (" — the setting is too small to compare distillation methods" if row["CIs overlap"] else
                     " — the teacher knows more than the student learns alone, so there is something to distil")
        lines.append(text)
    return lines
