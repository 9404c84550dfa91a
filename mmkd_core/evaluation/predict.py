"""Inference and metrics: the one eval-mode forward every caller uses (trainer, cache, analysis, tables)."""
from __future__ import annotations

import contextlib
import math
from typing import Any, Iterable

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from tqdm.auto import tqdm

from ..data.batches import iterate_batches
from ..determinism import fixed_cpu_threads
from .precision import autocast_for

MODEL_INPUTS = ("input_ids", "attention_mask", "pixel_values")


def model_inputs(batch: dict[str, torch.Tensor], device=None) -> dict[str, torch.Tensor]:
    """The three tensors a multimodal model reads, moved to ``device`` (non-blocking from pinned memory)."""
    if device is None:
        return {k: batch[k] for k in MODEL_INPUTS}
    return {k: batch[k].to(device, non_blocking=True) for k in MODEL_INPUTS}


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module):
    """Eval mode and no gradients inside, the model's previous mode restored after."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)


def predict(model, dataset, views: Iterable[str] = ("joint",), batch_size: int = 512, progress: bool = False,
            with_pooled: bool = False, description: str = "predict") -> dict[str, Any]:
    """Logits (and pooled features) of ``model`` on every row of ``dataset``, per view, on the CPU.

    On a CPU it computes on one thread (:mod:`mmkd_core.determinism`): a reported accuracy or a cached teacher
    output is then the same in a notebook's kernel and in a one-thread worker. Precision: the ``"default"`` of
    :mod:`.precision` (bf16 autocast on CUDA, float32 on the CPU)."""
    views = tuple(views)
    device = next(model.parameters()).device
    logits: dict[str, list] = {v: [] for v in views}
    pooled: dict[str, list] = {v: [] for v in views}
    labels = []
    with eval_mode(model), fixed_cpu_threads(device):
        for batch in tqdm(iterate_batches(dataset, batch_size, shuffle=False), desc=description,
                          disable=not progress, leave=False):
            with autocast_for(device):
                out = model(**model_inputs(batch, device), views=views)
            for v in views:
                logits[v].append(out.logits[v].float().cpu())
                if with_pooled:
                    pooled[v].append(out.pooled[v].float().cpu())
            labels.append(batch["labels"])
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
