"""``data2vec_feature_kd``: the student regresses the teacher's data2vec targets (notebook 01, draft Eq. 1-4)."""
from __future__ import annotations

import dataclasses

from torch import nn

from ...losses.data2vec import Data2VecDistillationLoss
from ...models.vision import hidden_states
from .base import Method, register_method


class StudentWithLossHead(nn.Module):
    """What feature KD optimises: the student and the loss's projection head (when the widths differ), trained
    together and checkpointed together by the trainer."""

    def __init__(self, student: nn.Module, loss: Data2VecDistillationLoss):
        super().__init__()
        self.student, self.loss = student, loss


@register_method("data2vec_feature_kd", label="data2vec feature KD", order=100)
@dataclasses.dataclass
class Data2VecFeatureKD(Method):
    """L = MSE(Ŷ(x), Y(x)) over the CLS and patch tokens, Ŷ the student's prediction and Y the teacher's target
    (instance norm per layer, mean over layers, parameter-free layer norm: :class:`Data2VecDistillationLoss`).

    The model is a :class:`StudentWithLossHead`; the teacher's targets are cached per image and reach every step as
    the teacher's outputs ``{"targets": Y[batch rows]}`` (a :class:`~mmkd_core.training.cache.TargetCache`), so
    a step costs one student forward pass. No labels are read.
    """

    student_views = ()
    teacher_views = ("targets",)

    def step_losses(self, model, batch, teacher_logits):
        prediction = hidden_states(model.student, batch["pixel_values"])
        loss = model.loss(prediction, teacher_targets=teacher_logits["targets"])
        return {"data2vec": loss, "total": loss}
