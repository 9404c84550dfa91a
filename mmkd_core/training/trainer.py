"""One training loop for teachers and students, on Hugging Face Accelerate.

The same code runs on the CPU, on one GPU (bf16 autocast) and on several GPUs or nodes under
``accelerate launch``. What is trained is decided by a *method* (:mod:`mmkd_core.training.methods`):
the method says which views the student needs, which teacher outputs it reads, and returns every loss
term separately (mdistiller style); the loop logs each term per step and per epoch.

Checkpoint rule: ``"best-val"`` (default) keeps the weights of the epoch with the best validation
score (accuracy, or AUROC for binary tasks when ``select_metric="auroc"``); ``"last"`` keeps the final
weights. The rule is stored in the result and printed, so every table can say which one it used.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from sklearn.metrics import roc_auc_score
from tqdm.auto import tqdm

from ..views import VIEWS
from . import tracking
from .cache import TeacherCache, weights_fingerprint

CHECKPOINT_RULES = ("best-val", "last")


@dataclasses.dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    seed: int = 0
    checkpoint_rule: str = "best-val"
    select_metric: str = "accuracy"
    eval_batch_size: int = 512
    progress: bool = True
    cpu: bool | None = None  # None: use CUDA when available
    report_to: str | None = None  # "tensorboard": live curves under data/runs (see training/tracking.py)

    def __post_init__(self) -> None:
        tracking.check_report_to(self.report_to)
        if self.checkpoint_rule not in CHECKPOINT_RULES:
            raise ValueError(f"unknown checkpoint_rule {self.checkpoint_rule!r}; accepted: {list(CHECKPOINT_RULES)}")
        if self.select_metric not in ("accuracy", "auroc"):
            raise ValueError(f"unknown select_metric {self.select_metric!r}; accepted: ['accuracy', 'auroc']")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1 (got {self.epochs}, {self.batch_size})")


@dataclasses.dataclass
class TrainResult:
    model: torch.nn.Module
    steps: pd.DataFrame  # one row per optimisation step, one column per loss term
    epochs: pd.DataFrame  # one row per epoch: mean loss terms + validation metrics
    best_epoch: int
    checkpoint_rule: str
    train_seconds: float

    def summary(self) -> str:
        return (f"checkpoint rule: {self.checkpoint_rule} (kept epoch {self.best_epoch} of "
                f"{len(self.epochs)}), training time {self.train_seconds:.1f} s")


def make_accelerator(cpu: bool | None = None, report_to: str | None = None) -> Accelerator:
    use_cpu = (not torch.cuda.is_available()) if cpu is None else cpu
    return Accelerator(cpu=use_cpu, mixed_precision="no" if use_cpu else "bf16",
                       **tracking.accelerator_options(report_to))


def _loader(dataset, batch_size: int, shuffle: bool, seed: int = 0) -> torch.utils.data.DataLoader:
    generator = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator,
                                       collate_fn=getattr(dataset, "collate_fn", None))


def _model_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: batch[k] for k in ("input_ids", "attention_mask", "pixel_values")}


@torch.no_grad()
def predict(model, dataset, views: Iterable[str] = ("joint",), batch_size: int = 512, progress: bool = False,
            with_pooled: bool = False, description: str = "predict") -> dict[str, Any]:
    """Logits (and pooled features) of ``model`` on every row of ``dataset``, per view, on the CPU."""
    views = tuple(views)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    logits = {v: [] for v in views}
    pooled = {v: [] for v in views}
    labels = []
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    for batch in tqdm(_loader(dataset, batch_size, shuffle=False), desc=description, disable=not progress,
                      leave=False):
        with autocast:
            out = model(**{k: v.to(device) for k, v in _model_inputs(batch).items()}, views=views)
        for v in views:
            logits[v].append(out.logits[v].float().cpu())
            if with_pooled:
                pooled[v].append(out.pooled[v].float().cpu())
        labels.append(batch["labels"])
    model.train(was_training)
    result = {"logits": {v: torch.cat(logits[v]) for v in views}, "labels": torch.cat(labels)}
    if with_pooled:
        result["pooled"] = {v: torch.cat(pooled[v]) for v in views}
    return result


def classification_metrics(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Accuracy, plus AUROC of the positive class for binary tasks (Hateful Memes reports AUROC)."""
    metrics = {"accuracy": float((logits.argmax(-1) == labels).float().mean())}
    if logits.shape[1] == 2:
        scores = torch.softmax(logits.float(), -1)[:, 1].numpy()
        y = labels.numpy()
        metrics["auroc"] = float(roc_auc_score(y, scores)) if len(np.unique(y)) == 2 else math.nan
    return metrics


def evaluate(model, dataset, views: Iterable[str] = ("joint",), batch_size: int = 512) -> dict[str, float]:
    """Metrics per view, flattened as ``"<view>/<metric>"`` (e.g. ``"joint/accuracy"``)."""
    out = predict(model, dataset, views=views, batch_size=batch_size)
    metrics = {}
    for view, logits in out["logits"].items():
        for name, value in classification_metrics(logits, out["labels"]).items():
            metrics[f"{view}/{name}"] = value
    return metrics


def teacher_outputs(method, batch, teacher_cache: TeacherCache | None, teacher, accelerator):
    """The teacher logits a step needs: looked up in the cache, or computed live (no gradient)."""
    if not method.needs_teacher:
        return None
    if teacher_cache is not None:
        return teacher_cache.lookup(batch["index"], method.teacher_views, device=accelerator.device)
    with torch.no_grad(), accelerator.autocast():
        live = teacher(**_model_inputs(batch), views=method.teacher_views)
    return {v: t.float() for v, t in live.logits.items()}


def optimisation_step(model, method, batch, teacher_out, optimizer, accelerator, max_grad_norm: float = 1.0):
    """One step: the method's losses, backward, clipping, optimizer update. Returns the loss terms."""
    with accelerator.autocast():
        losses = method.step_losses(model, batch, teacher_out)
    optimizer.zero_grad(set_to_none=True)
    accelerator.backward(losses["total"])
    if max_grad_norm:
        accelerator.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    return losses


def train(model: torch.nn.Module, method, train_data, val_data=None, config: TrainConfig | None = None,
          teacher_cache: TeacherCache | None = None, teacher: torch.nn.Module | None = None,
          meta_data=None, run_dir: str | Path | None = None, description: str | None = None) -> TrainResult:
    """Train ``model`` with ``method`` and return the model under the checkpoint rule, with its logs.

    Teacher signal: ``teacher_cache`` (precomputed, the default for distillation) or ``teacher`` (a live
    model run on every batch; needed when inputs change per epoch). Methods that need no teacher
    ignore both. ``meta_data`` is the held-out set for meta-learned weighting.
    """
    config = config or TrainConfig()
    set_seed(config.seed)
    # Deterministic CPU kernels where torch offers them; warn rather than fail where it does not.
    torch.use_deterministic_algorithms(True, warn_only=True)
    if method.needs_teacher:
        if teacher_cache is None and teacher is None:
            raise ValueError(f"method {method.name!r} distils from a teacher: pass teacher_cache= or teacher=")
        if teacher_cache is not None:
            if getattr(train_data, "augments", False):
                raise ValueError("train_data changes inputs per epoch (augments=True): a fixed teacher cache is "
                                 "stale; pass teacher= for live teacher outputs or rebuild the cache per epoch")
            teacher_cache.check(data_key=str(getattr(train_data, "fingerprint", len(train_data))))
            if teacher is not None:
                teacher_cache.check(teacher_key=weights_fingerprint(teacher))
                teacher = None  # the cache answers; no need to run the teacher
    if teacher_cache is not None and getattr(teacher_cache.logits.get("joint"), "shape", (0, 0))[1] != model.num_labels:
        raise ValueError(f"teacher predicts {teacher_cache.logits['joint'].shape[1]} classes, the student "
                         f"{model.num_labels}; they must share the label set")

    accelerator = make_accelerator(config.cpu, config.report_to)
    train_loader = _loader(train_data, config.batch_size, shuffle=True, seed=config.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    total_steps = config.epochs * len(train_loader)
    warmup = max(1, int(config.warmup_ratio * total_steps))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup, max(0.0, (total_steps - step) / max(1, total_steps - warmup))))
    model, optimizer, train_loader, schedule = accelerator.prepare(model, optimizer, train_loader, schedule)
    if teacher is not None:
        teacher = accelerator.prepare_model(teacher, evaluation_mode=True)
        teacher.eval()
    method.setup(model=accelerator.unwrap_model(model), accelerator=accelerator, meta_data=meta_data,
                 config=config)

    step_rows: list[dict[str, float]] = []
    epoch_rows: list[dict[str, float]] = []
    best_score, best_epoch, best_state = -math.inf, 0, None
    start = time.perf_counter()
    label = description or method.name
    tracking.start(accelerator, config, label)
    # after prepare() the loader yields this process's shard; the scheduler counts global steps
    bar = tqdm(total=config.epochs * len(train_loader), desc=label,
               disable=not config.progress or not accelerator.is_main_process)
    step = 0
    for epoch in range(1, config.epochs + 1):
        model.train()
        for batch in train_loader:
            teacher_out = teacher_outputs(method, batch, teacher_cache, teacher, accelerator)
            losses = optimisation_step(model, method, batch, teacher_out, optimizer, accelerator,
                                       config.max_grad_norm)
            schedule.step()
            step += 1
            row = {"step": step, "epoch": epoch, "lr": schedule.get_last_lr()[0]}
            row.update({k: float(v.detach()) for k, v in losses.items()})
            step_rows.append(row)
            tracking.log_step(accelerator, config, row, step)
            bar.update(1)
            if step % 10 == 0:
                bar.set_postfix(loss=f"{row['total']:.3f}")
        epoch_row = {"epoch": epoch, **{k: float(np.mean([r[k] for r in step_rows if r["epoch"] == epoch]))
                                         for k in step_rows[-1] if k not in ("step", "epoch")}}
        if val_data is not None:
            metrics = evaluate(accelerator.unwrap_model(model), val_data, views=("joint",),
                               batch_size=config.eval_batch_size)
            epoch_row.update({f"val/{k}": v for k, v in metrics.items()})
            score = metrics.get(f"joint/{config.select_metric}", metrics["joint/accuracy"])
            if config.checkpoint_rule == "best-val" and score > best_score:
                best_score, best_epoch = score, epoch
                best_state = copy.deepcopy({k: v.detach().cpu() for k, v in
                                            accelerator.unwrap_model(model).state_dict().items()})
        epoch_rows.append(epoch_row)
        tracking.log_epoch(accelerator, config, epoch_row, step)
    bar.close()
    tracking.end(accelerator, config)
    unwrapped = accelerator.unwrap_model(model)
    if config.checkpoint_rule == "last" or best_state is None:
        best_epoch = config.epochs
    else:
        unwrapped.load_state_dict(best_state)
    result = TrainResult(unwrapped, pd.DataFrame(step_rows), pd.DataFrame(epoch_rows), best_epoch,
                         config.checkpoint_rule if val_data is not None else "last",
                         time.perf_counter() - start)
    if run_dir is not None and accelerator.is_main_process:
        write_run(result, run_dir, method, config)
    return result


def write_run(result: TrainResult, run_dir: str | Path, method, config: TrainConfig) -> Path:
    """Per-run files: ``steps.csv`` / ``epochs.csv`` (every loss term), ``run.json``, and the checkpoint."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    result.steps.to_csv(run_dir / "steps.csv", index=False)
    result.epochs.to_csv(run_dir / "epochs.csv", index=False)
    info = {"method": method.describe(), "config": dataclasses.asdict(config), "best_epoch": result.best_epoch,
            "checkpoint_rule": result.checkpoint_rule, "train_seconds": result.train_seconds}
    (run_dir / "run.json").write_text(json.dumps(info, indent=2, default=str))
    if hasattr(result.model, "save"):
        result.model.save(run_dir / "checkpoint", extra={"method": method.describe()})
    return run_dir
