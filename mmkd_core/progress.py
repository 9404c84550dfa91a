"""Live progress of the teachers phase of ``make reproduce``: events sent by worker processes, bars drawn by the parent.

The teachers train in spawned worker processes (:func:`mmkd_core.runs.prepare_teachers`). A bar drawn by each
worker would overwrite the others' lines, so a worker only puts small events on a queue it shares with the
parent, and one thread of the parent draws every bar (:class:`TeacherBars`).

The queue is a ``multiprocessing.Manager().Queue()``: its proxy can travel as an argument of a pool task, which a
plain ``multiprocessing.Queue`` cannot. Events are plain dicts, so the manager's server process unpickles them
without importing this package. An event is about the teacher at position ``teacher`` of the list and says:

- ``done`` of ``total`` ``unit``\\ s finished: epochs of a from-scratch teacher against its cap, or stages of the
  two-tower teacher (each split's tower features, the fusion head, each head of the pretraining curve);
- ``accuracy``: the last validation accuracy (epochs), or ``stage``: the stage now running (stages);
- ``finished``: the teacher is ready; ``summary`` says how it ended, in a few words.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.managers
import signal
import threading
from typing import Any, Callable, Iterator

from tqdm.auto import tqdm

ProgressCallback = Callable[[dict], None]


class TeacherReporter:
    """A worker's side: puts one teacher's events on the queue shared with the parent (picklable)."""

    def __init__(self, events, teacher: int):
        self.events, self.teacher = events, teacher

    def _send(self, **fields: Any) -> None:
        self.events.put({"teacher": self.teacher, **fields})

    def started(self, total: int, unit: str) -> None:
        """The worker took the teacher up: its bar's clock, hence its estimate of the time left, starts now."""
        self._send(done=0, total=total, unit=unit)

    def epoch_callback(self, cap: int) -> Callable[[dict, Any], None]:
        """An ``on_evaluate`` callback of :func:`mmkd_core.training.trainer.train` for a teacher that validates once
        per epoch. It reads the trainer's validation row and never the model, so the training is unchanged."""

        def report(info: dict, model) -> None:
            self._send(done=round(info["epoch"]), total=cap, unit="epoch", accuracy=info.get("val/joint/accuracy"))

        return report

    def stage(self, done: int, total: int, stage: str) -> None:
        """``stage`` starts with ``done`` of ``total`` stages finished (the ``on_stage`` of the two-tower teacher)."""
        self._send(done=done, total=total, unit="stage", stage=stage)

    def finished(self, summary: str) -> None:
        self._send(finished=True, summary=summary)


@contextlib.contextmanager
def forwarded_events(callback: ProgressCallback) -> Iterator[Any]:
    """A queue proxy to hand to workers; a thread of this process calls ``callback(event)`` for each event, in order.

    On exit, every event put before has reached ``callback`` (a worker puts its events before its task returns),
    and the manager's process is stopped.
    """
    manager = multiprocessing.managers.SyncManager(ctx=multiprocessing.get_context("spawn"))  # spawn: as every worker
    manager.start(_ignore_interrupts)
    try:
        events = manager.Queue()

        def forward() -> None:
            while (event := events.get()) is not None:  # None: the phase is over (events are dicts)
                callback(event)

        thread = threading.Thread(target=forward, name="teacher progress", daemon=True)
        thread.start()
        try:
            yield events
        finally:
            events.put(None)
            thread.join()
    finally:
        manager.shutdown()


def _ignore_interrupts() -> None:
    # Ctrl-C reaches the whole process group. The parent handles it (it stops the workers); a manager that died of
    # it first would take the queue with it, and the parent's last events and end marker with the queue.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


# The remaining time assumes the epoch cap; a teacher that stops early finishes sooner, hence "at most".
RUNNING_FORMATS = {"epoch": "{desc}: epoch {n_fmt}/{total_fmt} |{bar:20}| {elapsed}, at most {remaining} left{postfix}",
                   "stage": "{desc}: stage {n_fmt}/{total_fmt} |{bar:20}| {elapsed}, about {remaining} left{postfix}"}
WAITING_FORMAT = "{desc}: waiting for a worker"
CACHED_FORMAT = "{desc}: cached{postfix}"


class TeacherBars:
    """The parent's side: one bar per teacher, fed with the workers' events (call it with each event).

    ``cached``: teachers found in the cache before the phase starts, shown as done at once; their worker only
    loads them. Should one train after all (its checkpoint removed in the meantime), its epochs turn its bar into a
    running one.
    """

    def __init__(self, labels: list[str], cached: list[bool], file=None):
        width = max(map(len, labels), default=0)
        self.bars = [tqdm(total=1, initial=int(is_cached), desc=label.ljust(width), position=position, leave=True,
                          bar_format=CACHED_FORMAT if is_cached else WAITING_FORMAT, file=file)
                     for position, (label, is_cached) in enumerate(zip(labels, cached))]
        self.cached, self.running = list(cached), [False] * len(self.bars)

    def __call__(self, event: dict) -> None:
        number = event["teacher"]
        bar = self.bars[number]
        if event.get("finished"):
            if self.running[number]:  # its time is fixed now, not the clock's when the phase ends
                elapsed = bar.format_interval(bar.format_dict["elapsed"])
                bar.bar_format = "{desc}: done in " + elapsed + "{postfix}"
            bar.set_postfix_str(event["summary"])
            return
        if not self.running[number]:
            # A cached teacher's worker still starts it and walks the two-tower stages (each one a cache hit): the bar
            # stays done. Only a trained epoch means it is training after all.
            if self.cached[number] and not (event["unit"] == "epoch" and event["done"]):
                return
            self.running[number] = True
            bar.bar_format = RUNNING_FORMATS[event["unit"]]
            bar.reset(total=event["total"])  # also restarts the clock: the time spent waiting is not an epoch's
        if event.get("accuracy") is not None:
            bar.set_postfix_str(f"validation {100 * event['accuracy']:.1f}%", refresh=False)
        elif event.get("stage"):
            bar.set_postfix_str(event["stage"], refresh=False)
        bar.update(event["done"] - bar.n)
        bar.refresh()  # update() skips drawing within its minimum interval; every event is worth showing

    def close(self) -> None:
        for bar in self.bars:
            bar.close()
