"""Training loops for notebook 01: a supervised classifier (the embedded teacher, the no-teacher student)
and data2vec-style feature distillation (the student regresses the teacher's targets).

Both run through Hugging Face Accelerate: CUDA with bf16 autocast when available, float32 on CPU.
Settings: the trainer's :class:`~.trainer.TrainConfig`; :func:`default_config` gives these loops' defaults
(``schedule="cosine"``). Seeded: the batch order comes from a ``torch.Generator`` seeded with ``config.seed`` and there is
no dropout in the embedded models, so a CPU run is repeatable bit for bit. Every optimisation step is
logged (epoch, step, loss, learning rate) into a :class:`TrainHistory`.

Teacher targets do not depend on the student, and the student sees the images unaugmented, so
:func:`cache_teacher_targets` computes them once; a distillation step then costs one student step.
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable, Iterator

import pandas as pd
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..losses.data2vec import Data2VecDistillationLoss, Data2VecLossConfig
from ..models.vision import hidden_states, model_width, pooled_features
# one config, device policy, optimiser and schedule for every loop: CUDA + bf16 autocast, else CPU
from . import trainer
from .trainer import make_accelerator, make_optimizer, make_schedule


FEATURE_KD_DEFAULTS = dict(epochs=20, batch_size=64, lr=1e-3, weight_decay=0.05, warmup_ratio=0.1,
                           schedule="cosine", max_grad_norm=1.0, seed=0, progress=True)
"""These loops' settings where they differ from the trainer's: AdamW, linear warm-up over 10% of the steps then
a cosine to 0 at the last epoch, gradient-norm clipping at 1."""


def default_config(**changes) -> trainer.TrainConfig:
    """The trainer's :class:`~.trainer.TrainConfig` with :data:`FEATURE_KD_DEFAULTS`, then ``changes``.

    The loops read ``epochs`` (the cap), ``batch_size``, ``lr``, ``weight_decay``, ``warmup_ratio``,
    ``schedule``, ``max_grad_norm``, ``seed``, ``progress`` and ``cpu``; early stopping is an
    ``on_epoch_end`` callback (:class:`EarlyStopping`), not ``patience``.
    """
    return trainer.TrainConfig(**{**FEATURE_KD_DEFAULTS, **changes})




@dataclasses.dataclass
class TrainHistory:
    """Per-step log: one dict per optimisation step."""

    records: list[dict] = dataclasses.field(default_factory=list)

    def log(self, **values) -> None:
        self.records.append(values)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame.from_records(self.records)

    def to_csv(self, path) -> None:
        self.to_frame().to_csv(path, index=False)

    @property
    def losses(self) -> list[float]:
        return [record["loss"] for record in self.records]


class EarlyStopping:
    """An ``on_epoch_end`` callback: score the model on validation after every epoch, keep the best weights,
    stop after ``patience`` epochs without improvement. Call :meth:`restore_best` once training returns.

    ``score()`` returns a number where higher is better (pass minus a loss). Epochs count from 1 in
    ``best_epoch`` and ``epochs``, the columns of the runs tables.
    """

    def __init__(self, modules: list[nn.Module], score: Callable[[], float], patience: int = 5,
                 min_delta: float = 0.0):
        if patience < 1:
            raise ValueError(f"patience must be >= 1; got {patience}")
        self.modules, self.score, self.patience, self.min_delta = modules, score, patience, min_delta
        self.scores: list[float] = []
        self.best_score, self.best_epoch, self._best_state = -math.inf, 0, None

    @property
    def epochs(self) -> int:
        """Epochs actually trained."""
        return len(self.scores)

    def __call__(self, epoch: int) -> bool:
        with torch.no_grad():
            value = float(self.score())
        self.scores.append(value)
        if value > self.best_score + self.min_delta:
            self.best_score, self.best_epoch = value, len(self.scores)
            # a copy on the CPU: the live tensors keep changing in place
            self._best_state = [{k: v.detach().cpu().clone() for k, v in m.state_dict().items()} for m in self.modules]
        return len(self.scores) - self.best_epoch >= self.patience

    def restore_best(self) -> None:
        """Load the best epoch's weights into the modules (a no-op before the first epoch)."""
        if self._best_state is None:
            return
        for module, state in zip(self.modules, self._best_state):
            module.load_state_dict(state)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices); call before building a model so its init is repeatable."""
    set_seed(seed)


def _shuffled_batches(num_examples: int, batch_size: int, generator: torch.Generator) -> Iterator[Tensor]:
    order = torch.randperm(num_examples, generator=generator)
    for start in range(0, num_examples, batch_size):
        yield order[start:start + batch_size]


def _check_images(images: Tensor, name: str = "images") -> None:
    if images.dim() != 4:
        raise ValueError(f"{name} must be [M, C, H, W]; got {tuple(images.shape)}")
    if images.shape[0] == 0:
        raise ValueError(f"{name} is empty")


EpochEnd = Callable[[int], bool]  # called after each epoch with its index; True stops training


def _run(model_parts: list[nn.Module], step_loss: Callable[[Tensor, Accelerator], Tensor], num_examples: int,
         config: trainer.TrainConfig, description: str, on_epoch_end: EpochEnd | None = None) -> TrainHistory:
    """Shared loop: ``step_loss(batch_index, accelerator)`` returns the loss of one batch of indices.

    ``on_epoch_end(epoch)`` runs after every epoch (e.g. :class:`EarlyStopping`); if it returns True the
    loop stops there. The schedule is laid out over ``config.epochs``, which is then the cap.
    """
    unused = [name for name in ("max_steps", "eval_every", "patience", "report_to", "compile_backend")
              if getattr(config, name) is not None]
    if unused:
        raise ValueError(f"the feature-KD loops do not read {unused}: they train for config.epochs and stop early "
                         f"through on_epoch_end (EarlyStopping); leave these settings None")
    accelerator = make_accelerator(config.cpu)
    # On CPU, tiny gradients (and AdamW's squared-gradient averages) become float32 denormals late in
    # training, and x86 arithmetic on denormals is ~100x slower: we measured one 20-epoch run going from
    # 15 s to 230 s. Flushing them to zero changes nothing measurable in the results.
    torch.set_flush_denormal(True)
    try:
        return _run_loop(accelerator, model_parts, step_loss, num_examples, config, description, on_epoch_end)
    finally:
        torch.set_flush_denormal(False)  # PyTorch's default; there is no getter to restore another state


def _run_loop(accelerator: Accelerator, model_parts: list[nn.Module], step_loss, num_examples: int,
              config: trainer.TrainConfig, description: str, on_epoch_end: EpochEnd | None = None) -> TrainHistory:
    parameters = [p for part in model_parts for p in part.parameters() if p.requires_grad]
    optimizer = make_optimizer(parameters, config, foreach=None)
    steps_per_epoch = math.ceil(num_examples / config.batch_size)
    scheduler = make_schedule(optimizer, config, config.epochs * steps_per_epoch)
    for part in model_parts:
        part.to(accelerator.device).train()
    optimizer, scheduler = accelerator.prepare(optimizer, scheduler)
    generator = torch.Generator().manual_seed(config.seed)
    history, step, start = TrainHistory(), 0, time.perf_counter()
    bar = tqdm(range(config.epochs), desc=description, disable=not config.progress, leave=False)
    for epoch in bar:
        for batch_index in _shuffled_batches(num_examples, config.batch_size, generator):
            with accelerator.autocast():
                loss = step_loss(batch_index, accelerator)
            optimizer.zero_grad(set_to_none=True)
            accelerator.backward(loss)
            if config.max_grad_norm:
                accelerator.clip_grad_norm_(parameters, config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            history.log(epoch=epoch, step=step, loss=float(loss.detach()), lr=optimizer.param_groups[0]["lr"],
                        seconds=time.perf_counter() - start)
            step += 1
        bar.set_postfix(loss=f"{history.records[-1]['loss']:.4f}")
        if on_epoch_end is not None:
            for part in model_parts:
                part.eval()
            stop = on_epoch_end(epoch)
            for part in model_parts:
                part.train()
            if stop:
                break
    for part in model_parts:
        part.eval()
    return history


class FeatureClassifier(nn.Module):
    """A linear classifier on a backbone's last block: on the mean of its patch tokens (``readout="mean_patches"``),
    or on all its tokens concatenated (``readout="flattened_tokens"``, which needs ``num_tokens``, CLS included).

    Each token is layer-normed first. The flattened read-out keeps where in the image each token is, which the
    mean discards (the embedded models have only relative position biases, no absolute position embedding).
    """

    def __init__(self, backbone: nn.Module, num_classes: int, readout: str = "mean_patches",
                 num_tokens: int | None = None):
        super().__init__()
        if readout not in ("mean_patches", "flattened_tokens"):
            raise ValueError(f"readout must be 'mean_patches' or 'flattened_tokens'; got {readout!r}")
        if readout == "flattened_tokens" and not num_tokens:
            raise ValueError("readout='flattened_tokens' needs num_tokens (1 + number of patches)")
        self.backbone, self.readout = backbone, readout
        width = model_width(backbone)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width * (num_tokens if readout == "flattened_tokens" else 1), num_classes)

    def forward(self, pixel_values: Tensor) -> Tensor:
        if self.readout == "mean_patches":
            return self.head(self.norm(pooled_features(self.backbone, pixel_values)))
        return self.head(self.norm(hidden_states(self.backbone, pixel_values)[-1]).flatten(1))


def random_shift(images: Tensor, max_shift: int, generator: torch.Generator, fill: float = -1.0) -> Tensor:
    """Translate every image by its own random (dy, dx) ∈ [-max_shift, max_shift]², filling with ``fill``."""
    if max_shift <= 0:
        return images
    size = images.shape[-1]
    padded = F.pad(images, (max_shift,) * 4, value=fill)
    offsets = torch.randint(0, 2 * max_shift + 1, (images.shape[0], 2), generator=generator)
    return torch.stack([padded[i, :, dy:dy + size, dx:dx + size] for i, (dy, dx) in enumerate(offsets.tolist())])


def train_classifier(model: nn.Module, images: Tensor, labels: Tensor, config: trainer.TrainConfig | None = None,
                     max_shift: int = 0, description: str = "supervised",
                     on_epoch_end: EpochEnd | None = None) -> TrainHistory:
    """Cross-entropy training of ``model`` (``model(x)`` returns logits) on ``images`` [M, C, H, W], ``labels`` [M].

    ``max_shift`` > 0 adds random translations (seeded). Used for the embedded teacher (a timm BEiT with
    its head) and for the no-teacher student (:class:`FeatureClassifier` around a Data2Vec student).
    """
    _check_images(images)
    config = config or default_config()
    if labels.shape != (images.shape[0],):
        raise ValueError(f"labels must be [M] = [{images.shape[0]}]; got {tuple(labels.shape)}")
    augment_generator = torch.Generator().manual_seed(config.seed + 1)

    def step_loss(batch_index: Tensor, accelerator: Accelerator) -> Tensor:
        batch = random_shift(images[batch_index], max_shift, augment_generator).to(accelerator.device)
        return F.cross_entropy(model(batch).float(), labels[batch_index].to(accelerator.device))

    return _run([model], step_loss, images.shape[0], config, description, on_epoch_end)


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
                     description: str = "feature KD", on_epoch_end: EpochEnd | None = None) -> TrainHistory:
    """Distil: minimise the data2vec loss between the student's prediction Ŷ(x) and the cached target Y(x).

    ``loss`` holds the loss config and the optional projection head (trained with the student); by
    default the draft's config with equal widths. No labels are used.
    """
    _check_images(images)
    if teacher_targets.dim() != 3 or teacher_targets.shape[0] != images.shape[0]:
        raise ValueError(
            f"teacher_targets must be [M, N, D] with M = {images.shape[0]} (one per image); got {tuple(teacher_targets.shape)}"
        )
    loss = loss if loss is not None else Data2VecDistillationLoss()
    config = config or default_config()

    def step_loss(batch_index: Tensor, accelerator: Accelerator) -> Tensor:
        batch = images[batch_index].to(accelerator.device)
        return loss(hidden_states(student, batch), teacher_targets=teacher_targets[batch_index].to(accelerator.device))

    return _run([student, loss], step_loss, images.shape[0], config, description, on_epoch_end)
