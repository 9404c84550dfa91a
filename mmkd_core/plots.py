"""Figures the notebooks share (matplotlib / seaborn); each returns the Figure so notebooks can save it."""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns


def sample_grid(dataset, n: int = 12, columns: int = 4, width: int = 32):
    """Images with their statement (wrapped) and label name, in a grid."""
    names = dataset.features["label"].names
    rows = math.ceil(n / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 2.6, rows * 2.9))
    for ax, i in zip(np.ravel(axes), range(n)):
        row = dataset[i]
        ax.imshow(row["image"], interpolation="nearest")
        words, lines, line = row["text"].split(), [], ""
        for word in words:
            if len(line) + len(word) > width // 1.3:
                lines.append(line)
                line = ""
            line = f"{line} {word}".strip()
        lines.append(line)
        ax.set_title("\n".join(lines) + f"\n→ {names[row['label']]}", fontsize=8)
        ax.axis("off")
    for ax in np.ravel(axes)[n:]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def label_balance(datasets_by_split: dict, title: str = "label balance per split"):
    frames = []
    for split, ds in datasets_by_split.items():
        names = ds.features["label"].names
        counts = np.bincount(ds["label"], minlength=len(names))
        frames.append(pd.DataFrame({"split": split, "label": names, "fraction": counts / counts.sum()}))
    frame = pd.concat(frames)
    fig, ax = plt.subplots(figsize=(6, 3))
    sns.barplot(frame, x="label", y="fraction", hue="split", ax=ax)
    ax.set_title(title)
    fig.tight_layout()
    return fig, frame


def bar_with_ci(summary: pd.DataFrame, metric: str, ax=None, label: str | None = None, order: Sequence[str] | None = None,
                scale: float = 100.0):
    """Bars of ``<metric> mean`` with ``<metric> ci95`` whiskers, one per method (from ``summarize``)."""
    frame = summary.set_index("method").loc[list(order)] if order is not None else summary.set_index("method")
    if ax is None:
        fig, ax = plt.subplots(figsize=(1.0 + 0.9 * len(frame), 3.2))
    else:
        fig = ax.figure
    means = frame[f"{metric} mean"].to_numpy() * scale
    errors = np.nan_to_num(frame[f"{metric} ci95"].to_numpy() * scale)
    ax.bar(range(len(frame)), means, yerr=errors, capsize=4, color=sns.color_palette("deep", len(frame)))
    ax.set_xticks(range(len(frame)), frame.index, rotation=30, ha="right")
    ax.set_ylabel(label or metric)
    low = max(0.0, float(np.min(means - errors)) - 5)
    ax.set_ylim(low, min(100.0, float(np.max(means + errors)) + 3))
    fig.tight_layout()
    return fig


def loss_curves(runs: dict[str, pd.DataFrame], terms: Iterable[str] | None = None, smooth: int = 5,
                title: str = "training loss per term"):
    """One panel per run: every logged loss term per step (rolling mean over ``smooth`` steps)."""
    fig, axes = plt.subplots(1, len(runs), figsize=(4.2 * len(runs), 3.0), squeeze=False)
    for ax, (name, steps) in zip(axes[0], runs.items()):
        columns = [c for c in steps.columns if c not in ("step", "epoch", "lr")]
        if terms is not None:
            columns = [c for c in columns if c in terms]
        for column in columns:
            ax.plot(steps["step"], steps[column].rolling(smooth, min_periods=1).mean(), label=column)
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
