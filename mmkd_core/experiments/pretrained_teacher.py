"""Notebook 06's teacher: frozen pretrained towers plus a trained fusion head, built once and cached.

:func:`split_features` computes (or reads) the towers' features of the experiment's train / validation / test
rows; :func:`fit_teacher` trains (or reads) the fusion head; :func:`pretraining_sweep` fits the head on the
first ``n`` rows for each ``n`` (the "what pretraining buys" curve). Every step is cached under
``data/pretrained/``, so :func:`prepare` (the teachers phase of ``make reproduce``, in parallel with the
from-scratch teachers) and notebook 06 share one computation: the notebook then only trains students.
"""
from __future__ import annotations

import time
from typing import Iterable

from ..data import load
from ..models import two_tower
from .multimodal import ExperimentConfig

SPLITS = ("train", "validation", "test")


def split_features(config: ExperimentConfig, input_size: int = 128) -> dict[str, two_tower.TowerFeatures]:
    """Tower features of the experiment's three splits (the teacher's whole pool for ``train``).

    The towers are loaded only when a split's features are not cached yet.
    """
    loaded: list[tuple] = []

    def towers() -> tuple:
        if not loaded:
            loaded.append(two_tower.load_towers())
        return loaded[0]

    return {split: two_tower.tower_features(load(config.dataset, split, root=config.data_root,
                                                  **config.dataset_options), input_size=input_size, towers=towers)
            for split in SPLITS}


def num_classes(config: ExperimentConfig) -> int:
    """The number of classes of the experiment's dataset (its ``label`` column)."""
    return load(config.dataset, "validation", root=config.data_root, **config.dataset_options).features["label"].num_classes


def fit_teacher(features: dict[str, two_tower.TowerFeatures], num_labels: int, seed: int = 0) -> two_tower.FusionFit:
    """The fusion head on the whole pool, fusion chosen on validation (cached: trained once)."""
    return two_tower.fit_two_tower_teacher(features["train"], features["validation"], num_labels, seed=seed)


def pretraining_sweep(features: dict[str, two_tower.TowerFeatures], num_labels: int,
                      label_counts: Iterable[int], seeds: Iterable[int] = (0,)):
    """:func:`~mmkd_core.models.two_tower.head_accuracy_vs_labels` on these splits (each fit cached)."""
    return two_tower.head_accuracy_vs_labels(features["train"], features["validation"], features["test"], num_labels,
                                             label_counts=label_counts, seeds=seeds)


def prepare(config: ExperimentConfig, input_size: int = 128, label_counts: Iterable[int] = (), seed: int = 0) -> str:
    """Features, teacher head and sweep fits of notebook 06, cached; returns a line for the log."""
    start = time.perf_counter()
    features = split_features(config, input_size)
    num_labels = num_classes(config)
    fit = fit_teacher(features, num_labels, seed)
    if label_counts:
        pretraining_sweep(features, num_labels, label_counts, (seed,))
    cached = all(f.from_cache for f in features.values())
    return (f"two-tower teacher ({input_size} px, features {'cached' if cached else 'computed'}): "
            f"{fit.fusion} head, validation {100 * fit.validation_accuracy:.1f}%, {time.perf_counter() - start:.0f} s")
