"""``gram``: α·CE(text) + β·CE(image) + γ·CE(joint) + KD(joint) + λ·MSE(G_s, G_t), G = A·Aᵀ over the three
views (Liu's Eq. 2 plus the Gram relation loss)."""
from __future__ import annotations

import dataclasses

from ...losses.gram import gram_objective
from ...losses.kd import check_temperature
from ...views import VIEWS
from .base import GRAM_TEMPERATURE, KD_TEMPERATURE, Method, forward_views, register_method


@register_method("gram", label="Gram", order=50)
@dataclasses.dataclass
class GramRelationKD(Method):
    """Liu's objective; ``lam=0`` gives the ``ce3`` ablation (three-view CE + KD, no Gram).

    ``temperature``: the KD softmax temperature T of the joint KD term. ``gram_temperature``: the softmax
    temperature of the Gram's inputs A (``gram_input`` ``"probs"`` / ``"log_probs"``; unused by the other
    inputs), set apart from T because at T = 4 the probabilities are too flat for their Gram to tell
    teacher from student.
    """

    alpha: float = 1.0
    beta: float = 1.0
    gamma: float = 1.0
    lam: float = 1.0
    kd_weight: float = 1.0
    temperature: float = KD_TEMPERATURE
    gram_input: str = "probs"
    gram_target: str = "gram"
    gram_temperature: float = GRAM_TEMPERATURE
    student_views = VIEWS
    teacher_views = VIEWS
    has_gram_term = True

    def __post_init__(self):
        check_temperature(self.temperature, receiver=f"method {self.name!r}")
        check_temperature(self.gram_temperature, "gram_temperature", receiver=f"method {self.name!r}")
        if self.gram_input == "features":
            raise ValueError(f"method {self.name!r}: gram_input='features' needs pooled teacher features: use "
                             "gram_input in ('logits', 'probs', 'log_probs', 'l2_normalized') with the "
                             "trainer's logit cache")

    def step_losses(self, model, batch, teacher_logits):
        out = forward_views(model, batch, VIEWS)
        return gram_objective(out.logits, teacher_logits, batch["labels"], alpha=self.alpha, beta=self.beta,
                              gamma=self.gamma, lam=self.lam, temperature=self.temperature,
                              kd_weight=self.kd_weight, gram_input=self.gram_input, gram_target=self.gram_target,
                              gram_temperature=self.gram_temperature)
