"""Population-level MSD weights: one ``(w_text, w_image)`` pair for the whole data set, picked on validation.

Protocol (the trainer runs it): for every candidate of :func:`population_grid`, train a student with
``msd_loss(..., weights=candidate)``, score it on the **validation** split (never the test split), then
keep :func:`select_population_weights` of the ``(candidate, val_score)`` list and report test numbers for
that one candidate only.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence

from ..views import AUX_VIEWS

__all__ = ["population_grid", "select_population_weights"]


def population_grid(values: Iterable[float] = (0.0, 0.5, 1.0, 2.0)) -> list[dict[str, float]]:
    """Every ``{"text": w_t, "image": w_i}`` with both weights drawn from ``values`` (a full grid).

    Ordered by ``w_t`` then ``w_i`` in the order ``values`` gives them (duplicates dropped), so the list is
    deterministic. ``(0, 0)`` is plain KD, the baseline MSD must beat.
    """
    vals: list[float] = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise ValueError(f"population_grid: expected finite non-negative numbers, got {v!r}")
        if float(v) not in vals:
            vals.append(float(v))
    if not vals:
        raise ValueError("population_grid: expected at least one value")
    return [{"text": wt, "image": wi} for wt, wi in itertools.product(vals, vals)]


def select_population_weights(results: Sequence[tuple[Mapping[str, float], float]],
                              higher_is_better: bool = True) -> dict[str, float]:
    """The candidate with the best validation score.

    Ties (equal scores) are broken deterministically, independent of the order of ``results``: the smallest
    total weight ``w_text + w_image`` wins (the candidate closest to plain KD), then the smaller ``w_text``.

    Args:
        results: ``[(weights, val_score), ...]`` with ``weights`` a ``{"text": w, "image": w}`` dict.
        higher_is_better: ``True`` for accuracy / AUROC, ``False`` for a validation loss.
    Returns:
        A copy of the winning weight dict.
    """
    if len(results) == 0:
        raise ValueError("select_population_weights: expected a non-empty list of (weights, val_score)")
    best_key, best = None, None
    for i, item in enumerate(results):
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise ValueError(f"select_population_weights: results[{i}]: expected a (weights, val_score) pair, "
                             f"got {item!r}")
        weights, score = item
        if not isinstance(weights, Mapping) or set(weights) != set(AUX_VIEWS):
            raise ValueError(f"select_population_weights: results[{i}]: expected weights with keys {AUX_VIEWS}, "
                             f"got {weights!r}")
        score = float(score)
        if math.isnan(score):
            raise ValueError(f"select_population_weights: results[{i}]: validation score is NaN for weights "
                             f"{dict(weights)}")
        w_t, w_i = float(weights["text"]), float(weights["image"])
        key = (-score if higher_is_better else score, w_t + w_i, w_t)
        if best_key is None or key < best_key:
            best_key, best = key, {"text": w_t, "image": w_i}
    return best
