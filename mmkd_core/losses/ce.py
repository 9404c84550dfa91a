"""Cross-entropy on the labelled rows of a batch.

Label-limited students train on a *transfer set*: a few labelled rows and many unlabelled ones (their
label is :data:`UNLABELLED`, PyTorch's usual ignore index). Teacher-based terms use every row; the
cross-entropy uses only the labelled ones.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

UNLABELLED = -100
"""Label value of a row whose label the student may not see."""


def labelled_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    r"""Mean cross-entropy over the rows with a label, :math:`\frac{1}{|L|}\sum_{b\in L} -\log p(y_b\mid x_b)`.

    Rows labelled :data:`UNLABELLED` are left out. A batch without any labelled row gives an exact zero
    that still belongs to the autograd graph (``F.cross_entropy`` would return NaN there).
    """
    if labels.dim() != 1 or logits.dim() != 2 or labels.shape[0] != logits.shape[0]:
        raise ValueError(f"expected logits [B, C] and labels [B], got {tuple(logits.shape)} and {tuple(labels.shape)}")
    known = labels != UNLABELLED
    if bool(known.all()):
        return F.cross_entropy(logits.float(), labels)
    if not bool(known.any()):
        return logits.float().sum() * 0.0
    return F.cross_entropy(logits[known].float(), labels[known])


def fill_unlabelled(labels: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Labels where known, the teacher's prediction where not (for signals that need a class per row)."""
    return torch.where(labels == UNLABELLED, teacher_logits.argmax(-1), labels)
