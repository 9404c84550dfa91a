"""One CPU thread for every computation whose result is cached or reported, so it is a pure function of its key.

A CPU kernel that splits a reduction (a convolution, a matmul, a layer norm) over several threads adds the
partial sums in an order that depends on the thread count. The result then differs in its last bits between
a notebook's kernel (2 threads on a 2-core machine, 16 on a workstation) and the one-thread workers of
``make reproduce``'s teachers phase and student grids. Those bits are enough to move a trained teacher, a
tower feature rounded to float16, or an argmax on a borderline row: measured before this module, a cold
``make reproduce`` moved notebook 06's teacher from 87.8 to 88.1% validation accuracy and flipped one verdict.

So teachers, teacher-output caches, tower features, fusion heads and every evaluation run on
:data:`CACHED_COMPUTATION_THREADS` CPU threads wherever they run. On CUDA the CPU thread count does not enter
the numbers, and nothing is changed.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch

CACHED_COMPUTATION_THREADS = 1
"""The CPU thread count of every cached or reported computation. One: the student grids' workers already train
on one thread each (two small runs in parallel use two cores better than one run on two threads)."""


@contextlib.contextmanager
def fixed_cpu_threads(device: torch.device | str | None = "cpu",
                      threads: int = CACHED_COMPUTATION_THREADS) -> Iterator[None]:
    """Run the block on ``threads`` CPU threads when it computes on the CPU; the previous count is restored after.

    ``device``: where the block computes (a model's device); None or a CUDA device leaves the count alone.
    """
    if device is None or torch.device(device).type != "cpu":
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
