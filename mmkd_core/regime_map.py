"""Notebook 07's runs: each method's tuning and the regime map's grid, on the run cache (:mod:`mmkd_core.runs`).

What a cell is, what the study's settings are and what its premises mean: :mod:`mmkd_core.experiments.regimes`.
"""
from __future__ import annotations

import pandas as pd
import torch

from .experiments.multimodal import ExperimentConfig, ExperimentData
from .experiments.regimes import CE_LABEL, TUNING_GRIDS, RegimeStudy, Teacher, spec, transfer_size
from .runs import run_grid, tune


def tune_method(label: str, study: RegimeStudy, data: ExperimentData, config: ExperimentConfig, cache,
                seeds, workers=None) -> tuple[dict, pd.DataFrame]:
    """One method's cell chosen on validation (:func:`mmkd_core.runs.tune`) over the learning rate × its knob, on the
    whole transfer set."""
    base = TUNING_GRIDS[label]
    grid = {"config.student_lr": study.learning_rates, **base["grid"]}
    return tune({"label": label, "method": base["method"], "data": "transfer"}, grid, config, data, cache,
                seeds=seeds, workers=workers, desc=f"{label}: tuning on validation")


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
        specs = [spec(label, chosen[teacher.name][label], size) | {"label": f"{label} @{size}"}
                 for size in study.transfer_rows for label in study.methods]
        for row in run_grid(specs, seeds, config, data, teacher.cache,
                            desc=f"regime map, {teacher.name} teacher", workers=workers):
            label, _, size = row["method"].rpartition(" @")
            kept = {k: v for k, v in row.items() if not isinstance(v, (pd.DataFrame, torch.nn.Module))}  # no logs
            rows.append({**kept, "method": label, "teacher": teacher.name,
                         "transfer rows": transfer_size(data, None if size == "None" else int(size))})
    return pd.DataFrame(rows)
