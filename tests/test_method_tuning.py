"""Protocol v3's tuning: the same budget for every method, inherited arguments, tied axes, real runs end to end."""
import pytest

from mmkd_core import method_tuning, runs
from mmkd_core.experiments import CE_ALL_LABELS_LABEL, CE_LABEL, KD_TRANSFER_LABEL, Protocol
from mmkd_core.training.methods import make_method


def cells(axes: dict) -> int:
    count = 1
    for values in axes.values():
        count *= len(values)
    return count


def test_every_method_gets_the_same_number_of_cells_under_the_embedded_protocol():
    protocol = Protocol.embedded()
    counts = {label: cells(method_tuning.axes(label, protocol)) for label in method_tuning.METHOD_GRIDS}
    assert set(counts.values()) == {4}, counts
    assert method_tuning.axes(CE_LABEL, protocol) == {"config.student_lr": protocol.ce_learning_rates}
    assert method_tuning.axes("MSD population", protocol)["text_weight=image_weight"] == protocol.population_values


def test_every_base_spec_builds_its_method_with_every_cell():
    """Each method accepts its fixed arguments and every value of its knob (the tuning would fail mid-grid if not)."""
    protocol = Protocol.embedded()
    for label in method_tuning.METHOD_GRIDS:
        base = method_tuning.base_spec(label, protocol, inherited={"temperature": 2.0})
        for value in method_tuning.axes(label, protocol).get(method_tuning.METHOD_GRIDS[label].knob, [None]):
            cell = {} if value is None else {method_tuning.METHOD_GRIDS[label].knob: value}
            spec = runs._cell_spec(base, cell)
            make_method(spec["method"], **spec["kwargs"])


def test_a_tied_axis_sets_both_arguments():
    spec = runs._cell_spec({"label": "MSD", "method": "msd", "kwargs": {"temperature": 2.0}},
                           {"text_weight=image_weight": 0.5, "config.student_lr": 1e-3})
    assert spec["kwargs"] == {"temperature": 2.0, "text_weight": 0.5, "image_weight": 0.5}
    assert spec["config"] == {"student_lr": 1e-3}


def test_inherited_arguments_come_from_kd_or_the_error_says_so():
    protocol = Protocol.embedded()
    assert method_tuning.base_spec("Gram", protocol, {"temperature": 4.0})["kwargs"]["temperature"] == 4.0
    assert method_tuning.base_spec("Gram", protocol, {"temperature": 4.0})["kwargs"]["gram_temperature"] == \
        protocol.gram_temperature
    with pytest.raises(ValueError, match=r"Gram: its \['temperature'\] come from 'KD \(transfer set\)'"):
        method_tuning.base_spec("Gram", protocol)
    with pytest.raises(ValueError, match="no tuning grid for method 'KD magic'; known: "):
        method_tuning.method_grid("KD magic")


def test_tune_methods_tunes_kd_first_and_hands_its_temperature_on(experiment):
    config, data, cache = experiment
    protocol = Protocol.fast().replace(temperatures=(2.0, 4.0), gram_lams=(1.0,))
    tuned = method_tuning.tune_methods(["Gram", CE_LABEL, KD_TRANSFER_LABEL], protocol, config, data, cache, workers=1)
    assert list(tuned.cells) == ["Gram", CE_LABEL, KD_TRANSFER_LABEL]  # the order asked for
    kd_temperature = tuned.cells[KD_TRANSFER_LABEL]["temperature"]
    assert tuned.spec("Gram")["kwargs"]["temperature"] == kd_temperature
    assert tuned.spec("Gram")["label"] == "Gram" and tuned.spec(CE_LABEL)["data"] == "labelled"
    table = tuned.table
    assert set(table["method"]) == {"Gram", CE_LABEL, KD_TRANSFER_LABEL}
    assert table.groupby("method")["chosen"].sum().eq(1).all()
    # KD's T grid (2, 4) chose an edge, so it was extended once: 3 values, 3 cells at the one learning rate
    assert len(table[table["method"] == KD_TRANSFER_LABEL]) == 3
    chosen = tuned.chosen()
    assert list(chosen["method"]) == ["Gram", CE_LABEL, KD_TRANSFER_LABEL]
    assert chosen.set_index("method").loc[KD_TRANSFER_LABEL, "grid extended"]
    control = method_tuning.all_labels_control(tuned.spec(CE_LABEL))
    assert control["label"] == CE_ALL_LABELS_LABEL and control["data"] == "all_labels"
    assert control["config"] == tuned.spec(CE_LABEL)["config"]
    # the chosen cells evaluate like any run_grid spec
    [row] = runs.run_grid([tuned.spec(KD_TRANSFER_LABEL)], [0], config, data, cache, workers=1)
    assert row["method"] == KD_TRANSFER_LABEL


def test_warmup_and_stopping_reads_each_runs_own_rows(experiment):
    """The warm-up and the step floor come from the rows a run trained on: a transfer-set run has more rows per pass
    than a labelled-rows run, so a longer warm-up."""
    from mmkd_core import analysis

    config, data, cache = experiment
    config = config.replace(student_warmup_epochs=2.0, student_min_steps=4)
    rows = [{"method": "CE", "seed": 0, "data": "labelled", "best_step": 6, "steps": 6},
            {"method": "KD", "seed": 0, "data": "transfer", "best_step": 3, "steps": 6},
            {"method": "teacher", "seed": 1234, "best_step": 9, "steps": 9}]
    table = analysis.warmup_and_stopping(rows, config, data).set_index("method")
    assert list(table.index) == ["CE", "KD"]  # the teacher is not a student run
    assert table.loc["CE", "warm-up steps"] == 2 and table.loc["KD", "warm-up steps"] == 6  # 32 vs 96 rows, batch 32
    assert table.loc["CE", "kept after the warm-up"] and not table.loc["KD", "kept after the warm-up"]
    assert table.loc["CE", "step floor"] >= 4
