"""Notebook 01's label-efficiency experiment (mmkd_core.experiments.vision): tiny sizes, CPU, a few seconds."""
import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from mmkd_core.data.digits import load_digits_splits
from mmkd_core.models.vision import TinyVisionSizes
from mmkd_core.training.feature_kd import EarlyStopping, default_config, seed_everything
from mmkd_core.experiments.vision import (
    ALL_LABELS, METHODS, RUN_COLUMNS, LabelEfficiencyConfig, compare, flattened_tokens, probe_accuracy, run_experiment,
    runs_frame, sample_labels_per_class, summarize, train_supervised_student,
)

SIZES = TinyVisionSizes(width=16, num_heads=2, teacher_depth=1, student_depth=1)
TINY = default_config(epochs=2, batch_size=32, progress=False)


@pytest.fixture(scope="module")
def data():
    return load_digits_splits(max_train=120, max_test=40, validation_fraction=0.2, max_validation=40)


def test_validation_split_is_disjoint_from_train_and_test():
    full = load_digits_splits(validation_fraction=0.2)
    plain = load_digits_splits()
    assert len(full.train_labels) + len(full.validation_labels) == len(plain.train_labels)
    torch.testing.assert_close(full.test_images, plain.test_images)  # the test split does not move
    assert load_digits_splits().validation_images is None


def test_k_per_class_sampling_is_stratified_deterministic_and_nested():
    labels = np.repeat(np.arange(4), 12)[np.random.default_rng(0).permutation(48)]
    five = sample_labels_per_class(labels, 5, seed=3)
    assert np.bincount(labels[five]).tolist() == [5, 5, 5, 5]
    assert np.array_equal(five, sample_labels_per_class(labels, 5, seed=3))
    assert not np.array_equal(five, sample_labels_per_class(labels, 5, seed=4))
    assert set(five) <= set(sample_labels_per_class(labels, 10, seed=3))  # more labels only add rows
    assert np.array_equal(sample_labels_per_class(labels, ALL_LABELS, seed=3), np.arange(48))
    with pytest.raises(ValueError, match="fewer than k"):
        sample_labels_per_class(labels, 13, seed=0)
    with pytest.raises(ValueError, match="labels per class must be"):
        sample_labels_per_class(labels, 0, seed=0)


def test_probe_reads_flattened_tokens_and_separates_easy_classes(data):
    seed_everything(0)
    student = SIZES.student()
    assert flattened_tokens(student, data.test_images[:2]).shape == (2, 17 * 16)
    labelled = sample_labels_per_class(data.train_labels, 3, seed=0)
    accuracy = probe_accuracy(student, data, labelled, seed=0)
    assert accuracy == probe_accuracy(student, data, labelled, seed=0)
    assert 0.2 < accuracy <= 1  # even random features beat chance (0.1) on digits


def test_early_stopping_keeps_the_best_epoch_and_stops_after_patience():
    layer = nn.Linear(1, 1, bias=False)
    scores = iter([0.1, 0.5, 0.4, 0.3, 0.2, 0.9])
    stopper = EarlyStopping([layer], lambda: next(scores), patience=3)
    stops = [stopper(epoch) for epoch in range(5)]
    assert stops == [False, False, False, False, True]
    assert (stopper.best_epoch, stopper.epochs) == (2, 5)


def test_restore_best_loads_the_weights_of_the_best_epoch():
    layer = nn.Linear(1, 1, bias=False)
    layer.weight.data.fill_(0.0)
    values = {1.0: 0.2, 2.0: 0.8, 3.0: 0.1}

    def score():
        layer.weight.data += 1
        return values[layer.weight.item()]

    stopper = EarlyStopping([layer], score, patience=1)
    assert [stopper(0), stopper(1), stopper(2)] == [False, False, True]
    stopper.restore_best()
    assert layer.weight.item() == 2.0 and stopper.best_epoch == 2


def test_supervised_student_stops_early_on_validation(data):
    config = LabelEfficiencyConfig(sizes=SIZES, student=dataclasses.replace(TINY, epochs=40, lr=1e-2), patience=2,
                                   min_epoch_examples=64)
    seed_everything(0)
    labelled = sample_labels_per_class(data.train_labels, 2, seed=0)
    _, fit = train_supervised_student(SIZES.student(), data, labelled, config, seed=0)
    assert fit["epochs"] < 40 and fit["best_epoch"] == fit["epochs"] - 2  # stopped by patience, not by the cap


def test_two_seeds_give_the_runs_table_columns(data):
    config = LabelEfficiencyConfig(sizes=SIZES, teacher=TINY, student=TINY, labels_per_class=(2, ALL_LABELS),
                                   patience=1, min_epoch_examples=32)
    runs = run_experiment([0, 1], data, config, log=lambda line: None, workers=1)
    assert list(runs.columns[:len(RUN_COLUMNS)]) == RUN_COLUMNS
    assert set(runs.task) == {"digits"} and set(runs.method) == set(METHODS)
    assert runs["test/accuracy"].between(0, 1).all() and (runs.epochs >= runs.best_epoch).all()
    teacher = runs[runs.method == "teacher"]
    assert len(teacher) == 1 and (teacher.labels_per_class == ALL_LABELS).all()  # one teacher for every seed
    single = compare(runs, "teacher", "supervised student", ALL_LABELS)
    assert single["seeds"] == (1, 2) and single["half"] == 0 and single["resolvable"] == single["baseline_half"]
    assert len(runs[runs.method == "KD student"]) == 4 and runs.labels_per_class.dtype.kind == "i"
    students = runs[runs.method != "teacher"]
    assert students.params.nunique() == 1  # one architecture for every student
    assert (runs[runs.method == "random init"].epochs == 0).all()
    table = summarize(runs)
    assert list(table.method.unique()) == METHODS and set(table.seeds) == {1, 2}


def test_seeds_in_worker_processes_give_the_same_rows(data):
    config = LabelEfficiencyConfig(sizes=SIZES, teacher=TINY, student=TINY, labels_per_class=(2,), patience=1,
                                   min_epoch_examples=32)
    lines = []
    serial = run_experiment([0, 1], data, config, log=lambda line: None, workers=1)
    parallel = run_experiment([0, 1], data, config, log=lines.append, workers=2)
    assert len(lines) == 3 and lines[0].startswith("teacher")  # the teacher, then one line per seed
    pd.testing.assert_frame_equal(serial.drop(columns="train_seconds"), parallel.drop(columns="train_seconds"))


def test_welch_difference_matches_scipy_and_compare_uses_it():
    from scipy import stats

    from mmkd_core.evaluation.stats import difference_ci
    from mmkd_core.experiments.vision import compare

    a, b = [0.90, 0.92, 0.95, 0.91, 0.93], [0.80, 0.86, 0.83, 0.79, 0.88]
    difference, half = difference_ci(a, b)
    welch = stats.ttest_ind(a, b, equal_var=False)
    assert difference == pytest.approx(np.mean(a) - np.mean(b))
    assert half == pytest.approx(welch.confidence_interval(0.95).high - difference)
    runs = runs_frame([dict(task="digits", method=m, seed=s, labels_per_class=5, **{"test/accuracy": v}, params=1,
                            train_seconds=0.0, best_epoch=1, epochs=2)
                       for m, values in [("KD student", a), ("supervised student", b)] for s, v in enumerate(values)])
    result = compare(runs, "KD student", "supervised student", 5)
    assert result["difference"] == pytest.approx(100 * difference) and result["separated"] and result["seeds"] == (5, 5)
