"""The protocol: every seed, grid and size a notebook uses, declared once.

A :class:`Protocol` names the experiment preset (the sizes of :data:`~.multimodal.PRESETS`), the evaluation seeds,
the seeds hyperparameters are chosen on, each method's hyperparameter grid, and the sizes of the smaller studies
(notebook 00's knob study, notebook 01's label efficiency, notebook 06's pretraining curve). Three protocols exist:

* :meth:`Protocol.embedded`: the default, minutes on a laptop CPU, what ``make reproduce`` reports;
* :meth:`Protocol.fast`: the same code path at toy size (CI and nbval, ``MMKD_FAST=1``);
* :meth:`Protocol.gpu`: the ``gpu`` preset's larger pools and models, for one GPU.

A notebook takes one papermill parameter, ``protocol`` (a name, or ``None`` for :meth:`Protocol.default`), plus
``protocol_overrides`` for single fields, and reads everything else from the protocol::

    protocol = Protocol.named("embedded", seeds=(0, 1, 2))
    experiment = open_experiment(protocol, "ve")            # data, cached teacher, teacher outputs
    kd, grid = tune_kd(experiment.config, experiment.data, experiment.cache, protocol.temperatures,
                       protocol.alphas, seed=protocol.tuning_seed)
    rows = run_grid(baseline_specs(kd), protocol.seeds, ...)

What a protocol does not hold has one home elsewhere: the multimodal training budget and early-stopping rule are
fields of :class:`~.multimodal.ExperimentConfig` (per preset in :data:`~.multimodal.PRESETS`), notebook 01's are
fields of :class:`~.vision.LabelEfficiencyConfig`, and each method's defaults are its own
(:mod:`mmkd_core.training.methods`).
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any

from ..data.shapes import ShapesConfig, benchmark_options
from ..models.vision import TinyVisionSizes
from ..reporting import is_fast
from ..training.methods import GRAM_TEMPERATURE
from .multimodal import PRESETS, Experiment, ExperimentConfig, setup
from .regimes import PRETRAINED, RegimeStudy
from .versions import FAST_V3, PROTOCOL_V2, PROTOCOL_V3
from .vision import ALL_LABELS, LabelEfficiencyConfig


SHARED_TEACHER_NOTEBOOKS = ("02", "03", "04", "06")  # the notebooks that load the teachers of Protocol.teachers()
REGIME_NOTEBOOK = "07"
TEACHER_FIELDS = ("teacher_rows", "teacher_method", "teacher_epochs", "teacher_seed")  # what a protocol changes of one  # the regime map, with teachers of its own (Protocol.regime_teachers())


@dataclasses.dataclass(frozen=True)
class KnobStudy:
    """Notebook 00: how much of the label each modality carries as its cue knob moves.

    ``settings``: the ``(text_cue, image_cue)`` pairs; each trains ``ce_views`` for ``epochs`` epochs on ``n_train``
    rows per seed, and is scored on ``n_eval`` test rows (``n_eval`` validation rows are generated alongside).
    """

    n_train: int = 3000
    n_eval: int = 600
    settings: tuple[dict, ...] = ({"text_cue": 0.0, "image_cue": 0.0}, {"text_cue": 0.6, "image_cue": 0.0},
                                  {"text_cue": 0.0, "image_cue": 0.6})
    seeds: tuple[int, ...] = (0, 1)
    epochs: int = 6


@dataclasses.dataclass(frozen=True)
class KnobSweep:
    """Notebook 03's sweep of one benchmark knob (:class:`~mmkd_core.data.shapes.ShapesConfig` field): KD against MSD
    at each value, on ``seeds`` (three by default, so each point has a real interval). The benchmark's own value of
    the knob is always a point (its runs are the main experiment's)."""

    knob: str = "text_cue"
    values: tuple[float, ...] = (0.0, 0.6)
    seeds: tuple[int, ...] = (0, 1, 2)

    def other_values(self, options: dict | None = None) -> list[float]:
        """The values whose experiments differ from the main one (their teachers are trained for the sweep);
        ``options``: the main experiment's shapes options (a benchmark setting may move the knob's default)."""
        default = (options or {}).get(self.knob, getattr(ShapesConfig(), self.knob))
        return [value for value in self.values if value != default]


@dataclasses.dataclass(frozen=True)
class LabelEfficiencyStudy:
    """Notebook 01: the digits splits (:func:`~mmkd_core.data.digits.load_digits_splits` arguments), the teacher's
    seed (one teacher shared by every seed, like one pretrained checkpoint) and the experiment's settings."""

    config: LabelEfficiencyConfig = LabelEfficiencyConfig()
    validation_fraction: float = 0.2  # of the 1,257 non-test digits, held out for early stopping
    max_train: int | None = None  # None: every row of the split
    max_validation: int | None = None
    max_test: int | None = None
    teacher_seed: int = 0

    def data_options(self) -> dict[str, Any]:
        """Keyword arguments of :func:`~mmkd_core.data.digits.load_digits_splits`."""
        return dict(image_size=self.config.sizes.image_size, validation_fraction=self.validation_fraction,
                    max_train=self.max_train, max_validation=self.max_validation, max_test=self.max_test)


@dataclasses.dataclass(frozen=True)
class PretrainingCurve:
    """Notebook 06: the pixels the pretrained image tower sees, the labelled-row counts of the "what pretraining
    buys" curve, and the seed of the fusion head's fits (one fit per point)."""

    input_size: int = 128
    label_counts: tuple[int, ...] = (300, 1000, 2000, 6000)
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class Protocol:
    """Every seed, grid and size of the notebooks (see the module's docstring).

    Attributes:
        name: ``"embedded"``, ``"fast"`` or ``"gpu"`` (or the name of a user's own protocol).
        preset: the :class:`~.multimodal.ExperimentConfig` preset (sizes, training budget, early stopping).
        seeds: the evaluation seeds: every reported interval is over these.
        tuning_seeds: the seeds a hyperparameter grid runs on (the first is the one every grid uses).
        n_labelled: the students' labelled rows; ``None``: the preset's.
        temperatures, alphas: KD's grid (temperature T, weight α of the CE term), chosen on validation; in protocol
            v3 the temperatures are the knob of every method that has one (:mod:`mmkd_core.method_tuning`) and α
            stays at its one value.
        learning_rates: the students' learning rates every method's tuning grid crosses with its own knob
            (:mod:`mmkd_core.method_tuning`); ``ce_learning_rates``: CE's, which has no knob of its own, so as many
            cells as the others' (2 × 2); ``meta_lrs``: MSD meta's knob, the weight network's learning rate.
        population_values: MSD's population weights: every (text, image) pair of them is a candidate.
        gram_inputs, gram_lams: the Gram ablation's grid (what G is built from, weight λ of its loss).
        gram_temperature: the softmax temperature of the Gram's inputs.
        tasks: the benchmark variants of Table 1 (notebook 04), ``ce3_tasks`` those with the CE×3 + KD row.
        knob_sweep: notebook 03's sweep of one benchmark knob (:class:`KnobSweep`).
        benchmark: the shapes benchmark's named setting (:data:`~mmkd_core.data.shapes.BENCHMARKS`): ``"v1"``, every
            label needs both modalities (cues aside); ``"v2"``, part of each label is readable from one modality
            through its content, and memes carries label noise that caps it below 100%.
        disjoint_splits: the shapes benchmark's validation and test rows share no scene with the pool or each other
            (:mod:`mmkd_core.data.shapes`, "Disjoint splits"); off in protocol v2, whose splits repeat some pool rows.
        meta_rows: where MSD's meta-learned weights learn: ``None``, the validation split (protocol v2, not held
            out); n, the last n of the students' labelled rows (:attr:`~.multimodal.ExperimentConfig.meta_rows`).
        student_warmup_epochs: the students' warm-up in passes over their own rows; ``None``: 10% of the step cap
            (protocol v2, :attr:`~.multimodal.ExperimentConfig.student_warmup_epochs`).
        student_min_steps: a floor in optimiser steps under every student's early stopping, the same for every
            method (:attr:`~.multimodal.ExperimentConfig.student_min_steps`); ``None``: the preset's (none). A dataset
            preset's own larger floor stands (easy-VQA's).
        teacher_rows: the teacher's own labelled rows, apart from the students' pool
            (:attr:`~.multimodal.ExperimentConfig.teacher_rows`); ``None``: the teacher learns from the pool.
        teacher_method: how the teacher trains (:attr:`~.multimodal.ExperimentConfig.teacher_method`); ``None``: the
            preset's (``ce_modality_dropout``, one random view per sample).
        teacher_epochs: the teacher's epoch cap (:attr:`~.multimodal.ExperimentConfig.teacher_epochs`); ``None``: the
            preset's.
        teacher_seeds, teacher_seed_tasks: on these tasks, one teacher per seed (protocol v3: three on ve), and
            student seed s distils teacher s mod their number, so a claim averages over teachers as well as
            students; empty: one teacher (the preset's seed) everywhere, as in protocol v2.
        task_options: shapes options of one task (task → options), e.g. ``{"memes": {"label_noise": 0.2}}`` to take
            a benchmark variant off its ceiling (protocol v3); a notebook's own ``dataset_options`` win over them.
        workers: processes for independent runs; ``None``: one per core.
        bench_repeats: timed repeats of each ``make bench`` measurement (notebook 05).
    """

    name: str = "embedded"
    preset: str = "embedded"
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    tuning_seeds: tuple[int, ...] = PROTOCOL_V3["tuning_seeds"]
    n_labelled: int | None = None
    temperatures: tuple[float, ...] = PROTOCOL_V3["temperatures"]
    alphas: tuple[float, ...] = (0.5,)
    learning_rates: tuple[float, ...] = (1e-3, 2e-3)
    ce_learning_rates: tuple[float, ...] = (5e-4, 1e-3, 2e-3, 4e-3)
    meta_lrs: tuple[float, ...] = (1e-3, 1e-2)
    population_values: tuple[float, ...] = (0.5, 2.0)
    gram_inputs: tuple[str, ...] = ("probs", "l2_normalized")
    gram_lams: tuple[float, ...] = (1.0, 10.0)
    gram_temperature: float = GRAM_TEMPERATURE
    tasks: tuple[str, ...] = ("ve", "nlvr", "memes")
    ce3_tasks: tuple[str, ...] = ("ve",)
    knob_sweep: KnobSweep = KnobSweep()
    benchmark: str = PROTOCOL_V3["benchmark"]
    disjoint_splits: bool = PROTOCOL_V3["disjoint_splits"]
    meta_rows: int | None = PROTOCOL_V3["meta_rows"]
    student_warmup_epochs: float | None = PROTOCOL_V3["student_warmup_epochs"]
    student_min_steps: int | None = PROTOCOL_V3["student_min_steps"]
    teacher_rows: int | None = PROTOCOL_V3["teacher_rows"]
    teacher_method: str | None = None
    teacher_epochs: int | None = PROTOCOL_V3["teacher_epochs"]
    teacher_seeds: tuple[int, ...] = PROTOCOL_V3["teacher_seeds"]
    teacher_seed_tasks: tuple[str, ...] = ("ve",)
    task_options: dict = dataclasses.field(default_factory=dict)
    workers: int | None = None
    bench_repeats: int = 10
    knob_study: KnobStudy = KnobStudy()
    label_efficiency: LabelEfficiencyStudy = LabelEfficiencyStudy()
    pretraining: PretrainingCurve = PretrainingCurve()
    regimes: RegimeStudy = RegimeStudy()

    def __post_init__(self):
        if self.preset not in PRESETS:
            raise ValueError(f"protocol {self.name!r}: unknown experiment preset {self.preset!r}; "
                             f"accepted: {sorted(PRESETS)}")
        for field in ("seeds", "tuning_seeds", "temperatures", "alphas", "tasks"):
            if not getattr(self, field):
                raise ValueError(f"protocol {self.name!r}: {field} must not be empty")

    @property
    def tuning_seed(self) -> int:
        """The seed every hyperparameter grid runs on."""
        return self.tuning_seeds[0]

    @classmethod
    def embedded(cls) -> "Protocol":
        """The default: the embedded benchmark on a CPU, what ``make reproduce`` reports."""
        return cls()

    @classmethod
    def embedded_v2(cls) -> "Protocol":
        """Protocol v2 on benchmark v1 (:data:`PROTOCOL_V2`), the embedded default before protocol v3."""
        return cls(name="embedded-v2", **PROTOCOL_V2)

    @classmethod
    def fast(cls) -> "Protocol":
        """The same code path at toy size, for CI and nbval (``MMKD_FAST=1``): two seeds, one-point grids."""
        embedded = LabelEfficiencyConfig()  # the same learning rates and schedule, for 3 epochs
        vision = dataclasses.replace(
            embedded, sizes=TinyVisionSizes(width=32, num_heads=2, teacher_depth=2, student_depth=1),
            teacher=dataclasses.replace(embedded.teacher, epochs=3), student=dataclasses.replace(embedded.student, epochs=3),
            labels_per_class=(5, ALL_LABELS), patience=1, teacher_patience=1)
        return cls(name="fast", preset="fast", seeds=(0, 1), temperatures=(2.0,), population_values=(1.0,),
                   gram_inputs=("probs",), gram_lams=(1.0,), tasks=("ve",), learning_rates=(2e-3,),
                   ce_learning_rates=(2e-3,), meta_lrs=(1e-3,),
                   knob_sweep=KnobSweep(values=(0.0,), seeds=(0,)),
                   # protocol v3's switches at toy size; two teachers on ve, so the teacher-per-seed path runs in CI
                   **FAST_V3, teacher_epochs=None, teacher_seeds=(1234, 1235),
                   workers=1,  # worker processes cost more to start than these toy runs take
                   bench_repeats=2,
                   knob_study=KnobStudy(n_train=300, n_eval=120, settings=KnobStudy().settings[:2], seeds=(0,),
                                        epochs=1),
                   label_efficiency=LabelEfficiencyStudy(config=vision, max_train=200, max_validation=60,
                                                         max_test=100),
                   pretraining=PretrainingCurve(input_size=64, label_counts=(64, 256)),
                   regimes=RegimeStudy(transfer_rows=(0, 100, None), learning_rates=(2e-3,), ce_learning_rates=(2e-3,),
                                       input_size=64, settings=FAST_V3))

    @classmethod
    def gpu(cls) -> "Protocol":
        """The ``gpu`` preset (a 30,000-row pool, 1,000 labelled rows, a 6-layer width-256 teacher), for one GPU;
        the knob sweep is off and the pretraining curve spans the larger pool."""
        return cls(name="gpu", preset="gpu", knob_sweep=KnobSweep(values=()),
                   pretraining=PretrainingCurve(label_counts=(1000, 30000)))

    @classmethod
    def default(cls) -> "Protocol":
        """:meth:`fast` under ``MMKD_FAST=1`` (CI), else :meth:`embedded`."""
        return cls.fast() if is_fast() else cls.embedded()

    @classmethod
    def named(cls, name: str | None = None, **overrides) -> "Protocol":
        """The protocol called ``name`` (``None``: :meth:`default`), with single fields overridden.

        An override of a nested study may be a dict of its fields, e.g. ``knob_study={"epochs": 3}``.
        """
        builders = {"embedded": cls.embedded, "fast": cls.fast, "gpu": cls.gpu, "embedded-v2": cls.embedded_v2}
        if name is None:
            protocol = cls.default()
        elif name in builders:
            protocol = builders[name]()
        else:
            raise ValueError(f"unknown protocol {name!r}; accepted: {sorted(builders)} (or None: "
                             f"{'fast' if is_fast() else 'embedded'} here)")
        return protocol.replace(**overrides)

    def replace(self, **overrides) -> "Protocol":
        """A copy with these fields changed (lists become tuples; a dict updates a nested study's fields)."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - set(fields))
        if unknown:
            raise ValueError(f"protocol {self.name!r} has no field {', '.join(map(repr, unknown))}; "
                             f"accepted: {sorted(fields)}")
        changes = {}
        for key, value in overrides.items():
            current = getattr(self, key)
            if isinstance(value, dict) and dataclasses.is_dataclass(current):
                value = dataclasses.replace(current, **value)
            elif isinstance(value, list):
                value = tuple(value)
            changes[key] = value
        return dataclasses.replace(self, **changes)

    def regime_protocol(self) -> "Protocol":
        """This protocol under the regime study's settings (notebook 07: benchmark v2 and protocol v3's switches)."""
        return self.replace(**self.regimes.settings)

    @property
    def main_task(self) -> str:
        """The task of notebooks 02, 03 and 06 by default (their ``task`` parameter), Table 1's first column."""
        return self.tasks[0]

    def teachers(self, notebooks=None) -> list[dict]:
        """Every teacher the notebooks train under this protocol with their default parameters, as entries of
        ``make reproduce``'s teachers phase (:func:`mmkd_core.runs.prepare_teachers`): one per task, one per
        other value of the knob sweep, the from-scratch teachers of the pretraining curve (the first ``n`` rows
        of the pool) and the pretrained two-tower teacher. Derived, never typed, so the phase prepares exactly
        what the notebooks then load. ``notebooks`` (numbers such as ``"03"``; None: every one): only the teachers those
        notebooks load (02-06 share theirs; notebook 07's regime map has its own, :meth:`regime_teachers`)."""
        wanted = None if notebooks is None else {str(number) for number in notebooks}
        shared = wanted is None or bool(wanted & set(SHARED_TEACHER_NOTEBOOKS))
        regime = [] if wanted is not None and REGIME_NOTEBOOK not in wanted else self.regime_teachers()
        if not shared:
            return regime

        entries = [self.teacher_entry(task, teacher_seed=seed) for task in self.tasks
                   for seed in self.teacher_seeds_for(task)]
        main_options = self.shapes_options({}, self.main_task)
        entries += [self.teacher_entry(self.main_task, {self.knob_sweep.knob: value})
                    for value in self.knob_sweep.other_values(main_options)]
        entries += [self.teacher_entry(self.main_task, **self.curve_teacher(n)) for n in self.pretraining.label_counts]
        entries.append({**self.teacher_entry(self.main_task), "two_tower": {
            "input_size": self.pretraining.input_size, "label_counts": list(self.pretraining.label_counts)}})
        # one entry per teacher: notebook 07's from-scratch teacher is ve's first under protocol v3
        unique = {json.dumps(entry, sort_keys=True): entry for entry in entries + regime}
        return list(unique.values())

    def curve_teacher(self, n: int) -> dict:
        """The options of the from-scratch teacher of notebook 06's pretraining curve at ``n`` labelled rows, as
        arguments of :meth:`teacher_entry` and :func:`open_experiment`: the first ``n`` rows of the pool, not rows of
        its own (so the curve's teachers differ from the main one under ``teacher_rows``)."""
        return {"dataset_options": {"n_train": n}, "teacher_rows": None}

    def teacher_entry(self, task: str, dataset_options: dict | None = None, **changes) -> dict:
        """The teachers-phase entry of the teacher :func:`open_experiment` loads for ``task`` with these options:
        the shapes options and the teacher's fields where they differ from the preset's, built from
        :meth:`experiment_config` itself so that the phase trains exactly the teacher a notebook then loads."""
        config = self.experiment_config(task, dataset_options=dataset_options, **changes)
        preset = ExperimentConfig.preset(self.preset, task)
        return {"preset": self.preset, "task": task, "dataset_options": dict(config.dataset_options),
                **{field: getattr(config, field) for field in TEACHER_FIELDS
                   if getattr(config, field) != getattr(preset, field)}}

        return entries + regime

    def regime_teachers(self) -> list[dict]:
        """The teachers of notebook 07's regime map, as entries of the teachers phase: the from-scratch teacher of the
        study's experiment and, when the study maps it, the two-tower teacher of the same rows."""
        study = self.regimes
        config = self.regime_protocol().experiment_config(study.task)
        preset = ExperimentConfig.preset(self.preset, study.task)
        own = {"preset": self.preset, "task": study.task, "dataset_options": dict(config.dataset_options),
               **{field: getattr(config, field) for field in ("teacher_rows", "teacher_method", "teacher_epochs")
                  if getattr(config, field) != getattr(preset, field)}}  # the fields the study changes
        entries = [own]
        if PRETRAINED in study.teachers:
            entries.append({**own, "two_tower": {"input_size": study.input_size, "label_counts": []}})
        return entries

    def dataset_teachers(self, dataset: str, task: str | None = None, data_root: str | None = None,
                         two_tower: bool = True) -> list[dict]:
        """The teachers notebooks 02-04 load on a dataset other than shapes (``make reproduce``'s sections, e.g.
        easy-VQA), as entries of the teachers phase: the from-scratch teacher and, with ``two_tower``, notebook 06's
        pretrained two-tower teacher (no pretraining curve off the shapes benchmark). ``task`` names the rows (None:
        the dataset's name), as the notebooks' ``task`` parameter does."""
        task = task or dataset
        config = self.experiment_config(task, dataset=dataset, data_root=data_root)
        preset = ExperimentConfig.preset(self.preset, task, dataset=dataset)
        own = {"preset": self.preset, "task": task, "dataset": dataset,
               **({"data_root": data_root} if data_root is not None else {}),
               **{field: getattr(config, field) for field in ("teacher_method", "teacher_epochs")
                  if getattr(config, field) != getattr(preset, field)}}  # the fields the protocol changes
        return [own] + ([{**own, "two_tower": {"input_size": self.pretraining.input_size, "label_counts": []}}]
                        if two_tower else [])

    def teacher_seeds_for(self, task: str) -> tuple[int | None, ...]:
        """The seeds of the task's teachers; ``(None,)``: the one teacher of the preset's seed."""
        return self.teacher_seeds if (self.teacher_seeds and task in self.teacher_seed_tasks) else (None,)

    def shapes_options(self, options: dict | None = None, task: str | None = None) -> dict:
        """The shapes benchmark's options under this protocol for ``task`` (None: the task in ``options``):
        the protocol's own (its ``benchmark``'s, ``disjoint_splits`` when on, then ``task_options``), then ``options``."""
        task = task or (options or {}).get("task")
        own = {**benchmark_options(self.benchmark, task), **({"disjoint_splits": True} if self.disjoint_splits else {}),
               **self.task_options.get(task, {})}
        return {**own, **(options or {})}

    def experiment_config(self, task: str = "ve", dataset: str = "shapes", data_root: str | None = None,
                          dataset_options: dict | None = None, **changes) -> ExperimentConfig:
        """The :class:`~.multimodal.ExperimentConfig` of one task under this protocol (``changes`` override
        any of its fields; ``None`` keeps the preset's)."""
        n_labelled = changes.pop("n_labelled", None)
        changes.setdefault("meta_rows", self.meta_rows)  # None: the preset's (validation)
        changes.setdefault("student_warmup_epochs", self.student_warmup_epochs)  # None: the preset's (10% of the cap)
        floor_from_protocol = "student_min_steps" not in changes
        changes.setdefault("student_min_steps", self.student_min_steps)  # None: the preset's (no step floor)
        changes.setdefault("teacher_method", self.teacher_method)  # None: the preset's
        changes.setdefault("teacher_epochs", self.teacher_epochs)
        if dataset == "shapes":
            changes.setdefault("teacher_rows", self.teacher_rows)
        if dataset == "shapes":
            dataset_options = self.shapes_options(dataset_options, task)
        config = ExperimentConfig.preset(self.preset, task, dataset=dataset, data_root=data_root,
                                         dataset_options=dataset_options,
                                         n_labelled=self.n_labelled if n_labelled is None else n_labelled, **changes)
        if floor_from_protocol and self.student_min_steps is not None:
            # a dataset's own, larger floor stands (easy-VQA's students need more steps to leave the question prior)
            preset_floor = ExperimentConfig.preset(self.preset, task, dataset=dataset).student_min_steps
            config = dataclasses.replace(config, student_min_steps=max(preset_floor, self.student_min_steps))
        return config


def open_experiment(protocol: Protocol, task: str = "ve", dataset: str = "shapes", data_root: str | None = None,
                    dataset_options: dict | None = None, progress: bool = True, **changes) -> Experiment:
    """Data, the cached teacher and its outputs on every training row, for ``task`` under ``protocol``:
    :func:`~.multimodal.setup` of :meth:`Protocol.experiment_config`. Notebooks that open the same task under
    the same protocol share one teacher and, through the run cache, every identical run."""
    config = protocol.experiment_config(task, dataset=dataset, data_root=data_root,
                                        dataset_options=dataset_options, **changes)
    return setup(config, progress=progress)


def open_experiments(protocol: Protocol, task: str = "ve", **options) -> list[Experiment]:
    """One :func:`open_experiment` per teacher of the task (:meth:`Protocol.teacher_seeds_for`), in seed order;
    :func:`mmkd_core.runs.run_grid_over_teachers` gives student seed s the teacher s mod their number."""
    return [open_experiment(protocol, task, **options, **({} if seed is None else {"teacher_seed": seed}))
            for seed in protocol.teacher_seeds_for(task)]


CE_LABEL = "CE (no teacher)"
KD_LABELLED_LABEL = "KD (labelled rows only)"
KD_TRANSFER_LABEL = "KD (transfer set)"


CE_ALL_LABELS_LABEL = "CE (all labels)"


def all_labels_control() -> dict:
    """The control of protocol v3: CE on every pool row with its label (what the labels alone would buy), as a
    :func:`mmkd_core.runs.run_grid` spec."""
    return {"label": CE_ALL_LABELS_LABEL, "method": "ce", "data": "all_labels"}


def baseline_specs(kd_kwargs: dict) -> list[dict]:
    """The three baselines every multimodal comparison starts from, as :func:`mmkd_core.runs.run_grid` specs:
    CE on the labelled rows (no teacher), KD on the labelled rows only, and KD on the transfer set (every
    training row, labels hidden after the labelled ones), KD with the hyperparameters ``kd_kwargs``."""
    return [
        {"label": CE_LABEL, "method": "ce"},
        {"label": KD_LABELLED_LABEL, "method": "kd", "kwargs": dict(kd_kwargs), "data": "labelled"},
        {"label": KD_TRANSFER_LABEL, "method": "kd", "kwargs": dict(kd_kwargs), "data": "transfer"},
    ]
