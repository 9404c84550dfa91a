"""Modality dropout: each sample seen through one view drawn at random, the one draw every trainer of it shares.

Two trainers use it: the ``ce_modality_dropout`` method (teachers; :mod:`.methods.ce_modality_dropout`) and the
two-tower teacher's fusion head (:func:`.fusion_head.train_fusion_head`).
"""
from __future__ import annotations

import torch


def draw_views(n: int, joint_probability: float, device: torch.device | str | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` view indices into :data:`mmkd_core.views.VIEWS` (0 joint, 1 text, 2 image), drawn independently:
    joint with ``joint_probability``, text-only and image-only with ``(1 − joint_probability) / 2`` each.

    One ``torch.multinomial`` draw with replacement, from ``generator`` (None: torch's global generator), on
    ``device`` (None: the CPU).
    """
    other = (1.0 - joint_probability) / 2
    probabilities = torch.tensor([joint_probability, other, other], device=device)
    return torch.multinomial(probabilities, n, replacement=True, generator=generator)
