"""Live experiment tracking through Accelerate's tracker API, as HF Trainer's ``report_to`` does.

Off by default (``TrainConfig.report_to = None``); the CSV logs of :func:`..trainer.write_run` are
written either way. With ``report_to="tensorboard"`` every training run gets its own TensorBoard run
under ``data/runs/`` (``$MMKD_DATA_DIR/runs``): the loss terms and learning rate per step
(``train/<term>``), the epoch means and validation metrics per epoch (``epoch/<term>``,
``val/<view>/<metric>``), and the training configuration as hyper-parameters. Watch it live with
``tensorboard --logdir data/runs``.

The trainer calls :func:`accelerator_options` (for ``Accelerator(...)``), :func:`start`, :func:`log_step`,
:func:`log_epoch` and :func:`end`; each is a no-op when tracking is off.
"""
from __future__ import annotations

import dataclasses
import re
import time
from pathlib import Path
from typing import Any

import torch

from ..data import default_data_dir

REPORT_TO = ("tensorboard",)  # Accelerate's tracker names that mmkd supports (and tests)


def check_report_to(report_to: Any) -> str | None:
    """``None`` (no tracking) or one of :data:`REPORT_TO`; anything else is a clear ``ValueError``."""
    if report_to is None or (isinstance(report_to, str) and report_to in REPORT_TO):
        return report_to
    raise ValueError(f"report_to={report_to!r}; accepted: None (CSV logs only) or a str, one of {list(REPORT_TO)}")


def runs_dir() -> Path:
    """Where tracker runs go: ``<data dir>/runs`` (git-ignored with the rest of ``data/``)."""
    return default_data_dir() / "runs"


def accelerator_options(report_to: str | None) -> dict[str, Any]:
    """Keyword arguments for ``Accelerator``: the tracker and its folder, or nothing when tracking is off."""
    if check_report_to(report_to) is None:
        return {}
    return {"log_with": report_to, "project_dir": str(runs_dir())}


def run_name(description: str, seed: int) -> str:
    """``<description>/seed<seed>-<time>``: runs of one method group together, and a rerun is a new run."""
    safe = re.sub(r"[^A-Za-z0-9_.+-]+", "_", description).strip("_") or "run"
    return f"{safe}/seed{seed}-{time.strftime('%Y%m%d-%H%M%S')}"


def _hyperparameter(value: Any) -> int | float | str | bool:
    # TensorBoard's hparams accept numbers, strings and bools only
    return value if isinstance(value, (int, float, str, bool)) else str(value)


def start(accelerator, config, description: str) -> None:
    """Open this run's tracker, with ``config`` (a dataclass) stored as hyper-parameters."""
    if getattr(config, "report_to", None) is None:
        return
    hyperparameters = {k: _hyperparameter(v) for k, v in dataclasses.asdict(config).items()}
    accelerator.init_trackers(run_name(description, config.seed), config=hyperparameters)


def _scalars(values: dict[str, Any]) -> dict[str, float]:
    # step and epoch are the axes, not series
    return {k: float(v) for k, v in values.items()
            if k not in ("step", "epoch") and isinstance(v, (int, float, torch.Tensor)) and not isinstance(v, bool)}


def log_step(accelerator, config, row: dict[str, Any], step: int) -> None:
    """One optimisation step's loss terms and learning rate, as ``train/<name>``."""
    if getattr(config, "report_to", None) is not None:
        accelerator.log({f"train/{k}": v for k, v in _scalars(row).items()}, step=step)


def log_epoch(accelerator, config, row: dict[str, Any], step: int) -> None:
    """One epoch's mean loss terms (``epoch/<name>``) and validation metrics (``val/...``, as the trainer names them)."""
    if getattr(config, "report_to", None) is not None:
        accelerator.log({k if k.startswith("val/") else f"epoch/{k}": v for k, v in _scalars(row).items()},
                        step=step)


def end(accelerator, config) -> None:
    """Flush and close the trackers."""
    if getattr(config, "report_to", None) is not None:
        accelerator.end_training()
