"""Every notebook's training step as a script, for ``accelerate launch`` on several GPUs or nodes.

    .venv/bin/python -m mmkd_core.run student --config configs/student_example.yaml --method kd --seeds 0 1 2
    .venv/bin/accelerate launch --num_processes 8 -m mmkd_core.run student --config configs/student_example.yaml \
        --method msd --method-kwargs '{"weighting": "instance"}' --data transfer --out reports/_scratch/runs/msd

``--config`` is a YAML file of :class:`mmkd_core.experiments.ExperimentConfig` fields (dataset, data_root,
sizes, epochs...; ``configs/`` holds commented examples). ``--set FIELD=VALUE`` overrides the file's
fields and may be given more than once (a later value of a field wins). Experiments:

* ``teacher``: train (or load) the experiment's teacher and print its metrics;
* ``student``: the teacher (cached), its output cache, then one student per seed with ``--method``.
* ``vision``: notebook 01's label-efficiency comparison (BEiT teacher → Data2Vec-vision student, data2vec
  targets) per seed, with the notebook's default sizes; ``--set`` takes ``TinyVisionSizes`` fields and
  ``teacher_epochs`` / ``student_epochs`` (the early-stopping caps). Its feature-KD loop runs in one process (CUDA when present); it is not sharded
  across processes, so it refuses to run under a multi-process launcher rather than train N copies.

Results use the notebooks' format: ``runs.csv`` (one row per seed, same columns as ``*_runs.csv`` in
``reports/tables``) and, per seed, ``steps.csv`` / ``evaluations.csv`` / ``run.json`` and a safetensors checkpoint.
They go to ``--out``, by default ``reports/_scratch/runs/<experiment>/`` (``reports/_fast/runs/...`` with
``MMKD_FAST=1``): like every run outside ``make reproduce``, a script never writes ``reports/`` itself (see
:func:`default_out`). Teachers and their output caches go to ``data/checkpoints`` as in the notebooks.
Only the main process writes; every process prints a checksum of its final weights so a multi-process run
can be checked for agreement (``rank <r> weights <sha1>``).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd
import torch
import yaml
from accelerate import PartialState

from .experiments import (STUDENT_DATA, ExperimentConfig, get_teacher, get_teacher_cache, prepare_data, run_student,
                          split_metrics)
from .reporting import REPO_ROOT, default_reports_dir
from .results import rows_frame
from .training.cache import weights_fingerprint
from .experiments.vision import LabelEfficiencyConfig, run_experiment
from .models.vision import TinyVisionSizes
from .data.digits import load_digits_splits

EXPERIMENTS = ("teacher", "student", "vision")


def load_config(path: str | None, overrides: list[str]) -> ExperimentConfig:
    fields = yaml.safe_load(Path(path).read_text()) if path else {}
    if fields is None:
        fields = {}
    if not isinstance(fields, dict):
        raise ValueError(f"{path}: expected a mapping of ExperimentConfig fields")
    for item in overrides:
        key, _, value = item.partition("=")
        fields[key] = yaml.safe_load(value)
    known = set(ExperimentConfig.__dataclass_fields__)
    unknown = set(fields) - known
    if unknown:
        raise ValueError(f"unknown config fields {sorted(unknown)}; accepted: {sorted(known)}")
    return ExperimentConfig(**fields)


def default_out(experiment: str) -> Path:
    """``reports/_scratch/runs/<experiment>`` (``reports/_fast/runs/<experiment>`` with ``MMKD_FAST=1``).

    The scratch folder every run by hand writes to (:func:`mmkd_core.reporting.default_reports_dir`). That
    function answers ``reports/`` itself inside ``make reproduce`` (``MMKD_REPRODUCE=1``), which never starts
    this script: a shell that inherited the variable still gets the scratch folder, so ``reports/`` keeps
    only what the reproduction wrote.
    """
    folder = default_reports_dir()
    if folder == REPO_ROOT / "reports":
        folder = folder / "_scratch"
    return folder / "runs" / experiment


def announce_weights(state, model, label: str = "") -> None:
    """Print ``rank <r> <label>weights <sha1>`` so a multi-process run can be checked for agreement.

    The buffer is emptied first, so the line goes out in one write and no rank's line splits another's.
    """
    sys.stdout.flush()
    sys.stdout.write(f"rank {state.process_index} {label}weights {weights_fingerprint(model)}\n")
    sys.stdout.flush()


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", choices=EXPERIMENTS)
    parser.add_argument("--config", default=None, help="YAML file of ExperimentConfig fields")
    parser.add_argument("--set", nargs="*", action="extend", default=[], metavar="FIELD=VALUE",
                        help="override config fields (repeatable; a later value of a field wins)")
    parser.add_argument("--method", default="kd")
    parser.add_argument("--method-kwargs", default="{}", help="JSON dict of method parameters")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--data", choices=STUDENT_DATA, default="labelled",
                        help="the student's rows: the labelled ones, or the transfer set (labels hidden after n_labelled)")
    parser.add_argument("--out", default=None, help="output folder (default: reports/_scratch/runs/<experiment>)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = argument_parser().parse_args(argv)

    state = PartialState(cpu=not torch.cuda.is_available())  # CPU-only: gloo across processes
    out = Path(args.out) if args.out else default_out(args.experiment)
    if args.experiment == "vision":
        return run_vision(args, state, out)
    config = load_config(args.config, args.set)
    data = prepare_data(config)
    teacher, info = get_teacher(config, data, progress=state.is_main_process)
    if args.experiment == "teacher":
        metrics = split_metrics(teacher, data)
        announce_weights(state, teacher)
        if state.is_main_process:
            out.mkdir(parents=True, exist_ok=True)
            (out / "teacher.json").write_text(json.dumps({**metrics, **info}, indent=2, default=str))
            print(json.dumps(metrics, indent=2))
        return 0

    cache = get_teacher_cache(teacher, data, config)
    rows = []
    for seed in args.seeds:
        row = run_student(args.method, seed, config, data, cache, json.loads(args.method_kwargs),
                          run_dir=out / f"seed{seed}" if state.is_main_process else None,
                          progress=state.is_main_process, keep_model=True, student_data=args.data)
        announce_weights(state, row.pop("model"), f"seed {seed} ")
        rows.append(row)
    if state.is_main_process:
        frame = rows_frame(rows)
        out.mkdir(parents=True, exist_ok=True)
        frame.to_csv(out / "runs.csv", index=False)
        print(frame.drop(columns=[c for c in frame.columns if c.startswith("validation/")]).to_string(index=False))
    state.wait_for_everyone()
    return 0


def run_vision(args, state, out: Path) -> int:
    """Notebook 01's label-efficiency comparison (teacher, KD student, supervised student, random init) per seed."""
    import dataclasses

    if state.num_processes > 1:
        raise SystemExit("the 'vision' experiment runs in one process (its feature-KD loop is not sharded); "
                         "run it with python -m mmkd_core.run vision, not under accelerate launch / torchrun")
    fields = {k: yaml.safe_load(v) for k, _, v in (item.partition("=") for item in args.set)}
    config = LabelEfficiencyConfig()
    epochs = {k: fields.pop(k, d) for k, d in (("teacher_epochs", config.teacher.epochs),
                                                ("student_epochs", config.student.epochs))}
    config = dataclasses.replace(
        config, sizes=TinyVisionSizes(**fields),
        teacher=dataclasses.replace(config.teacher, epochs=epochs["teacher_epochs"]),
        student=dataclasses.replace(config.student, epochs=epochs["student_epochs"]))
    data = load_digits_splits(image_size=config.sizes.image_size, validation_fraction=0.2)
    frame = run_experiment(args.seeds, data, config, teacher_seed=args.seeds[0])
    out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out / "runs.csv", index=False)
    print(frame.to_string(index=False))
    return 0

if __name__ == "__main__":
    sys.exit(main())
