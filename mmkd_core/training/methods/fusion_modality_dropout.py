"""``fusion_modality_dropout``: the two-tower teacher's fusion head, trained on cached tower features with modality
dropout (notebook 06)."""
from __future__ import annotations

import dataclasses

from .base import register_method
from .ce_modality_dropout import ModalityDropoutCrossEntropy


@register_method("fusion_modality_dropout", label="fusion head CE (modality dropout)", order=102)
@dataclasses.dataclass
class FusionHeadModalityDropout(ModalityDropoutCrossEntropy):
    """``ce_modality_dropout`` (the same draw of one view per sample, the same loss terms) for a
    :class:`~mmkd_core.models.two_tower.FusionHead`, whose batches hold the towers' cached ``text`` and ``image``
    features rather than token ids and pixels."""

    student_views = ()

    def per_sample_logits(self, model, batch, view_index):
        return model(batch["text"], batch["image"], view_index=view_index).logits["per_sample"]
