"""``kd``: α·CE + (1−α)·KD on the joint view (Hinton et al. 2015)."""
from __future__ import annotations

import dataclasses

from ...losses.kd import check_temperature, distillation_objective
from .base import KD_TEMPERATURE, Method, forward_views, register_method


@register_method("kd", label="KD", order=20)
@dataclasses.dataclass
class VanillaKD(Method):
    """α·CE + (1−α)·KD on the joint view; ``temperature``: the KD softmax temperature T."""

    alpha: float = 0.5
    temperature: float = KD_TEMPERATURE
    teacher_views = ("joint",)

    def __post_init__(self):
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"method {self.name!r}: alpha must lie in [0, 1], got {self.alpha!r}")
        check_temperature(self.temperature, receiver=f"method {self.name!r}")

    def step_losses(self, model, batch, teacher_logits):
        logits = forward_views(model, batch, ("joint",)).logits["joint"]
        return distillation_objective(logits, teacher_logits["joint"], batch["labels"], self.alpha,
                                      temperature=self.temperature)
