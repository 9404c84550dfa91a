"""Notebook 01's experiment: how many labels does data2vec feature distillation save? One seed at a time.

On the digits' fixed train / validation / test split:
  * teacher, trained once (like the draft's one pretrained checkpoint): the embedded BEiT v2, supervised on every
    training label with random shifts, early stopping on validation accuracy;

and per seed:
  * KD student: a 2-layer Data2Vec student that regresses the teacher's data2vec targets on the training
    images, **without their labels**; early stopping on the data2vec loss of the validation images;
  * supervised student: the same student (same initial weights) trained with cross-entropy through a linear
    head on the flattened tokens, on k labelled images per class, early stopping on validation accuracy;
  * random init: the same initial weights, untrained (the floor).
Every student is then frozen and read by a linear probe fitted on the same k labelled images per class
(:func:`sample_labels_per_class`), on its flattened last-layer tokens (:func:`flattened_tokens`).
The test split is used for the reported accuracy only, never for a choice.

The runs table is summarised and compared by :mod:`mmkd_core.results` (``budget_summary``, ``budget_comparisons``),
in the same words as every notebook's.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import math

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.digits import ImageSplits
from ..labels import ALL_LABELS, budget_name as labels_name  # labels_name: the name notebook 01 reads
from ..evaluation.probes import count_parameters, extract_features, linear_probe_accuracy
from ..losses.data2vec import Data2VecDistillationLoss, Data2VecLossConfig
from ..models.vision import TinyVisionSizes, hidden_states
from ..parallel import parallel_map
from ..training.feature_kd import (
    FeatureClassifier, cache_teacher_targets, default_config, seed_everything, train_classifier, train_feature_kd,
)
from ..training.trainer import TrainConfig, TrainResult

TASK = "digits"
METHODS = ["teacher", "KD student", "supervised student", "random init"]
RUN_COLUMNS = ["task", "method", "seed", "labels_per_class", "test/accuracy", "params", "train_seconds",
               "best_epoch", "epochs"]


@dataclasses.dataclass(frozen=True)
class LabelEfficiencyConfig:
    """Every setting of the experiment. ``TrainConfig.epochs`` is the cap; early stopping ends most runs first.

    Attributes:
        labels_per_class: the k values; :data:`ALL_LABELS` (-1) means every training label.
        patience: epochs without a better validation score before a student's run stops.
        teacher_patience: the same for the teacher, trained once (its validation accuracy moves in small steps).
        teacher_max_shift: the teacher's random translations, in pixels of the upsampled image.
        min_epoch_examples: a labelled set smaller than this is repeated up to it in each epoch, so that
            an epoch (the unit of early stopping) has several steps even at k = 5.
        kd_min_improvement: the relative fall of the validation data2vec loss that counts as an improvement
            for the KD student's early stopping (0.01: 1%).
        probe_C: inverse L2 strength of the linear probe, the same for every model and k.
    """

    sizes: TinyVisionSizes = TinyVisionSizes(teacher_depth=4)
    teacher: TrainConfig = default_config(epochs=60, lr=1e-3, progress=False)
    student: TrainConfig = default_config(epochs=60, lr=2e-3, progress=False)
    loss: Data2VecLossConfig = Data2VecLossConfig()
    labels_per_class: tuple[int, ...] = (5, 10, 25, ALL_LABELS)
    patience: int = 6
    teacher_patience: int = 10
    teacher_max_shift: int = 2
    min_epoch_examples: int = 256
    kd_min_improvement: float = 0.01
    probe_C: float = 1.0

    def __post_init__(self):
        for k in self.labels_per_class:
            check_labels_per_class(k)


def check_labels_per_class(k) -> None:
    """ValueError unless ``k`` is an int >= 1 or :data:`ALL_LABELS`."""
    if k != ALL_LABELS and (isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1):
        raise ValueError(f"labels per class must be an int >= 1 or {ALL_LABELS} (all); got {k!r}")


def sample_labels_per_class(labels: Tensor | np.ndarray, k: int, seed: int) -> np.ndarray:
    """Sorted row indices of k rows per class, drawn with ``seed``; ``k = -1`` returns every row.

    Each class's rows are shuffled once per seed and the first k kept, so for one seed the k = 5 rows are
    among the k = 10 rows (a larger budget only adds labels). Raises if a class has fewer than k rows.
    """
    labels = np.asarray(labels)
    check_labels_per_class(k)
    if k == ALL_LABELS:
        return np.arange(labels.size)
    rng = np.random.default_rng(seed)
    chosen = []
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        if rows.size < k:
            raise ValueError(f"class {label} has {rows.size} rows, fewer than k = {k}")
        chosen.append(rng.permutation(rows)[:k])
    return np.sort(np.concatenate(chosen))


def flattened_tokens(model: nn.Module, pixel_values: Tensor) -> Tensor:
    """The last block's CLS and patch tokens, concatenated: [B, (1 + P)·D]. See the notebook for why not the mean."""
    return hidden_states(model, pixel_values)[-1].flatten(1)


def probe_accuracy(model: nn.Module, data: ImageSplits, labelled: np.ndarray, seed: int, C: float = 1.0) -> float:
    """Test accuracy of a linear probe on ``model``'s frozen flattened tokens, fitted on the ``labelled`` training rows."""
    model.eval()
    device = next(model.parameters()).device
    train_x = extract_features(lambda x: flattened_tokens(model, x), data.train_images[labelled], device=device)
    test_x = extract_features(lambda x: flattened_tokens(model, x), data.test_images, device=device)
    return linear_probe_accuracy(train_x, data.train_labels.numpy()[labelled], test_x, data.test_labels.numpy(),
                                 C=C, seed=seed)


@torch.no_grad()
def classifier_scores(model: nn.Module, images: Tensor, labels: Tensor) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of a classifier on held-out images."""
    model.eval()
    device = next(model.parameters()).device
    logits = torch.cat([model(images[i:i + 256].to(device)).float().cpu() for i in range(0, len(images), 256)])
    return float((logits.argmax(-1) == labels).float().mean()), float(F.cross_entropy(logits, labels))


def _accuracy_score(images: Tensor, labels: Tensor):
    def score(model: nn.Module) -> float:
        accuracy, loss = classifier_scores(model, images, labels)
        return accuracy - 1e-3 * loss  # the loss only breaks ties between equal accuracies
    return score


def _repeat_to(index: np.ndarray, min_examples: int) -> np.ndarray:
    return np.tile(index, math.ceil(min_examples / index.size)) if index.size < min_examples else index


def _fit_record(result: TrainResult) -> dict:
    """A run's columns of the runs table: seconds, the kept epoch and the epochs trained (validated once an epoch)."""
    return dict(train_seconds=result.train_seconds, best_epoch=int(round(result.best_epoch)),
                epochs=int(round(result.trained_epochs)))


def _fit_classifier(model: nn.Module, images: Tensor, labels: Tensor, data: ImageSplits, config: TrainConfig,
                    patience: int, max_shift: int = 0) -> dict:
    """Cross-entropy training with early stopping on validation accuracy; the best epoch's weights are kept."""
    result = train_classifier(model, images, labels, dataclasses.replace(config, patience=patience),
                              max_shift=max_shift,
                              val_score=_accuracy_score(data.validation_images, data.validation_labels))
    return _fit_record(result)


def token_classifier(backbone: nn.Module, sizes: TinyVisionSizes, num_classes: int) -> FeatureClassifier:
    """A linear head on the flattened tokens: the same read-out as the probe, for the teacher and the supervised student."""
    return FeatureClassifier(backbone, num_classes, readout="flattened_tokens",
                             num_tokens=1 + (sizes.image_size // sizes.patch_size) ** 2)


def train_teacher(data: ImageSplits, config: LabelEfficiencyConfig, seed: int) -> tuple[nn.Module, dict]:
    """The teacher backbone and its run row (its own head's test accuracy, every training label, shifted images)."""
    seed_everything(seed)
    teacher = token_classifier(config.sizes.teacher(num_classes=0), config.sizes, data.num_classes)
    fit = _fit_classifier(teacher, data.train_images, data.train_labels, data, dataclasses.replace(config.teacher, seed=seed),
                          config.teacher_patience, max_shift=config.teacher_max_shift)
    accuracy, _ = classifier_scores(teacher, data.test_images, data.test_labels)
    # the students' read-out too (frozen flattened tokens, every label), so the two can be compared either way
    probe = probe_accuracy(teacher.backbone, data, sample_labels_per_class(data.train_labels, ALL_LABELS, seed), seed,
                           config.probe_C)
    return teacher.backbone, dict(method="teacher", seed=seed, labels_per_class=ALL_LABELS,
                                  **{"test/accuracy": accuracy, "probe/accuracy": probe},
                                  params=count_parameters(teacher.backbone), **fit)


@dataclasses.dataclass(frozen=True)
class TeacherTargets:
    """The teacher's data2vec targets for the training and validation images, computed once for every seed."""

    train: Tensor
    validation: Tensor

    @classmethod
    def of(cls, teacher: nn.Module, data: ImageSplits, loss_config: Data2VecLossConfig) -> "TeacherTargets":
        return cls(cache_teacher_targets(teacher, data.train_images, loss_config),
                   cache_teacher_targets(teacher, data.validation_images, loss_config))


def train_kd_student(student: nn.Module, targets: TeacherTargets, data: ImageSplits, config: LabelEfficiencyConfig,
                     seed: int) -> dict:
    """Distil ``student`` in place from the teacher's targets on the unlabelled training images."""
    loss = Data2VecDistillationLoss(config.loss)  # equal widths: no projection head

    def minus_log_validation_loss(pair: nn.Module) -> float:
        device = next(pair.parameters()).device
        prediction = hidden_states(pair.student, data.validation_images.to(device))
        return -math.log(float(pair.loss(prediction, teacher_targets=targets.validation.to(device))))

    # The regression loss keeps creeping down as the learning rate decays; on a log scale, min_improvement asks for
    # a relative improvement, so the run stops once the loss has not fallen by that fraction for `patience` epochs.
    train_config = dataclasses.replace(config.student, seed=seed, patience=config.patience,
                                       min_improvement=config.kd_min_improvement)
    result = train_feature_kd(student, data.train_images, targets.train, loss, train_config,
                              val_score=minus_log_validation_loss)
    return _fit_record(result)


def train_supervised_student(student: nn.Module, data: ImageSplits, labelled: np.ndarray, config: LabelEfficiencyConfig,
                             seed: int) -> tuple[FeatureClassifier, dict]:
    """Train ``student`` in place with a linear head on the ``labelled`` training rows only."""
    classifier = token_classifier(student, config.sizes, data.num_classes)
    rows = torch.from_numpy(_repeat_to(labelled, config.min_epoch_examples))
    fit = _fit_classifier(classifier, data.train_images[rows], data.train_labels[rows], data,
                          dataclasses.replace(config.student, seed=seed), config.patience)
    return classifier, fit


def run_seed(seed: int, data: ImageSplits, targets: TeacherTargets,
             config: LabelEfficiencyConfig = LabelEfficiencyConfig()) -> list[dict]:
    """One seed of the students: per k one row for each student (columns :data:`RUN_COLUMNS` plus
    ``head/accuracy``, the supervised student's own head on the test split). The teacher is trained once,
    by :func:`train_teacher`, and reaches every seed through its ``targets``."""
    if data.validation_images is None:
        raise ValueError("the experiment needs a validation split: load_digits_splits(validation_fraction=...)")
    seed_everything(seed)
    random_student = config.sizes.student()
    kd_student = copy.deepcopy(random_student)
    kd_fit = train_kd_student(kd_student, targets, data, config, seed)
    untrained = dict(train_seconds=0.0, best_epoch=0, epochs=0)
    params = count_parameters(random_student)
    rows = []
    for k in config.labels_per_class:
        labelled = sample_labels_per_class(data.train_labels, k, seed)
        classifier, supervised_fit = train_supervised_student(copy.deepcopy(random_student), data, labelled, config, seed)
        for method, model, fit in [("KD student", kd_student, kd_fit),
                                   ("supervised student", classifier.backbone, supervised_fit),
                                   ("random init", random_student, untrained)]:
            row = dict(method=method, seed=seed, labels_per_class=k,
                       **{"test/accuracy": probe_accuracy(model, data, labelled, seed, config.probe_C)},
                       params=params, **fit)
            if method == "supervised student":
                row["head/accuracy"] = classifier_scores(classifier, data.test_images, data.test_labels)[0]
            rows.append(row)
    return [{"task": TASK, **row} for row in rows]


def _run_seed_on_one_thread(seed: int, data: ImageSplits, targets: TeacherTargets,
                            config: LabelEfficiencyConfig) -> list[dict]:
    """:func:`run_seed` on one CPU thread, in this process or a worker: a seed's numbers do not depend on which."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return run_seed(seed, data, targets, config)
    finally:
        torch.set_num_threads(previous)


def run_experiment(seeds, data: ImageSplits, config: LabelEfficiencyConfig = LabelEfficiencyConfig(),
                   teacher_seed: int = 0, log=print, workers: int | None = None) -> pd.DataFrame:
    """The teacher (once, ``teacher_seed``), then :func:`run_seed` for every seed; the runs table.

    The seeds are independent, so they run in ``workers`` processes (None: one per physical core; 1: here),
    each on one CPU thread: these 2-layer students are too small for a second thread to pay. A seed trains on
    one thread either way, so its rows are the same whichever path ran it.
    """
    teacher, teacher_row = train_teacher(data, config, teacher_seed)
    log(f"teacher: test accuracy {100 * teacher_row['test/accuracy']:.1f}% (own head), best epoch "
        f"{teacher_row['best_epoch']} of {teacher_row['epochs']}, {teacher_row['train_seconds']:.0f} s")
    targets = TeacherTargets.of(teacher, data, config.loss)

    def report(seed: int, seed_rows: list[dict]) -> None:
        log(f"seed {seed}: " + ", ".join(
            f"k={labels_name(r['labels_per_class'])} KD {100 * r['test/accuracy']:.1f}" for r in seed_rows
            if r["method"] == "KD student") + " | " + ", ".join(
            f"supervised {100 * r['test/accuracy']:.1f}" for r in seed_rows if r["method"] == "supervised student"))

    per_seed = parallel_map(functools.partial(_run_seed_on_one_thread, data=data, targets=targets, config=config),
                            seeds, workers, on_result=report)
    rows = [{"task": TASK, **teacher_row}] + [row for seed_rows in per_seed for row in seed_rows]
    return runs_frame(rows)


def runs_frame(rows: list[dict]) -> pd.DataFrame:
    """The per-run table: :data:`RUN_COLUMNS` first, extra columns after."""
    frame = pd.DataFrame(rows)
    return frame[RUN_COLUMNS + [c for c in frame.columns if c not in RUN_COLUMNS]]
