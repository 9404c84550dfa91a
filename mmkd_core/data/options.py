"""Type and range checks for dataset options, with errors that name the option and what it accepts.

Each checker returns the value (numpy scalars as plain Python numbers, so cache keys stay JSON) or
raises ``ValueError`` such as ``text_cue='0.5' is of type str; accepted: a float in [0, 1]``. Without the
type check, a string reached a comparison and failed with a bare ``TypeError`` naming no option.
"""
from __future__ import annotations

import numbers
import os
from typing import Any, Iterable

import numpy as np


def _fail(option: str, value: Any, accepted: str, problem: str | None = None) -> ValueError:
    problem = problem or f"is of type {type(value).__name__}"
    return ValueError(f"{option}={value!r} {problem}; accepted: {accepted}")


def _plain(value: Any) -> Any:
    # numpy scalars (np.float64, np.int64) are accepted; .item() makes them Python numbers
    return value.item() if hasattr(value, "item") and not isinstance(value, (str, bytes)) else value


def float_option(option: str, value: Any, low: float, high: float, *, high_open: bool = False) -> float:
    """A real number (an int is fine, a bool or a string is not) in [low, high] (or [low, high))."""
    accepted = f"a float in [{low:g}, {high:g}{')' if high_open else ']'}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _fail(option, value, accepted)
    value = _plain(value)
    if not (low <= value < high if high_open else low <= value <= high):
        raise _fail(option, value, accepted, "is out of range")
    return value


def int_option(option: str, value: Any, minimum: int, *, even: bool = False, problem: str | None = None) -> int:
    """An integer (not a bool, not a float such as 3.0) >= ``minimum``, even when ``even``."""
    accepted = f"{'an even' if even else 'an'} integer >= {minimum}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise _fail(option, value, accepted)
    value = int(value)
    if value < minimum or (even and value % 2):
        raise _fail(option, value, accepted, problem or "is out of range")
    return value


def choice_option(option: str, value: Any, choices: Iterable[str], *, what: str | None = None) -> str:
    """One of the strings ``choices``; ``what`` names the option in an unknown-value message."""
    choices = sorted(choices)
    accepted = f"a str, one of {choices}"
    if not isinstance(value, str):
        raise _fail(option, value, accepted)
    if value not in choices:
        raise ValueError(f"unknown {what or option} {value!r}; accepted: {accepted}")
    return value


def bool_option(option: str, value: Any) -> bool:
    """``True`` or ``False`` (numpy bools too); not 0 / 1 and not the string "false"."""
    if not isinstance(value, (bool, np.bool_)):
        raise _fail(option, value, "a bool (True or False)")
    return bool(value)


def path_option(option: str, value: Any, *, optional: bool = True) -> str | os.PathLike | None:
    """A folder given as ``str`` or ``os.PathLike`` (``None`` allowed when ``optional``)."""
    if value is None and optional:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise _fail(option, value, f"a folder path (str or pathlib.Path){' or None' if optional else ''}")
    return value
