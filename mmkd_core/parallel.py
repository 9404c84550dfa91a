"""Worker processes for independent jobs: one per physical core, started by ``spawn``.

Used by the student grids (:mod:`mmkd_core.runs`), the teachers phase of ``make reproduce`` and notebook 01's
seeds. Workers start by ``spawn`` because a forked copy of a process that already ran OpenMP kernels can hang.
"""
from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import signal
import threading
from typing import Any, Callable, Iterable


def default_workers() -> int:
    """One worker per physical core (falls back to the logical count)."""
    try:
        import psutil

        cores = psutil.cpu_count(logical=False)
    except ImportError:  # psutil comes with jupyter; without it, count logical CPUs
        cores = None
    return max(1, cores or os.cpu_count() or 1)


def process_pool(workers: int, initializer: Callable | None = None, initargs: tuple = (),
                 **options) -> concurrent.futures.ProcessPoolExecutor:
    """A pool of ``workers`` spawned processes; ``initializer(*initargs)`` runs in each as it starts.

    Workers ignore Ctrl-C (SIGINT). A terminal's Ctrl-C, and Jupyter when it interrupts or shuts down a kernel,
    signal the whole process group; a worker that took the signal would die printing
    ``Process SpawnProcess-N: Traceback ... KeyboardInterrupt`` after a run that worked. The parent alone
    handles the interrupt: it closes the pool (:func:`stop_pool`), which ends the workers without a word.
    """
    return concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                                  initializer=_start_worker, initargs=(initializer, initargs),
                                                  **options)


def _start_worker(initializer: Callable | None, initargs: tuple) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if initializer is not None:
        initializer(*initargs)


def submit_all(pool: concurrent.futures.ProcessPoolExecutor, function: Callable,
               items: Iterable) -> dict[concurrent.futures.Future, int]:
    """``{future: position}`` of ``function(item)`` for every item, submitted to ``pool``.

    The pool starts its workers here, on submission. A worker still importing torch when the process group
    gets SIGINT would print a traceback before :func:`_start_worker` could ignore the signal, so the workers
    are started with SIGINT ignored from birth: an ignored signal stays ignored across the exec of a spawned
    process. The main process ignores it for the few milliseconds this takes (a Ctrl-C then is lost; press again).
    """
    ignore = threading.current_thread() is threading.main_thread()  # signal handlers belong to the main thread
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if ignore else None
    try:
        return {pool.submit(function, item): i for i, item in enumerate(items)}
    finally:
        if ignore:
            signal.signal(signal.SIGINT, previous)


def stop_pool(pool: concurrent.futures.ProcessPoolExecutor, interrupted: bool = False) -> None:
    """Shut ``pool`` down: finish quietly, or, when the caller was ``interrupted``, drop the queued jobs and
    terminate the workers at once (they ignore SIGINT, so a run in progress would otherwise hold the exit)."""
    if not interrupted:
        pool.shutdown(wait=True, cancel_futures=True)
        return
    # ProcessPoolExecutor has no public "kill": its worker processes are reached through _processes (stable
    # since Python 3.2); SIGTERM ends a worker without a traceback.
    processes = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=10)


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
    pool = process_pool(workers)
    try:
        futures = submit_all(pool, function, items)
        for future in concurrent.futures.as_completed(futures):
            i = futures[future]
            results[i] = future.result()
            if on_result is not None:
                on_result(items[i], results[i])
    except BaseException:
        stop_pool(pool, interrupted=True)  # an error or Ctrl-C: leave no worker running on
        raise
    stop_pool(pool)
    return results
