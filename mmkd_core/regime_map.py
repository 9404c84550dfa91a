"""Notebook 07's runs: each method's tuning and the regime map's grid, on the run cache (:mod:`mmkd_core.runs`).

What a cell is, what the study's settings are and what its premises mean: :mod:`mmkd_core.experiments.regimes`.
"""
from __future__ import annotations

import pandas as pd

from .experiments.multimodal import ExperimentConfig, ExperimentData
from .experiments.regimes import CE_LABEL, TUNING_GRIDS, RegimeStudy, Teacher, transfer_size
from .results import rows_frame
from .runs import _cell_spec, run_grid, tune


def base_spec(label: str) -> dict:
    """The run_grid spec of one method of the map, before its grid's cell: its method, on the transfer set."""
    return {"label": label, "method": TUNING_GRIDS[label]["method"], "data": "transfer"}


def spec(label: str, cell: dict | None = None, transfer_rows: int | None = None) -> dict:
    """The run_grid spec of one method of the map with the cell :func:`tune_method` chose (its ``config.`` axes
    become student settings, as in :func:`mmkd_core.runs.tune`) and the transfer-set size."""
    made = _cell_spec(base_spec(label), dict(cell or {}))
    return {**made, "label": label, "config": {**made["config"], "transfer_rows": transfer_rows}}


def tune_method(label: str, study: RegimeStudy, data: ExperimentData, config: ExperimentConfig, cache,
                seeds, workers=None) -> tuple[dict, pd.DataFrame]:
    """One method's cell chosen on validation (:func:`mmkd_core.runs.tune`) over the learning rate × its knob, on the
    whole transfer set."""
    grid = {"config.student_lr": study.learning_rates, **TUNING_GRIDS[label]["grid"]}
    return tune(base_spec(label), grid, config, data, cache, seeds=seeds, workers=workers,
                desc=f"{label}: tuning on validation")


def tune_ce(study: RegimeStudy, data: ExperimentData, config: ExperimentConfig, seeds, workers=None
            ) -> tuple[dict, pd.DataFrame]:
    """CE's learning rate chosen on validation: the same number of cells as every other method."""
    return tune({"label": CE_LABEL, "method": "ce", "data": "labelled"}, {"config.student_lr": study.ce_learning_rates},
                config, data, None, seeds=seeds, workers=workers, desc="CE: tuning on validation")


def run_map(study: RegimeStudy, data: ExperimentData, config: ExperimentConfig, teachers: list[Teacher],
            chosen: dict[str, dict[str, dict]], seeds, workers=None) -> pd.DataFrame:
    """Every cell of the map: for each teacher and transfer size, every method with its chosen cell on every seed.
    ``chosen``: teacher → method label → the cell :func:`tune_method` chose. Rows carry ``teacher`` and
    ``transfer rows``."""
    rows = []
    for teacher in teachers:
        # one grid per teacher, so its runs share one worker pool; each run's label names its (method, size) cell
        cells = {f"{label} @{size}": (label, size) for size in study.transfer_rows for label in study.methods}
        specs = [spec(label, chosen[teacher.name][label], size) | {"label": name} for name, (label, size) in cells.items()]
        for row in run_grid(specs, seeds, config, data, teacher.cache,
                            desc=f"regime map, {teacher.name} teacher", workers=workers):
            label, size = cells[row["method"]]
            rows.append({**row, "method": label, "teacher": teacher.name, "transfer rows": transfer_size(data, size)})
    return rows_frame(rows)  # without logs and models
