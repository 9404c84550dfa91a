"""Protocol v2 settings: presets, students' data, hyperparameter choice on validation, Table 1."""
import pandas as pd
import pytest

from mmkd_core import results
from mmkd_core.experiments import PRESETS, ExperimentConfig


def test_presets_hold_the_embedded_sizes_and_changes_override_them():
    config = ExperimentConfig.preset("embedded", "memes")
    assert config.dataset_options == {"task": "memes", **PRESETS["embedded"]["dataset_options"]}
    assert config.n_labelled == 300 and config.dataset_options["n_train"] == 6000
    changed = ExperimentConfig.preset("embedded", "ve", n_labelled=100, dataset_options={"text_cue": 0.0})
    assert changed.n_labelled == 100 and changed.dataset_options["text_cue"] == 0.0
    assert changed.dataset_options["n_train"] == 6000
    # None means "the preset's value", so notebooks can pass their parameters through unchanged
    assert ExperimentConfig.preset("embedded", "ve", n_labelled=None) == ExperimentConfig.preset("embedded", "ve")
    real = ExperimentConfig.preset("embedded", "ve", dataset="hateful_memes", data_root="/x")
    assert real.dataset_options == {} and real.lazy_images
    with pytest.raises(ValueError, match="unknown experiment preset 'huge'"):
        ExperimentConfig.preset("huge")


def test_choose_on_validation_picks_the_best_validation_run_only():
    candidates = [{"temperature": 1.0}, {"temperature": 4.0}, {"temperature": 8.0}]
    rows = [{"validation/accuracy": 0.6, "test/accuracy": 0.9}, {"validation/accuracy": 0.7, "test/accuracy": 0.1},
            {"validation/accuracy": 0.7, "test/accuracy": 0.5}]
    best, table = results.choose_on_validation(candidates, rows)
    assert best == {"temperature": 4.0}  # ties go to the earlier candidate; test accuracy is never read
    assert table["chosen"].tolist() == [False, True, False] and "test/accuracy" not in table
    with pytest.raises(ValueError, match="one run per candidate"):
        results.choose_on_validation(candidates, rows[:2])


def test_table1_has_one_column_per_task_and_split():
    runs = pd.DataFrame([{"task": t, "method": m, "seed": s, "test/accuracy": 0.5 + 0.1 * s,
                          "validation/accuracy": 0.5} for t in ("ve", "memes") for m in ("Gram", "CE (no teacher)")
                         for s in range(3)])
    table = results.table1(runs)
    assert list(table.index) == ["CE (no teacher)", "Gram"]  # the collection's method order
    assert {"ve test", "ve validation", "memes test"} <= set(table.columns)
    assert table.loc["Gram", "seeds per task"] == 3


def test_tables_mark_a_method_not_run_on_a_task_and_keep_each_teachers_size():
    rows = [{"task": t, "method": m, "seed": s, "test/accuracy": 0.6, "validation/accuracy": 0.6, "params": p,
             "train_seconds": 1.0, "epochs": 2.0}
            for t, m, p in (("ve", "teacher", 100), ("ve-pretrained", "teacher", 300), ("ve", "CE (no teacher)", 10),
                            ("ve", "CE×3 + KD (no Gram)", 10), ("memes", "CE (no teacher)", 10))
            for s in range(2)]
    runs = pd.DataFrame(rows)
    wide = results.side_by_side(runs).set_index("method")
    assert wide.loc["CE×3 + KD (no Gram)", "memes test"] == "—"  # not run there: a dash, not NaN
    assert wide.loc["teacher", "params"] == "100 / 300"  # two teachers, both sizes shown
    assert results.table1(runs).loc["CE×3 + KD (no Gram)", "memes test"] == "—"


def test_student_floor_counts_passes_over_the_students_own_rows():
    from mmkd_core.experiments import student_train_config

    config = ExperimentConfig.preset("embedded", "ve")  # batch 128, 17 passes
    assert student_train_config(config, 0, range(300)).min_steps == 17 * 3  # 300 labelled rows: 3 batches a pass
    assert student_train_config(config, 0, range(6000)).min_steps == 17 * 47  # the transfer set: 47 batches
    assert student_train_config(ExperimentConfig.preset("fast", "ve"), 0, range(6000)).min_steps == 0


def test_paired_comparison_uses_the_per_seed_differences():
    """Seeds share initialisation and batch order across methods: the paired interval is that of the differences.
    Golden values: differences (2, 4, 3) points → mean 3, s = 1, t_{0.975, 2} = 4.303 → ± 2.48."""
    runs = pd.DataFrame({"task": "ve", "method": ["A"] * 4 + ["B"] * 3, "seed": [0, 1, 2, 9, 0, 1, 2],
                         "test/accuracy": [0.70, 0.60, 0.80, 0.99, 0.68, 0.56, 0.77]})
    line = results.compare_paired(runs, "ve", "A", "B")
    assert line["pairs"] == 3 and line["paired difference (points)"] == 3.0  # seed 9 has no partner
    assert line["resolvable difference (points)"] == pytest.approx(2.48, abs=0.01) and line["separated"]
    welch = results.compare(runs[runs.seed < 9], "ve", "A", "B")
    assert welch["resolvable difference (points)"] > 5 * line["resolvable difference (points)"]  # unpaired: noise
    assert results.compare_paired(runs, "ve", "A", "C") is None
