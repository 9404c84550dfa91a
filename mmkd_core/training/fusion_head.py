"""Training the two-tower teacher's fusion head on cached tower features, and the teacher it makes.

The towers and the head are modules (:mod:`mmkd_core.models.two_tower`); this module trains the head
(:func:`train_fusion_head`, with modality dropout), chooses and caches the fit (:func:`fit_two_tower_teacher`),
turns it into a :class:`~mmkd_core.training.cache.TeacherCache` for the students (:func:`teacher_cache`), and
measures it (:func:`split_metrics`, :func:`head_accuracy_vs_labels`). It lived in models/ before, which put
models above training and evaluation in the package's layers.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Iterable, Sequence

import torch

from ..data.batches import TensorRows
from ..determinism import fixed_cpu_threads
from ..evaluation.predict import classification_metrics
from ..models import pretrained
from ..models.two_tower import FUSIONS, FusionHead, TowerFeatures
from ..views import VIEWS
from .cache import TeacherCache, weights_fingerprint
from .methods import make_method
from . import trainer


def _accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return float((logits.argmax(-1) == labels).float().mean())


@dataclasses.dataclass
class FusionFit:
    """A trained head and how it was chosen: best-validation epoch, per-epoch validation accuracy."""

    head: FusionHead
    fusion: str
    best_epoch: int
    validation_accuracy: float
    history: list[float]
    train_seconds: float
    candidates: dict[str, float] = dataclasses.field(default_factory=dict)  # fusion -> best validation accuracy


def train_fusion_head(train: TowerFeatures, validation: TowerFeatures, num_labels: int, fusion: str = "concat",
                      epochs: int = 40, batch_size: int = 128, lr: float = 1e-3, weight_decay: float = 1e-2,
                      joint_probability: float = 0.5, seed: int = 0, **head_options) -> FusionFit:
    """Train a :class:`FusionHead` on cached features with modality dropout; keep the best-validation epoch.

    The one trainer (:func:`~.trainer.train`) with the ``fusion_modality_dropout`` method: cross-entropy of each
    sample seen through one random view (joint with ``joint_probability``, text-only and image-only sharing the rest:
    :func:`.modality_dropout.draw_views`, the teachers' method's draw), AdamW with a cosine decay over the ``epochs``
    (no warm-up, no clipping). The checkpoint is the epoch with the best *joint*
    validation accuracy (ties: the earlier epoch); ``best_epoch`` counts epochs from 1.
    """
    torch.manual_seed(seed)
    head = FusionHead(num_labels, fusion=fusion, regions=train.image.shape[1], **head_options)
    config = trainer.TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                                 warmup_ratio=0.0, schedule="cosine", max_grad_norm=None, seed=seed, progress=False)
    rows = TensorRows(text=train.text, image=train.image, labels=train.labels)

    def joint_validation_accuracy(model: FusionHead) -> float:
        return _accuracy(model.predict(validation, views=("joint",)).logits["joint"], validation.labels)

    result = trainer.train(head, make_method("fusion_modality_dropout", joint_probability=joint_probability), rows,
                           config=config, description=f"fusion head ({fusion})", val_score=joint_validation_accuracy)
    history = result.evaluations["val/score"].tolist()
    best_epoch = int(round(result.best_epoch))
    head = result.model.cpu().eval()  # beside the cached features it reads, wherever it trained
    return FusionFit(head, fusion, best_epoch, history[best_epoch - 1], history, result.train_seconds)


# Bump when train_fusion_head changes, so old cached heads are not reused. 2: trained on one CPU thread wherever
# it trains (mmkd_core.determinism). 3: trained by the one trainer (its schedule, its batch order and dropout draws).
FIT_VERSION = 3


def fit_two_tower_teacher(train: TowerFeatures, validation: TowerFeatures, num_labels: int,
                          fusions: Iterable[str] = FUSIONS, seed: int = 0, cache: bool = True,
                          root: str | Path | None = None, **train_options) -> FusionFit:
    """Train one head per fusion in ``fusions`` and return the one with the best validation accuracy.

    ``candidates`` of the result holds every fusion's best validation accuracy (what the choice read).
    The teacher is trained once: with ``cache``, the chosen head (a plain ``state_dict`` as safetensors plus
    a JSON of its config and fit record) is kept under ``<data>/pretrained/heads/``, keyed by both splits'
    data keys, the towers' weights, ``num_labels``, ``fusions``, ``seed``, ``train_options`` and a version,
    so notebook 06's pretraining sweep reuses the full-pool fit and ``make reproduce`` trains it once.
    """
    fusions = tuple(fusions)
    folder = _fit_folder(root, train, validation, num_labels, fusions, seed, train_options)
    if cache:
        cached = _load_fit(folder)
        if cached is not None:
            return cached
    with fixed_cpu_threads("cpu"):  # the head trains on the cached features, which live on the CPU
        fits = {fusion: train_fusion_head(train, validation, num_labels, fusion=fusion, seed=seed, **train_options)
                for fusion in fusions}
    best = max(fits.values(), key=lambda fit: fit.validation_accuracy)
    best.candidates = {fusion: fit.validation_accuracy for fusion, fit in fits.items()}
    if cache:
        _save_fit(best, folder)
    return best


def _fit_folder(root, train: TowerFeatures, validation: TowerFeatures, num_labels: int, fusions: tuple,
                seed: int, train_options: dict) -> Path:
    fields = [FIT_VERSION, train.towers_key, train.data_key, validation.data_key, num_labels, list(fusions), seed,
              sorted(train_options.items())]
    key = hashlib.sha1(json.dumps(fields, default=str).encode()).hexdigest()[:16]
    return pretrained.pretrained_dir(root) / "heads" / f"head-{key}"


def _save_fit(fit: FusionFit, folder: Path) -> None:
    from safetensors.torch import save_file

    tmp = folder.with_name(folder.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in fit.head.state_dict().items()}, str(tmp / "head.safetensors"))
    record = {"config": fit.head.config, "fusion": fit.fusion, "best_epoch": fit.best_epoch,
              "validation_accuracy": fit.validation_accuracy, "history": fit.history,
              "train_seconds": fit.train_seconds, "candidates": fit.candidates}
    (tmp / "fit.json").write_text(json.dumps(record, indent=1))
    if folder.exists():
        import shutil

        shutil.rmtree(folder)
    tmp.rename(folder)


def _load_fit(folder: Path) -> FusionFit | None:
    """The cached fit in ``folder``, or None when there is none (a partial folder is never renamed into place)."""
    if not (folder / "fit.json").is_file():
        return None
    from safetensors.torch import load_file

    record = json.loads((folder / "fit.json").read_text())
    head = FusionHead(**record["config"])
    head.load_state_dict(load_file(str(folder / "head.safetensors")), strict=True)
    head.eval()
    return FusionFit(head, record["fusion"], record["best_epoch"], record["validation_accuracy"], record["history"],
                     record["train_seconds"], record["candidates"])


def teacher_key(head: FusionHead, features: TowerFeatures) -> str:
    """Key of the two-tower teacher: its towers' weights and the trained head's weights."""
    return f"two-tower-{features.towers_key[:8]}-{weights_fingerprint(head)}"


def teacher_cache(head: FusionHead, features: TowerFeatures, views: Sequence[str] = VIEWS):
    """A :class:`~mmkd_core.training.cache.TeacherCache` of the two-tower teacher on the rows of ``features``.

    Per-view logits and pooled head features, row ``i`` of the cache = row ``i`` of the split, so the
    trainer's lookup by ``batch["index"]`` works for any student. ``data_key`` is the split's fingerprint,
    the same string as :attr:`EncodedDataset.fingerprint` of those rows (compute ``features`` with
    :func:`tower_features` on the very split the student trains on).
    """
    out = head.predict(features, views=views)
    return TeacherCache({v: out.logits[v].float() for v in views}, {v: out.pooled[v].float() for v in views},
                        teacher_key(head, features), features.data_key)


def head_accuracy_vs_labels(train: TowerFeatures, validation: TowerFeatures, test: TowerFeatures,
                            num_labels: int, label_counts: Iterable[int] = (300, 1000, 6000),
                            seeds: Iterable[int] = (0,), fusions: Iterable[str] = FUSIONS, cache: bool = True,
                            root: str | Path | None = None, **train_options):
    """Accuracy of the frozen-feature two-tower teacher against the number of labelled training rows.

    For each ``n`` in ``label_counts`` and each seed, the head is trained on the first ``n`` rows of
    ``train`` (fusion chosen on ``validation`` among ``fusions``) and evaluated on validation and test,
    joint view plus the text-only and image-only views. Returns a ``pandas.DataFrame`` with one line per
    (n, seed): ``n_labels``, ``seed``, ``fusion``, ``best_epoch``, ``train_seconds``,
    ``validation/accuracy``, ``test/accuracy``, ``test/text/accuracy``, ``test/image/accuracy``, and
    ``test/auroc`` for binary tasks. Plot it against a from-scratch teacher's accuracy at the same ``n``.
    Each fit is cached as :func:`fit_two_tower_teacher` says (the full-pool point is the teacher itself).
    """
    import pandas as pd

    lines = []
    for n in label_counts:
        subset = train.head(min(int(n), len(train)))
        for seed in seeds:
            fit = fit_two_tower_teacher(subset, validation, num_labels, fusions=fusions, seed=seed, cache=cache,
                                        root=root, **train_options)
            line = {"n_labels": len(subset), "seed": seed, "fusion": fit.fusion, "best_epoch": fit.best_epoch,
                    "train_seconds": fit.train_seconds,
                    **{f"validation/{fusion} accuracy": acc for fusion, acc in fit.candidates.items()}}
            for split, features in (("validation", validation), ("test", test)):
                out = fit.head.predict(features)
                for view in VIEWS:
                    prefix = split if view == "joint" else f"{split}/{view}"
                    for name, value in classification_metrics(out.logits[view], features.labels).items():
                        line[f"{prefix}/{name}"] = value
            lines.append(line)
    return pd.DataFrame(lines)


def split_metrics(head: FusionHead, features_by_split: dict, views: Sequence[str] = VIEWS) -> dict[str, float]:
    """``"<split>/<metric>"`` (joint view) and ``"<split>/<view>/<metric>"`` of a fitted head, as the
    results tables name them (:func:`mmkd_core.experiments.split_metrics` for the single-stream models)."""
    metrics: dict[str, float] = {}
    for split, features in features_by_split.items():
        out = head.predict(features, views=views)
        for view in views:
            prefix = split if view == "joint" else f"{split}/{view}"
            for name, value in classification_metrics(out.logits[view], features.labels).items():
                metrics[f"{prefix}/{name}"] = value
    return metrics
