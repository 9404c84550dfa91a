"""``msd``: CE(joint) + KD(joint) + Σ_m w_m·KD(view m), modality-specific distillation (Jin et al.), with the
weights w_m from a weighting scheme: population / instance / meta (:mod:`mmkd_core.weighting.schemes`)."""
from __future__ import annotations

import dataclasses

import torch

from ...losses.gram import gram_relation_loss, stack_views
from ...losses.kd import check_temperature
from ...losses.msd import msd_loss
from ...views import VIEWS
from ...weighting.schemes import make_weighting
from .base import GRAM_TEMPERATURE, KD_TEMPERATURE, Method, forward_views, register_method


@register_method("msd", label="MSD", order=30)
@dataclasses.dataclass
class ModalitySpecificKD(Method):
    """MSD. ``weighting``: ``population`` (fixed ``text_weight``/``image_weight``), ``instance``
    (teacher saliency per sample, see :mod:`mmkd_core.weighting.instance`) or ``meta`` (a weight network
    trained by one-step-lookahead meta-gradients on ``meta_data``, see :mod:`mmkd_core.weighting.meta`).
    ``gram_lam > 0`` adds Liu's Gram relation loss (the ``msd_gram`` combination).

    The weighting is a small object, ``scheme`` (:mod:`mmkd_core.weighting.schemes`), built from ``weighting``
    and the settings it reads; per-sample weights are kept in ``weight_log`` (one dict per step, with the
    rows' ``index``).

    ``temperature``: the KD softmax temperature T of every KD term (also the temperature of the instance
    weights' teacher probabilities and of the meta weight net's KD features). ``gram_temperature``: the
    softmax temperature of the Gram's inputs A, as in ``gram`` (only read when ``gram_lam > 0``).
    """

    weighting: str = "population"
    text_weight: float = 1.0
    image_weight: float = 1.0
    temperature: float = KD_TEMPERATURE
    instance_method: str = "saliency"
    meta_lr: float = 1e-3
    inner_lr: float = 1e-3
    meta_every: int = 1
    gram_lam: float = 0.0
    gram_input: str = "probs"
    gram_temperature: float = GRAM_TEMPERATURE
    student_views = VIEWS
    teacher_views = VIEWS

    def __post_init__(self):
        check_temperature(self.temperature, receiver=f"method {self.name!r}")
        check_temperature(self.gram_temperature, "gram_temperature", receiver=f"method {self.name!r}")
        # the scheme takes the settings it declares (text_weight / image_weight, instance_method, meta_*)
        settings = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        try:
            self.scheme = make_weighting(self.weighting, **settings)
        except ValueError as error:  # the user passed these settings to this method, not to make_weighting
            raise ValueError(f"method {self.name!r}: {error}") from None
        self.weight_log: list[dict[str, torch.Tensor]] = []

    @property
    def learns_on_meta_data(self) -> bool:
        """The meta-learned weights learn on held-out labelled rows (the trainer's ``meta_data``)."""
        return self.weighting == "meta"

    def describe(self):
        return {"name": self.name, **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)}}

    def setup(self, model, accelerator, meta_data, config):
        self.weight_log = []
        self.scheme.setup(model=model, accelerator=accelerator, meta_data=meta_data, config=config,
                          forward=lambda m, b: forward_views(m, b, VIEWS).logits, objective=self._loss)

    def weights(self, model, batch, teacher_logits, student_logits) -> dict[str, torch.Tensor | float]:
        """This step's weights of the auxiliary KD terms, from the weighting scheme."""
        return self.scheme.weights(model, batch, teacher_logits, student_logits)

    def _loss(self, student_logits, teacher_logits, batch, weights):
        losses = msd_loss(student_logits, teacher_logits, batch["labels"], weights, self.temperature)
        if self.gram_lam:
            gram = gram_relation_loss(
                stack_views(student_logits, transform=self.gram_input, temperature=self.gram_temperature),
                stack_views(teacher_logits, transform=self.gram_input, temperature=self.gram_temperature))
            losses["gram"] = gram
            losses["total"] = losses["total"] + self.gram_lam * gram
        return losses

    def step_losses(self, model, batch, teacher_logits):
        out = forward_views(model, batch, VIEWS)
        weights = self.weights(model, batch, teacher_logits, out.logits)
        if self.scheme.per_sample:  # per-sample weights with their row index, for the figures
            logged = {k: torch.as_tensor(w).detach().float().cpu() for k, w in weights.items()}
            logged["index"] = batch["index"].detach().cpu()
            self.weight_log.append(logged)
        return self._loss(out.logits, teacher_logits, batch, weights)
