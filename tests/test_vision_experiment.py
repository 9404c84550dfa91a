"""Notebook 01's label-efficiency experiment (mmkd_core.vision_experiment): tiny sizes, CPU, a few seconds."""
import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from mmkd_core.data.digits import load_digits_splits
from mmkd_core.models.vision import TinyVisionSizes
from mmkd_core.training.feature_kd import EarlyStopping, TrainConfig, seed_everything
from mmkd_core.vision_experiment import (
    ALL_LABELS, METHODS, RUN_COLUMNS, LabelEfficiencyConfig, flattened_tokens, probe_accuracy, run_seed, runs_frame,
    sample_labels_per_class, summarize, train_supervised_student,
)

SIZES = TinyVisionSizes(width=16, num_heads=2, teacher_depth=1, student_depth=1)
TINY = TrainConfig(epochs=2, batch_size=32, progress=False)


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
    with pytest.raises(ValueError, match="k must be"):
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


def test_one_seed_gives_the_runs_table_columns(data):
    config = LabelEfficiencyConfig(sizes=SIZES, teacher=TINY, student=TINY, labels_per_class=(2, ALL_LABELS),
                                   patience=1, min_epoch_examples=32)
    runs = runs_frame(run_seed(0, data, config) + run_seed(1, data, config))
    assert list(runs.columns[:len(RUN_COLUMNS)]) == RUN_COLUMNS
    assert set(runs.task) == {"digits"} and set(runs.method) == set(METHODS)
    assert runs["test/accuracy"].between(0, 1).all() and (runs.epochs >= runs.best_epoch).all()
    teacher = runs[runs.method == "teacher"]
    assert len(teacher) == 2 and (teacher.labels_per_class == ALL_LABELS).all()
    assert len(runs[runs.method == "KD student"]) == 4 and runs.labels_per_class.dtype.kind == "i"
    students = runs[runs.method != "teacher"]
    assert students.params.nunique() == 1  # one architecture for every student
    assert (runs[runs.method == "random init"].epochs == 0).all()
    table = summarize(runs)
    assert list(table.method.unique()) == METHODS and set(table.seeds) == {2}
