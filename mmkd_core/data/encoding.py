"""From ``image`` / ``text`` / ``label`` rows to model-ready tensors.

:class:`ImageTextProcessor` is the one place where images are resized and normalised and text is
tokenised. Two dataset wrappers use it:

- :class:`EncodedDataset` encodes everything once into in-memory tensors. Right for the embedded
  benchmark (a few thousand 32×32 images): an epoch then costs no PIL work at all.
- :class:`LazyDataset` keeps the Hugging Face dataset and encodes per batch in the DataLoader's
  ``collate_fn``. Right for real datasets, whose images must not all be read into memory.

Both yield dicts with ``input_ids``, ``attention_mask``, ``pixel_values``, ``labels`` and ``index``
(the row number, which keys the teacher-output cache).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

from ..labels import MISSING_LABEL, UNLABELLED

REQUIRED_COLUMNS = ("image", "text", "label")


def check_columns(dataset) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in dataset.column_names]
    if missing:
        raise ValueError(f"dataset lacks columns {missing}; expected at least {list(REQUIRED_COLUMNS)} "
                         f"(got {dataset.column_names})")
    if len(dataset) == 0:
        raise ValueError("dataset has zero rows; expected at least one sample")


@dataclasses.dataclass
class ImageTextProcessor:
    """Tokenise text and turn PIL images into normalised ``[3, S, S]`` tensors.

    ``mean``/``std`` default to 0.5, as ViLT was pretrained with, so hub checkpoints see what they expect.
    """

    tokenizer: Any
    image_size: int = 32
    max_length: int = 16
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)

    def encode_images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        arrays = []
        for image in images:
            image = image.convert("RGB")
            if image.size != (self.image_size, self.image_size):
                image = image.resize((self.image_size, self.image_size), Image.BILINEAR)
            arrays.append(np.asarray(image, dtype=np.uint8))
        pixels = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div_(255.0)
        mean = torch.tensor(self.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.std).view(1, 3, 1, 1)
        return (pixels - mean) / std

    def encode_texts(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        encoded = self.tokenizer(list(texts), padding="max_length", truncation=True,
                                 max_length=self.max_length, return_tensors="pt")
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}

    def __call__(self, rows: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Collate function: a list of rows (with ``index``) → a batch dict."""
        batch = self.encode_texts([row["text"] for row in rows])
        batch["pixel_values"] = self.encode_images([row["image"] for row in rows])
        # a row without a label in its file (MISSING_LABEL) is a row the losses must skip (mmkd_core.labels)
        batch["labels"] = torch.tensor([UNLABELLED if int(row["label"]) == MISSING_LABEL else int(row["label"])
                                        for row in rows], dtype=torch.long)
        batch["index"] = torch.tensor([int(row["index"]) for row in rows], dtype=torch.long)
        return batch


def check_labelled_rows(n: int, total: int) -> None:
    if not 1 <= n <= total:
        raise ValueError(f"n_labelled must lie in [1, {total}] (the rows of the training split), got {n}")


def check_row_range(start: int, stop: int, total: int) -> None:
    if not 0 <= start < stop <= total:
        raise ValueError(f"a row range must satisfy 0 <= start < stop <= {total} (the rows there are), "
                         f"got {start}..{stop}")


def dataset_fingerprint(dataset) -> str:
    """A string that changes when the underlying rows change (keys the teacher cache)."""
    return str(getattr(dataset, "_fingerprint", None) or len(dataset))


class EncodedDataset(torch.utils.data.Dataset):
    """All rows encoded once into tensors held in memory."""

    def __init__(self, dataset, processor: ImageTextProcessor, chunk_size: int = 1024):
        check_columns(dataset)
        self.label_names = list(dataset.features["label"].names)
        self.fingerprint = dataset_fingerprint(dataset)
        parts: list[dict[str, torch.Tensor]] = []
        for start in range(0, len(dataset), chunk_size):
            chunk = dataset[start:start + chunk_size]
            rows = [{"image": im, "text": tx, "label": lb, "index": start + i}
                    for i, (im, tx, lb) in enumerate(zip(chunk["image"], chunk["text"], chunk["label"]))]
            parts.append(processor(rows))
        self.tensors = {key: torch.cat([p[key] for p in parts]) for key in parts[0]}

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def __len__(self) -> int:
        return int(self.tensors["labels"].shape[0])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {key: value[i] for key, value in self.tensors.items()}

    collate_fn = None  # torch's default collate stacks the per-row tensors

    @property
    def source_fingerprint(self) -> str:
        """The fingerprint of the rows that ``index`` points into (keys the teacher cache)."""
        return getattr(self, "_source_fingerprint", self.fingerprint)

    def _derived(self, tensors: dict[str, torch.Tensor], what: str) -> "EncodedDataset":
        derived = object.__new__(type(self))
        derived.label_names = self.label_names
        derived.tensors = tensors
        derived._source_fingerprint = self.source_fingerprint
        derived.fingerprint = f"{self.fingerprint}|{what}"
        return derived

    def first(self, n: int) -> "EncodedDataset":
        """The first ``n`` rows, keeping their ``index`` (so a teacher cache of the whole set still applies)."""
        check_labelled_rows(n, len(self))
        return self._derived({k: v[:n] for k, v in self.tensors.items()}, f"first{n}")

    def rows_between(self, start: int, stop: int) -> "EncodedDataset":
        """Rows ``start`` to ``stop - 1``, keeping their ``index`` (e.g. the meta rows carved from the labelled ones)."""
        check_row_range(start, stop, len(self))
        return self._derived({k: v[start:stop] for k, v in self.tensors.items()}, f"rows{start}-{stop}")

    def hide_labels_after(self, n: int) -> "EncodedDataset":
        """Every row, but only the first ``n`` keep their label: the others become a transfer set.

        Their label turns into :data:`~mmkd_core.labels.UNLABELLED`, which every loss reads as "distil,
        do not classify"; the true labels are not kept anywhere in the returned dataset.
        """
        check_labelled_rows(n, len(self))
        labels = self.tensors["labels"].clone()
        labels[n:] = UNLABELLED
        return self._derived({**self.tensors, "labels": labels}, f"labelled{n}")


class LazyDataset(torch.utils.data.Dataset):
    """Rows stay in the Hugging Face dataset; images are decoded per batch by ``collate_fn``."""

    def __init__(self, dataset, processor: ImageTextProcessor):
        check_columns(dataset)
        self.dataset = dataset
        self.label_names = list(dataset.features["label"].names)
        self.fingerprint = dataset_fingerprint(dataset)
        self.collate_fn = processor

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict[str, Any]:
        row = self.dataset[int(i)]
        label = row["label"] if int(i) < self.labelled_rows else UNLABELLED
        return {"image": row["image"], "text": row["text"], "label": label, "index": int(i) + self.index_offset}

    labelled_rows = float("inf")  # rows at or after this index hide their label (a transfer set)
    index_offset = 0  # the row number of this dataset's first row in the rows it was taken from

    @property
    def source_fingerprint(self) -> str:
        return getattr(self, "_source_fingerprint", self.fingerprint)

    def _derived(self, dataset, what: str, labelled_rows=float("inf")) -> "LazyDataset":
        derived = object.__new__(type(self))
        derived.__dict__.update(self.__dict__)
        derived.dataset = dataset
        derived.labelled_rows = labelled_rows
        derived._source_fingerprint = self.source_fingerprint
        derived.fingerprint = f"{self.fingerprint}|{what}"
        return derived

    def first(self, n: int) -> "LazyDataset":
        """The first ``n`` rows (their row numbers, which key the teacher cache, are unchanged)."""
        check_labelled_rows(n, len(self))
        return self._derived(self.dataset.select(range(n)), f"first{n}")

    def rows_between(self, start: int, stop: int) -> "LazyDataset":
        """Rows ``start`` to ``stop - 1`` (see :meth:`EncodedDataset.rows_between`), row numbers kept."""
        check_row_range(start, stop, len(self))
        derived = self._derived(self.dataset.select(range(start, stop)), f"rows{start}-{stop}")
        derived.index_offset = self.index_offset + start
        return derived

    def hide_labels_after(self, n: int) -> "LazyDataset":
        """Every row; only the first ``n`` keep their label (see :meth:`EncodedDataset.hide_labels_after`)."""
        check_labelled_rows(n, len(self))
        return self._derived(self.dataset, f"labelled{n}", labelled_rows=n)
