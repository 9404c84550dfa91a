"""Summary statistics over seeds: every comparison in reports/ is mean ± 95% CI."""
from __future__ import annotations

import math
from typing import Iterable

import numpy as np
from scipy import stats


def mean_ci(values: Iterable[float], confidence: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of the Student-t confidence interval of the mean.

    With n values, half-width = t_{(1+confidence)/2, n-1} · s / √n, s the sample standard deviation.
    A single value has no spread estimate: its half-width is NaN, never 0, so a table cannot
    pretend to certainty it does not have.
    """
    array = np.asarray(list(values), dtype=float)
    if array.size == 0:
        raise ValueError("mean_ci needs at least one value")
    mean = float(array.mean())
    if array.size == 1:
        return mean, math.nan
    sem = float(array.std(ddof=1)) / math.sqrt(array.size)
    return mean, float(stats.t.ppf((1 + confidence) / 2, array.size - 1) * sem)


def format_mean_ci(values: Iterable[float], scale: float = 100.0, digits: int = 1) -> str:
    """'mean ± half-width' (scaled, e.g. accuracy in percent)."""
    mean, half = mean_ci(values)
    if math.isnan(half):
        return f"{mean * scale:.{digits}f}"
    return f"{mean * scale:.{digits}f} ± {half * scale:.{digits}f}"
