"""The one training loop of the package, on Hugging Face Accelerate.

It trains the multimodal teachers and students, notebook 01's vision models (feature KD and the supervised
classifiers, :mod:`.feature_kd`) and notebook 06's fusion head (:mod:`.fusion_head`): no other module owns an
optimisation loop. The same code runs on the CPU, on one GPU (bf16 autocast) and on several GPUs or nodes under
``accelerate launch``. What is trained is decided by a *method* (:mod:`mmkd_core.training.methods`):
the method says which views the student needs, which teacher outputs it reads (a teacher cache's logits, or any
cached per-row targets such as data2vec's layer targets), and returns every loss term separately (mdistiller
style); the loop logs each term per step and per validation. Validation is the model's accuracy on ``val_data``
(:func:`~mmkd_core.evaluation.predict.evaluate`) or any score a caller passes (``val_score``, higher is better).

**Convergence, not a fixed budget.** The loop validates every ``eval_every`` steps (default: once per
pass over the training set) and, with ``patience``, stops once that many validations in a row have not
improved on the best one, but not before ``min_steps`` (small students on this benchmark often sit on a
plateau, their cue-only accuracy, for hundreds of steps before they start reading the image: stopping
there would compare plateaus, not methods). ``epochs`` and ``max_steps`` are caps, sized so that runs stop
because they stopped improving; the result says which happened (``stopped_early``).

Checkpoint rule: ``"best-val"`` (default) keeps the weights of the best validation (accuracy, or AUROC
for binary tasks when ``select_metric="auroc"``); ``"last"`` keeps the final weights. The rule is
stored in the result, so every table can say which one it used.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import pandas as pd
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from tqdm.auto import tqdm

from ..data.batches import iterate_batches, num_batches
from ..evaluation.predict import evaluate, model_inputs
from ..evaluation.precision import (PRECISIONS, check_precision, cpu_computes_bf16, precision_autocast,
                                  resolve_precision)  # the one precision policy, also imported from here
from . import tracking
from .cache import TeacherCache, data_key, weights_fingerprint

CHECKPOINT_RULES = ("best-val", "last")
SCHEDULES = ("linear", "constant", "cosine")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimiser, schedule, stopping and checkpoint settings of one run (one name per setting).

    The one config of every training loop: :func:`train` and notebook 01's feature-KD loops
    (:mod:`.feature_kd`, which read the optimiser, schedule, clipping, seed and progress settings; its
    :func:`~.feature_kd.default_config` holds their defaults). Frozen: change a copy with ``dataclasses.replace``.
    """

    epochs: int = 10  # cap on passes over the training set
    max_steps: int | None = None  # cap on optimiser steps; the run ends at whichever cap comes first
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1  # share of the step cap spent warming the learning rate up from 0
    # the warm-up's length in steps, when set (then warmup_ratio is not read): a run sized by its own expected length
    # rather than by its cap (see ExperimentConfig.student_warmup_epochs)
    warmup_steps: int | None = None
    schedule: str = "linear"  # after warm-up: "linear" or "cosine" decay to 0 at the cap, or "constant"
    max_grad_norm: float | None = 1.0  # gradient clipping (0 or None: off)
    seed: int = 0
    checkpoint_rule: str = "best-val"
    select_metric: str = "accuracy"
    eval_every: int | None = None  # optimiser steps between validations; None: once per pass
    patience: int | None = None  # validations without improvement before stopping; None: train to the cap
    # what counts as an improvement for `patience`: beating the score of the last counted improvement by at least this
    # much (0: any rise). The kept checkpoint still follows every new best; this only decides when a run has stopped
    # improving, so that one more validation row right by chance does not restart the wait.
    min_improvement: float = 0.0
    min_steps: int = 0  # no early stop before this many steps: runs that sit on a plateau first get to leave it
    eval_batch_size: int = 512
    progress: bool = True
    cpu: bool | None = None  # None: use CUDA when available
    report_to: str | None = None  # "tensorboard": live curves under data/runs (see training/tracking.py)
    compile_backend: str | None = None  # torch.compile the trained model through Accelerate (e.g. "inductor"); None: eager
    precision: str = "default"  # one of PRECISIONS: "default" (bf16 on CUDA, float32 on CPU), "native", "bf16", "fp32"
    # Flush float32 denormals to zero on the CPU while training. Late in a run, tiny gradients (and AdamW's
    # squared-gradient averages) become denormals, and x86 arithmetic on them is ~100x slower: one 20-epoch run of
    # notebook 01's feature KD went from 15 s to 230 s. On for those loops (feature_kd.default_config); off for the
    # multimodal students, whose recorded runs computed with denormals.
    flush_denormals: bool = False
    # AdamW's multi-tensor ("foreach") update; None leaves the choice to torch (the per-tensor loop on the CPU)
    optimizer_foreach: bool | None = True

    def __post_init__(self) -> None:
        tracking.check_report_to(self.report_to)
        check_compile_backend(self.compile_backend)
        check_precision(self.precision)
        if self.checkpoint_rule not in CHECKPOINT_RULES:
            raise ValueError(f"unknown checkpoint_rule {self.checkpoint_rule!r}; accepted: {list(CHECKPOINT_RULES)}")
        if self.select_metric not in ("accuracy", "auroc"):
            raise ValueError(f"unknown select_metric {self.select_metric!r}; accepted: ['accuracy', 'auroc']")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; accepted: {list(SCHEDULES)}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1 (got {self.epochs}, {self.batch_size})")
        for name in ("max_steps", "eval_every", "patience", "warmup_steps"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be None or an integer >= 1, got {value!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if not (isinstance(self.min_improvement, (int, float)) and 0 <= self.min_improvement < 1):
            raise ValueError(f"min_improvement must be a number in [0, 1), got {self.min_improvement!r}")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup_ratio must lie in [0, 1), got {self.warmup_ratio!r}")


@dataclasses.dataclass
class TrainResult:
    model: torch.nn.Module
    steps: pd.DataFrame  # one row per optimisation step, one column per loss term
    evaluations: pd.DataFrame  # one row per validation: step, epoch, mean loss terms since the last, metrics
    best_step: int
    trained_steps: int
    steps_per_epoch: int
    checkpoint_rule: str
    train_seconds: float
    stopped_early: bool = False
    precision: str = "fp32"  # what the forward and backward passes computed in: "bf16" (autocast) or "fp32"

    @property
    def epochs(self) -> pd.DataFrame:  # the older name of the per-validation log
        return self.evaluations

    @property
    def best_epoch(self) -> float:
        """Epochs (passes over the training set) trained when the kept weights were reached."""
        return round(self.best_step / self.steps_per_epoch, 2)

    @property
    def trained_epochs(self) -> float:
        return round(self.trained_steps / self.steps_per_epoch, 2)

    def summary(self) -> str:
        why = "no improvement for `patience` validations" if self.stopped_early else "the step cap"
        return (f"checkpoint rule: {self.checkpoint_rule} (kept step {self.best_step} = epoch {self.best_epoch} "
                f"of {self.trained_epochs}; stopped by {why}), training time {self.train_seconds:.1f} s")


EvaluationCallback = Callable[[dict, torch.nn.Module], None]


def check_compile_backend(backend: str | None) -> None:
    """``None`` (eager) or a backend name that Accelerate's ``dynamo_backend`` accepts."""
    if backend is None:
        return
    from accelerate.utils import DynamoBackend

    accepted = sorted(b.value.lower() for b in DynamoBackend if b.value != "NO")
    if not isinstance(backend, str) or backend.lower() not in accepted:
        raise ValueError(f"unknown compile_backend {backend!r}; accepted: None (eager) or one of {accepted}")


def uses_cpu(cpu: bool | None = None) -> bool:
    """The device choice of :func:`make_accelerator`: the CPU when asked or when CUDA is absent."""
    return (not torch.cuda.is_available()) if cpu is None else cpu


def make_accelerator(cpu: bool | None = None, report_to: str | None = None,
                     compile_backend: str | None = None, precision: str = "default") -> Accelerator:
    """The one device policy: CUDA when present, else the CPU; autocast as ``precision`` says (:data:`PRECISIONS`).

    The default is bf16 autocast on CUDA and float32 on the CPU. ``"native"`` also autocasts to bf16 on a CPU
    with bf16 instructions: measured on this project's 2-layer student (AVX512-BF16, one thread, batch 128),
    a three-view training step takes 33 ms instead of 53 ms and a joint-view step 23 ms instead of 27 ms.

    ``compile_backend`` (e.g. ``"inductor"``) makes ``accelerator.prepare`` wrap the model in ``torch.compile``
    (Accelerate's dynamo plugin). Off by default: on this project's tiny CPU models compilation costs more than
    it saves; it is meant for the GPU profile's larger models.
    """
    check_compile_backend(compile_backend)
    use_cpu = uses_cpu(cpu)
    dynamo = {} if compile_backend is None else {"dynamo_backend": compile_backend.upper()}
    # Accelerate fixes mixed precision once per process, and teachers (default: float32 on the CPU) and
    # students ("native": bf16 on this CPU) train in one process. So on the CPU Accelerate stays at "no"
    # and the trainer autocasts itself (precision_autocast); on CUDA Accelerate's bf16 is that autocast.
    mixed = "bf16" if not use_cpu and resolve_precision(precision, use_cpu) == "bf16" else "no"
    return Accelerator(cpu=use_cpu, mixed_precision=mixed,
                       **tracking.accelerator_options(report_to), **dynamo)


def teacher_outputs(method, batch, teacher_cache: TeacherCache | None, teacher, accelerator,
                    precision: str = "default"):
    """The teacher logits a step needs: looked up in the cache, or computed live (no gradient)."""
    if not method.needs_teacher:
        return None
    if teacher_cache is not None:
        return teacher_cache.lookup(batch["index"], method.teacher_views, device=accelerator.device)
    with torch.no_grad(), precision_autocast(accelerator, precision):
        live = teacher(**model_inputs(batch), views=method.teacher_views)
    return {v: t.float() for v, t in live.logits.items()}


def optimisation_step(model, method, batch, teacher_out, optimizer, accelerator, max_grad_norm: float = 1.0,
                      precision: str = "default"):
    """One step: the method's losses (forward at ``precision``), backward, clipping, optimizer update.
    Returns the loss terms."""
    with precision_autocast(accelerator, precision):
        losses = method.step_losses(model, batch, teacher_out)
    optimizer.zero_grad(set_to_none=True)
    accelerator.backward(losses["total"])
    if max_grad_norm:
        accelerator.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    return losses


def improves(score: float, reference: float, min_improvement: float) -> bool:
    """Whether ``score`` counts as an improvement on ``reference`` for early stopping: higher by at least
    ``min_improvement`` (scores are float32 fractions of rows: a slack of 1e-6 keeps 0.741 - 0.739 >= 0.002);
    with ``min_improvement=0``, any rise."""
    if min_improvement <= 0:
        return score > reference
    return score - reference >= min_improvement - 1e-6


def make_optimizer(model: torch.nn.Module | Iterable[torch.nn.Parameter], config: TrainConfig,
                   foreach: bool | None = True) -> torch.optim.Optimizer:
    """AdamW over ``model``'s parameters (or the given parameters) with ``config.lr`` / ``config.weight_decay``.

    ``foreach=True`` (the trainer) also on the CPU, where the per-tensor loop costs more than the update
    itself; ``None`` leaves the choice to torch (the per-tensor loop on the CPU), as the feature-KD loops do.
    """
    parameters = model.parameters() if isinstance(model, torch.nn.Module) else model
    return torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay, foreach=foreach)


def lr_multiplier(config: TrainConfig, total_steps: int) -> Callable[[int], float]:
    """The factor on ``config.lr`` at each step: a linear warm-up from 0, then ``config.schedule``.

    ``"linear"`` / ``"constant"``: warm-up over ``max(1, floor(warmup_ratio · total_steps))`` steps, then a
    linear decay to 0 at ``total_steps`` or a constant 1. ``"cosine"``: warm-up over
    ``round(warmup_ratio · total_steps)`` steps (at least 1; none when ``warmup_ratio`` is 0), then a cosine
    from 1 to 0 at ``total_steps``. ``config.warmup_steps``, when set, is the warm-up's length in either case.
    The two warm-up lengths are kept apart so that every recorded run
    (the trainer's and notebook 01's) keeps its learning rates exactly.
    """
    if config.schedule == "cosine":
        return _warmup_cosine(total_steps, config.warmup_ratio, config.warmup_steps)
    warmup = config.warmup_steps or max(1, int(config.warmup_ratio * total_steps))
    if config.schedule == "constant":
        return lambda step: min(1.0, (step + 1) / warmup)
    return lambda step: min((step + 1) / warmup, max(0.0, (total_steps - step) / max(1, total_steps - warmup)))


def _warmup_cosine(total_steps: int, warmup_ratio: float, warmup_steps: int | None = None) -> Callable[[int], float]:
    if warmup_steps is None:
        warmup_steps = max(1, int(round(warmup_ratio * total_steps))) if warmup_ratio > 0 else 0

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def make_schedule(optimizer: torch.optim.Optimizer, config: TrainConfig,
                  total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """The learning-rate schedule of :func:`lr_multiplier` over ``total_steps`` optimiser steps."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_multiplier(config, total_steps))


def _check_teacher_inputs(method, train_data, model, teacher_cache, teacher):
    if not method.needs_teacher:
        return teacher
    if teacher_cache is None and teacher is None:
        raise ValueError(f"method {method.name!r} distils from a teacher: pass teacher_cache= or teacher=")
    if teacher_cache is not None:
        if getattr(train_data, "augments", False):
            raise ValueError("train_data changes inputs per epoch (augments=True): a fixed teacher cache is "
                             "stale; pass teacher= for live teacher outputs or rebuild the cache per epoch")
        teacher_cache.check(data_key=data_key(train_data))
        if teacher is not None:
            teacher_cache.check(teacher_key=weights_fingerprint(teacher))
            teacher = None  # the cache answers; no need to run the teacher
        classes = teacher_cache.logits["joint"].shape[1] if "joint" in teacher_cache.logits else None
        if classes is not None and classes != model.num_labels:
            raise ValueError(f"teacher predicts {classes} classes, the student {model.num_labels}; "
                             f"they must share the label set")
    return teacher


ValidationScore = Callable[[torch.nn.Module], float]


def train(model: torch.nn.Module, method, train_data, val_data=None, config: TrainConfig | None = None,
          teacher_cache: TeacherCache | None = None, teacher: torch.nn.Module | None = None,
          meta_data=None, run_dir: str | Path | None = None, description: str | None = None,
          on_evaluate: EvaluationCallback | None = None, val_score: ValidationScore | None = None) -> TrainResult:
    """Train ``model`` with ``method`` and return the model under the checkpoint rule, with its logs.

    Teacher signal: ``teacher_cache`` (precomputed, the default for distillation: a
    :class:`~.cache.TeacherCache` of logits or a :class:`~.cache.TargetCache` of any per-row targets) or
    ``teacher`` (a live model run on every batch; needed when inputs change per epoch). Methods that need no
    teacher ignore both. ``meta_data`` is the held-out set for meta-learned weighting. ``on_evaluate(info,
    model)`` is called after every validation (``info``: step, epoch, metrics), e.g. to snapshot what
    the model computes during the very run a table reports.

    Validation: ``val_score(model)`` when given (higher is better, computed in eval mode without gradients;
    logged as ``val/score``), else the joint view's ``config.select_metric`` on ``val_data``. Early stopping and the
    checkpoint rule read that score.
    """
    config = config or TrainConfig()
    flush = config.flush_denormals and uses_cpu(config.cpu)
    if flush:
        torch.set_flush_denormal(True)
    try:
        return _train(model, method, train_data, val_data, config, teacher_cache, teacher, meta_data, run_dir,
                      description, on_evaluate, val_score)
    finally:
        if flush:
            torch.set_flush_denormal(False)  # PyTorch's default; there is no getter to restore another state


def _train(model, method, train_data, val_data, config: TrainConfig, teacher_cache, teacher, meta_data, run_dir,
           description, on_evaluate, val_score) -> TrainResult:
    set_seed(config.seed)
    # Deterministic CPU kernels where torch offers them; warn rather than fail where it does not.
    torch.use_deterministic_algorithms(True, warn_only=True)
    teacher = _check_teacher_inputs(method, train_data, model, teacher_cache, teacher)

    accelerator = make_accelerator(config.cpu, config.report_to, config.compile_backend, config.precision)
    precision = resolve_precision(config.precision, accelerator.device.type == "cpu")  # once, not per step
    distributed = accelerator.num_processes > 1
    on_cuda = accelerator.device.type == "cuda"
    steps_per_epoch = num_batches(train_data, config.batch_size)
    if distributed:  # each process sees its shard of every epoch
        loader = torch.utils.data.DataLoader(train_data, batch_size=config.batch_size, shuffle=True,
                                             generator=torch.Generator().manual_seed(config.seed),
                                             collate_fn=getattr(train_data, "collate_fn", None))
        loader = accelerator.prepare_data_loader(loader)
        steps_per_epoch = len(loader)
    total_steps = min(config.epochs * steps_per_epoch, config.max_steps or math.inf)
    eval_every = config.eval_every or steps_per_epoch
    optimizer = make_optimizer(model, config, foreach=config.optimizer_foreach)
    schedule = make_schedule(optimizer, config, total_steps)
    model, optimizer, schedule = accelerator.prepare(model, optimizer, schedule)
    if teacher is not None:
        teacher = accelerator.prepare_model(teacher, evaluation_mode=True)
        teacher.eval()
    unwrapped = accelerator.unwrap_model(model)
    method.setup(model=unwrapped, accelerator=accelerator, meta_data=meta_data, config=config)
    tracking.start(accelerator, config, description or method.name)

    generator = torch.Generator().manual_seed(config.seed)

    def epoch_batches():
        if distributed:
            return iter(loader)
        return iterate_batches(train_data, config.batch_size, shuffle=True, generator=generator,
                               num_workers=2 if on_cuda and not hasattr(train_data, "tensors") else 0,
                               pin_memory=on_cuda)

    validates = val_data is not None or val_score is not None
    step_terms: list[dict[str, torch.Tensor]] = []  # detached tensors: no device sync per step
    learning_rates: list[float] = []
    evaluations: list[dict[str, float]] = []
    best_score, best_step, best_state, since_best = -math.inf, 0, None, 0
    patience_reference = -math.inf  # the score of the last validation that counted as an improvement
    stopped_early = False
    start = time.perf_counter()
    bar = tqdm(total=int(total_steps), desc=description or method.name,
               disable=not config.progress or not accelerator.is_main_process)
    step, epoch, last_logged = 0, 0, 0
    model.train()
    while step < total_steps and not stopped_early:
        epoch += 1
        for batch in epoch_batches():
            if not distributed:
                batch = {k: v.to(accelerator.device, non_blocking=True) for k, v in batch.items()}
            teacher_out = teacher_outputs(method, batch, teacher_cache, teacher, accelerator, precision)
            losses = optimisation_step(model, method, batch, teacher_out, optimizer, accelerator,
                                       config.max_grad_norm, precision)
            schedule.step()
            step += 1
            step_terms.append({k: v.detach() for k, v in losses.items()})
            learning_rates.append(schedule.get_last_lr()[0])
            if config.report_to:  # a device sync per step, paid only when someone watches live
                tracking.log_step(accelerator, config, {**step_terms[-1], "lr": learning_rates[-1]}, step)
            bar.update(1)
            if step % eval_every == 0 or step >= total_steps:
                recent = _to_rows(step_terms[last_logged:], first_step=last_logged + 1)
                last_logged = step
                row = {"step": step, "epoch": round(step / steps_per_epoch, 3), "lr": learning_rates[-1],
                       **recent.drop(columns="step").mean().to_dict()}
                if validates:
                    if val_score is not None:
                        unwrapped.eval()
                        with torch.no_grad():
                            score = float(val_score(unwrapped))
                        row["val/score"] = score
                    else:
                        metrics = evaluate(unwrapped, val_data, views=("joint",), batch_size=config.eval_batch_size)
                        row.update({f"val/{k}": v for k, v in metrics.items()})
                        score = metrics.get(f"joint/{config.select_metric}", metrics["joint/accuracy"])
                    if score > best_score:
                        best_score, best_step = score, step
                        if config.checkpoint_rule == "best-val":
                            best_state = copy.deepcopy({k: v.detach().cpu() for k, v in unwrapped.state_dict().items()})
                    if improves(score, patience_reference, config.min_improvement):
                        patience_reference, since_best = score, 0
                    else:
                        since_best += 1
                    model.train()
                evaluations.append(row)
                bar.set_postfix(loss=f"{row['total']:.3f}")
                tracking.log_epoch(accelerator, config, row, step)
                if on_evaluate is not None:
                    on_evaluate(row, unwrapped)
                    model.train()
                if (config.patience is not None and validates and since_best >= config.patience
                        and step >= config.min_steps):
                    stopped_early = True
            if step >= total_steps or stopped_early:
                break
    bar.close()
    tracking.end(accelerator, config)
    if config.checkpoint_rule == "last" or best_state is None:
        best_step = step
    else:
        unwrapped.load_state_dict(best_state)
    step_log = _to_rows(step_terms, first_step=1)
    step_log.insert(1, "lr", learning_rates)
    result = TrainResult(unwrapped, step_log, pd.DataFrame(evaluations), best_step,
                         step, steps_per_epoch, config.checkpoint_rule if validates else "last",
                         time.perf_counter() - start, stopped_early,
                         precision)
    if run_dir is not None and accelerator.is_main_process:
        write_run(result, run_dir, method, config)
    return result


def _to_rows(terms: list[dict[str, torch.Tensor]], first_step: int) -> pd.DataFrame:
    """Per-step loss terms as a frame (one host transfer for all of them)."""
    if not terms:
        return pd.DataFrame({"step": []})
    names = list(terms[0])
    values = torch.stack([torch.stack([t[n].float() for n in names]) for t in terms]).cpu().numpy()
    frame = pd.DataFrame(values, columns=names)
    frame.insert(0, "step", range(first_step, first_step + len(terms)))
    return frame


def write_run(result: TrainResult, run_dir: str | Path, method, config: TrainConfig) -> Path:
    """Per-run files: ``steps.csv`` / ``evaluations.csv`` (every loss term), ``run.json``, the checkpoint."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    result.steps.to_csv(run_dir / "steps.csv", index=False)
    result.evaluations.to_csv(run_dir / "evaluations.csv", index=False)
    info = {"method": method.describe(), "config": dataclasses.asdict(config), "best_step": result.best_step,
            "best_epoch": result.best_epoch, "trained_steps": result.trained_steps,
            "trained_epochs": result.trained_epochs, "stopped_early": result.stopped_early,
            "checkpoint_rule": result.checkpoint_rule, "train_seconds": result.train_seconds,
            "precision": result.precision}  # what it computed in ("bf16" or "fp32"), beside the config's request
    (run_dir / "run.json").write_text(json.dumps(info, indent=2, default=str))
    if hasattr(result.model, "save"):
        result.model.save(run_dir / "checkpoint", extra={"method": method.describe()})
    return run_dir
