"""The protocol versions, as the :class:`~.protocol.Protocol` fields each one sets (its switches).

Kept apart from :mod:`.protocol` so that the regime study (:mod:`.regimes`), which runs under protocol v3 whatever
protocol the other notebooks use, reads the same switches.
"""
from __future__ import annotations

from typing import Any

# Protocol v3 on benchmark v2 (issues 23 and 24), the embedded default: validation and test rows that repeat no pool
# scene; a teacher that learns from 18,000 rows of its own (the generator is free: the stand-in for pretraining), so
# that it knows more than every label of the students' 6,000-row pool, with a cap it can stop before; MSD meta's
# weights learn on 50 of the students' 300 labelled rows, never on validation; a warm-up of two passes over a run's
# own rows and a floor of 600 optimiser steps under every student's early stopping, the same for every method, so no
# run stops on the cue plateau because its data set is small; tuning seeds apart from the evaluation seeds; three
# teachers on ve (student seed s distils teacher s mod 3); every method tuned on the learning rate × one knob of its
# own, 2 × 2 cells (:mod:`mmkd_core.method_tuning`), the temperature being the knob of KD and of MSD instance.
PROTOCOL_V3: dict[str, Any] = {
    "benchmark": "v2", "disjoint_splits": True, "teacher_rows": 18000, "teacher_epochs": 60, "student_min_steps": 600,
    "meta_rows": 50, "student_warmup_epochs": 2.0, "tuning_seeds": (100,), "teacher_seeds": (1234, 1235, 1236),
    "temperatures": (2.0, 4.0)}
# Protocol v2 on benchmark v1, what the reports of sessions up to 12 measured: one switch away
# (``Protocol.named("embedded-v2")``, or these as ``protocol_overrides``), so a reader can compare.
PROTOCOL_V2: dict[str, Any] = {
    "benchmark": "v1", "disjoint_splits": False, "teacher_rows": None, "teacher_epochs": None, "student_min_steps": None,
    "meta_rows": None, "student_warmup_epochs": None, "tuning_seeds": (0,), "teacher_seeds": (),
    "temperatures": (1.0, 2.0, 4.0, 8.0)}

FAST_V3: dict[str, Any] = {"benchmark": "v2", "disjoint_splits": True, "teacher_rows": 128, "student_min_steps": 8,
                           "meta_rows": 16, "student_warmup_epochs": 2.0, "tuning_seeds": (100,)}

