"""Notebook 01's training: a supervised image classifier (the embedded teacher, the no-teacher student) and
data2vec-style feature distillation (the student regresses the teacher's targets), both on the one trainer.

Each is a method of the trainer (:func:`~.trainer.train`): ``image_ce`` (cross-entropy with random shifts) and
``data2vec_feature_kd`` (MSE to the teacher's cached targets, which reach every step as the teacher's outputs through
a :class:`~.cache.TargetCache`). The trainer brings the device policy (CUDA with bf16 autocast when available,
float32 on the CPU), the optimiser and schedule, the per-step log of every loss term, early stopping on a validation
score after every epoch (``val_score``) and the best-validation checkpoint. :func:`default_config` gives these runs'
settings (AdamW, warm-up then cosine, clipping, flushed denormals); ``patience`` and ``min_improvement`` are the
early-stopping rule, as for every other run.

Teacher targets do not depend on the student, and the student sees the images unaugmented, so
:func:`cache_teacher_targets` computes them once; a distillation step then costs one student step.
"""
from __future__ import annotations

import torch
from accelerate.utils import set_seed
from torch import Tensor, nn

from ..data.batches import TensorRows
from ..losses.data2vec import Data2VecDistillationLoss, Data2VecLossConfig
from ..models.vision import FeatureClassifier, hidden_states
from . import trainer
from .cache import TargetCache, data_key
from .methods import make_method
from .methods.data2vec_feature_kd import StudentWithLossHead
from .methods.image_ce import random_shift
from .trainer import TrainResult, ValidationScore, make_accelerator

__all__ = ["FEATURE_KD_DEFAULTS", "FeatureClassifier", "StudentWithLossHead", "cache_teacher_targets",
           "default_config", "random_shift", "seed_everything", "train_classifier", "train_feature_kd"]

FEATURE_KD_DEFAULTS = dict(epochs=20, batch_size=64, lr=1e-3, weight_decay=0.05, warmup_ratio=0.1,
                           schedule="cosine", max_grad_norm=1.0, seed=0, progress=True, flush_denormals=True,
                           optimizer_foreach=None)
"""These runs' settings where they differ from the trainer's: AdamW (torch's per-tensor update), linear warm-up over
10% of the steps then a cosine to 0 at the last epoch, gradient-norm clipping at 1, denormals flushed on the CPU."""


def default_config(**changes) -> trainer.TrainConfig:
    """The trainer's :class:`~.trainer.TrainConfig` with :data:`FEATURE_KD_DEFAULTS`, then ``changes``.

    ``epochs`` is the cap; with ``patience`` the run stops after that many epochs without an improvement of its
    validation score (by ``min_improvement``) and keeps its best epoch.
    """
    return trainer.TrainConfig(**{**FEATURE_KD_DEFAULTS, **changes})


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices); call before building a model so its init is repeatable."""
    set_seed(seed)


def _check_images(images: Tensor, name: str = "images") -> None:
    if images.dim() != 4:
        raise ValueError(f"{name} must be [M, C, H, W]; got {tuple(images.shape)}")
    if images.shape[0] == 0:
        raise ValueError(f"{name} is empty")


def train_classifier(model: nn.Module, images: Tensor, labels: Tensor, config: trainer.TrainConfig | None = None,
                     max_shift: int = 0, description: str = "supervised",
                     val_score: ValidationScore | None = None) -> TrainResult:
    """Cross-entropy training of ``model`` (``model(x)`` returns logits) on ``images`` [M, C, H, W], ``labels`` [M]
    with the ``image_ce`` method; ``max_shift`` > 0 adds random translations (seeded).

    Used for the embedded teacher (a timm BEiT with its head) and for the no-teacher student
    (:class:`~mmkd_core.models.vision.FeatureClassifier` around a Data2Vec student). ``val_score(model)`` (higher is
    better): the validation score of early stopping and of the kept checkpoint.
    """
    _check_images(images)
    config = config or default_config()
    if labels.shape != (images.shape[0],):
        raise ValueError(f"labels must be [M] = [{images.shape[0]}]; got {tuple(labels.shape)}")
    return trainer.train(model, make_method("image_ce", max_shift=max_shift), TensorRows(pixel_values=images,
                         labels=labels), config=config, description=description, val_score=val_score)


@torch.no_grad()
def cache_teacher_targets(teacher: nn.Module, images: Tensor, loss_config: Data2VecLossConfig = Data2VecLossConfig(),
                          batch_size: int = 256) -> Tensor:
    """The teacher's data2vec targets Y for every image, computed once: float32 [M, N, D] on the CPU.

    Memory is M·N·D·4 bytes (for 224 px / patch 16 / D = 768 about 0.6 MB per image).
    """
    _check_images(images)
    accelerator = make_accelerator()
    teacher = teacher.to(accelerator.device).eval()
    chunks = []
    for start in range(0, images.shape[0], batch_size):
        with accelerator.autocast():
            layers = hidden_states(teacher, images[start:start + batch_size].to(accelerator.device))
        chunks.append(loss_config.targets(layers).float().cpu())
    return torch.cat(chunks)


def train_feature_kd(student: nn.Module, images: Tensor, teacher_targets: Tensor,
                     loss: Data2VecDistillationLoss | None = None, config: trainer.TrainConfig | None = None,
                     description: str = "feature KD", val_score: ValidationScore | None = None) -> TrainResult:
    """Distil: minimise the data2vec loss between the student's prediction Ŷ(x) and the cached target Y(x) with the
    ``data2vec_feature_kd`` method. ``loss`` holds the loss config and the optional projection head (trained and
    checkpointed with the student); by default the draft's config with equal widths. No labels are used.

    ``val_score(pair)``: the validation score (higher is better) of the :class:`StudentWithLossHead` being trained.
    """
    _check_images(images)
    if teacher_targets.dim() != 3 or teacher_targets.shape[0] != images.shape[0]:
        raise ValueError(
            f"teacher_targets must be [M, N, D] with M = {images.shape[0]} (one per image); got {tuple(teacher_targets.shape)}"
        )
    rows = TensorRows(pixel_values=images)
    targets = TargetCache({"targets": teacher_targets}, data_key=data_key(rows))
    pair = StudentWithLossHead(student, loss if loss is not None else Data2VecDistillationLoss())
    return trainer.train(pair, make_method("data2vec_feature_kd"), rows, config=config or default_config(),
                         teacher_cache=targets, description=description, val_score=val_score)
