"""Mini-batches without per-row Python work.

A ``DataLoader`` over an in-memory :class:`~mmkd_core.data.encoding.EncodedDataset` builds one dict per
row and stacks them again: for a 2-layer student on a CPU that costs more than a tenth of the step.
:func:`iterate_batches` slices the dataset's tensors with one index per batch instead. Datasets that
decode per batch (``LazyDataset``, real images) keep the ``DataLoader`` path, with worker processes and
pinned memory on CUDA.
"""
from __future__ import annotations

from typing import Iterator

import torch


def has_tensors(dataset) -> bool:
    """True for datasets that hold every row as tensors (``dataset.tensors``: name → [N, ...])."""
    return isinstance(getattr(dataset, "tensors", None), dict)


def batch_order(n: int, shuffle: bool, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randperm(n, generator=generator) if shuffle else torch.arange(n)


def iterate_batches(dataset, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None,
                    seed: int = 0, num_workers: int = 0, pin_memory: bool = False) -> Iterator[dict]:
    """Batches of ``dataset`` as dicts of tensors; shuffled with ``generator`` (or ``seed``) when asked.

    One pass (an epoch). The last batch may be smaller. The order only depends on the generator's state,
    so two runs with the same seed see the same batches.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if generator is None and shuffle:
        generator = torch.Generator().manual_seed(seed)
    if has_tensors(dataset):
        order = batch_order(len(dataset), shuffle, generator)
        for start in range(0, len(order), batch_size):
            index = order[start:start + batch_size]
            batch = {key: value[index] for key, value in dataset.tensors.items()}
            if pin_memory:
                batch = {key: value.pin_memory() for key, value in batch.items()}
            yield batch
        return
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator,
                                         collate_fn=getattr(dataset, "collate_fn", None),
                                         num_workers=num_workers, pin_memory=pin_memory,
                                         persistent_workers=False)
    yield from loader


class TensorRows:
    """Rows held as tensors of one length (name → [N, ...]), batched by :func:`iterate_batches` by slicing.

    ``index`` (each row's position in the data it was taken from) is added when absent, so that a teacher cache
    keyed by row (:class:`~mmkd_core.training.cache.TeacherCache`) can be looked up for every batch. Notebook 01's
    images and notebook 06's tower features train through the trainer as ``TensorRows``.
    """

    def __init__(self, **tensors: torch.Tensor):
        lengths = {name: int(t.shape[0]) for name, t in tensors.items()}
        if not tensors or len(set(lengths.values())) != 1:
            raise ValueError(f"TensorRows needs tensors with the same number of rows; got {lengths}")
        n = next(iter(lengths.values()))
        self.tensors = {**tensors}
        self.tensors.setdefault("index", torch.arange(n))

    def __len__(self) -> int:
        return int(self.tensors["index"].shape[0])


def num_batches(dataset, batch_size: int) -> int:
    return -(-len(dataset) // batch_size)


def first_rows(dataset, n: int) -> dict:
    """The first ``n`` rows of any dataset as one batch (a fixed sample for figures)."""
    return next(iterate_batches(dataset, min(n, len(dataset)), shuffle=False))
