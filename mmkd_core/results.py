"""Every results table of the collection: per-run frames, mean ± CI summaries, and the claims table.

Notebooks 01–04 write per-run tables (one line per method × seed); notebook 05 reads them back with
:func:`collect_runs` and compares. Nothing here trains, and nothing is typed in.

Statistics: each method's interval is the Student-t 95% CI of its mean over seeds
(:func:`~mmkd_core.evaluation.stats.mean_ci`). A comparison of two methods also gives the **resolvable
difference**, the 95% CI half-width of the difference of the two means (Welch): a difference smaller
than that is below what the experiment can tell apart. A method is said to beat another only when their
two intervals do not overlap.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
import torch

from .evaluation.stats import difference_ci, format_mean_ci, mean_ci

RUN_FILES = ("01_label_efficiency_runs.csv", "02_vanilla_kd_runs.csv", "03_msd_runs.csv", "04_table1_runs.csv",
             "06_pretrained_teacher_runs.csv")
METHOD_ORDER = ["teacher", "CE (no teacher)", "KD (labelled rows only)", "KD (transfer set)", "MSD population",
                "MSD instance", "MSD meta", "CE×3 + KD (no Gram)", "Gram", "MSD + Gram"]
PAPER_GRAM_GAIN = (1.2, 1.7)  # points over KD, Liu, Table 1 (single runs)
FRAME_TYPES = (pd.DataFrame, dict, torch.nn.Module)


# ---------------------------------------------------------------- per-run frames and summaries
def rows_frame(rows: list[dict]) -> pd.DataFrame:
    """Per-run metrics (one line per method × seed), without logs or models: what goes into CSVs."""
    return pd.DataFrame([{k: v for k, v in r.items() if not isinstance(v, FRAME_TYPES)} for r in rows])


def metric_columns(rows: list[dict]) -> list[str]:
    return [k for k in rows[0] if k.startswith(("validation/", "test/")) and k.count("/") == 1]


def summarize(rows: list[dict], metrics: Iterable[str] | None = None) -> pd.DataFrame:
    """One line per method: ``metric`` as 'mean ± 95% CI' (percent) and the raw mean / half-width,
    with how long runs trained (epochs actually trained and the epoch that was kept)."""
    frame = rows_frame(rows)
    metrics = list(metrics) if metrics is not None else metric_columns(rows)
    lines = []
    for method, group in frame.groupby("method", sort=False):
        line: dict[str, Any] = {"method": method, "seeds": len(group)}
        for metric in metrics:
            mean, half = mean_ci(group[metric])
            line[metric] = format_mean_ci(group[metric])
            line[f"{metric} mean"] = mean
            line[f"{metric} ci95"] = half
        line["params"] = int(group["params"].iloc[0])
        line["train s"] = round(float(group["train_seconds"].mean()), 1)
        for column in ("epochs", "best_epoch"):
            if column in group and group[column].notna().any():
                line[column] = round(float(group[column].mean()), 1)
        line["checkpoint"] = group["checkpoint_rule"].iloc[0]
        lines.append(line)
    return pd.DataFrame(lines)


def display_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The human columns of :func:`summarize` (no raw mean / half-width columns)."""
    return summary[[c for c in summary.columns if not c.endswith((" mean", " ci95"))]]


def runs_to_rows(frame: pd.DataFrame) -> list[dict]:
    return frame.to_dict("records")


# ---------------------------------------------------------------- comparisons
def resolvable_difference(a: Iterable[float], b: Iterable[float], confidence: float = 0.95) -> float:
    """Half-width of the ``confidence`` CI of the difference of the two means (Welch; a single run counts as
    a constant): :func:`~mmkd_core.evaluation.stats.difference_ci`."""
    return difference_ci(a, b, confidence)[1]


def compare(runs: pd.DataFrame, task: str, method: str, baseline: str, metric: str = "test/accuracy",
            label: str | None = None) -> dict | None:
    """One line of the claims table: difference of means (points), both intervals, overlap, resolution."""
    if metric not in runs:
        return None
    chosen = runs[runs["task"] == task]
    a = chosen[chosen["method"] == method][metric].dropna()
    b = chosen[chosen["method"] == baseline][metric].dropna()
    if a.empty or b.empty:
        return None
    (ma, ha), (mb, hb) = mean_ci(a), mean_ci(b)
    ha, hb = (0.0 if math.isnan(h) else h for h in (ha, hb))  # a single run is a point, not an interval
    overlap = not (ma - ha > mb + hb or mb - hb > ma + ha)
    return {"task": task, "comparison": label or f"{method} − {baseline}", "metric": metric,
            "difference (points)": round(100 * (ma - mb), 2),
            "resolvable difference (points)": round(100 * resolvable_difference(a, b), 2),
            "method": format_mean_ci(a), "baseline": format_mean_ci(b), "CIs overlap": overlap,
            "seeds": f"{len(a)} vs {len(b)}"}


def verdict(row: pd.Series | dict) -> str:
    """The sentence a report may say about one comparison, computed from its numbers."""
    difference = row["difference (points)"]
    resolution = row["resolvable difference (points)"]
    name, _, base = row["comparison"].partition(" − ")
    if not row["CIs overlap"]:
        winner, loser = (name, base) if difference > 0 else (base, name)
        return f"{winner} beats {loser} by {abs(difference):.1f} points (intervals separate)"
    shown = "" if math.isnan(resolution) else f", resolvable ±{resolution:.1f}"
    return f"the difference ({difference:+.1f} points{shown}) is below what this experiment resolves"


def collect_runs(tables_dir: str | Path, files: Iterable[str] = RUN_FILES) -> pd.DataFrame:
    """Every per-run table the notebooks wrote, one frame; runs shared by two notebooks kept once."""
    tables_dir = Path(tables_dir)
    frames = [pd.read_csv(tables_dir / name).assign(source=name.split("_")[0])
              for name in files if (tables_dir / name).exists()]
    if not frames:
        raise FileNotFoundError(f"no per-run results in {tables_dir} (expected some of {list(files)}); run "
                                f"notebooks 01-04 first, e.g. with `make reproduce`")
    runs = pd.concat(frames, ignore_index=True)
    identity = ["task", "method", "seed"] + (["labels_per_class"] if "labels_per_class" in runs else [])
    return runs.drop_duplicates(subset=identity, keep="first").reset_index(drop=True)


def ordered_methods(methods) -> list[str]:
    known = [m for m in METHOD_ORDER if m in set(methods)]
    return known + sorted(set(methods) - set(known))


def side_by_side(runs: pd.DataFrame) -> pd.DataFrame:
    """Rows: method; per task: test and validation accuracy (and AUROC) as mean ± CI; cost and stopping."""
    lines = []
    multimodal = runs[runs["task"] != "digits"] if "task" in runs else runs
    for method in ordered_methods(multimodal["method"]):
        group = multimodal[multimodal["method"] == method]
        line = {"method": method, "seeds": int(group.groupby("task")["seed"].count().max())}
        for task, per_task in group.groupby("task", sort=False):
            for metric in ("test/accuracy", "validation/accuracy", "test/auroc"):
                if metric in per_task and per_task[metric].notna().any():
                    line[f"{task} {metric.replace('/accuracy', '').replace('/', ' ')}"] = format_mean_ci(per_task[metric])
        sizes = sorted(int(p) for p in group["params"].dropna().unique())
        line["params"] = sizes[0] if len(sizes) == 1 else " / ".join(str(p) for p in sizes)  # e.g. two teachers
        line["train s"] = round(float(group["train_seconds"].mean()), 1)
        if "epochs" in group:
            line["epochs"] = round(float(group["epochs"].mean()), 1)
        lines.append(line)
    return pd.DataFrame(lines).fillna("—")  # "—": the method was not run on that task


# The claims each notebook's protocol is built to resolve: (method, baseline, label or None).
CLAIMS = [
    ("teacher", "CE (no teacher)", None),
    ("KD (transfer set)", "CE (no teacher)", None),
    ("KD (labelled rows only)", "CE (no teacher)", None),
    ("KD (transfer set)", "KD (labelled rows only)", None),
    ("MSD population", "KD (transfer set)", None),
    ("MSD instance", "KD (transfer set)", None),
    ("MSD meta", "KD (transfer set)", None),
    ("CE×3 + KD (no Gram)", "KD (transfer set)", None),
    ("Gram", "KD (transfer set)", None),
    ("MSD + Gram", "KD (transfer set)", None),
    ("Gram", "CE×3 + KD (no Gram)", None),
    ("KD (transfer set)", "KD (transfer set, from-scratch teacher)", None),
]
DIGITS_CLAIMS_K = 10  # labels per class of notebook 01's headline comparison


def claims_check(runs: pd.DataFrame) -> pd.DataFrame:
    """Every claim the collection makes, per task; only the ones whose runs exist appear."""
    rows = []
    for task in runs["task"].unique():
        if task == "digits":
            rows.extend(digits_claims(runs))
            continue
        for method, baseline, label in CLAIMS:
            rows.append(compare(runs, task, method, baseline, label=label))
        if runs[runs["task"] == task].get("test/auroc", pd.Series(dtype=float)).notna().any():
            rows.append(compare(runs, task, "Gram", "KD (transfer set)", metric="test/auroc"))
    frame = pd.DataFrame([r for r in rows if r is not None])
    if not frame.empty:
        frame["verdict"] = [verdict(r) for _, r in frame.iterrows()]
    return frame


def digits_claims(runs: pd.DataFrame) -> list[dict]:
    """Notebook 01 (task ``digits``): linear-probe accuracy of the KD student against the supervised student
    at small k labels per class, and the teacher against the supervised student trained with all labels."""
    frame = runs[runs["task"] == "digits"]
    out = []
    for k in sorted(frame["labels_per_class"].dropna().unique(), key=lambda k: (k < 0, k)):  # "all" (-1) last
        at_k = frame[frame["labels_per_class"] == k]
        label_k = "all" if k < 0 else int(k)
        line = compare(at_k, "digits", "KD student", "supervised student", metric="test/accuracy",
                       label=f"KD student − supervised student (k = {label_k} per class)")
        out.append(line)
    everything = frame[frame["labels_per_class"] < 0]
    out.append(compare(pd.concat([frame[frame["method"] == "teacher"],
                                  everything[everything["method"] == "supervised student"]]),
                       "digits", "teacher", "supervised student", label="teacher − supervised student (all labels)"))
    return [line for line in out if line is not None]


def claims_text(claims: pd.DataFrame) -> list[str]:
    """Plain sentences, computed from the table, about each claim."""
    lines = []
    for _, row in claims.iterrows():
        text = f"{row['task']}: {row['comparison']} = {row['difference (points)']:+.2f} points ({row['metric']}, " \
               f"{row['seeds']} seeds): {row['verdict']}"
        if row["comparison"] == "Gram − KD (transfer set)" and row["metric"] == "test/accuracy":
            low, high = PAPER_GRAM_GAIN
            inside = low <= row["difference (points)"] <= high
            text += f"; the paper reports +{low}–{high} (single runs): ours is {'inside' if inside else 'outside'} that range"
        if row["comparison"] == "teacher − CE (no teacher)":
            text += (" — too small a gap to compare distillation methods" if row["CIs overlap"] else
                     " — the teacher knows more than the student learns alone: there is something to distil")
        lines.append(text)
    return lines


def unconverged_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Runs whose kept checkpoint is their last one: they may have stopped before converging."""
    if not {"best_epoch", "epochs"} <= set(runs.columns):
        return runs.iloc[:0]
    students = runs[runs["method"] != "teacher"] if "method" in runs else runs
    trained = students[students["epochs"].fillna(0) > 0]  # "random init" rows train nothing
    flagged = trained[trained["best_epoch"] >= trained["epochs"]]
    return flagged


def choose_on_validation(candidates: list[dict], rows: list[dict], metric: str = "validation/accuracy"
                         ) -> tuple[dict, pd.DataFrame]:
    """The candidate (hyperparameters) whose run scored best on ``metric``, and the grid as a table.

    Hyperparameters are chosen on validation only; ties go to the earlier candidate.
    """
    if len(candidates) != len(rows) or not rows:
        raise ValueError(f"expected one run per candidate, got {len(candidates)} candidates and {len(rows)} runs")
    table = pd.DataFrame([{**candidate, metric: row[metric], "epochs": row.get("epochs"),
                           "best_epoch": row.get("best_epoch")} for candidate, row in zip(candidates, rows)])
    best = candidates[int(np.argmax(table[metric].to_numpy()))]
    table["chosen"] = [candidate == best for candidate in candidates]
    return best, table


def comparisons(runs: pd.DataFrame, task: str, pairs: Iterable[tuple[str, str]], metric: str = "test/accuracy"
                ) -> pd.DataFrame:
    """Selected lines of the claims table for one task (what a notebook's reading cell talks about)."""
    rows = [compare(runs, task, method, baseline, metric) for method, baseline in pairs]
    frame = pd.DataFrame([r for r in rows if r is not None])
    if not frame.empty:
        frame["verdict"] = [verdict(r) for _, r in frame.iterrows()]
    return frame


def table1(runs: pd.DataFrame) -> pd.DataFrame:
    """Our Table 1: rows = methods, columns = '<task> test' / '<task> validation' (+ AUROC for binary tasks)."""
    columns: dict[str, pd.Series] = {}
    for task, per_task in runs.groupby("task", sort=False):
        for split in ("test", "validation"):
            for metric, name in ((f"{split}/accuracy", split), (f"{split}/auroc", f"{split} AUROC")):
                if metric in per_task and per_task[metric].notna().any():
                    columns[f"{task} {name}"] = per_task.groupby("method", sort=False)[metric].apply(format_mean_ci)
    table = pd.DataFrame(columns).fillna("—")  # a method not run on a task (e.g. an ablation row on one task only)
    table = table.loc[ordered_methods(table.index)]
    seeds = runs.groupby("method")["seed"].nunique()
    table.insert(0, "seeds per task", [int(seeds.get(m, 0)) for m in table.index])
    table.index.name = "method"
    return table
