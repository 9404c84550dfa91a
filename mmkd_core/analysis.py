"""Looking inside the teacher and the learned weights (notebooks 03 and 04)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import matplotlib.pyplot as plt
import seaborn as sns

from .losses.gram import modality_gram, stack_views
from .evaluation.predict import predict
from .views import VIEWS


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
    """Histogram of the per-sample text and image weights, one panel per weighting scheme."""
    fig, axes = plt.subplots(1, len(frames), figsize=(4.2 * len(frames), 3.0), squeeze=False)
    for ax, (name, frame) in zip(axes[0], frames.items()):
        long = frame.melt(value_vars=["text", "image"], var_name="modality", value_name="weight")
        sns.histplot(long, x="weight", hue="modality", ax=ax, bins=30, element="step", stat="density")
        ax.set_title(name)
    fig.tight_layout()
    return fig


def plot_weights_vs_knobs(frames: dict[str, pd.DataFrame]):
    """Mean weight of each modality, split by whether that sample's text / image cue is informative."""
    parts = []
    for name, frame in frames.items():
        for modality, cue in (("text", "text_cue_informative"), ("image", "image_cue_informative")):
            if cue in frame:
                parts.append(pd.DataFrame({"scheme": name, "modality": f"{modality} weight",
                                           "its cue informative": frame[cue].map({True: "yes", False: "no"}),
                                           "weight": frame[modality]}))
    long = pd.concat(parts)
    grid = sns.catplot(long, x="modality", y="weight", hue="its cue informative", col="scheme", kind="bar",
                       errorbar=("ci", 95), seed=0, height=3.0, aspect=1.1)  # seeded bootstrap: same figure every run
    grid.figure.suptitle("do weights rise where the modality carries the label?", y=1.04)
    return grid.figure


@torch.no_grad()
def mean_gram(model, batch, transform: str = "probs", temperature: float = 1.0) -> torch.Tensor:
    """The modality Gram matrix G = A·Aᵀ averaged over a batch ([3, 3], rows text, image, joint)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = model(**{k: batch[k].to(device) for k in ("input_ids", "attention_mask", "pixel_values")}, views=VIEWS)
    model.train(was_training)
    return modality_gram(stack_views(out.logits, transform=transform, temperature=temperature)).mean(0).cpu()


def accuracy_by(models: dict, encoded, hf_dataset, column: str = "statement_type") -> pd.DataFrame:
    """Joint-view accuracy of each model per value of a metadata column (e.g. the statement type)."""
    if column not in hf_dataset.column_names:
        raise ValueError(f"dataset has no column {column!r}; columns: {hf_dataset.column_names}")
    groups = pd.Series(hf_dataset[column], name=column)
    table = {}
    for name, model in models.items():
        out = predict(model, encoded, views=("joint",))
        correct = (out["logits"]["joint"].argmax(-1) == out["labels"]).numpy()
        table[name] = pd.Series(correct).groupby(groups).mean()
    frame = pd.DataFrame(table)
    frame["samples"] = groups.value_counts()
    return frame
