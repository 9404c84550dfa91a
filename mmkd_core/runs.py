"""Running many student runs: a cache of finished runs, and worker processes for independent ones.

**Run cache.** A finished run is stored under ``data/run-cache/<key>/`` where the key hashes everything
that defines it: the experiment configuration, the teacher (its weights' fingerprint), the method and its
arguments, the seed, the student's data (labelled rows or transfer set) and a hash of the package source
that trains it. Asking for the same run again loads it; changing any part of the key trains anew. An
entry is written to a temporary folder and renamed into place, and it is read back in full before it is
trusted: a partial or corrupt entry is trained again. ``MMKD_FRESH=1`` ignores the runs cached before the
reproduction (or the process) started, and rewrites them; a run trained since is shared as usual, so notebooks that
share a run still train it once (:func:`fresh_since`).

**Workers.** :func:`run_grid` sends the runs the cache does not hold to ``workers`` processes, each on one
CPU thread (these 2-layer students are too small for a second thread to pay, so independent runs in
parallel use the cores better). Every run, serial or parallel, trains on one thread, so a result is
bit-identical whichever path trained it (tested). Workers start by ``spawn`` (:mod:`mmkd_core.parallel`).
The pool outlives its grid and serves the next grid of the same
experiment (:func:`worker_pool`).
"""
from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import dataclasses
import functools
import hashlib
import itertools
import json
import os
import shutil
import time
import traceback
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .data import default_data_dir
from .experiments import (STUDENT_FIELDS, ExperimentConfig, ExperimentData, pretrained_teacher, run_student, setup,
                          slug, teacher_checkpoint_exists)
from .models.multimodal import MultimodalClassifier
from .parallel import default_workers, parallel_map, process_pool, stop_pool, submit_all
from .sources import imported_modules, module_files
from .progress import ProgressCallback, TeacherReporter, forwarded_events
from .training.cache import TeacherCache
from .training.methods import make_method
from .training.trainer import resolve_precision, uses_cpu

LOG_FRAMES = ("step_log", "evaluation_log", "weights", "gram_snapshots")
RUN_ENTRY_MODULE = "mmkd_core.runs"
"""Where a student run starts: a worker process imports this module, and with it every module it imports."""


def training_modules() -> list[str]:
    """Every module of the package a student run imports: the module-level import closure of
    :data:`RUN_ENTRY_MODULE`, parent packages included (importing ``a.b`` runs ``a/__init__``).

    Computed from the source, so a new module (a new method's file, a new loss) enters the run cache's key
    the moment a run imports it, with no list to keep. The methods package imports its folder at run time
    (:func:`~mmkd_core.sources.import_submodules`); the parser reads that call as an import of each module there,
    so a new method's file is in the key although no statement names it. Modules no run imports (plots, results,
    notebook 01's vision code, the drivers) stay out: editing them must not invalidate every cached run. Imports
    inside functions are deferred and left out; the teacher enters the key through its weights' fingerprint.
    """
    known = module_files()
    seen, todo = set(), [RUN_ENTRY_MODULE]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts)) if ".".join(parts[:i]) in known]
        todo += sorted(imported_modules(known[name], known, name=name))
    return sorted(seen)


def source_hash() -> str:
    """SHA-1 of the source of :func:`training_modules` (any edit there invalidates cached runs).

    Reading the import closure parses the package (~0.1 s) and :func:`run_grid` asks once per run, so the hash is
    kept per state of the package's files (path, modification time and size of each): an edit is still seen at once.
    """
    state = tuple(sorted((name, str(path), path.stat().st_mtime_ns, path.stat().st_size)
                         for name, path in module_files().items()))
    return _source_hash_of(state)


@functools.lru_cache(maxsize=8)
def _source_hash_of(state: tuple) -> str:
    known = {name: Path(path) for name, path, *_ in state}
    digest = hashlib.sha1()
    for name in training_modules():
        digest.update(name.encode())
        digest.update(known[name].read_bytes())
    return digest.hexdigest()[:16]


def fresh() -> bool:
    return os.environ.get("MMKD_FRESH", "0") == "1"


FRESH_SINCE_ENV = "MMKD_FRESH_SINCE"


def fresh_since() -> float | None:
    """With ``MMKD_FRESH=1``: the moment (seconds since the epoch) before which cached runs are ignored; else None.

    ``make reproduce`` sets it once, as it starts, for every notebook kernel it launches: a run one notebook trains
    is then a cache hit for the next notebook, and only what was cached before the reproduction is retrained.
    (Ignoring the cache outright retrained notebook 02's runs again in 03 and 04.) Elsewhere it is fixed at the
    first call in the process.
    """
    if not fresh():
        return None
    return float(os.environ.setdefault(FRESH_SINCE_ENV, repr(time.time())))


@dataclasses.dataclass
class RunSpec:
    """One student run of a grid: what to train, with which seed, on which data."""

    label: str
    method: str
    seed: int
    kwargs: dict = dataclasses.field(default_factory=dict)
    data: str = "labelled"
    config: dict = dataclasses.field(default_factory=dict)  # the student's ExperimentConfig fields for this run

    @classmethod
    def from_dict(cls, spec: dict, seed: int) -> "RunSpec":
        unknown = set(spec) - {"label", "method", "kwargs", "data", "seeds", "config"}
        if unknown or "label" not in spec or "method" not in spec:
            raise ValueError(f"a run spec is a dict with 'label', 'method' and optional 'kwargs', 'data', 'seeds', "
                             f"'config'; got keys {sorted(spec)}")
        changes = dict(spec.get("config") or {})
        teacher_fields = sorted(set(changes) - set(STUDENT_FIELDS))
        if teacher_fields:
            raise ValueError(f"run spec {spec['label']!r}: 'config' may change the student's ExperimentConfig fields "
                             f"{sorted(STUDENT_FIELDS)}, not {teacher_fields} (those define the teacher: open another "
                             f"experiment)")
        return cls(spec["label"], spec["method"], seed, dict(spec.get("kwargs") or {}), spec.get("data", "labelled"),
                   changes)

    def experiment_config(self, config: ExperimentConfig) -> ExperimentConfig:
        """The experiment's configuration with this run's own student settings (``config`` of its spec)."""
        return config.replace(**self.config) if self.config else config


def rows_key(rows) -> str:
    """What a student reads of a dataset: the hash of its row indices and visible labels (in-memory data), or its
    fingerprint and labelled-row count (lazily decoded data, whose derived fingerprints name every subset).

    Keying on the data's *name* ("transfer") served one transfer set's results for another of another size.
    """
    if rows is None:  # no such split (e.g. no validation): nothing read
        return "none"
    tensors = getattr(rows, "tensors", None)
    if tensors is None:
        return f"{getattr(rows, 'fingerprint', len(rows))}|labelled<{getattr(rows, 'labelled_rows', 'all')}"
    digest = hashlib.sha1(str(getattr(rows, "source_fingerprint", "")).encode())
    for name in ("index", "labels"):
        digest.update(tensors[name].contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def run_key(spec: RunSpec, config: ExperimentConfig, teacher_cache: TeacherCache | None, data: ExperimentData,
            eval_views: Iterable[str] = ("joint",)) -> str:
    """The run cache's key: everything that defines what the run computes, never its display label."""
    method = make_method(spec.method, **spec.kwargs)  # normalised: defaults filled in, bad kwargs rejected here
    config = spec.experiment_config(config)
    # "native" precision means bf16 on one machine and float32 on another: key the run on what it resolves to
    settings = dataclasses.asdict(config)
    settings["student_precision"] = resolve_precision(config.student_precision, uses_cpu())
    fields = {"config": settings, "method": method.describe(), "seed": spec.seed,
              "data": spec.data,
              "rows": rows_key(data.student_rows(spec.data, method.learns_on_meta_data, config.transfer_rows)),
              "meta": rows_key(data.meta_rows_for(method.learns_on_meta_data)) if method.learns_on_meta_data else None,
              "validation": rows_key(data.validation), "eval_views": list(eval_views), "source": source_hash(),
              "teacher": teacher_cache.teacher_key if (teacher_cache is not None and method.needs_teacher) else None}
    return hashlib.sha1(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:20]


def cache_root() -> Path:
    return default_data_dir() / "run-cache"


# ---------------------------------------------------------------- one entry on disk
def save_entry(row: dict[str, Any], folder: Path) -> None:
    """Write a finished run atomically: a temporary folder renamed into place, ``complete`` written last."""
    folder = Path(folder)
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    scalars = {k: v for k, v in row.items() if k not in LOG_FRAMES and k != "model"}
    (tmp / "row.json").write_text(json.dumps(scalars, default=float))
    for name in LOG_FRAMES:
        if isinstance(row.get(name), pd.DataFrame):
            row[name].to_csv(tmp / f"{name}.csv", index=False)
    if isinstance(row.get("model"), MultimodalClassifier):
        row["model"].save(tmp / "model")
    (tmp / "complete").write_text("ok\n")
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


def load_entry(folder: Path, keep_model: bool, written_since: float | None = None) -> dict[str, Any] | None:
    """The cached row, or None when the entry is missing, partial or unreadable, or was written before
    ``written_since`` (seconds since the epoch; see :func:`fresh_since`): then it is retrained."""
    folder = Path(folder)
    if not (folder / "complete").exists():
        return None
    if written_since is not None and (folder / "complete").stat().st_mtime < written_since:
        return None
    try:
        row = json.loads((folder / "row.json").read_text())
        for name in LOG_FRAMES:
            if (folder / f"{name}.csv").exists():
                row[name] = pd.read_csv(folder / f"{name}.csv")
        if keep_model:
            row["model"] = MultimodalClassifier.load(folder / "model")
    except Exception:  # noqa: BLE001 - any damage means "not cached"; the run is trained again
        return None
    row["cached"] = True
    return row


# ---------------------------------------------------------------- training one run
def _train_one(spec: RunSpec, config: ExperimentConfig, data: ExperimentData, teacher_cache,
               run_root: str | None, eval_views: tuple[str, ...], threads: int) -> dict[str, Any]:
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        row = run_student(spec.method, spec.seed, spec.experiment_config(config), data, teacher_cache,
                          method_kwargs=spec.kwargs,
                          label=spec.label, keep_model=True, eval_views=eval_views, student_data=spec.data,
                          run_dir=None if run_root is None else Path(run_root) / slug(spec.label) / f"seed{spec.seed}")
    finally:
        torch.set_num_threads(previous)
    row["cached"] = False
    return row


_WORKER_STATE: dict[str, Any] = {}


def _worker_init(config, data, teacher_cache, run_root, eval_views, threads):
    _WORKER_STATE.update(config=config, data=data, teacher_cache=teacher_cache, run_root=run_root,
                         eval_views=eval_views, threads=threads)


def _worker_run(spec: RunSpec) -> dict[str, Any]:
    state = _WORKER_STATE
    try:
        return _train_one(spec, state["config"], state["data"], state["teacher_cache"], state["run_root"],
                          state["eval_views"], state["threads"])
    except Exception as error:  # noqa: BLE001 - re-raised in the parent with the run's name
        raise RuntimeError(f"run {spec.label!r} (method {spec.method!r}, seed {spec.seed}) failed in a worker: "
                           f"{type(error).__name__}: {error}\n{traceback.format_exc()}") from None


_POOL: dict[str, Any] = {}


def worker_pool(workers: int, initargs: tuple) -> concurrent.futures.ProcessPoolExecutor:
    """The process pool for a grid, kept alive for the next grid of the same experiment.

    Starting a pool costs ~5 s on 2 cores (each worker imports torch and transformers and receives the
    experiment's data); a notebook runs several grids on one experiment (a grid chosen on validation, then the
    table's runs). The pool is reused when the next grid passes the *same* data and teacher-cache objects and
    equal settings; anything else closes it and starts another. Kept references stop those objects' ids from
    being reused.
    """
    config, data, teacher_cache, *settings = initargs
    held = _POOL.get("initargs")
    if (held is not None and _POOL["workers"] == workers and held[0] == config and held[1] is data
            and held[2] is teacher_cache and list(held[3:]) == settings):
        return _POOL["pool"]
    close_worker_pool()
    pool = process_pool(workers, initializer=_worker_init, initargs=initargs)
    _POOL.update(pool=pool, workers=workers, initargs=initargs)
    return pool


def close_worker_pool(interrupted: bool = False) -> None:
    """Shut the kept pool down (at exit, or before a pool for another experiment starts); ``interrupted``:
    terminate its workers at once (:func:`mmkd_core.parallel.stop_pool`)."""
    pool = _POOL.pop("pool", None)
    _POOL.clear()
    if pool is not None:
        stop_pool(pool, interrupted)


atexit.register(close_worker_pool)


def run_grid(specs: list[dict], seeds: Iterable[int], config: ExperimentConfig, data: ExperimentData,
             teacher_cache: TeacherCache | None, desc: str = "students", run_root: str | Path | None = None,
             workers: int | None = None, use_cache: bool = True, eval_views: Iterable[str] = ("joint",),
             threads_per_run: int = 1) -> list[dict]:
    """Every spec (``{"label", "method", "kwargs", "data"}``) for every seed, one progress bar.

    A spec with its own ``"seeds"`` list runs those instead (a one-off run can then share the pool with a
    table's runs instead of holding a core idle in a grid of its own). Rows come back in spec × seed order
    whatever finished first. The first seed's row of each spec keeps
    its trained ``model`` (for throughput and figures). ``workers``: processes for the runs the cache does
    not hold (None: one per physical core; 1: in this process). With ``run_root``, runs that are trained
    also write their logs and checkpoint to ``<run_root>/<label>/seed<k>/``.
    """
    seeds = list(seeds)
    seeds_of = {spec["label"]: list(spec.get("seeds", seeds)) for spec in specs}
    if not all(seeds_of.values()):
        raise ValueError(f"every spec needs at least one seed; got {seeds_of}")
    runs = [RunSpec.from_dict(spec, seed) for spec in specs for seed in seeds_of[spec["label"]]]
    first_seed = {label: spec_seeds[0] for label, spec_seeds in seeds_of.items()}
    eval_views = tuple(eval_views)
    keys = [run_key(run, config, teacher_cache, data, eval_views) for run in runs]
    results: list[dict | None] = [None] * len(runs)
    with tqdm(total=len(runs), desc=desc) as bar:
        todo = []
        for i, (run, key) in enumerate(zip(runs, keys)):
            cached = load_entry(cache_root() / key, keep_model=True, written_since=fresh_since()) if use_cache else None
            if cached is not None:  # the label is a name, not part of the key: the same run may have served
                cached["method"] = run.label  # under another name (a grid cell that became a table row)
                results[i] = cached
                bar.update(1)
            else:
                todo.append(i)
        pool_size = default_workers() if workers is None else workers
        workers = min(pool_size, len(todo))
        root = None if run_root is None else str(run_root)

        def finish(i: int, row: dict) -> None:
            if use_cache:
                save_entry(row, cache_root() / keys[i])
            results[i] = row
            bar.set_postfix_str(f"{runs[i].label} seed {runs[i].seed}")
            bar.update(1)

        if workers <= 1:
            for i in todo:
                finish(i, _train_one(runs[i], config, data, teacher_cache, root, eval_views, threads_per_run))
        elif todo:
            # Longest runs first: the pool then ends on short runs instead of one worker finishing a long run
            # alone while the others idle (results keep spec x seed order; each run is seeded on its own).
            todo.sort(key=lambda i: -expected_cost(runs[i], data))
            pool = worker_pool(pool_size, (config, data, teacher_cache, root, eval_views, threads_per_run))
            futures = {future: todo[position] for future, position
                       in submit_all(pool, _worker_run, [runs[i] for i in todo]).items()}
            try:
                for future in concurrent.futures.as_completed(futures):
                    finish(futures[future], future.result())
            except BaseException:  # a failed or interrupted grid leaves no half-used workers behind
                close_worker_pool(interrupted=True)
                raise
    for row, run in zip(results, runs):
        if run.seed != first_seed[run.label]:
            row.pop("model", None)
    return results


def run_grid_over_teachers(specs: list[dict], seeds: Iterable[int], experiments: list, **options) -> list[dict]:
    """:func:`run_grid` where student seed s distils teacher ``s mod len(experiments)`` (experiments of one task that
    differ only in the teacher's seed, :func:`mmkd_core.experiments.open_experiments`): a claim then averages over
    teachers as well as student seeds. Rows come back in spec × seed order, each with its ``teacher_seed``."""
    seeds = list(seeds)
    if not experiments:
        raise ValueError("run_grid_over_teachers needs at least one experiment (one per teacher)")
    rows: dict[tuple[str, int], dict] = {}
    for i, experiment in enumerate(experiments):
        mine = [seed for seed in seeds if seed % len(experiments) == i]
        if not mine:
            continue
        own = [{**spec, "seeds": [s for s in spec.get("seeds", seeds) if s % len(experiments) == i]} for spec in specs]
        own = [spec for spec in own if spec["seeds"]]
        for row in run_grid(own, mine, experiment.config, experiment.data, experiment.cache, **options):
            rows[(row["method"], row["seed"])] = {**row, "teacher_seed": experiment.config.teacher_seed}
    return [rows[(spec["label"], seed)] for spec in specs for seed in spec.get("seeds", seeds)
            if (spec["label"], seed) in rows]


def expected_cost(run: RunSpec, data: ExperimentData) -> float:
    """A run's relative cost, for ordering a grid: training rows (the step floor and early stopping scale with
    them) × the student's views (a three-view step costs ~1.5× a joint one) × 1.5 for meta-learned weights."""
    method = make_method(run.method, **run.kwargs)
    rows = len(data.student_rows(run.data, transfer_rows=run.config.get("transfer_rows")))
    views = 1.0 + 0.25 * (len(method.student_views) - 1)
    meta = 1.5 if getattr(method, "weighting", None) == "meta" else 1.0
    return rows * views * meta


def tune_kd(config: ExperimentConfig, data: ExperimentData, teacher_cache: TeacherCache,
            temperatures: Iterable[float], alphas: Iterable[float], seed: int = 0, workers: int | None = None
            ) -> tuple[dict, pd.DataFrame]:
    """T and α for KD chosen on validation: one run per candidate (KD on the transfer set, one seed).

    Every notebook that needs "KD as tuned" calls this with the same arguments and gets the cached runs,
    so the choice is made once and shared.
    """
    from .results import choose_on_validation

    candidates = [{"temperature": float(t), "alpha": float(a)} for t in temperatures for a in alphas]
    if not candidates:
        raise ValueError("tune_kd needs at least one temperature and one alpha")
    rows = run_grid([{"label": f"KD T={c['temperature']:g} α={c['alpha']:g}", "method": "kd", "kwargs": c,
                      "data": "transfer"} for c in candidates], [seed], config, data, teacher_cache,
                    desc="KD: T × α on validation", workers=workers)
    return choose_on_validation(candidates, rows)


CONFIG_AXIS = "config."
"""Prefix of a tuning axis that is a student field of ExperimentConfig (``"config.student_lr"``), not a method
argument."""


TIED_AXIS = "="  # an axis "text_weight=image_weight" sets both arguments to the cell's value


def _cell_spec(base: dict, cell: dict) -> dict:
    """The run_grid spec of one cell of a grid: method arguments, ``config.`` student fields and tied axes
    (``"a=b"``: both arguments take the value)."""
    kwargs = {**(base.get("kwargs") or {}),
              **{name: v for k, v in cell.items() if not k.startswith(CONFIG_AXIS) for name in k.split(TIED_AXIS)}}
    config = {**(base.get("config") or {}),
              **{k.removeprefix(CONFIG_AXIS): v for k, v in cell.items() if k.startswith(CONFIG_AXIS)}}
    shown = ", ".join(f"{k.removeprefix(CONFIG_AXIS)}={v:g}" if isinstance(v, float) else
                      f"{k.removeprefix(CONFIG_AXIS)}={v}" for k, v in cell.items())
    return {**{k: v for k, v in base.items() if k != "seeds"}, "label": f"{base['label']} [{shown}]",
            "kwargs": kwargs, "config": config}


def _beyond_edge(values: list, chosen) -> float | None:
    """The value one step past ``chosen`` when it is the edge of the numeric ``values`` (geometric for positive
    values, else arithmetic), or None when it is inside the grid or the axis is not numeric."""
    if len(values) < 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return None
    ordered = sorted(values)
    if chosen not in (ordered[0], ordered[-1]):
        return None
    edge, neighbour = (ordered[-1], ordered[-2]) if chosen == ordered[-1] else (ordered[0], ordered[1])
    if edge > 0 and neighbour > 0:
        return float(edge * (edge / neighbour))
    return float(edge + (edge - neighbour))


def tune(base: dict, grid: dict[str, Iterable], config: ExperimentConfig, data: ExperimentData,
         teacher_cache: TeacherCache | None, seeds: Iterable[int], metric: str = "validation/accuracy",
         extend_edges: bool = True, workers: int | None = None, desc: str | None = None) -> tuple[dict, pd.DataFrame]:
    """One method's hyperparameters chosen on validation, the same way for every method (protocol v3).

    ``base`` is a :func:`run_grid` spec (label, method, kwargs, data); ``grid`` maps each axis to its values: a
    method argument (``"temperature"``) or, prefixed ``config.``, a student field of the experiment
    (``"config.student_lr"``). Every cell (the product of the axes) trains on every one of ``seeds`` (the tuning
    seeds, apart from the evaluation seeds); the cell with the best mean ``metric`` wins (ties: the earlier cell).
    With ``extend_edges``, a numeric axis whose chosen value is an edge of its grid is extended once, one step
    beyond that edge (× the edge's ratio to its neighbour), and the choice is made again over every cell; a value
    the method refuses (e.g. α > 1) is not tried. Returns the chosen cell (axis → value) and the table of every cell:
    its values, mean and per-seed metric, whether it came from an extension, and which was chosen.
    """
    from .results import choose_on_validation

    axes = {axis: list(values) for axis, values in grid.items()}
    if not axes or not all(axes.values()):
        raise ValueError(f"tune: every axis needs at least one value; got {axes}")
    seeds = list(seeds)
    extended: set[tuple] = set()

    def cells_of(values_per_axis: dict[str, list]) -> list[dict]:
        return [dict(zip(values_per_axis, values)) for values in itertools.product(*values_per_axis.values())]

    def evaluate(cells: list[dict]) -> list[dict]:
        rows = run_grid([_cell_spec(base, cell) for cell in cells], seeds, config, data, teacher_cache,
                        desc=desc or f"{base['label']}: tuning on validation", workers=workers)
        measured = []
        for i, cell in enumerate(cells):  # run_grid returns spec x seed order
            per_seed = {seed: row[metric] for seed, row in zip(seeds, rows[i * len(seeds):(i + 1) * len(seeds)])}
            measured.append({**cell, f"{metric} (mean)": float(np.mean(list(per_seed.values()))), "seeds": len(seeds),
                             **{f"{metric} (seed {seed})": value for seed, value in per_seed.items()}})
        return measured

    measured = evaluate(cells_of(axes))
    chosen, _ = choose_on_validation([{a: m[a] for a in axes} for m in measured], measured, f"{metric} (mean)")
    if extend_edges:
        grown = dict(axes)
        for axis, values in axes.items():
            beyond = _beyond_edge(values, chosen[axis])
            if beyond is None:
                continue
            try:
                _check_cell(base, {**chosen, axis: beyond})
            except ValueError:
                continue  # the method does not accept it: the edge stays the edge
            grown[axis] = values + [beyond]
            extended.add((axis, beyond))
        if extended:
            known = [{a: m[a] for a in axes} for m in measured]
            new_cells = [c for c in cells_of(grown) if c not in known]
            measured += evaluate(new_cells)
            chosen, _ = choose_on_validation([{a: m[a] for a in grown} for m in measured], measured,
                                             f"{metric} (mean)")
    table = pd.DataFrame(measured)
    table["from the edge extension"] = [any((axis, row[axis]) in extended for axis in axes) for row in measured]
    table["chosen"] = [all(row[axis] == chosen[axis] for axis in axes) for row in measured]
    return chosen, table


def _check_cell(base: dict, cell: dict) -> None:
    """Raise ValueError when the method refuses this cell's arguments or the run spec its student settings (the
    checks :func:`run_grid` would meet)."""
    spec = RunSpec.from_dict(_cell_spec(base, cell), seed=0)
    make_method(spec.method, **spec.kwargs)


def teacher_setting(entry: dict) -> tuple[ExperimentConfig, dict | None]:
    """An entry of the teachers list: its experiment's configuration, and its two-tower arguments (None: a
    from-scratch teacher)."""
    fields = dict(entry)
    preset, task = fields.pop("preset", "embedded"), fields.pop("task", "ve")
    two_tower = fields.pop("two_tower", None)
    return ExperimentConfig.preset(preset, task, **fields), two_tower


def teacher_label(entry: dict) -> str:
    """A short name for an entry of the teachers list, e.g. ``embedded/ve text_cue=0.6`` or ``embedded/ve two-tower``."""
    fields = dict(entry)
    words = [f"{fields.pop('preset', 'embedded')}/{fields.pop('task', 've')}"]
    if fields.pop("two_tower", None) is not None:
        words.append("two-tower")
    words += [f"{name}={value}" for name, value in {**fields.pop("dataset_options", {}), **fields}.items()]
    return " ".join(words)


def teacher_is_cached(entry: dict) -> bool:
    """Whether the teacher of an entry is ready, checked without loading data or a model (for a plan)."""
    config, two_tower = teacher_setting(entry)
    if two_tower is not None:
        return pretrained_teacher.is_prepared(config, **two_tower)
    return teacher_checkpoint_exists(config)


def _prepare_teacher(item: tuple[int, dict], events=None) -> str:
    """The teacher of ``item`` = (its position in the list, its entry); ``events``: a queue for its progress."""
    torch.set_num_threads(1)
    number, entry = item
    config, two_tower = teacher_setting(entry)
    reporter = None if events is None else TeacherReporter(events, number)
    with _datasets_bars_off(reporter is not None):
        if two_tower is not None:  # notebook 06's pretrained teacher: features, head and sweep fits, all cached
            line = pretrained_teacher.prepare(config, **two_tower,
                                              on_stage=None if reporter is None else reporter.stage)
            summary = line
        else:
            if reporter is not None:
                reporter.started(total=config.teacher_epochs, unit="epoch")
            experiment = setup(config, progress=False,
                               on_evaluate=None if reporter is None else reporter.epoch_callback(config.teacher_epochs))
            info = experiment.teacher_info
            summary = (f"teacher kept epoch {info['best_epoch']:g} of {info['trained_epochs']:g}, "
                       f"trained in {info['train_seconds']:.0f} s"
                       + (" (shipped with the repository)" if info.get("source") == "shipped" else ""))
            line = f"{teacher_label(entry)}: {summary}"
    if reporter is not None:
        reporter.finished(summary)
    return line


@contextlib.contextmanager
def _datasets_bars_off(off: bool):
    """The datasets library's progress bars off inside (when ``off``): where the parent draws a teacher's bar, a
    worker's own bars would break its lines. Restored after, for a worker that is this very process."""
    import datasets

    switch = off and not datasets.are_progress_bars_disabled()
    if switch:
        datasets.disable_progress_bars()
    try:
        yield
    finally:
        if switch:
            datasets.enable_progress_bars()


def prepare_teachers(entries: list[dict], workers: int | None = None,
                     on_progress: ProgressCallback | None = None) -> list[str]:
    """Train (or find cached) the teachers of several experiments at once, one CPU thread each; one log line each.

    ``entries``: ``{"preset": ..., "task": ..., **ExperimentConfig fields}``, built exactly as the notebooks
    build theirs (:meth:`ExperimentConfig.preset`), so the notebooks then load these teachers from
    ``data/checkpoints`` instead of training them one after another. An entry with ``two_tower: {input_size,
    label_counts}`` prepares notebook 06's pretrained two-tower teacher instead
    (:func:`mmkd_core.experiments.pretrained_teacher.prepare`).

    ``on_progress(event)``: called in a thread of this process with each progress event of the workers (epochs and
    validation accuracy, two-tower stages, a teacher finished; :mod:`mmkd_core.progress`), e.g.
    :class:`mmkd_core.progress.TeacherBars`. The teachers are the same with or without it.
    """
    items = [(number, dict(entry)) for number, entry in enumerate(entries)]
    if on_progress is None:
        return parallel_map(_prepare_teacher, items, workers)
    with forwarded_events(on_progress) as events:
        return parallel_map(functools.partial(_prepare_teacher, events=events), items, workers)
