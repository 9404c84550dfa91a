"""``ce``: cross-entropy on the joint view, the student without a teacher."""
from __future__ import annotations

import dataclasses

from ...losses.ce import labelled_cross_entropy
from .base import Method, forward_views, register_method


@register_method("ce", label="CE", order=10)
@dataclasses.dataclass
class CrossEntropy(Method):

    def step_losses(self, model, batch, teacher_logits):
        logits = forward_views(model, batch, ("joint",)).logits["joint"]
        ce = labelled_cross_entropy(logits, batch["labels"])
        return {"ce": ce, "total": ce}
