"""Worker processes for independent jobs: one per physical core, started by ``spawn``.

Used by the student grids (:mod:`mmkd_core.runs`), the teachers phase of ``make reproduce`` and notebook 01's
seeds. Workers start by ``spawn`` because a forked copy of a process that already ran OpenMP kernels can hang.
"""
from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
from typing import Any, Callable, Iterable


def default_workers() -> int:
    """One worker per physical core (falls back to the logical count)."""
    try:
        import psutil

        cores = psutil.cpu_count(logical=False)
    except ImportError:  # psutil comes with jupyter; without it, count logical CPUs
        cores = None
    return max(1, cores or os.cpu_count() or 1)


def process_pool(workers: int, **options) -> concurrent.futures.ProcessPoolExecutor:
    """A pool of ``workers`` spawned processes (``options``: ``initializer``, ``initargs``, ...)."""
    return concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), **options)


def parallel_map(function: Callable, items: Iterable, workers: int | None = None,
                 on_result: Callable[[Any, Any], None] | None = None) -> list:
    """``[function(item) for item in items]``, in ``workers`` processes (None: :func:`default_workers`; 1: here).

    Results come back in the order of ``items``; ``on_result(item, result)`` is called as each one finishes
    (in this process), e.g. to log progress. ``function`` must be importable (a module-level function).
    """
    items = list(items)
    workers = min(default_workers() if workers is None else workers, len(items))
    results: list = [None] * len(items)
    if workers <= 1:
        for i, item in enumerate(items):
            results[i] = function(item)
            if on_result is not None:
                on_result(item, results[i])
        return results
    with process_pool(workers) as pool:
        futures = {pool.submit(function, item): i for i, item in enumerate(items)}
        for future in concurrent.futures.as_completed(futures):
            i = futures[future]
            results[i] = future.result()
            if on_result is not None:
                on_result(items[i], results[i])
    return results
