"""Modality-specific distillation (MSD): one extra, weighted KD term per unimodal view."""
from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F

from ..views import AUX_VIEWS, VIEWS, check_views
from .ce import labelled_cross_entropy
from .kd import check_logits_pair, check_temperature, kd_loss

__all__ = ["VIEWS", "AUX_VIEWS", "check_msd_weights", "msd_loss"]


def check_msd_weights(weights: Mapping, batch_size: int, receiver: str = "msd_loss") -> None:
    """Validate an MSD weight dict: exactly the keys ``AUX_VIEWS``, each a scalar or a ``[B]`` tensor.

    ``receiver`` (the function that was given ``weights``) starts every message.
    """
    if not isinstance(weights, Mapping):
        raise ValueError(f"{receiver}: weights: expected a dict keyed by {AUX_VIEWS}, got {type(weights).__name__}")
    unknown = [k for k in weights if k not in AUX_VIEWS]
    if unknown:
        raise ValueError(f"{receiver}: weights has unknown key(s) {unknown}; expected exactly the auxiliary "
                         f"views {AUX_VIEWS}")
    missing = [k for k in AUX_VIEWS if k not in weights]
    if missing:
        raise ValueError(f"{receiver}: weights is missing auxiliary view(s) {missing}; expected keys {AUX_VIEWS} "
                         f"(use 0.0 to switch a term off)")
    for view, w in weights.items():
        if isinstance(w, bool) or not isinstance(w, (int, float, torch.Tensor)):
            raise ValueError(f"{receiver}: weights[{view!r}]: expected a python float, a 0-d tensor or a "
                             f"[B] = [{batch_size}] tensor, got {type(w).__name__}")
        if isinstance(w, torch.Tensor) and not (w.dim() == 0 or tuple(w.shape) == (batch_size,)):
            raise ValueError(f"{receiver}: weights[{view!r}]: expected a scalar (0-d) or a per-sample "
                             f"[B] = [{batch_size}] tensor, got shape {tuple(w.shape)}")


def msd_loss(student_logits: Mapping[str, torch.Tensor], teacher_logits: Mapping[str, torch.Tensor],
             labels: torch.Tensor, weights: Mapping[str, float | torch.Tensor],
             temperature: float) -> dict[str, torch.Tensor]:
    r"""Modality-specific distillation objective.

    .. math::
        \mathcal{L}_{MSD} = CE(z^s_{joint}, y) + \mathcal{L}_{KD}(z^s_{joint}, z^t_{joint})
            + \sum_{m \in \{text,\, image\}} \frac{1}{B}\sum_{b=1}^{B} w_{m,b}\;
              T^2\,\mathrm{KL}\big(\mathrm{softmax}(z^t_{m,b}/T)\,\|\,\mathrm{softmax}(z^s_{m,b}/T)\big)

    where :math:`z_m` are the logits of the view that keeps only modality :math:`m` (see
    :mod:`mmkd_core.views`). The student mimics the teacher's modality-specific predictions, not only
    its joint one; because the modalities matter differently, each auxiliary term has a weight
    :math:`w_m`: one number for the whole population (:math:`w_{m,b} = w_m`, chosen on validation, see
    :mod:`mmkd_core.weighting.population`) or one per sample (instance-wise or meta-learned, see
    :mod:`mmkd_core.weighting.instance` / :mod:`mmkd_core.weighting.meta`). Per-sample weights multiply
    the per-sample KD before the batch mean.

    Source: W. Jin, M. Sanjabi, S. Nie, L. Tan, X. Ren, H. Firooz, "Modality-specific Distillation", 2021
    (MSD; only the abstract was available, so the equation above is our reconstruction of it: see
    ``docs/references.md#msd-gaps-and-our-readings``).

    Args:
        student_logits, teacher_logits: dicts ``view -> [B, C]`` with at least the keys ``VIEWS``
            (``"joint"``, ``"text"``, ``"image"``). Teacher logits are treated as constants.
        labels: ``[B]`` integer class labels.
        weights: ``{"text": w_text, "image": w_image}``, each a python float / 0-d tensor or a ``[B]``
            tensor. Weights are *not* detached, so a meta-learner can differentiate through them; detach
            them yourself for the ordinary student step.
        temperature: KD temperature ``T > 0`` (the CE term always uses ``T = 1``).

    Returns:
        ``ce``, ``kd_joint``, ``kd_text``, ``kd_image`` (unweighted batch means, for logging),
        ``weighted_text``, ``weighted_image`` (the terms as they enter the sum) and ``total``.
    """
    check_temperature(temperature, receiver="msd_loss")
    check_views(student_logits, "msd_loss: student_logits")
    check_views(teacher_logits, "msd_loss: teacher_logits")
    for view in VIEWS:
        check_logits_pair(student_logits[view], teacher_logits[view], what=f"msd_loss: logits of view {view!r}")
    batch_size, _ = student_logits["joint"].shape
    for view in AUX_VIEWS:
        if student_logits[view].shape[0] != batch_size:
            raise ValueError(f"msd_loss: view {view!r} has batch size {student_logits[view].shape[0]} but "
                             f"'joint' has {batch_size}; every view must hold the same examples")
    if labels.dim() != 1 or labels.shape[0] != batch_size:
        raise ValueError(f"msd_loss: labels: expected a [B] = [{batch_size}] tensor of class indices, "
                         f"got shape {tuple(labels.shape)}")
    check_msd_weights(weights, batch_size)

    out: dict[str, torch.Tensor] = {"ce": labelled_cross_entropy(student_logits["joint"], labels)}
    out["kd_joint"] = kd_loss(student_logits["joint"], teacher_logits["joint"], temperature)
    total = out["ce"] + out["kd_joint"]
    for view in AUX_VIEWS:
        per_sample = kd_loss(student_logits[view], teacher_logits[view], temperature, reduction="none")
        w = torch.as_tensor(weights[view], dtype=per_sample.dtype, device=per_sample.device)
        out[f"kd_{view}"] = per_sample.mean()
        out[f"weighted_{view}"] = (w * per_sample).mean()
        total = total + out[f"weighted_{view}"]
    out["total"] = total
    return out
