"""Methods are registered one per module with their table label and order; results tables read both.

A new method is one new file in mmkd_core/training/methods/: the package imports it, the registry knows its
label and place, and the results tables list its rows there with no list to edit in results.py. The committed
tables keep the row order they had when results.py kept its own list.
"""
from pathlib import Path

import pandas as pd
import pytest

from mmkd_core import results
from mmkd_core.training.methods import METHODS, Method, base, method_for_label, register_method

ROOT = Path(__file__).resolve().parents[1]
TABLES = ROOT / "reports" / "tables"
METHODS_DIR = ROOT / "mmkd_core" / "training" / "methods"


@pytest.fixture
def registry(monkeypatch):
    """A copy of the registry that the test may add to, dropped afterwards (other tests see the real one)."""
    monkeypatch.setattr(base, "METHODS", dict(base.METHODS))
    return base.METHODS


def test_every_module_of_the_package_is_imported_and_registers_its_method():
    modules = {path.stem for path in METHODS_DIR.glob("*.py")} - {"__init__", "base"}
    registered_in = {cls.__module__.rpartition(".")[2] for cls in METHODS.values()}
    assert modules == registered_in
    assert {"ce", "ce_views", "ce_modality_dropout", "kd", "gram", "ce3", "msd", "msd_gram"} <= set(METHODS)


def test_every_method_has_a_label_and_a_place_of_its_own():
    labels = [cls.label for cls in METHODS.values()]
    orders = [cls.order for cls in METHODS.values()]
    assert all(isinstance(label, str) and label for label in labels) and len(set(labels)) == len(labels)
    assert len(set(orders)) == len(orders)
    assert [name for name in sorted(METHODS, key=lambda n: METHODS[n].order) if name in
            ("ce", "kd", "msd", "ce3", "gram", "msd_gram")] == ["ce", "kd", "msd", "ce3", "gram", "msd_gram"]


def test_register_method_sets_label_and_order_and_refuses_a_taken_name_or_label(registry):
    new = register_method("test_only", label="Test only", order=15)(type("TestOnly", (Method,), {}))
    assert (new.name, new.label, new.order) == ("test_only", "Test only", 15) and registry["test_only"] is new
    with pytest.raises(ValueError, match="method name 'kd' is already registered by VanillaKD"):
        register_method("kd", label="Other", order=99)(type("Other", (Method,), {}))
    with pytest.raises(ValueError, match="label 'KD' is already the label of method 'kd'; expected a label of its own"):
        register_method("other", label="KD", order=99)(type("Other", (Method,), {}))
    with pytest.raises(ValueError, match="label must be a non-empty string, got ''"):
        register_method("other", label="", order=99)
    with pytest.raises(ValueError, match="order must be a finite number, got 'first'"):
        register_method("other", label="Other", order="first")
    assert "other" not in registry


@pytest.mark.parametrize("row_label,method", [
    ("CE (no teacher)", "ce"), ("KD (labelled rows only)", "kd"), ("KD (transfer set)", "kd"),
    ("MSD population", "msd"), ("MSD meta", "msd"), ("CE×3 + KD (no Gram)", "ce3"), ("Gram", "gram"),
    ("MSD + Gram", "msd_gram"), ("CE (three views)", "ce_views"), ("teacher", None), ("KDE", None), ("kd", None),
])
def test_a_row_label_names_its_method_by_the_longest_label_it_begins_with(row_label, method):
    found = method_for_label(row_label)
    assert (found.name if found else None) == method


def test_a_new_registered_method_takes_its_place_in_every_table(registry):
    register_method("test_smooth", label="CE + smoothing", order=15)(type("Smooth", (Method,), {}))
    register_method("test_last", label="Last", order=1000)(type("Last", (Method,), {}))
    labels = ["Last (transfer set)", "Gram", "KD (transfer set)", "CE + smoothing", "teacher", "CE (no teacher)",
              "unknown row"]
    expected = ["teacher", "CE (no teacher)", "CE + smoothing", "KD (transfer set)", "Gram", "Last (transfer set)",
                "unknown row"]
    assert results.ordered_methods(labels) == expected
    runs = pd.DataFrame([{"task": "ve", "method": label, "seed": seed, "test/accuracy": 0.5, "validation/accuracy": 0.5,
                          "params": 1, "train_seconds": 1.0} for label in labels for seed in range(2)])
    assert list(results.table1(runs).index) == expected
    assert list(results.side_by_side(runs)["method"]) == expected


def test_rows_of_one_method_keep_their_first_order_and_qualified_rows_follow_the_methods():
    labels = ["teacher (from scratch)", "MSD meta", "KD (transfer set, from-scratch teacher)", "MSD population",
              "KD (transfer set)", "teacher"]
    assert results.ordered_methods(labels) == ["teacher", "KD (transfer set)", "MSD meta", "MSD population",
                                               "KD (transfer set, from-scratch teacher)", "teacher (from scratch)"]
    assert results.qualifies("KD (transfer set, from-scratch teacher)", "KD (transfer set)")
    assert not results.qualifies("KD (transfer set)", "KD (labelled rows only)")
    assert results.label_parts("MSD + Gram") == ("MSD + Gram", ())


# The row order of the committed results, as results.py's hand-kept METHOD_ORDER gave it (per task: plot legends)
COMMITTED_ORDER = {
    "ve": ["teacher", "CE (no teacher)", "KD (labelled rows only)", "KD (transfer set)", "MSD population",
           "MSD instance", "MSD meta", "CE×3 + KD (no Gram)", "Gram", "MSD + Gram"],
    "nlvr": ["teacher", "CE (no teacher)", "KD (labelled rows only)", "KD (transfer set)", "Gram", "MSD + Gram"],
    "memes": ["teacher", "CE (no teacher)", "KD (labelled rows only)", "KD (transfer set)", "Gram", "MSD + Gram"],
    "ve-pretrained": ["teacher", "CE (no teacher)", "KD (labelled rows only)", "KD (transfer set)", "MSD instance",
                      "Gram", "KD (transfer set, from-scratch teacher)", "teacher (from scratch)"],
    "digits": ["teacher", "KD student", "random init", "supervised student"],
    # the easy-VQA section (reports/easy_vqa/tables): notebook 04 runs no CE×3 + KD row off ve
    "easy_vqa": ["teacher", "CE (no teacher)", "KD (labelled rows only)", "KD (transfer set)", "MSD population",
                 "MSD instance", "MSD meta", "Gram", "MSD + Gram"],
    # notebook 06 runs every method on its pretrained teacher (the shapes ve-pretrained rows above predate that)
    "easy_vqa-pretrained": ["teacher", "CE (no teacher)", "KD (labelled rows only)", "KD (transfer set)",
                            "MSD population", "MSD instance", "MSD meta", "Gram", "MSD + Gram",
                            "KD (transfer set, from-scratch teacher)", "teacher (from scratch)"],
}


def committed(name: str) -> pd.DataFrame:
    if not (TABLES / name).exists():
        pytest.skip(f"no committed {name} under {TABLES}")
    return pd.read_csv(TABLES / name)


def test_the_committed_tables_keep_their_row_order():
    committed("04_table1_runs.csv")
    runs = results.collect_report_runs(TABLES.parent)  # what notebook 05 reads: reports/tables and every section's
    assert list(results.side_by_side(runs)["method"]) == list(committed("05_all_methods.csv")["method"])
    assert list(results.claims_check(runs)["comparison"]) == list(committed("05_claims.csv")["comparison"])
    assert list(results.table1(committed("04_table1_runs.csv")).index) == list(committed("04_table1.csv")["method"])
    order = results.ordered_methods(runs["method"])  # what notebook 05 gives its accuracy-vs-cost figures
    by_task = {task: [m for m in order if m in set(runs.loc[runs["task"] == task, "method"])]
               for task in runs["task"].unique()}
    assert by_task == {task: COMMITTED_ORDER[task] for task in by_task}
