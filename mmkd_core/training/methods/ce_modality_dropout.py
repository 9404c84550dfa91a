"""``ce_modality_dropout``: CE on one random view per sample, the same goal as ``ce_views`` at one pass per step."""
from __future__ import annotations

import dataclasses

import torch.nn.functional as F

from ...views import VIEWS
from ..modality_dropout import draw_views
from .base import Method, register_method


@register_method("ce_modality_dropout", label="CE (modality dropout)", order=14)
@dataclasses.dataclass
class ModalityDropoutCrossEntropy(Method):
    """CE where each sample is seen through one view drawn at random (modality dropout).

    Same goal as ``ce_views`` (a model that also answers from one modality) at the cost of one pass per
    step instead of three: the default for training teachers. ``joint_probability`` is the chance of the
    joint view; the rest is split evenly between text-only and image-only (:func:`..modality_dropout.draw_views`,
    from torch's global generator).
    """

    joint_probability: float = 0.5

    def __post_init__(self):
        if not 0.0 <= self.joint_probability <= 1.0:
            raise ValueError(f"method {self.name!r}: joint_probability must lie in [0, 1], "
                             f"got {self.joint_probability!r}")

    def per_sample_logits(self, model, batch, view_index):
        """The logits of each sample through its own view (``view_index`` into :data:`VIEWS`)."""
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                     pixel_values=batch["pixel_values"], view_index=view_index).logits["per_sample"]

    def step_losses(self, model, batch, teacher_logits):
        labels = batch["labels"]
        view_index = draw_views(labels.shape[0], self.joint_probability, device=labels.device)
        logits = self.per_sample_logits(model, batch, view_index)
        losses = {f"ce_{v}": F.cross_entropy(logits[view_index == i].float(), labels[view_index == i])
                  if bool((view_index == i).any()) else logits.sum() * 0.0 for i, v in enumerate(VIEWS)}
        losses["total"] = F.cross_entropy(logits.float(), labels)
        return losses
