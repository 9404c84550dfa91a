"""The dataset registry: ``register(name)`` makes a loader reachable as ``mmkd_core.data.load(name, ...)``.

Its own module so that loader modules (``real.py``) and the package that imports them (``__init__``) both
depend on it, and not on each other.
"""
from __future__ import annotations

from typing import Callable

import datasets

from .shapes import SPLITS

Loader = Callable[..., datasets.Dataset]
LOADERS: dict[str, Loader] = {}


def register(name: str) -> Callable[[Loader], Loader]:
    """Decorator: make a loader reachable as ``load(name, ...)``."""
    def wrap(fn: Loader) -> Loader:
        LOADERS[name] = fn
        return fn
    return wrap


def check_split(split: str) -> str:
    if not isinstance(split, str) or split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; accepted: {list(SPLITS)}")
    return split
