"""Notebook 01's label-efficiency experiment (mmkd_core.experiments.vision): tiny sizes, CPU, a few seconds."""
import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from mmkd_core import results
from mmkd_core.data.digits import load_digits_splits
from mmkd_core.evaluation.stats import mean_ci
from mmkd_core.models.vision import TinyVisionSizes
from mmkd_core.training.feature_kd import default_config, seed_everything
from mmkd_core.experiments.vision import (
    ALL_LABELS, METHODS, RUN_COLUMNS, TASK, LabelEfficiencyConfig, flattened_tokens, probe_accuracy, run_experiment,
    runs_frame, sample_labels_per_class, train_supervised_student,
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
    single = results.compare(runs, TASK, "teacher", "supervised student", where={"labels_per_class": ALL_LABELS})
    supervised = runs[(runs.method == "supervised student") & (runs.labels_per_class == ALL_LABELS)]["test/accuracy"]
    assert single["seeds"] == "1 vs 2" and "±" not in single["method"]  # one teacher: a point, not an interval
    assert single["resolvable difference (points)"] == round(100 * mean_ci(supervised)[1], 2)
    assert len(runs[runs.method == "KD student"]) == 4 and runs.labels_per_class.dtype.kind == "i"
    students = runs[runs.method != "teacher"]
    assert students.params.nunique() == 1  # one architecture for every student
    assert (runs[runs.method == "random init"].epochs == 0).all()
    table = results.budget_summary(runs)
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

    a, b = [0.90, 0.92, 0.95, 0.91, 0.93], [0.80, 0.86, 0.83, 0.79, 0.88]
    difference, half = difference_ci(a, b)
    welch = stats.ttest_ind(a, b, equal_var=False)
    assert difference == pytest.approx(np.mean(a) - np.mean(b))
    assert half == pytest.approx(welch.confidence_interval(0.95).high - difference)
    runs = runs_frame([dict(task="digits", method=m, seed=s, labels_per_class=5, **{"test/accuracy": v}, params=1,
                            train_seconds=0.0, best_epoch=1, epochs=2)
                       for m, values in [("KD student", a), ("supervised student", b)] for s, v in enumerate(values)])
    result = results.compare(runs, TASK, "KD student", "supervised student", where={"labels_per_class": 5})
    assert result["difference (points)"] == round(100 * difference, 2) and not result["CIs overlap"]
    assert result["resolvable difference (points)"] == round(100 * half, 2) and result["seeds"] == "5 vs 5"


def _budget_runs() -> pd.DataFrame:
    """Notebook 01's runs in miniature: one teacher (every label), three seeds of each student at k = 5 and all."""
    accuracies = {("KD student", 5): [0.90, 0.92, 0.94], ("KD student", ALL_LABELS): [0.96, 0.97, 0.98],
                  ("supervised student", 5): [0.80, 0.82, 0.84],
                  ("supervised student", ALL_LABELS): [0.95, 0.955, 0.96],
                  ("random init", 5): [0.84, 0.85, 0.86], ("random init", ALL_LABELS): [0.94, 0.95, 0.96]}
    fits = {"KD student": (5, 9, [10.0, 11.0, 12.0]), "supervised student": (3, 6, [1.0, 2.0, 3.0]),
            "random init": (0, 0, [0.0, 0.0, 0.0])}
    rows = [dict(task=TASK, method="teacher", seed=0, labels_per_class=ALL_LABELS, **{"test/accuracy": 0.97}, params=2,
                 train_seconds=30.0, best_epoch=8, epochs=10)]
    rows += [dict(task=TASK, method=method, seed=seed, labels_per_class=k, **{"test/accuracy": value}, params=1,
                  train_seconds=fits[method][2][seed], best_epoch=fits[method][0] + seed - 1, epochs=fits[method][1])
             for (method, k), values in accuracies.items() for seed, value in enumerate(values)]
    return runs_frame(rows)


def test_budget_summary_gives_notebook_01s_table_per_method_and_budget():
    table = results.budget_summary(_budget_runs())
    assert list(table.columns) == ["method", "labels per class", "labels_per_class", "test accuracy (%)",
                                   "95% CI half-width (points)", "best epoch (mean)", "epochs (mean)",
                                   "train seconds (mean)", "seeds"]
    assert list(zip(table.method, table["labels per class"])) == [
        ("teacher", "all"), ("KD student", "5"), ("KD student", "all"), ("supervised student", "5"),
        ("supervised student", "all"), ("random init", "5"), ("random init", "all")]
    kd_5 = table.iloc[1]
    # mean 92; half-width t(0.975, 2) · 2 points / √3 = 4.3027 · 1.1547
    assert kd_5["test accuracy (%)"] == pytest.approx(92.0)
    assert kd_5["95% CI half-width (points)"] == pytest.approx(4.968275)
    assert (kd_5["best epoch (mean)"], kd_5["epochs (mean)"], kd_5["train seconds (mean)"], kd_5.seeds) == (5, 9, 11, 3)
    teacher = table.iloc[0]
    assert teacher.seeds == 1 and np.isnan(teacher["95% CI half-width (points)"])  # one run: no interval


def test_budget_comparisons_compare_each_pair_at_each_budget_in_the_shared_words():
    pairs = [("KD student", "supervised student"), ("supervised student", "random init"),
             ("teacher", "supervised student")]
    reading = results.budget_comparisons(_budget_runs(), TASK, pairs).set_index("comparison")
    assert list(reading.index) == [  # the teacher has runs at "all" only
        "KD student − supervised student (k = 5 per class)", "supervised student − random init (k = 5 per class)",
        "KD student − supervised student (k = all per class)",
        "supervised student − random init (k = all per class)",
        "teacher − supervised student (k = all per class)"]
    kd = reading.loc["KD student − supervised student (k = 5 per class)"]
    # Welch: t(0.975, 4) · √(2 · 0.02² / 3) = 2.7764 · 1.633 points
    assert (kd["difference (points)"], kd["resolvable difference (points)"], kd["CIs overlap"]) == (10.0, 4.53, False)
    assert kd["verdict"] == "KD student beats supervised student (k = 5 per class) by 10.0 points (intervals separate)"
    assert (kd["method"], kd["baseline"], kd["seeds"]) == ("92.0 ± 5.0", "82.0 ± 5.0", "3 vs 3")
    assert kd["labels_per_class"] == 5
    floor = reading.loc["supervised student − random init (k = 5 per class)"]
    assert floor["verdict"] == "the difference (-3.0 points, resolvable ±4.2) is below what this experiment resolves"
    teacher = reading.loc["teacher − supervised student (k = all per class)"]
    # a single teacher is a constant: the resolvable difference is the supervised student's own half-width
    assert (teacher["difference (points)"], teacher["resolvable difference (points)"]) == (1.5, 1.24)
    assert teacher["seeds"] == "1 vs 3"
    assert teacher["verdict"].startswith("teacher beats supervised student")


def test_digits_claims_are_the_budget_comparisons_of_kd_and_the_teacher_line():
    other_task = pd.DataFrame([dict(task="ve", method="teacher", seed=0, **{"test/accuracy": 0.7})])
    runs = pd.concat([_budget_runs(), other_task])
    claims = results.claims_check(runs)
    digits = claims[claims.task == TASK].set_index("comparison")
    assert list(digits.index) == ["KD student − supervised student (k = 5 per class)",
                                  "KD student − supervised student (k = all per class)",
                                  "teacher − supervised student (all labels)"]
    assert digits["difference (points)"].tolist() == [10.0, 1.5, 1.5]
    assert "labels_per_class" not in claims  # the claims table keeps its columns
