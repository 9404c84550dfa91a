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


def difference_ci(a: Iterable[float], b: Iterable[float], confidence: float = 0.95) -> tuple[float, float]:
    """mean(a) - mean(b) and the half-width of its Welch confidence interval (unequal variances).

    half-width = t_{(1+confidence)/2, ν} · √(s_a²/n_a + s_b²/n_b), ν by the Welch–Satterthwaite formula;
    NaN when either side has fewer than two values.
    """
    a, b = np.asarray(list(a), dtype=float), np.asarray(list(b), dtype=float)
    if a.size == 0 or b.size == 0:
        raise ValueError("difference_ci needs at least one value on each side")
    difference = float(a.mean() - b.mean())
    if a.size < 2 or b.size < 2:
        return difference, math.nan
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    if va + vb == 0:
        return difference, 0.0
    dof = (va + vb) ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1))
    return difference, float(stats.t.ppf((1 + confidence) / 2, dof) * math.sqrt(va + vb))
