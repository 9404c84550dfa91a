"""Modality-relation distillation: the student learns the teacher's modality-level Gram matrix."""
from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F

from ..views import check_views
from .ce import labelled_cross_entropy
from .kd import check_logits_pair, check_temperature, kd_loss

__all__ = ["GRAM_VIEWS", "TRANSFORMS", "GRAM_INPUTS", "GRAM_TARGETS", "modality_gram", "gram_relation_loss",
           "stack_views", "gram_objective"]

GRAM_VIEWS: tuple[str, ...] = ("text", "image", "joint")
"""Row order of A: the paper's three inputs (text alone, image alone, text and image)."""
TRANSFORMS: tuple[str, ...] = ("logits", "probs", "log_probs", "l2_normalized")
"""What :func:`stack_views` puts into A."""
GRAM_INPUTS: tuple[str, ...] = TRANSFORMS + ("features",)
GRAM_TARGETS: tuple[str, ...] = ("gram", "outputs")


def _check_outputs(outputs: torch.Tensor, what: str) -> None:
    if not isinstance(outputs, torch.Tensor) or outputs.dim() != 3:
        shape = tuple(outputs.shape) if isinstance(outputs, torch.Tensor) else type(outputs).__name__
        raise ValueError(f"{what}: expected a 3-D [batch, modalities, dim] tensor, got {shape}")


def _check_finite(outputs: torch.Tensor, what: str) -> None:
    if torch.isnan(outputs).any():
        raise ValueError(f"{what} contains NaN")
    if torch.isinf(outputs).any():
        raise ValueError(f"{what} contains inf")


def modality_gram(outputs: torch.Tensor) -> torch.Tensor:
    r"""Modality-level Gram matrix of each sample (Liu, Eq. 3).

    .. math:: G_b = A_b A_b^\top, \qquad A_b \in \mathbb{R}^{M \times C},\; G_b \in \mathbb{R}^{M \times M}

    Entry :math:`(i, j)` is the inner product of the outputs for modalities ``i`` and ``j`` of the same
    sample: how the sample's views relate to each other.

    Args:
        outputs: ``[B, M, C]`` (one row per modality view).
    Returns:
        ``[B, M, M]``, exactly ``outputs @ outputs.transpose(-1, -2)``, in ``outputs``' dtype even under
        autocast (a student trained in bf16 still gets its Gram loss in float32).
    """
    _check_outputs(outputs, "modality_gram: outputs")
    with torch.autocast(outputs.device.type, enabled=False):
        return outputs @ outputs.transpose(-1, -2)


def gram_relation_loss(student_outputs: torch.Tensor, teacher_outputs: torch.Tensor,
                       target: str = "gram") -> torch.Tensor:
    r"""Modality-relation loss between student and teacher.

    ``target="gram"`` (default; what the paper's text describes, "learning the teacher's modality-level
    Gram matrix"):

    .. math:: \mathcal{L}_{mr} = \frac{1}{B M^2}\sum_{b} \lVert A^s_b A^{s\top}_b - A^t_b A^{t\top}_b \rVert_F^2

    Only the relations between views are matched, so the student's output dimension may differ from the
    teacher's, and the loss is unchanged by any orthogonal transform of either output space
    (:math:`(AR)(AR)^\top = AA^\top`).

    ``target="outputs"``: the paper's literal Eq. 4, :math:`\mathrm{MSE}(A_t, A_s)` averaged over
    ``B * M * C`` entries; this matches the outputs themselves (equal ``C`` required).

    Source: P. Liu, "Multi-Modality Distillation via Learning the Teacher's Modality-level Gram Matrix",
    Eqs. 3-4 (Eq. 4 as printed compares A, not G; see
    ``docs/references.md#gram-paper-gaps-and-our-readings``).

    Args:
        student_outputs, teacher_outputs: ``[B, M, C_s]`` and ``[B, M, C_t]``, used as given (build them
            with :func:`stack_views`). The teacher is treated as a constant (no gradient).
        target: ``"gram"`` or ``"outputs"``.
    """
    if target not in GRAM_TARGETS:
        raise ValueError(f"gram_relation_loss: unknown target {target!r}; accepted: {GRAM_TARGETS}")
    _check_outputs(student_outputs, "gram_relation_loss: student_outputs")
    _check_outputs(teacher_outputs, "gram_relation_loss: teacher_outputs")
    if student_outputs.shape[0] != teacher_outputs.shape[0]:
        raise ValueError(f"gram_relation_loss: batch sizes differ (student {student_outputs.shape[0]}, "
                         f"teacher {teacher_outputs.shape[0]})")
    if student_outputs.shape[1] != teacher_outputs.shape[1]:
        raise ValueError(f"gram_relation_loss: number of modalities M differs: student has "
                         f"{student_outputs.shape[1]}, teacher has {teacher_outputs.shape[1]}; both must stack "
                         "the same views")
    _check_finite(student_outputs, "gram_relation_loss: student_outputs")
    _check_finite(teacher_outputs, "gram_relation_loss: teacher_outputs")
    student = student_outputs.float()
    teacher = teacher_outputs.detach().float()
    if target == "outputs":
        if student.shape[2] != teacher.shape[2]:
            raise ValueError(f"gram_relation_loss: target='outputs' compares A directly and needs equal output "
                             f"dims, got student C={student.shape[2]} and teacher C={teacher.shape[2]}; "
                             "use target='gram'")
        return F.mse_loss(student, teacher)
    return F.mse_loss(modality_gram(student), modality_gram(teacher))


def stack_views(logits_by_view: Mapping[str, torch.Tensor], views: tuple[str, ...] = GRAM_VIEWS,
                transform: str = "logits", *, temperature: float) -> torch.Tensor:
    r"""Stack per-view outputs into the matrix A of the Gram loss: ``{view: [B, C]} -> [B, M, C]``.

    ``transform`` chooses what a row of A is: ``"logits"`` (as given), ``"probs"``
    (:math:`\mathrm{softmax}(z/T)`), ``"log_probs"`` (:math:`\log\mathrm{softmax}(z/T)`) or
    ``"l2_normalized"`` (:math:`z / \lVert z \rVert_2`, so G holds cosine similarities; use it for pooled
    features, whose last dim may be anything). ``temperature`` ``T > 0`` is required even where the transform
    does not read it (``"logits"``, ``"l2_normalized"``), so that no call relies on a default.
    """
    if transform not in TRANSFORMS:
        raise ValueError(f"stack_views: unknown transform {transform!r}; accepted: {TRANSFORMS}")
    check_temperature(temperature, receiver="stack_views")
    check_views(logits_by_view, "stack_views: logits_by_view", views)
    rows = [logits_by_view[v] for v in views]
    for view, row in zip(views, rows):
        if row.dim() != 2:
            raise ValueError(f"stack_views: view {view!r}: expected a [batch, dim] tensor, got {tuple(row.shape)}")
        if row.shape != rows[0].shape:
            raise ValueError(f"stack_views: view {view!r} has shape {tuple(row.shape)} but view {views[0]!r} has "
                             f"{tuple(rows[0].shape)}; all views must share [batch, dim]")
    a = torch.stack([r.float() for r in rows], dim=1)
    if transform == "probs":
        return F.softmax(a / temperature, dim=-1)
    if transform == "log_probs":
        return F.log_softmax(a / temperature, dim=-1)
    if transform == "l2_normalized":
        return F.normalize(a, p=2, dim=-1)
    return a


def gram_objective(student_logits: Mapping[str, torch.Tensor], teacher_logits: Mapping[str, torch.Tensor],
                   labels: torch.Tensor, alpha: float, beta: float, gamma: float, lam: float,
                   temperature: float, *, gram_temperature: float, kd_weight: float = 1.0,
                   gram_input: str = "probs", gram_target: str = "gram",
                   student_features: Mapping[str, torch.Tensor] | None = None,
                   teacher_features: Mapping[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    r"""The Gram-relation KD training objective (Liu, Eqs. 2-4, with the conventional KD term of Sec. 6).

    .. math::
        \mathcal{L} = \alpha\,CE(z^s_{text}, y) + \beta\,CE(z^s_{image}, y) + \gamma\,CE(z^s_{joint}, y)
            + \kappa\,\mathcal{L}_{KD}(z^s_{joint}, z^t_{joint})
            + \lambda\,\mathcal{L}_{mr}\big(A^s, A^t\big)

    with :math:`\kappa` = ``kd_weight``, :math:`\mathcal{L}_{mr}` = :func:`gram_relation_loss` and the rows of
    A the ``("text", "image", "joint")`` views. ``gram_input`` picks A: a :func:`stack_views` transform of
    the logits (``"logits"``, ``"probs"``, ``"log_probs"``, ``"l2_normalized"``; their softmax uses
    ``gram_temperature``, not the KD ``temperature``: at a KD temperature such as 4 the probabilities are so
    flat that the Gram entries hardly differ between teacher and student) or ``"features"``, the L2-normalised pooled features from ``student_features`` /
    ``teacher_features`` (dicts ``view -> [B, D]``; student and teacher D may differ with
    ``gram_target="gram"``).

    Source: P. Liu, "Multi-Modality Distillation via Learning the Teacher's Modality-level Gram Matrix".

    Returns:
        ``ce_text``, ``ce_image``, ``ce_joint``, ``kd_joint``, ``gram`` (all unweighted) and ``total``.
    """
    if gram_input not in GRAM_INPUTS:
        raise ValueError(f"gram_objective: unknown gram_input {gram_input!r}; accepted: {GRAM_INPUTS}")
    if gram_target not in GRAM_TARGETS:
        raise ValueError(f"gram_objective: unknown gram_target {gram_target!r}; accepted: {GRAM_TARGETS}")
    check_temperature(temperature, receiver="gram_objective")
    check_temperature(gram_temperature, "gram_temperature", receiver="gram_objective")
    check_views(student_logits, "gram_objective: student_logits", GRAM_VIEWS)
    check_views(teacher_logits, "gram_objective: teacher_logits", GRAM_VIEWS)
    for view in GRAM_VIEWS:
        check_logits_pair(student_logits[view], teacher_logits[view], what=f"gram_objective: logits of view {view!r}")
        if labels.dim() != 1 or labels.shape[0] != student_logits[view].shape[0]:
            raise ValueError(f"gram_objective: labels: expected a [B] = [{student_logits[view].shape[0]}] tensor "
                             f"of class indices, got shape {tuple(labels.shape)}")

    out = {f"ce_{v}": labelled_cross_entropy(student_logits[v], labels) for v in GRAM_VIEWS}
    out["kd_joint"] = kd_loss(student_logits["joint"], teacher_logits["joint"], temperature)
    if gram_input == "features":
        if student_features is None or teacher_features is None:
            raise ValueError("gram_objective: gram_input='features' needs student_features and teacher_features "
                             f"(dicts view -> [B, D] with keys {GRAM_VIEWS})")
        a_s = stack_views(student_features, transform="l2_normalized", temperature=gram_temperature)
        a_t = stack_views(teacher_features, transform="l2_normalized", temperature=gram_temperature)
    else:
        a_s = stack_views(student_logits, transform=gram_input, temperature=gram_temperature)
        a_t = stack_views(teacher_logits, transform=gram_input, temperature=gram_temperature)
    out["gram"] = gram_relation_loss(a_s, a_t, target=gram_target)
    out["total"] = (alpha * out["ce_text"] + beta * out["ce_image"] + gamma * out["ce_joint"]
                    + kd_weight * out["kd_joint"] + lam * out["gram"])
    return {k: out[k] for k in ("ce_text", "ce_image", "ce_joint", "kd_joint", "gram", "total")}
