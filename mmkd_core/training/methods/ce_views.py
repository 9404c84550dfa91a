"""``ce_views``: cross-entropy on each of the three views, a model that also answers unimodally."""
from __future__ import annotations

import dataclasses

from ...losses.ce import labelled_cross_entropy
from ...views import VIEWS
from .base import Method, forward_views, register_method


@register_method("ce_views", label="CE (three views)", order=12)
@dataclasses.dataclass
class MultiViewCrossEntropy(Method):
    """CE on each of the three views, no teacher: a model that can answer from either modality alone.

    Used to measure how much of the label each modality carries (notebook 00) and as a teacher that
    has learned meaningful text-only and image-only predictions for MSD and Gram.
    """

    student_views = VIEWS

    def step_losses(self, model, batch, teacher_logits):
        logits = forward_views(model, batch, VIEWS).logits
        losses = {f"ce_{v}": labelled_cross_entropy(logits[v], batch["labels"]) for v in VIEWS}
        losses["total"] = sum(losses.values())
        return losses
