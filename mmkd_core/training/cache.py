"""Teacher-output cache: run the teacher once per (teacher, data), reuse it for every student and seed.

A distillation step then costs about what a plain student step costs. The cache is keyed by a hash of
the teacher's weights and the dataset's fingerprint; using it with another teacher or other data is an
error, never silent garbage. Inputs that change per epoch (data augmentation) invalidate it: such a
dataset must set ``augments = True``, and the trainer then refuses the cache and asks for a live
teacher (or a cache rebuilt per epoch).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterable

import torch
from safetensors.torch import load_file, save_file

from ..evaluation.predict import predict
from ..views import VIEWS


def weights_fingerprint(model: torch.nn.Module) -> str:
    """SHA-1 over a model's parameter names and values (changes with any weight)."""
    digest = hashlib.sha1()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().float().numpy().tobytes())
    return digest.hexdigest()[:16]



def data_key(dataset) -> str:
    """What a cache is keyed by: the rows ``batch["index"]`` points into (a subset or a label-hidden
    transfer set of the same rows shares its parent's key)."""
    return str(getattr(dataset, "source_fingerprint", None) or getattr(dataset, "fingerprint", len(dataset)))


class TeacherCache:
    """Per-view teacher logits (and pooled features) for every row of one dataset, indexed by row."""

    def __init__(self, logits: dict[str, torch.Tensor], pooled: dict[str, torch.Tensor],
                 teacher_key: str, data_key: str):
        self.logits = logits
        self.pooled = pooled
        self.teacher_key = teacher_key
        self.data_key = data_key

    @property
    def views(self) -> tuple[str, ...]:
        return tuple(self.logits)

    def __len__(self) -> int:
        return next(iter(self.logits.values())).shape[0]

    def check(self, teacher_key: str | None = None, data_key: str | None = None) -> None:
        """Raise if this cache was computed for another teacher or other data."""
        if teacher_key is not None and teacher_key != self.teacher_key:
            raise ValueError(f"teacher cache was built for teacher {self.teacher_key}, not {teacher_key}; "
                             f"rebuild it with TeacherCache.build(teacher, dataset)")
        if data_key is not None and data_key != self.data_key:
            raise ValueError(f"teacher cache was built for data {self.data_key}, not {data_key}; "
                             f"rebuild it for this dataset")

    def lookup(self, index: torch.Tensor, views: Iterable[str], device=None) -> dict[str, torch.Tensor]:
        missing = [v for v in views if v not in self.logits]
        if missing:
            raise ValueError(f"teacher cache has views {self.views}, the method needs {missing} too")
        index = index.cpu()
        out = {v: self.logits[v][index] for v in views}
        return {v: t.to(device) for v, t in out.items()} if device is not None else out

    def lookup_pooled(self, index: torch.Tensor, views: Iterable[str], device=None) -> dict[str, torch.Tensor]:
        index = index.cpu()
        return {v: self.pooled[v][index].to(device) if device is not None else self.pooled[v][index]
                for v in views}

    # ---------------------------------------------------------------- build / persist
    @classmethod
    def build(cls, teacher, dataset, views: Iterable[str] = VIEWS, batch_size: int = 256,
              cache_dir: str | Path | None = None, progress: bool = True) -> "TeacherCache":
        """Compute (or load from ``cache_dir``) the teacher's outputs on ``dataset`` for ``views``."""
        views = tuple(views)
        teacher_key = weights_fingerprint(teacher)
        rows_key = data_key(dataset)
        if getattr(dataset, "augments", False):
            raise ValueError("dataset changes its inputs per epoch (augments=True); a fixed teacher cache "
                             "would be stale. Use a live teacher (train(..., teacher=model)) instead.")
        path = None
        if cache_dir is not None:
            key = hashlib.sha1(f"{teacher_key}|{rows_key}|{','.join(views)}".encode()).hexdigest()[:16]
            path = Path(cache_dir) / f"teacher-cache-{key}.safetensors"
            if path.exists():
                return cls.load(path)
        outputs = predict(teacher, dataset, views=views, batch_size=batch_size, progress=progress,
                          with_pooled=True, description="teacher cache")
        cache = cls({v: outputs["logits"][v] for v in views}, {v: outputs["pooled"][v] for v in views},
                    teacher_key, rows_key)
        if path is not None:
            cache.save(path)
        return cache

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {f"logits.{v}": t.contiguous() for v, t in self.logits.items()}
        tensors.update({f"pooled.{v}": t.contiguous() for v, t in self.pooled.items()})
        save_file(tensors, str(path), metadata={"teacher_key": self.teacher_key, "data_key": self.data_key,
                                                "views": json.dumps(list(self.logits))})
        return path

    @classmethod
    def load(cls, path: str | Path) -> "TeacherCache":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata()
        tensors = load_file(str(path))
        views = json.loads(meta["views"])
        return cls({v: tensors[f"logits.{v}"] for v in views}, {v: tensors[f"pooled.{v}"] for v in views},
                   meta["teacher_key"], meta["data_key"])


class TargetCache(TeacherCache):
    """Any per-row teacher outputs, not only logits, looked up by row like a :class:`TeacherCache`.

    Notebook 01's feature KD caches the teacher's data2vec targets Y [M, N, D] under the view ``"targets"``; a
    method that declares ``teacher_views = ("targets",)`` then receives them for its batch's rows from the trainer,
    as a distilling method receives the teacher's logits. ``data_key``: what the rows were computed for (the
    trainer checks it against its training data).
    """

    def __init__(self, targets: dict[str, torch.Tensor], data_key: str, teacher_key: str = ""):
        lengths = {name: tensor.shape[0] for name, tensor in targets.items()}
        if not targets or len(set(lengths.values())) != 1:
            raise ValueError(f"TargetCache needs one or more target tensors with one row per example; got rows "
                             f"{lengths}")
        super().__init__(logits=dict(targets), pooled={}, teacher_key=teacher_key, data_key=data_key)

