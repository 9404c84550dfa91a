"""Measuring the benchmark's modality-reliance knobs (notebook 00).

For each knob setting, a small model is trained with cross-entropy on all three views (``ce_views``)
and evaluated on the test split given text only, image only and both. The *cue ceiling*
``cue + (1 − cue) / K`` is what a model reading only the cue would reach; the measured unimodal accuracy
should track it (plus whatever the modality reveals without the cue). The figure is
:func:`mmkd_core.plots.knob_study`.
"""
from __future__ import annotations

from typing import Iterable

import pandas as pd
from tqdm.auto import tqdm

from .multimodal import ExperimentConfig, prepare_data, run_student

VIEW_LABELS = {"joint": "text + image", "text": "text only", "image": "image only"}


def knob_study(settings: Iterable[dict], base: ExperimentConfig, seeds: Iterable[int] = (0,),
               epochs: int = 6) -> pd.DataFrame:
    """Rows: setting × seed × view, with the test accuracy and the analytic cue ceiling."""
    settings, seeds = list(settings), list(seeds)
    rows = []
    with tqdm(total=len(settings) * len(seeds), desc="knob settings") as bar:
        for setting in settings:
            config = base.replace(dataset_options={**base.dataset_options, **setting})
            data = prepare_data(config)
            per_epoch = -(-len(data.train) // (config.student_batch_size or config.batch_size))
            # a fixed budget, not a comparison: every setting trains the same number of epochs
            config = config.replace(student_max_steps=epochs * per_epoch, student_eval_every=per_epoch,
                                    student_patience=None)
            for seed in seeds:
                row = run_student("ce_views", seed, config, data, teacher_cache=None,
                                  eval_views=("joint", "text", "image"))
                k = data.num_labels
                for view in ("joint", "text", "image"):
                    key = "test/accuracy" if view == "joint" else f"test/{view}/accuracy"
                    cue = setting.get("text_cue" if view == "text" else "image_cue", None)
                    rows.append({**setting, "seed": seed, "view": VIEW_LABELS[view],
                                 "accuracy": _view_accuracy(row, view),
                                 "cue ceiling": (cue + (1 - cue) / k) if cue is not None and view != "joint" else None,
                                 "chance": 1 / k, "metric": key})
                bar.update(1)
    return pd.DataFrame(rows)


def _view_accuracy(row: dict, view: str) -> float:
    if view == "joint":
        return row["test/accuracy"]
    return row.get(f"test/{view}/accuracy", float("nan"))
