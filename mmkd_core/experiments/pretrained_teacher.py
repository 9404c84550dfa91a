"""Notebook 06's teacher: frozen pretrained towers plus a trained fusion head, built once and cached.

:func:`split_features` computes (or reads) the towers' features of the experiment's train / validation / test
rows; :func:`fit_teacher` trains (or reads) the fusion head; :func:`pretraining_sweep` fits the head on the
first ``n`` rows for each ``n`` (the "what pretraining buys" curve). Every step is cached under
``data/pretrained/``, so :func:`prepare` (the teachers phase of ``make reproduce``, in parallel with the
from-scratch teachers) and notebook 06 share one computation: the notebook then only trains students.
:func:`is_prepared` says, without loading data or a tower, whether :func:`prepare` already ran with these arguments.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Callable, Iterable

from ..data import load
from ..models import pretrained, two_tower
from ..training import fusion_head
from .multimodal import ExperimentConfig, teacher_rows

SPLITS = ("train", "validation", "test")


def split_features(config: ExperimentConfig, input_size: int = 128,
                   on_split: Callable[[str, two_tower.TowerFeatures], None] | None = None
                   ) -> dict[str, two_tower.TowerFeatures]:
    """Tower features of the experiment's three splits (the students' pool for ``train``), and of the teacher's own
    rows as ``"teacher"`` when the experiment has them (:attr:`~.multimodal.ExperimentConfig.teacher_rows`).

    The towers are loaded only when a split's features are not cached yet. ``on_split(split, features)`` is
    called as each split's features are ready (computed or read), e.g. to report progress.
    """
    loaded: list[tuple] = []

    def towers() -> tuple:
        if not loaded:
            loaded.append(two_tower.load_towers())
        return loaded[0]

    features = {}
    for split in SPLITS:
        features[split] = two_tower.tower_features(load(config.dataset, split, root=config.data_root,
                                                        **config.dataset_options), input_size=input_size, towers=towers)
        if on_split is not None:
            on_split(split, features[split])
    if config.teacher_rows is not None:
        features["teacher"] = two_tower.tower_features(teacher_rows(config, len(features["train"])),
                                                       input_size=input_size, towers=towers)
        if on_split is not None:
            on_split("teacher", features["teacher"])
    return features


def num_classes(config: ExperimentConfig) -> int:
    """The number of classes of the experiment's dataset (its ``label`` column)."""
    return load(config.dataset, "validation", root=config.data_root, **config.dataset_options).features["label"].num_classes


def fit_teacher(features: dict[str, two_tower.TowerFeatures], num_labels: int, seed: int = 0) -> fusion_head.FusionFit:
    """The fusion head on the teacher's labelled rows (its own rows when :func:`split_features` gave them, else the
    students' whole pool), fusion chosen on validation (cached: trained once)."""
    own = features.get("teacher", features["train"])
    return fusion_head.fit_two_tower_teacher(own, features["validation"], num_labels, seed=seed)


def pretraining_sweep(features: dict[str, two_tower.TowerFeatures], num_labels: int,
                      label_counts: Iterable[int], seeds: Iterable[int] = (0,)):
    """:func:`~mmkd_core.training.fusion_head.head_accuracy_vs_labels` on these splits (each fit cached)."""
    return fusion_head.head_accuracy_vs_labels(features["train"], features["validation"], features["test"], num_labels,
                                             label_counts=label_counts, seeds=seeds)


def prepare(config: ExperimentConfig, input_size: int = 128, label_counts: Iterable[int] = (), seed: int = 0,
            on_stage: Callable[[int, int, str], None] | None = None) -> str:
    """Features, teacher head and sweep fits of notebook 06, cached; returns a line for the log.

    ``on_stage(done, total, stage)``, e.g. to report progress, is called as each stage starts, with the stages done
    so far: each split's features, the teacher's head, the head on each of ``label_counts`` (a cache hit too is a
    stage); at the end with ``done == total``. The sweep fits one ``n`` at a time for that; each fit seeds itself,
    so these are the fits of one call over all of them.
    """
    label_counts = [int(n) for n in label_counts]
    own_rows = ["teacher rows features"] if config.teacher_rows is not None else []
    stages = [f"{split} features" for split in SPLITS] + own_rows + ["teacher head"] + [f"head on {n} labels" for n in label_counts]
    done = 0

    def report_next_stage() -> None:  # the stages done so far, and the one that starts now
        nonlocal done
        if on_stage is not None:
            on_stage(done, len(stages), stages[done] if done < len(stages) else "ready")
        done += 1

    start = time.perf_counter()
    report_next_stage()
    features = split_features(config, input_size, on_split=lambda split, _: report_next_stage())
    num_labels = num_classes(config)
    fit = fit_teacher(features, num_labels, seed)
    report_next_stage()
    for n in label_counts:
        pretraining_sweep(features, num_labels, [n], (seed,))
        report_next_stage()
    cached = all(f.from_cache for f in features.values())
    line = (f"two-tower teacher ({input_size} px, features {'cached' if cached else 'computed'}): "
            f"{fit.fusion} head, validation {100 * fit.validation_accuracy:.1f}%, {time.perf_counter() - start:.0f} s")
    record = _prepared_record(config, input_size, label_counts, seed)
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"log": line}) + "\n")
    return line


def is_prepared(config: ExperimentConfig, input_size: int = 128, label_counts: Iterable[int] = (), seed: int = 0
                ) -> bool:
    """Whether :func:`prepare` finished with these arguments, towers and cache versions (it leaves a record), so
    that it would only read caches now. Cheap: no data and no tower is loaded (``make reproduce``'s plan asks)."""
    try:
        return _prepared_record(config, input_size, [int(n) for n in label_counts], seed).is_file()
    except (pretrained.PretrainedPackageMissing, FileNotFoundError):  # no tower weights: nothing was prepared
        return False


def _prepared_record(config: ExperimentConfig, input_size: int, label_counts: list[int], seed: int) -> Path:
    # The features and heads are keyed by the rows' fingerprints, which only loaded data gives; the record is keyed
    # by what determines those rows instead (the configuration), with the towers' weights and the cache versions.
    fields = [config.key(), input_size, label_counts, seed, pretrained.towers_fingerprint(),
              two_tower.FEATURES_VERSION, fusion_head.FIT_VERSION]
    key = hashlib.sha1(json.dumps(fields).encode()).hexdigest()[:16]
    return pretrained.pretrained_dir() / "prepared" / f"two-tower-{key}.json"
