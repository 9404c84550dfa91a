r"""Instance-wise MSD weights from the teacher alone (so they can be precomputed once from the teacher cache).

Default ``method="saliency"``: a modality's weight on a sample is how far the teacher's joint prediction
moves when that modality is removed,

.. math:: s_{m,b} = D\big(p^t_{joint,b} \,\|\, p^t_{\setminus m,b}\big), \qquad
          p = \mathrm{softmax}(z / T),

with :math:`D` the Jensen-Shannon divergence (default; symmetric, bounded by :math:`\ln 2`) or the KL
divergence. Views are named after the modality *kept* (:mod:`mmkd_core.views`), so

* removing the text leaves the image view: ``w["text"]`` uses :math:`D(p_{joint} \| p_{image})`;
* removing the image leaves the text view: ``w["image"]`` uses :math:`D(p_{joint} \| p_{text})`.

``w["text"]`` multiplies the KD term of the text view: when the teacher's joint answer depends on the text
(dropping it changes the prediction), the student is pushed harder to reproduce what the teacher reads from
the text alone.

``method="confidence"``: :math:`s_{m,b} = p^t_{m,b}(y_b)`, the teacher's unimodal confidence in the true
label (``w["text"]`` from the text view); a view that gets the answer right alone is trusted more.

Normalisation (``normalize=True`` / ``"joint"``): divide by the mean over all ``2B`` (sample, view) entries,
so the weights average to 1 over the batch *and* both views, keeping the text/image ratio;
``"per_view"`` makes each view average to 1 on its own; ``False`` / ``"none"`` keeps the raw scores. Then
multiply by ``scale`` and clip to ``[0, max_weight]``. If every score is ~0 (the teacher ignores both
removals), normalisation returns uniform weights ``scale``.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F

from ..losses.ce import fill_unlabelled
from ..losses.kd import check_temperature
from ..views import AUX_VIEWS, VIEW_WITHOUT, VIEWS, check_views

__all__ = ["METHODS", "DIVERGENCES", "NORMALIZATIONS", "js_divergence", "kl_divergence", "instance_weights"]

METHODS: tuple[str, ...] = ("saliency", "confidence")
DIVERGENCES: tuple[str, ...] = ("js", "kl")
NORMALIZATIONS: tuple[str, ...] = ("joint", "per_view", "none")
_EPS = 1e-12


def kl_divergence(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    r"""Per-row :math:`\mathrm{KL}(p \| q) = \sum_c p_c (\log p_c - \log q_c)` from log-probabilities ``[B, C]``."""
    p = log_p.exp()
    return torch.where(p > 0, p * (log_p - log_q), torch.zeros_like(p)).sum(dim=-1)


def js_divergence(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    r"""Per-row :math:`\mathrm{JS}(p, q) = \tfrac12 \mathrm{KL}(p \| m) + \tfrac12 \mathrm{KL}(q \| m)`,
    :math:`m = (p + q)/2`, in nats (between 0 and :math:`\ln 2`)."""
    log_m = torch.logsumexp(torch.stack([log_p, log_q]), dim=0) - math.log(2.0)
    return 0.5 * kl_divergence(log_p, log_m) + 0.5 * kl_divergence(log_q, log_m)


def _normalization(normalize: bool | str) -> str:
    if normalize is True:
        return "joint"
    if normalize is False:
        return "none"
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"instance_weights: unknown normalize {normalize!r}; accepted: True, False, "
                         f"{NORMALIZATIONS}")
    return normalize


@torch.no_grad()
def instance_weights(teacher_logits: Mapping[str, torch.Tensor], labels: torch.Tensor | None = None,
                     method: str = "saliency", *, temperature: float, normalize: bool | str = True,
                     divergence: str = "js", scale: float = 1.0,
                     max_weight: float | None = 5.0) -> dict[str, torch.Tensor]:
    """Per-sample weights ``{"text": [B], "image": [B]}`` for :func:`mmkd_core.losses.msd.msd_loss`.

    Args:
        teacher_logits: dict ``view -> [B, C]`` with the keys ``("joint", "text", "image")``.
        labels: ``[B]`` class indices; needed by ``method="confidence"`` only.
        method: ``"saliency"`` (default) or ``"confidence"`` (see the module docstring).
        temperature: softmax temperature ``T > 0`` for the teacher's probabilities.
        normalize: ``True``/``"joint"`` (mean 1 over batch and both views), ``"per_view"``, ``False``/``"none"``.
        divergence: ``"js"`` or ``"kl"`` (saliency only).
        scale: multiplies the (normalised) weights.
        max_weight: upper clip (``None``: no clip); weights are always clipped below at 0.
    Returns:
        Detached float tensors, one ``[B]`` per auxiliary view.
    """
    if method not in METHODS:
        raise ValueError(f"instance_weights: unknown method {method!r}; accepted: {METHODS}")
    if divergence not in DIVERGENCES:
        raise ValueError(f"instance_weights: unknown divergence {divergence!r}; accepted: {DIVERGENCES}")
    check_temperature(temperature, receiver="instance_weights")
    norm = _normalization(normalize)
    check_views(teacher_logits, "instance_weights: teacher_logits")
    shape = teacher_logits["joint"].shape
    for view in VIEWS:
        t = teacher_logits[view]
        if t.dim() != 2 or t.shape != shape:
            raise ValueError(f"instance_weights: teacher_logits[{view!r}]: expected [B, C] = {tuple(shape)} "
                             f"like 'joint', got {tuple(t.shape)}")
    log_p = {v: F.log_softmax(teacher_logits[v].detach().float() / temperature, dim=-1) for v in VIEWS}

    if method == "saliency":
        div = js_divergence if divergence == "js" else kl_divergence
        scores = {m: div(log_p["joint"], log_p[VIEW_WITHOUT[m]]).clamp_min(0.0) for m in AUX_VIEWS}
    else:
        if labels is None or labels.dim() != 1 or labels.shape[0] != shape[0]:
            got = None if labels is None else tuple(labels.shape)
            raise ValueError(f"instance_weights: method='confidence' needs labels of shape [B] = [{shape[0]}], "
                             f"got {got}")
        idx = fill_unlabelled(labels.long(), teacher_logits["joint"]).unsqueeze(1)
        scores = {m: log_p[m].gather(1, idx).squeeze(1).exp() for m in AUX_VIEWS}

    if norm == "joint":
        mean = torch.cat([scores[m] for m in AUX_VIEWS]).mean()
        scores = {m: s / mean if mean > _EPS else torch.ones_like(s) for m, s in scores.items()}
    elif norm == "per_view":
        scores = {m: s / s.mean() if s.mean() > _EPS else torch.ones_like(s) for m, s in scores.items()}
    return {m: (scale * s).clamp(0.0, max_weight) for m, s in scores.items()}
