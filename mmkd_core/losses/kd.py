"""Hinton-style soft-target distillation (the baseline of both multimodal papers)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .ce import labelled_cross_entropy


def check_logits_pair(student_logits: torch.Tensor, teacher_logits: torch.Tensor, what: str = "logits") -> None:
    """Clear errors for the mismatches that would otherwise crash deep inside torch or broadcast silently."""
    if student_logits.dim() != 2 or teacher_logits.dim() != 2:
        raise ValueError(f"{what}: expected [batch, classes] tensors, got student {tuple(student_logits.shape)} "
                         f"and teacher {tuple(teacher_logits.shape)}")
    if student_logits.shape[1] != teacher_logits.shape[1]:
        raise ValueError(f"{what}: teacher has {teacher_logits.shape[1]} classes but student has "
                         f"{student_logits.shape[1]}; both must predict the same label set")
    if student_logits.shape[0] != teacher_logits.shape[0]:
        raise ValueError(f"{what}: batch sizes differ (student {student_logits.shape[0]}, "
                         f"teacher {teacher_logits.shape[0]})")


def check_temperature(value: float, name: str = "temperature", *, receiver: str) -> None:
    """ValueError unless ``value > 0``: the one check of every softmax temperature.

    ``name`` is the option that holds the value and ``receiver`` the function or method it was passed to
    (``"kd_loss"``, ``"method 'msd'"``): several losses and methods take a ``temperature``, so the message
    must say which one to fix. ``receiver`` has no default so that no new caller can leave it out.
    """
    if not value > 0:
        raise ValueError(f"{receiver}: {name} must be > 0, got {value!r}")


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float,
            reduction: str = "batchmean") -> torch.Tensor:
    r"""Soft-target knowledge distillation loss.

    .. math::
        \mathcal{L}_{KD} = T^2 \cdot \frac{1}{B}\sum_{b=1}^{B}
            \mathrm{KL}\big(\mathrm{softmax}(z^t_b / T) \,\|\, \mathrm{softmax}(z^s_b / T)\big)

    The :math:`T^2` factor keeps the gradient magnitude comparable across temperatures, because the
    gradient of the softened KL w.r.t. the logits scales as :math:`1/T^2`.

    Source: G. Hinton, O. Vinyals, J. Dean, "Distilling the Knowledge in a Neural Network", 2015.

    Args:
        student_logits, teacher_logits: ``[B, C]`` logits. The teacher's are treated as constants.
        temperature: ``T > 0``.
        reduction: ``"batchmean"`` (default, as in the paper) or ``"none"`` for a per-sample ``[B]`` loss
            (used by instance-wise weighting).
    """
    check_temperature(temperature, receiver="kd_loss")
    check_logits_pair(student_logits, teacher_logits, what="kd_loss: logits")
    log_p_student = F.log_softmax(student_logits.float() / temperature, dim=-1)
    log_p_teacher = F.log_softmax(teacher_logits.detach().float() / temperature, dim=-1)
    per_sample = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(dim=-1) * temperature**2
    if reduction == "none":
        return per_sample
    if reduction == "batchmean":
        return per_sample.mean()
    raise ValueError(f"kd_loss: unknown reduction {reduction!r}; accepted: 'batchmean', 'none'")


def distillation_objective(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                           alpha: float = 0.5, *, temperature: float) -> dict[str, torch.Tensor]:
    r"""The vanilla KD training objective :math:`\alpha\,CE(z^s, y) + (1-\alpha)\,\mathcal{L}_{KD}`.

    Returns every term separately (``ce``, ``kd``) plus their weighted sum ``total`` so that a trainer
    can log each one. The CE term reads only labelled rows (:data:`~mmkd_core.losses.ce.UNLABELLED` rows
    of a transfer set are distilled, not classified); the KD term reads every row.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"distillation_objective: alpha must lie in [0, 1], got {alpha!r}")
    # checked here, not only inside kd_loss, so that the message names the function the caller called
    check_temperature(temperature, receiver="distillation_objective")
    ce = labelled_cross_entropy(student_logits, labels)
    kd = kd_loss(student_logits, teacher_logits, temperature)
    return {"ce": ce, "kd": kd, "total": alpha * ce + (1.0 - alpha) * kd}
