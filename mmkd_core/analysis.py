"""Looking inside the teacher and the learned weights (notebooks 03 and 04)."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import torch
import matplotlib.pyplot as plt
import seaborn as sns

from .evaluation.predict import classification_metrics, predict
from .views import VIEWS
from .evaluation.probes import count_parameters
from .experiments.multimodal import build_model, gram_snapshots, mean_gram  # noqa: F401  (the notebooks' names)
from .experiments.multimodal import student_train_config
from .evaluation.stats import mean_ci


def model_sizes(config, data) -> str:
    """The sizes of an experiment's teacher and student as one line for a notebook to print: layers, width,
    attention heads and parameters of each (built at random, as :func:`~mmkd_core.experiments.build_model` does)."""
    parts = []
    for role in ("teacher", "student"):
        model = build_model(config, data, role)
        size = model.config
        layers = size.num_hidden_layers
        parts.append(f"{role}: {layers} layer{'s' if layers != 1 else ''}, width {size.hidden_size}, "
                     f"{size.num_attention_heads} heads, {count_parameters(model):,} parameters")
    return "; ".join(parts)


def view_predictions(model, encoded, label_names) -> pd.DataFrame:
    """One row per sample: true label and the model's prediction (and confidence) for each view."""
    out = predict(model, encoded, views=VIEWS)
    frame = pd.DataFrame({"label": [label_names[i] for i in out["labels"].tolist()]})
    for view in VIEWS:
        probs = torch.softmax(out["logits"][view], -1)
        frame[f"{view} prediction"] = [label_names[i] for i in probs.argmax(-1).tolist()]
        frame[f"{view} confidence"] = probs.max(-1).values.numpy()
    frame["text disagrees"] = frame["text prediction"] != frame["joint prediction"]
    frame["image disagrees"] = frame["image prediction"] != frame["joint prediction"]
    return frame


def text_majority_accuracy(train_texts, train_labels, test_texts, test_labels) -> float:
    """Accuracy of a text-only reader with no model: each distinct text gets its most frequent training label (ties:
    the smaller label), a text never seen in training the most frequent label overall. On easy-VQA, whose 48,000
    questions are about a hundred distinct strings, this is the question-majority baseline: what the question alone
    tells (the answer type and its most common answer)."""
    train_labels, test_labels = [int(v) for v in train_labels], [int(v) for v in test_labels]
    if not train_labels or len(train_texts) != len(train_labels) or len(test_texts) != len(test_labels) \
            or not test_labels:
        raise ValueError(f"text_majority_accuracy: expected non-empty texts with one label each, got "
                         f"{len(train_texts)} / {len(train_labels)} training and {len(test_texts)} / "
                         f"{len(test_labels)} test texts / labels")
    counts: dict[str, Counter] = {}
    for text, label in zip(train_texts, train_labels):
        counts.setdefault(text, Counter())[label] += 1

    def majority(counter: Counter) -> int:  # the most frequent label, the smaller one on a tie
        return min(counter, key=lambda label: (-counter[label], label))

    fallback = majority(Counter(train_labels))
    answer = {text: majority(counter) for text, counter in counts.items()}
    return float(np.mean([answer.get(text, fallback) == label for text, label in zip(test_texts, test_labels)]))


def view_readers(teacher, data, train_rows, test_rows) -> pd.DataFrame:
    """What each view of the teacher reads on test, beside the no-model text reader (:func:`text_majority_accuracy`
    of the students' pool): the joint view, the text-only and the image-only view (accuracy, in [0, 1])."""
    out = predict(teacher, data.test, views=VIEWS)
    lines = [{"reader": f"teacher, {name}",
              "test/accuracy": classification_metrics(out["logits"][view], out["labels"])["accuracy"]}
             for view, name in zip(VIEWS, ("joint view", "text-only view", "image-only view"))]
    lines.append({"reader": "majority answer of each text, no model",
                  "test/accuracy": text_majority_accuracy(list(train_rows["text"]), list(train_rows["label"]),
                                                          list(test_rows["text"]), list(test_rows["label"]))})
    return pd.DataFrame(lines)


def disagreement_grid(hf_dataset, predictions: pd.DataFrame, n: int = 8, columns: int = 4):
    """Samples where the teacher's unimodal predictions disagree with its joint prediction."""
    chosen = predictions.index[predictions["text disagrees"] | predictions["image disagrees"]][:n]
    rows = max(1, int(np.ceil(len(chosen) / columns)))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 3.0, rows * 3.4), squeeze=False)
    for ax, index in zip(axes.ravel(), chosen):
        row, pred = hf_dataset[int(index)], predictions.loc[index]
        ax.imshow(row["image"], interpolation="nearest")
        ax.set_title(f"{row['text']}\nlabel: {pred['label']}\njoint: {pred['joint prediction']}  "
                     f"text: {pred['text prediction']}\nimage: {pred['image prediction']}", fontsize=7)
        ax.axis("off")
    for ax in axes.ravel()[len(chosen):]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def weights_with_metadata(weights: pd.DataFrame, hf_dataset, last_fraction: float = 0.5) -> pd.DataFrame:
    """Per-sample MSD weights from the last part of training, joined with the benchmark's metadata."""
    start = weights["step"].max() * (1 - last_fraction)
    late = weights[weights["step"] >= start]
    per_sample = late.groupby("index")[["text", "image"]].mean().reset_index()
    meta_columns = [c for c in ("text_cue_informative", "image_cue_informative", "statement_type", "label")
                    if c in hf_dataset.column_names]
    meta = hf_dataset.select_columns(meta_columns).to_pandas()
    return per_sample.join(meta, on="index")


def plot_weight_distributions(frames: dict[str, pd.DataFrame]):
    """Histogram of the per-sample text and image weights, one panel per weighting scheme.

    Each panel has its own x range: the schemes live on different scales (saliency weights spread out,
    meta-learned ones stay near their start), and a shared range would flatten one of them.
    """
    fig, axes = plt.subplots(1, len(frames), figsize=(4.6 * len(frames), 3.2), squeeze=False)
    for i, (ax, (name, frame)) in enumerate(zip(axes[0], frames.items())):
        long = frame.melt(value_vars=["text", "image"], var_name="modality", value_name="weight")
        sns.histplot(long, x="weight", hue="modality", ax=ax, bins=30, element="step", stat="percent",
                     legend=i == len(frames) - 1)
        ax.set_title(name)
        ax.set_xlabel("per-sample weight")
        ax.set_ylabel("share of weighted samples (%)")
    if frames:
        legend = axes[0][-1].get_legend()
        if legend is not None:
            legend.set_bbox_to_anchor((1.02, 1.0))
            legend.set_loc("upper left")
    fig.tight_layout()
    return fig


def plot_weights_vs_knobs(frames: dict[str, pd.DataFrame]):
    """Mean weight of each modality, split by whether that sample's text / image cue is informative.

    Bars are means with 95% Student-t intervals (no bootstrap: the same figure every run); one panel per
    scheme, each with its own y axis starting at 0.
    """
    fig, axes = plt.subplots(1, len(frames), figsize=(4.6 * len(frames), 3.3), squeeze=False)
    for ax, (name, frame) in zip(axes[0], frames.items()):
        position = 0
        ticks, labels = [], []
        for modality, cue in (("text", "text_cue_informative"), ("image", "image_cue_informative")):
            if cue not in frame:
                continue
            for j, informative in enumerate((False, True)):
                values = frame.loc[frame[cue] == informative, modality]
                if values.empty:
                    continue
                mean, half = mean_ci(values)
                ax.bar(position + 0.4 * j, mean, width=0.38, yerr=0 if half != half else half, capsize=3,
                       color=sns.color_palette("deep")[j], label=f"its cue informative: {'yes' if informative else 'no'}")
            ticks.append(position + 0.2)
            labels.append(f"{modality} weight")
            position += 1
        ax.set_xticks(ticks, labels)
        ax.set_ylim(bottom=0)
        ax.set_ylabel("mean weight")
        ax.set_title(name)
    handles, names = axes[0][-1].get_legend_handles_labels()
    unique = dict(zip(names, handles))
    axes[0][-1].legend(unique.values(), unique.keys(), loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle("do weights rise where the modality carries the label? (mean ± 95% CI)")
    fig.tight_layout()
    return fig


def accuracy_by(models: dict, encoded, hf_dataset, column: str = "statement_type",
                text_only_of: str | None = None) -> pd.DataFrame:
    """Joint-view accuracy of each model per value of a metadata column (e.g. the statement type).

    ``text_only_of``: also the text-only view of that model (column ``"<name> (text only)"``), the prior that
    reading the image has to beat.
    """
    if column not in hf_dataset.column_names:
        raise ValueError(f"dataset has no column {column!r}; columns: {hf_dataset.column_names}")
    if text_only_of is not None and text_only_of not in models:
        raise ValueError(f"text_only_of={text_only_of!r} is not one of the models {list(models)}")
    groups = pd.Series(hf_dataset[column], name=column)
    table = {}
    for name, model in models.items():
        views = ("joint", "text") if name == text_only_of else ("joint",)
        out = predict(model, encoded, views=views)
        for view in views:
            correct = (out["logits"][view].argmax(-1) == out["labels"]).numpy()
            table[name if view == "joint" else f"{name} (text only)"] = pd.Series(correct).groupby(groups).mean()
    frame = pd.DataFrame(table)
    frame["samples"] = groups.value_counts()
    return frame


def warmup_and_stopping(rows: list[dict], config, data) -> pd.DataFrame:
    """Per student run: its warm-up and its step floor (from the experiment's settings and the rows it trained on,
    :func:`~mmkd_core.experiments.multimodal.student_train_config`), the step of the checkpoint it kept and the
    step it stopped at. A run whose kept step lies inside its warm-up stopped before its learning rate was ever
    at full size: it may be under-trained (protocol v2's CE students did)."""
    lines = []
    for row in rows:
        if row.get("method") == "teacher" or "best_step" not in row:
            continue
        settings = student_train_config(config, row["seed"], data.student_rows(row.get("data", "labelled")))
        warmup = settings.warmup_steps
        lines.append({"method": row["method"], "seed": row["seed"], "warm-up steps": warmup,
                      "step floor": settings.min_steps, "kept step": row["best_step"], "stopped at step": row["steps"],
                      "kept after the warm-up": None if warmup is None else bool(row["best_step"] > warmup)})
    return pd.DataFrame(lines)
