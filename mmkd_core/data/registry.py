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
    """Decorator: make a loader reachable as ``load(name, ...)``. A name is registered once: a second loader under
    it would silently replace the first (the method registry refuses the same way). Registering the same function
    again (its module reloaded) replaces it."""
    def wrap(fn: Loader) -> Loader:
        held = LOADERS.get(name)
        if held is not None and (held.__module__, held.__qualname__) != (fn.__module__, fn.__qualname__):
            raise ValueError(f"register: dataset name {name!r} is already registered by "
                             f"{held.__module__}.{held.__qualname__}; choose another name")
        LOADERS[name] = fn
        return fn
    return wrap


def check_split(split: str) -> str:
    if not isinstance(split, str) or split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; accepted: {list(SPLITS)}")
    return split
