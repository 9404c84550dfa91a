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

    half-width = t_{(1+confidence)/2, ν} · √(s_a²/n_a + s_b²/n_b), ν by the Welch–Satterthwaite formula.
    A side with a single value (a teacher trained once) is a constant, not a sample: it adds no variance,
    so the half-width is the other side's own interval. NaN when neither side has two values.
    """
    a, b = np.asarray(list(a), dtype=float), np.asarray(list(b), dtype=float)
    if a.size == 0 or b.size == 0:
        raise ValueError("difference_ci needs at least one value on each side")
    difference = float(a.mean() - b.mean())
    sides = [(x.var(ddof=1) / x.size, x.size - 1) for x in (a, b) if x.size >= 2]
    if not sides:
        return difference, math.nan
    se2 = sum(v for v, _ in sides)
    if se2 == 0:
        return difference, 0.0
    dof = se2 ** 2 / sum(v ** 2 / d for v, d in sides)
    return difference, float(stats.t.ppf((1 + confidence) / 2, dof) * math.sqrt(se2))


def paired_difference_ci(a: dict, b: dict, confidence: float = 0.95) -> tuple[float, float, int]:
    """Mean of the per-seed differences a[s] − b[s] over the seeds both sides ran, the half-width of its Student-t
    interval, and the number of pairs.

    Runs that share their initialisation and batch order (the same seed of two methods) differ by what the
    methods do plus less noise than two independent samples: the interval of the paired differences,
    t_{(1+confidence)/2, n-1} · s_d / √n, is then the honest (and usually narrower) resolution.
    """
    seeds = sorted(set(a) & set(b))
    if not seeds:
        raise ValueError(f"paired_difference_ci needs seeds on both sides; got {sorted(a)} and {sorted(b)}")
    mean, half = mean_ci([a[s] - b[s] for s in seeds], confidence)
    return mean, half, len(seeds)

