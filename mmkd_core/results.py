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
import re
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
import torch

from .evaluation.stats import difference_ci, format_mean_ci, mean_ci, paired_difference_ci
from .labels import ALL_LABELS, budget_name
from .training.methods import method_for_label

RUN_FILES = ("01_label_efficiency_runs.csv", "02_vanilla_kd_runs.csv", "03_msd_runs.csv", "04_table1_runs.csv",
             "06_pretrained_teacher_runs.csv")
TEACHER = "teacher"
"""The label of the collection's teacher row: the reference every table lists first."""
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
            label: str | None = None, where: dict[str, Any] | None = None) -> dict | None:
    """One line of the claims table: difference of means (points), both intervals, overlap, resolution.

    ``where`` (column → value) keeps only the runs that have those values, on both sides: notebook 01 compares
    its methods at one label budget, ``where={"labels_per_class": 5}``.
    """
    if metric not in runs:
        return None
    chosen = runs[runs["task"] == task]
    for column, value in (where or {}).items():
        chosen = chosen[chosen[column] == value]
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
            "seeds": f"{len(a)} vs {len(b)}", "at ceiling": at_ceiling(a, b)}


def at_ceiling(*sides: Iterable[float], top: float = 1.0) -> bool:
    """Whether every run on every side scored ``top`` (accuracy or AUROC 1.0): such a comparison cannot show a
    difference, whatever the methods do, and is reported as "at ceiling", not as unresolved."""
    return all(len(values) and min(values) >= top - 1e-9 for values in map(list, sides))


def compare_paired(runs: pd.DataFrame, task: str, method: str, baseline: str, metric: str = "test/accuracy",
                   label: str | None = None) -> dict | None:
    """``method`` − ``baseline`` paired by seed (runs of one seed share initialisation and batch order): the mean of
    the per-seed differences in points, the half-width of its t-interval (the resolvable difference) and whether
    the interval excludes 0. Only seeds both sides ran count; None when there are none."""
    chosen = runs[runs["task"] == task]
    sides = [chosen[chosen["method"] == name].dropna(subset=[metric]).set_index("seed")[metric].to_dict()
             for name in (method, baseline)]
    if not set(sides[0]) & set(sides[1]):
        return None
    mean, half, pairs = paired_difference_ci(*sides)
    return {"task": task, "comparison": label or f"{method} − {baseline}", "metric": metric,
            "paired difference (points)": round(100 * mean, 2), "resolvable difference (points)": round(100 * half, 2),
            "separated": bool(abs(mean) > half) if not math.isnan(half) else False, "pairs": pairs}


def verdict(row: pd.Series | dict) -> str:
    """The sentence a report may say about one comparison, computed from its numbers."""
    if bool(row.get("at ceiling", False)):
        return "at ceiling: every run of both sides scored 100%, so this comparison cannot show a difference"
    return _sentence(row["comparison"], row["difference (points)"], row["resolvable difference (points)"],
                     separated=not row["CIs overlap"], why="intervals separate")


def _sentence(comparison: str, difference: float, resolution: float, separated: bool, why: str) -> str:
    """"<winner> beats <loser> by X points (<why>)" when ``separated``, else the difference and what resolves it."""
    name, _, base = comparison.partition(" − ")
    if separated:
        winner, loser = (name, base) if difference > 0 else (base, name)
        return f"{winner} beats {loser} by {abs(difference):.1f} points ({why})"
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


def report_table_folders(reports_dir: str | Path) -> list[Path]:
    """``reports_dir/tables`` and every section's ``reports_dir/SECTION/tables``, in that order.

    A section's folder name starts with a letter (:func:`mmkd_core.reproduce.load_plan` checks it);
    ``reports/_scratch``, where ad-hoc runs write, is not a section and is never read."""
    reports_dir = Path(reports_dir)
    return [reports_dir / "tables"] + sorted(p for p in reports_dir.glob("*/tables")
                                             if p.is_dir() and p.parent.name[:1].isalpha())


def collect_report_runs(reports_dir: str | Path, files: Iterable[str] = RUN_FILES) -> pd.DataFrame:
    """:func:`collect_runs` of ``reports_dir/tables`` and of every section's ``reports_dir/SECTION/tables``
    (``make reproduce``'s sections, e.g. easy-VQA), one frame; a section's rows have ``source`` ``SECTION/NN``."""
    reports_dir = Path(reports_dir)
    folders = report_table_folders(reports_dir)
    frames = []
    for folder in folders:
        if not any((folder / name).exists() for name in files):
            continue
        frame = collect_runs(folder, files)
        if folder != reports_dir / "tables":
            frame["source"] = folder.parent.name + "/" + frame["source"]
        frames.append(frame)
    if not frames:
        raise FileNotFoundError(f"no per-run results in {reports_dir}/tables or {reports_dir}/*/tables (expected "
                                f"some of {list(files)}); run notebooks 01-04 first, e.g. with `make reproduce`")
    return pd.concat(frames, ignore_index=True)


def label_parts(label: str) -> tuple[str, tuple[str, ...]]:
    """A row label's name and the qualifiers in its closing parentheses:
    ``"KD (transfer set, from-scratch teacher)"`` → ``("KD", ("transfer set", "from-scratch teacher"))``."""
    qualified = re.fullmatch(r"(.+?) \((.+)\)", label)
    if qualified is None:
        return label, ()
    return qualified.group(1), tuple(part.strip() for part in qualified.group(2).split(","))


def qualifies(label: str, other: str) -> bool:
    """Whether ``label`` is ``other`` with more qualifiers: ``"teacher (from scratch)"`` of ``"teacher"``,
    ``"KD (transfer set, from-scratch teacher)"`` of ``"KD (transfer set)"``."""
    name, qualifiers = label_parts(label)
    other_name, other_qualifiers = label_parts(other)
    return name == other_name and len(qualifiers) > len(other_qualifiers) and \
        qualifiers[:len(other_qualifiers)] == other_qualifiers


def ordered_methods(methods) -> list[str]:
    """The row labels ``methods`` (repeats allowed) in table order.

    1. :data:`TEACHER`, the reference;
    2. the rows of registered methods, in the methods' ``order``
       (:func:`~mmkd_core.training.methods.register_method`): a row belongs to the method its label names
       (:func:`~mmkd_core.training.methods.method_for_label`: "MSD instance" is ``msd``'s), and the rows of one
       method keep the order in which ``methods`` first lists them (the order the notebooks ran them);
    3. last, alphabetically, the labels of no registered method and the rows that qualify another row of the table
       (:func:`qualifies`: notebook 06's "KD (transfer set, from-scratch teacher)" is read against
       "KD (transfer set)", after the comparison of methods).

    A new method's rows find their place from its registration, with no list to edit here.
    """
    labels = list(dict.fromkeys(methods))

    def place(numbered: tuple[int, str]) -> tuple:
        first_listed, label = numbered
        if label == TEACHER:
            return 0, 0, 0, ""
        method = method_for_label(label)
        if method is None or any(qualifies(label, other) for other in labels):
            return 2, 0, 0, label
        return 1, method.order, first_listed, ""

    return [label for _, label in sorted(enumerate(labels), key=place)]


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
    ("KD (transfer set)", "teacher", None),  # how much of the teacher the student recovers (negative: the gap)
    ("CE (all labels)", "CE (no teacher)", None),  # what every pool label would buy a student without a teacher
    ("teacher", "CE (all labels)", None),  # does the teacher know more than the labels it could have been given?
    ("KD (transfer set)", "CE (all labels)", None),
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
            rows.append(with_pairs(runs, compare(runs, task, method, baseline, label=label), method, baseline))
        if runs[runs["task"] == task].get("test/auroc", pd.Series(dtype=float)).notna().any():
            rows.append(compare(runs, task, "Gram", "KD (transfer set)", metric="test/auroc"))
    frame = pd.DataFrame([r for r in rows if r is not None])
    if not frame.empty:
        frame["verdict"] = [verdict(r) for _, r in frame.iterrows()]
    return frame


PAIRED_COLUMNS = ("paired difference (points)", "paired resolvable difference (points)", "paired: separated")


def with_pairs(runs: pd.DataFrame, row: dict | None, method: str, baseline: str) -> dict | None:
    """A claims row with its comparison paired by seed (:func:`compare_paired`) beside the unpaired one, when both
    sides are students with two or more seeds in common: the same seed of two methods shares its initialisation
    (and, on the same rows, its batch order), so the paired interval is the finer resolution. The verdict stays the
    unpaired one (intervals of the two means); the paired columns say what more seeds-in-step resolve."""
    if row is None or TEACHER in (method, baseline):
        return row
    paired = compare_paired(runs, row["task"], method, baseline, metric=row["metric"])
    if paired is None or paired["pairs"] < 2:
        return row
    return {**row, PAIRED_COLUMNS[0]: paired["paired difference (points)"],
            PAIRED_COLUMNS[1]: paired["resolvable difference (points)"], PAIRED_COLUMNS[2]: paired["separated"]}


def digits_claims(runs: pd.DataFrame) -> list[dict]:
    """Notebook 01 (task ``digits``): linear-probe accuracy of the KD student against the supervised student
    at each label budget (:func:`budgets`), and the teacher against the supervised student trained with all labels."""
    lines = [compare(runs, "digits", "KD student", "supervised student", where={"labels_per_class": k},
                     label=f"KD student − supervised student ({budget_words(k)})")
             for k in budgets(runs[runs["task"] == "digits"])]
    lines.append(compare(runs, "digits", "teacher", "supervised student", where={"labels_per_class": ALL_LABELS},
                         label="teacher − supervised student (all labels)"))
    return [line for line in lines if line is not None]


def claims_text(claims: pd.DataFrame) -> list[str]:
    """Plain sentences, computed from the table, about each claim."""
    lines = []
    for _, row in claims.iterrows():
        text = f"{row['task']}: {row['comparison']} = {row['difference (points)']:+.2f} points ({row['metric']}, " \
               f"{row['seeds']} seeds): {row['verdict']}"
        if pd.notna(row.get(PAIRED_COLUMNS[0], float("nan"))):
            text += (f" [paired by seed: {row[PAIRED_COLUMNS[0]]:+.2f} ± {row[PAIRED_COLUMNS[1]]:.2f}, "
                     f"{'separated' if row[PAIRED_COLUMNS[2]] else 'not separated'}]")
        if row["comparison"] == "Gram − KD (transfer set)" and row["metric"] == "test/accuracy":
            low, high = PAPER_GRAM_GAIN
            inside = low <= row["difference (points)"] <= high
            text += f"; the paper reports +{low}–{high} (single runs): ours is {'inside' if inside else 'outside'} that range"
        if row["comparison"] == "teacher − CE (no teacher)":
            text += (" — too small a gap to compare distillation methods" if row["CIs overlap"] else
                     " — the teacher knows more than the student learns alone: there is something to distil")
        lines.append(text)
    return lines


def outcome(row: pd.Series | dict) -> str:
    """A claims row in one word: ``"higher"`` or ``"lower"`` when the intervals separate, else ``"tie"``."""
    if row["CIs overlap"]:
        return "tie"
    return "higher" if row["difference (points)"] > 0 else "lower"


def task_agreement(claims: pd.DataFrame, pairs: dict[str, str]) -> pd.DataFrame:
    """Where two benchmarks agree: for each ``other → reference`` task of ``pairs`` (e.g. ``{"easy_vqa": "ve"}``),
    every comparison the claims table has on both, with each side's difference, its :func:`outcome` and whether the
    outcomes match. Rows only for comparisons both tasks ran (same metric)."""
    lines = []
    for other, reference in pairs.items():
        mine = claims[claims["task"] == other]
        theirs = claims[claims["task"] == reference].set_index(["comparison", "metric"])
        for _, row in mine.iterrows():
            key = (row["comparison"], row["metric"])
            if key not in theirs.index:
                continue
            ref = theirs.loc[key]
            lines.append({"comparison": row["comparison"], "metric": row["metric"], "reference task": reference,
                          "reference (points)": ref["difference (points)"], "reference outcome": outcome(ref),
                          "task": other, "difference (points)": row["difference (points)"],
                          "resolvable difference (points)": row["resolvable difference (points)"],
                          "outcome": outcome(row), "agree": outcome(ref) == outcome(row)})
    return pd.DataFrame(lines)


def agreement_text(agreement: pd.DataFrame) -> list[str]:
    """One computed sentence per task pair of :func:`task_agreement`: how many comparisons agree, and the others."""
    lines = []
    for (other, reference), group in agreement.groupby(["task", "reference task"], sort=False):
        differ = group[~group["agree"]]
        text = (f"{other} against {reference}: {int(group['agree'].sum())} of {len(group)} comparisons have the same "
                f"outcome (higher, lower or tie)")
        if len(differ):
            text += "; they differ on " + "; ".join(
                f"{r['comparison']} ({reference} {r['reference (points)']:+.1f}, {r['reference outcome']}; {other} "
                f"{r['difference (points)']:+.1f}, {r['outcome']})" for _, r in differ.iterrows())
        lines.append(text)
    return lines


def unconverged_runs(runs: pd.DataFrame, teachers: bool = True) -> pd.DataFrame:
    """Runs whose kept checkpoint is their last one: they may have stopped before converging. Teachers are runs
    too (``teachers=False``: students only)."""
    if not {"best_epoch", "epochs"} <= set(runs.columns):
        return runs.iloc[:0]
    kept = runs if teachers or "method" not in runs else runs[runs["method"] != "teacher"]
    trained = kept[kept["epochs"].fillna(0) > 0]  # "random init" rows train nothing
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


def comparisons(runs: pd.DataFrame, task: str, pairs: Iterable[tuple[str, str]], metric: str = "test/accuracy",
                where: dict[str, Any] | None = None, qualifier: str | None = None) -> pd.DataFrame:
    """Selected lines of the claims table for one task (what a notebook's reading cell talks about).

    ``where`` selects the runs of both sides (:func:`compare`); ``qualifier`` says which, in parentheses after each
    comparison's name: ``"KD student − supervised student (k = 5 per class)"``.
    """
    rows = [compare(runs, task, method, baseline, metric, where=where,
                    label=f"{method} − {baseline} ({qualifier})" if qualifier else None)
            for method, baseline in pairs]
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


# ---------------------------------------------------------------- label budgets (notebook 01's digits runs)
def budget_words(k: float) -> str:
    """The qualifier of a comparison at label budget ``k``: ``"k = 5 per class"``, ``"k = all per class"``."""
    return f"k = {budget_name(k)} per class"


def budgets(runs: pd.DataFrame) -> list:
    """The label budgets (``labels_per_class``) of ``runs``, smallest first and every label ("all") last."""
    return sorted(runs["labels_per_class"].dropna().unique(), key=lambda k: (k == ALL_LABELS, k))


def budget_comparisons(runs: pd.DataFrame, task: str, pairs: Iterable[tuple[str, str]],
                       metric: str = "test/accuracy") -> pd.DataFrame:
    """:func:`comparisons` at each label budget of ``task`` in turn (:func:`budgets`), both sides on the runs of that
    budget, with its ``labels_per_class``. A pair one of whose methods has no run at a budget has no line there
    (notebook 01's teacher, trained once on every label, is compared at "all" only)."""
    pairs = list(pairs)
    frames = [comparisons(runs, task, pairs, metric, where={"labels_per_class": k}, qualifier=budget_words(k))
              .assign(labels_per_class=k) for k in budgets(runs[runs["task"] == task])]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def budget_summary(runs: pd.DataFrame, metric: str = "test/accuracy") -> pd.DataFrame:
    """Notebook 01's table: per method and label budget, ``metric``'s mean and Student-t 95% CI half-width in percent
    (NaN for a single run), the mean kept and trained epochs, the mean training time and the number of seeds.

    Methods come in the order the runs list them, and each method's budgets in :func:`budgets` order.
    """
    name = f"{metric.replace('/', ' ')} (%)"
    lines = []
    for method in dict.fromkeys(runs["method"]):
        for k in budgets(runs):
            part = runs[(runs["method"] == method) & (runs["labels_per_class"] == k)]
            if part.empty:
                continue
            mean, half = mean_ci(part[metric])
            lines.append({"method": method, "labels per class": budget_name(k), "labels_per_class": k,
                          name: 100 * mean, "95% CI half-width (points)": 100 * half,
                          "best epoch (mean)": part["best_epoch"].mean(), "epochs (mean)": part["epochs"].mean(),
                          "train seconds (mean)": part["train_seconds"].mean(), "seeds": len(part)})
    return pd.DataFrame(lines)


# ---------------------------------------------------------------- regime maps: methods against a baseline, per cell
REGIME_CELL = ("teacher", "transfer rows")
"""The cells of a regime map: which teacher distils, and how many transfer rows (0: the labelled rows only)."""
REGIME_COLUMNS = ["comparison", "metric", "paired difference (points)", "resolvable difference (points)",
                  "separated", "pairs", "method", "baseline", "verdict", "reading"]


def _cell_columns(by) -> list[str]:
    # a single column name is one column, not the characters of its name
    return [by] if isinstance(by, str) else list(by)


def require_columns(runs: pd.DataFrame, columns: Iterable[str]) -> None:
    """ValueError naming the ``columns`` that ``runs`` lacks, and the ones it has."""
    missing = [column for column in columns if column not in runs]
    if missing:
        raise ValueError(f"the runs have no column {missing}; their columns are {list(runs.columns)}")


def require_method(runs: pd.DataFrame, name: str, column: str = "method") -> None:
    """ValueError when no run of ``runs`` is ``name`` in ``column``, naming the values that would be accepted."""
    accepted = list(dict.fromkeys(runs[column].dropna()))
    if name not in accepted:
        raise ValueError(f"baseline {name!r} has no runs; the {column}s run are {accepted}")


def require_one_run_per_seed(runs: pd.DataFrame, keys: list[str]) -> None:
    """ValueError when two runs share every one of ``keys`` (cell, method, seed): pairing by seed would silently keep
    one of them, so the cell is missing a column that tells them apart."""
    placed = runs.dropna(subset=keys)  # runs with no value in a key are in no cell, so pair with nothing
    repeated = placed[placed.duplicated(subset=keys, keep=False)]
    if not repeated.empty:
        example = repeated[keys].drop_duplicates().head(3).to_dict("records")
        raise ValueError(f"{len(repeated)} runs share their {keys}, e.g. {example}: a cell must hold one run per "
                         f"method and seed (add the column that tells them apart to `by`)")


def paired_seeds(cell: pd.DataFrame, method: str, baseline: str, metric: str, column: str = "method") -> list:
    """The seeds at which both ``method`` and ``baseline`` have a value of ``metric`` in ``cell``."""
    seeds = [set(cell.loc[(cell[column] == name) & cell[metric].notna(), "seed"]) for name in (method, baseline)]
    return sorted(seeds[0] & seeds[1])


def paired_verdict(row: pd.Series | dict) -> str:
    """The sentence a report may say about one paired comparison (:func:`compare_paired`), computed from its numbers:
    a method beats another only when the t-interval of the per-seed differences, mean ± resolvable, excludes 0."""
    return _sentence(row["comparison"], row["paired difference (points)"], row["resolvable difference (points)"],
                     separated=bool(row["separated"]), why="paired interval excludes 0")


def paired_reading(row: pd.Series | dict) -> str:
    """One word for a paired comparison: "helps" / "hurts" when its interval excludes 0 from above / below,
    else "ties"."""
    if not row["separated"]:
        return "ties"
    return "helps" if row["paired difference (points)"] > 0 else "hurts"


def regime_line(cell: pd.DataFrame, task: str, method: str, baseline: str, metric: str) -> dict | None:
    """One comparison of a regime map: :func:`compare_paired` in one cell, both sides as mean ± CI over the paired
    seeds (so that their difference is the paired difference), the verdict and the reading; None with no pair."""
    line = compare_paired(cell, task, method, baseline, metric)
    if line is None:
        return None
    seeds = paired_seeds(cell, method, baseline, metric)
    for side, name in (("method", method), ("baseline", baseline)):
        side_runs = cell[(cell["method"] == name) & cell["seed"].isin(seeds)]
        line[side] = format_mean_ci(side_runs[metric])
    line["verdict"] = paired_verdict(line)
    line["reading"] = paired_reading(line)
    return line


def regime_comparisons(runs: pd.DataFrame, baseline: str = "KD", metric: str = "test/accuracy",
                       by: Iterable[str] | str = REGIME_CELL) -> pd.DataFrame:
    """The regime map as a table: in every cell of ``by`` (per task), each method against ``baseline``, paired by seed.

    A line per (task, cell, method ≠ ``baseline``) with a run at a seed ``baseline`` also ran in that cell: the mean
    per-seed difference d̄ = mean_s(method_s − baseline_s) in points, the resolvable difference
    t_{0.975, n−1} · s_d / √n, whether the interval d̄ ± that excludes 0 ("separated"), the number of pairs n,
    both sides as mean ± CI over those seeds, a verdict (:func:`paired_verdict`) and a reading
    ("helps" / "hurts" / "ties"). Runs with no value in a ``by`` column (a student with no teacher) are in no cell.
    Raises ValueError when a column or the baseline is missing, or when a cell holds two runs of one method and seed.
    """
    by = _cell_columns(by)
    require_columns(runs, ["task", "method", "seed", metric, *by])
    require_method(runs, baseline)
    require_one_run_per_seed(runs, ["task", *by, "method", "seed"])
    lines = []
    for keys, cell in runs.groupby(["task", *by], sort=False):
        task, cell_values = keys[0], dict(zip(by, keys[1:]))
        for method in ordered_methods(m for m in cell["method"] if m != baseline):
            line = regime_line(cell, task, method, baseline, metric)
            if line is not None:
                lines.append({"task": task, **cell_values, **{k: v for k, v in line.items() if k != "task"}})
    return pd.DataFrame(lines, columns=["task", *by, *REGIME_COLUMNS])


def paired_seed_differences(runs: pd.DataFrame, baseline: str = "KD", metric: str = "test/accuracy",
                            by: Iterable[str] | str = REGIME_CELL, column: str = "method") -> pd.DataFrame:
    """Every seed's difference to ``baseline`` in its cell: 100 · (method_s − baseline_s) in points, one line per
    (task, cell of ``by``, ``column`` value ≠ ``baseline``, seed both ran); what :func:`regime_comparisons` averages
    and :func:`mmkd_core.plots.gain_over_baseline` draws. Columns: task (when ``runs`` has one), ``by``, ``column``,
    seed, "difference (points)"."""
    by = _cell_columns(by)
    cell = (["task"] if "task" in runs else []) + by
    require_columns(runs, [column, "seed", metric, *by])
    require_method(runs, baseline, column)
    require_one_run_per_seed(runs, [*cell, column, "seed"])
    scored = runs.dropna(subset=[metric, *cell])  # merge would pair a NaN cell with another NaN cell
    reference = scored[scored[column] == baseline][[*cell, "seed", metric]].rename(columns={metric: "_baseline"})
    others = scored[scored[column] != baseline][[*cell, column, "seed", metric]]
    paired = others.merge(reference, on=[*cell, "seed"], how="inner")  # only the seeds both sides ran
    paired["difference (points)"] = 100 * (paired[metric] - paired["_baseline"])
    return paired[[*cell, column, "seed", "difference (points)"]].reset_index(drop=True)


def collect_tuning(reports_dir: str | Path) -> pd.DataFrame:
    """Every method's chosen cell, from the notebooks' ``NN_tuning`` tables (sections' too): one line per notebook,
    task or teacher, and method, with its axes (blank where a method has none of them), its validation score and
    the number of cells it tried. Protocol v3 tunes every method the same way (:mod:`mmkd_core.method_tuning`)."""
    frames = []
    for folder in report_table_folders(reports_dir):
        for path in sorted(folder.glob("*_tuning.csv")):
            grid = pd.read_csv(path)
            if "chosen" not in grid or "method" not in grid:
                continue
            keys = [c for c in ("task", "teacher", "method") if c in grid]
            per_method = grid.groupby(keys, sort=False)
            counts = pd.DataFrame({"cells tried": per_method.size()})
            if "from the edge extension" in grid:
                counts["grid extended"] = per_method["from the edge extension"].any()
            chosen = grid[grid["chosen"].astype(bool)].merge(counts.reset_index(), on=keys)
            source = path.stem.removesuffix("_tuning")
            chosen.insert(0, "source", source if folder == Path(reports_dir) / "tables" else f"{folder.parent.name}/{source}")
            frames.append(chosen.drop(columns=[c for c in chosen.columns if "(seed " in c or c in (
                "chosen", "seeds", "from the edge extension")]))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
