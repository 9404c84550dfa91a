"""What a distillation method needs from its teacher, measured: the "why" behind a help, a harm or a tie.

MSD distils the teacher's single-modality predictions; Gram distils the relations between its modality outputs;
both add to vanilla KD's joint target. Each can only help when three conditions hold, and each can be measured
from the runs a notebook already has:

- **headroom**: the KD student falls short of its teacher by more than the experiment resolves
  (teacher − KD student, in points, against the resolvable difference of the method's comparison with KD);
- **single-modality evidence**: a single-modality view of the teacher says more than what a reader of that
  modality's shortcut alone gets (its cue ceiling on the shapes benchmark; the majority answer of each text, or
  the most frequent label, on other data). A view at its reference carries nothing the joint target lacks;
- **for Gram, relations to copy**: the teacher's mean Gram matrix Ḡ is away from that of uniform outputs,
  ‖Ḡ − U‖_F > 0 (:func:`~mmkd_core.experiments.regimes.teacher_gram_distance`);
- **for MSD's learned weights**: how far the per-sample weights move from where they start (meta-learned weights
  start at 1) late in training: weights that stay put are the population weighting in disguise.

:func:`measured_conditions` puts them in one table, :func:`conditions_reading` turns the table and the method's
comparisons with KD into the sentences a notebook's last reading prints.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .analysis import text_majority_accuracy
from .data import load
from .results import report_table_folders
from .data.shapes import ShapesConfig

__all__ = ["SINGLE_VIEW_EVIDENCE_POINTS", "collect_conditions", "conditions_overview", "conditions_reading",
           "cue_ceiling", "overview_reading", "measured_conditions", "view_references", "weight_movement"]

CONDITION_TABLES = ("03_conditions.csv", "04_conditions.csv", "06_conditions.csv")

# a single-modality view counts as carrying evidence of its own at this many points above its reference (issue 24's
# target for benchmark v2)
SINGLE_VIEW_EVIDENCE_POINTS = 10.0


def cue_ceiling(shapes: ShapesConfig, modality: str) -> float:
    """The accuracy of a reader of one modality's cue alone on the shapes benchmark: c + (1 − c)/K, with c the
    ``text_cue`` or ``image_cue`` knob and K the task's classes (the cue gives the label away with probability c;
    otherwise the reader guesses among K balanced classes)."""
    if modality not in ("text", "image"):
        raise ValueError(f"cue_ceiling: modality must be 'text' or 'image', got {modality!r}")
    cue = shapes.text_cue if modality == "text" else shapes.image_cue
    return cue + (1 - cue) / len(shapes.labels)


def view_references(dataset: str, config=None, train_rows=None, test_rows=None,
                    data_root=None) -> dict[str, tuple[str, float]]:
    """What a single modality gives without a model that reads its content, per view: ``{"text": (name,
    accuracy), "image": (name, accuracy)}`` with accuracy in [0, 1].

    - shapes: the cue ceilings c + (1 − c)/K of ``config``'s knobs ``text_cue`` and ``image_cue``, for K classes
      (:func:`~mmkd_core.experiments.regimes.reader_ceilings` gives the same beside the optimal readers);
    - any other dataset: for text, the majority label of each distinct text of ``train_rows``
      (:func:`~mmkd_core.analysis.text_majority_accuracy`; on easy-VQA, the question-majority baseline); for the
      image, the most frequent label of ``train_rows`` on ``test_rows`` (what an image-only reader gets by
      always giving it). Rows not given are loaded: ``load(dataset, split, root=data_root,
      **config.dataset_options)``, as the experiment reads them.
    """
    if dataset == "shapes":
        if config is None:
            raise ValueError("view_references: the shapes benchmark's references need the experiment's config "
                             "(its text_cue and image_cue knobs)")
        shapes = ShapesConfig(**config.dataset_options)
        return {view: (f"{view} cue ceiling", cue_ceiling(shapes, view)) for view in ("text", "image")}
    if (train_rows is None or test_rows is None) and config is not None:
        train_rows, test_rows = (rows if rows is not None else load(dataset, split, root=data_root,
                                                                     **config.dataset_options)
                                 for rows, split in ((train_rows, "train"), (test_rows, "test")))
    if train_rows is None or test_rows is None:
        raise ValueError(f"view_references: dataset {dataset!r} needs its training and test rows (columns 'text' "
                         "and 'label') for the text-majority and most-frequent-label readers, or the experiment's "
                         "config to load them")
    train_labels = np.asarray(train_rows["label"], dtype=int)
    test_labels = np.asarray(test_rows["label"], dtype=int)
    most_frequent = int(np.bincount(train_labels).argmax())
    return {"text": ("majority label of each text", text_majority_accuracy(
                list(train_rows["text"]), train_labels.tolist(), list(test_rows["text"]), test_labels.tolist())),
            "image": ("most frequent label", float(np.mean(test_labels == most_frequent)))}


def weight_movement(weights: pd.DataFrame, start: float | None = 1.0, last_fraction: float = 0.5) -> dict[str, float]:
    """How far MSD's per-sample weights moved, from a run's ``weights`` frame (columns ``index``, ``step``,
    ``text``, ``image``): each sample's mean weight over the last ``last_fraction`` of training, then per
    modality the mean |w − start| over samples (``start`` None: omitted) and the standard deviation across
    samples (0: every sample weighs the same, the population weighting)."""
    missing = {"index", "step", "text", "image"} - set(weights.columns)
    if missing:
        raise ValueError(f"weight_movement: the weights frame lacks columns {sorted(missing)}; expected a run's "
                         "'weights' log (index, step, text, image)")
    late = weights[weights["step"] >= weights["step"].max() * (1 - last_fraction)]
    per_sample = late.groupby("index")[["text", "image"]].mean()
    moved = {}
    for view in ("text", "image"):
        if start is not None:
            moved[f"{view} mean |w − {start:g}|"] = float((per_sample[view] - start).abs().mean())
        moved[f"{view} std across samples"] = float(per_sample[view].std(ddof=0))
    return moved


def measured_conditions(teacher_row: dict, runs: pd.DataFrame, references: dict[str, tuple[str, float]],
                        gram_distance: float | None = None, weights: dict[str, dict[str, float]] | None = None,
                        kd_label: str = "KD (transfer set)", metric: str = "test/accuracy") -> pd.DataFrame:
    """The conditions of the module's docstring, one line each: ``condition``, ``value`` and ``unit``.

    Args:
        teacher_row: the teacher's metrics with its views (``test/accuracy``, ``test/text/accuracy``,
            ``test/image/accuracy``), as :meth:`~mmkd_core.experiments.Experiment.teacher_row` gives them.
        runs: the runs frame (one row per method and seed) holding ``kd_label``'s runs.
        references: :func:`view_references`.
        gram_distance: ‖Ḡ − U‖_F of the teacher; None leaves the line out.
        weights: per weighting scheme, :func:`weight_movement` of a run; None leaves those lines out.
    """
    view_metric = {view: metric.replace("/", f"/{view}/", 1) for view in ("text", "image")}
    missing = [key for key in (metric, *view_metric.values()) if key not in teacher_row]
    if missing:
        raise ValueError(f"measured_conditions: the teacher's row lacks {missing}; give its row with the text and "
                         "image views (teacher_row(('joint', 'text', 'image')))")
    kd = runs.loc[runs["method"] == kd_label, metric]
    if kd.empty:
        raise ValueError(f"measured_conditions: no {kd_label!r} run in the runs frame; methods there: "
                         f"{sorted(runs['method'].unique())}")
    joint = teacher_row[metric]
    lines = [{"condition": "headroom: teacher − KD student", "value": 100 * (joint - kd.mean()), "unit": "points"}]
    for view in ("text", "image"):
        name, reference = references[view]
        accuracy = teacher_row[view_metric[view]]
        lines += [{"condition": f"teacher's {view}-only view", "value": 100 * accuracy, "unit": "%"},
                  {"condition": f"{view}-only view − {name}", "value": 100 * (accuracy - reference), "unit": "points"}]
    single = max(teacher_row[view_metric["text"]], teacher_row[view_metric["image"]])
    lines.append({"condition": "joint view − best single view", "value": 100 * (joint - single), "unit": "points"})
    if gram_distance is not None:
        lines.append({"condition": "‖Ḡ − uniform‖ (teacher's mean Gram matrix)", "value": gram_distance,
                      "unit": "Frobenius norm"})
    for scheme, moved in (weights or {}).items():
        lines += [{"condition": f"{scheme} weights, {name}", "value": value, "unit": "weight"}
                  for name, value in moved.items()]
    return pd.DataFrame(lines)


def _separated(comparisons: pd.DataFrame, upward: bool) -> pd.DataFrame:
    """The comparisons whose intervals separate, with the method above (``upward``) or below its baseline."""
    sign = comparisons["difference (points)"] > 0 if upward else comparisons["difference (points)"] < 0
    return comparisons[~comparisons["CIs overlap"].astype(bool) & sign]


def _value(conditions: pd.DataFrame, prefix: str) -> float:
    return float(conditions.loc[conditions["condition"].str.startswith(prefix), "value"].iloc[0])


def conditions_reading(conditions: pd.DataFrame, comparisons: pd.DataFrame, method: str,
                       needs_single_views: bool = True) -> list[str]:
    """Sentences for a notebook's final reading: the measured conditions, where ``method`` would be expected to
    help, and whether the runs show it.

    Args:
        conditions: :func:`measured_conditions`.
        comparisons: :func:`~mmkd_core.results.comparisons` rows of ``method``'s variants against KD (columns
            ``comparison``, ``difference (points)``, ``resolvable difference (points)``, ``CIs overlap``).
        method: the method's name in the sentences ("MSD", "Gram").
        needs_single_views: whether the method reads the single-modality views (MSD, Gram: yes).
    """
    if comparisons.empty:
        raise ValueError(f"conditions_reading: no comparison of {method} with KD to read")
    headroom = _value(conditions, "headroom")
    resolvable = float(comparisons["resolvable difference (points)"].max())
    evidence = {view: _value(conditions, f"{view}-only view −") for view in ("text", "image")}
    side = "above" if headroom >= 0 else "below"
    lines = [f"Headroom: the teacher is {abs(headroom):.1f} points {side} the KD student; the comparisons with KD "
             f"resolve differences of {resolvable:.1f} points (the largest resolvable difference among them)."]
    for view, margin in evidence.items():
        name = conditions.loc[conditions["condition"].str.startswith(f"{view}-only view −"), "condition"].iloc[0]
        accuracy = _value(conditions, f"teacher's {view}-only")
        lines.append(f"The teacher's {view}-only view is {accuracy:.1f}%, {margin:+.1f} points against its reference "
                     f"({name.split(' − ', 1)[1]}).")
    gram = conditions.loc[conditions["condition"].str.startswith("‖Ḡ"), "value"]
    if len(gram):
        lines.append(f"The teacher's mean Gram matrix is {float(gram.iloc[0]):.3f} from that of uniform outputs "
                     "(0: no relation between the views to copy).")
    room = headroom > resolvable
    informative = [view for view, margin in evidence.items() if margin >= SINGLE_VIEW_EVIDENCE_POINTS]
    expected = room and (informative or not needs_single_views)
    why = []
    if not room:
        why.append(f"the teacher's lead over the KD student ({headroom:+.1f} points) is no more than the "
                   f"{resolvable:.1f} points these runs resolve, so no recovery of it could be shown")
    if needs_single_views and not informative:
        why.append(f"no single-modality view is {SINGLE_VIEW_EVIDENCE_POINTS:.0f} points above its reference, so "
                   "what it distils beyond KD is close to nothing")
    helped, hurt = _separated(comparisons, upward=True), _separated(comparisons, upward=False)
    shown = (f"it helps here ({', '.join(helped['comparison'])})" if len(helped) else
             f"it hurts here ({', '.join(hurt['comparison'])})" if len(hurt) else
             "every comparison with KD is a tie here")
    if expected:
        lines.append(f"So {method} could help here: there is headroom, and the {' and '.join(informative) or 'joint'}"
                     f" view{'s carry' if len(informative) > 1 else ' carries'} evidence of its own; {shown}.")
    elif len(helped):
        lines.append(f"So by these conditions {method} would not be expected to help here ({'; and '.join(why)}), "
                     f"yet {shown}. {UNMEASURED_EVIDENCE}")
    else:
        lines.append(f"So {method} is not expected to help here: {'; and '.join(why)}. Measured: {shown}.")
    return lines


# what the conditions leave out, said wherever the runs contradict them
UNMEASURED_EVIDENCE = ("These conditions read only each single view's top answer; what a view's full distribution "
                       "carries beyond it (the answers it rules out) is not measured here, and the runs say it matters.")


def collect_conditions(reports_dir: str | Path, files=CONDITION_TABLES) -> pd.DataFrame:
    """Every conditions table notebooks 03, 04 and 06 wrote (``reports_dir/tables`` and each section's
    ``reports_dir/SECTION/tables``), one frame with a ``source`` column (``03``, ``easy_vqa/06``...); empty when
    none was written yet. ``reports/_scratch`` is not a section and is never read."""
    reports_dir = Path(reports_dir)
    frames = []
    for folder in report_table_folders(reports_dir):
        for name in files:
            path = folder / name
            if path.exists():
                prefix = "" if folder == reports_dir / "tables" else folder.parent.name + "/"
                frames.append(pd.read_csv(path).assign(source=prefix + name[:2]))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["condition", "value", "unit", "task", "source"])


OVERVIEW_CONDITIONS = {"headroom: teacher − KD student": "headroom (points)",
                       "text-only view − ": "text-only view − its reference (points)",
                       "image-only view − ": "image-only view − its reference (points)",
                       "‖Ḡ − uniform‖": "‖Ḡ − uniform‖"}


def conditions_overview(collected: pd.DataFrame) -> pd.DataFrame:
    """One line per task (and the notebook that measured it) with the conditions every method needs:
    headroom, each single-modality view against its reference and ‖Ḡ − uniform‖ (where measured), from
    :func:`collect_conditions`. The first notebook that measured a task's condition gives its value."""
    if collected.empty:
        return pd.DataFrame(columns=["task", *OVERVIEW_CONDITIONS.values()])
    missing = {"condition", "value", "task", "source"} - set(collected.columns)
    if missing:
        raise ValueError(f"conditions_overview: the conditions frame lacks {sorted(missing)}; expected "
                         "collect_conditions' columns (condition, value, task, source)")
    lines = {}
    for _, row in collected.iterrows():
        for prefix, column in OVERVIEW_CONDITIONS.items():
            if str(row["condition"]).startswith(prefix):
                line = lines.setdefault(row["task"], {"task": row["task"]})
                if column not in line:
                    line[column] = row["value"]
                    line.setdefault("measured in", row["source"])
    return pd.DataFrame(list(lines.values()))


def overview_reading(overview: pd.DataFrame, claims: pd.DataFrame) -> list[str]:
    """One sentence per task of :func:`conditions_overview`: whether MSD and Gram would be expected to help there
    (headroom above the largest resolvable difference of the task's method − KD claims, and a single-modality view
    :data:`SINGLE_VIEW_EVIDENCE_POINTS` above its reference), and how many of those claims separate upward."""
    lines = []
    against_kd = claims[claims["comparison"].str.endswith("− KD (transfer set)")
                        & ~claims["comparison"].str.startswith("KD")]
    for _, row in overview.iterrows():
        rows = against_kd[against_kd["task"] == row["task"]]
        if rows.empty or pd.isna(row.get("headroom (points)")):
            continue
        resolvable = float(rows["resolvable difference (points)"].max())
        margins = [row.get(f"{view}-only view − its reference (points)") for view in ("text", "image")]
        best = max(m for m in margins if pd.notna(m))
        expected = row["headroom (points)"] > resolvable and best >= SINGLE_VIEW_EVIDENCE_POINTS
        helped = len(_separated(rows, upward=True))
        against = " (against what these conditions expect)" if helped and not expected else ""
        lines.append(f"{row['task']}: headroom {row['headroom (points)']:+.1f} points against a resolvable "
                     f"{resolvable:.1f}; best single view {best:+.1f} points above its reference, so MSD and Gram "
                     f"{'could' if expected else 'would not be expected to'} help; measured: {helped} of {len(rows)} "
                     f"comparisons with KD separate upward{against}.")
    return lines
