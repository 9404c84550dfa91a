"""Training methods (mdistiller style): one small class per method.

A method declares which student views it needs and which teacher views it reads, and
``step_losses(model, batch, teacher_logits)`` returns a dict of loss terms with the optimised sum under
``"total"``; the trainer logs every term. Build one by name with :func:`make_method`.

=============  ==================================================================================
``ce``          cross-entropy on the joint view (students without a teacher)
``ce_views``    cross-entropy on each of the three views (a model that also answers unimodally)
``ce_modality_dropout``  CE on one random view per sample (the same goal at one pass per step; teachers)
``kd``          α·CE + (1−α)·KD(joint)  (Hinton et al. 2015)
``ce3``         α·CE(text) + β·CE(image) + γ·CE(joint) + KD(joint): the Gram paper's Eq. 2 without Gram
``gram``        ``ce3`` + λ·MSE(G_s, G_t), G = A·Aᵀ over the three views (Liu)
``msd``         CE(joint) + KD(joint) + Σ_m w_m·KD(view m) (Jin et al.), weights: population /
                instance / meta (:mod:`mmkd_core.weighting.schemes`)
``msd_gram``    ``msd`` + λ·Gram relation loss (a combination neither paper tried)
=============  ==================================================================================
"""
from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F

from ..losses.ce import labelled_cross_entropy
from ..losses.gram import gram_objective, gram_relation_loss, stack_views
from ..losses.kd import check_temperature, distillation_objective
from ..losses.msd import msd_loss
from ..views import VIEWS
from ..weighting.schemes import make_weighting

KD_TEMPERATURE = 4.0
"""The default softmax temperature T of the KD terms of every distilling method (Hinton et al. use 2-20)."""
GRAM_TEMPERATURE = 1.0
"""The default softmax temperature of the Gram's inputs (``gram_temperature`` of ``gram`` and ``msd_gram``)."""

METHODS: dict[str, type] = {}


def register_method(name: str):
    """Class decorator: make a method buildable as ``make_method(name, **kwargs)`` (torchdistill / mdistiller
    style registries). The class's ``name`` attribute is set to ``name``."""
    def wrap(cls):
        if name in METHODS:
            raise ValueError(f"register_method: method name {name!r} is already registered by "
                             f"{METHODS[name].__name__}")
        cls.name = name
        METHODS[name] = cls
        return cls
    return wrap


def _forward(model, batch, views):
    return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                 pixel_values=batch["pixel_values"], views=views)


class Method:
    """Base class. Subclasses set ``name``, ``student_views``, ``teacher_views`` and ``step_losses``."""

    name = "base"
    student_views: tuple[str, ...] = ("joint",)
    teacher_views: tuple[str, ...] = ()
    has_gram_term = False  # True: the student's G (gram_input, gram_temperature) is part of the loss

    @property
    def needs_teacher(self) -> bool:
        return bool(self.teacher_views)

    def setup(self, model, accelerator, meta_data, config) -> None:
        """Called once by the trainer before the first step (meta-learning builds its state here)."""

    def step_losses(self, model, batch, teacher_logits) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        params = dataclasses.asdict(self) if dataclasses.is_dataclass(self) else {}
        return {"name": self.name, **params}


@register_method("ce")
@dataclasses.dataclass
class CrossEntropy(Method):

    def step_losses(self, model, batch, teacher_logits):
        logits = _forward(model, batch, ("joint",)).logits["joint"]
        ce = labelled_cross_entropy(logits, batch["labels"])
        return {"ce": ce, "total": ce}


@register_method("ce_views")
@dataclasses.dataclass
class MultiViewCrossEntropy(Method):
    """CE on each of the three views, no teacher: a model that can answer from either modality alone.

    Used to measure how much of the label each modality carries (notebook 00) and as a teacher that
    has learned meaningful text-only and image-only predictions for MSD and Gram.
    """

    student_views = VIEWS

    def step_losses(self, model, batch, teacher_logits):
        logits = _forward(model, batch, VIEWS).logits
        losses = {f"ce_{v}": labelled_cross_entropy(logits[v], batch["labels"]) for v in VIEWS}
        losses["total"] = sum(losses.values())
        return losses


@register_method("ce_modality_dropout")
@dataclasses.dataclass
class ModalityDropoutCrossEntropy(Method):
    """CE where each sample is seen through one view drawn at random (modality dropout).

    Same goal as ``ce_views`` (a model that also answers from one modality) at the cost of one pass per
    step instead of three: the default for training teachers. ``joint_probability`` is the chance of the
    joint view; the rest is split evenly between text-only and image-only.
    """

    joint_probability: float = 0.5

    def __post_init__(self):
        if not 0.0 <= self.joint_probability <= 1.0:
            raise ValueError(f"method {self.name!r}: joint_probability must lie in [0, 1], "
                             f"got {self.joint_probability!r}")

    def step_losses(self, model, batch, teacher_logits):
        labels = batch["labels"]
        other = (1.0 - self.joint_probability) / 2
        probabilities = torch.tensor([self.joint_probability, other, other], device=labels.device)
        view_index = torch.multinomial(probabilities, labels.shape[0], replacement=True)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       pixel_values=batch["pixel_values"], view_index=view_index).logits["per_sample"]
        losses = {f"ce_{v}": F.cross_entropy(logits[view_index == i].float(), labels[view_index == i])
                  if bool((view_index == i).any()) else logits.sum() * 0.0 for i, v in enumerate(VIEWS)}
        losses["total"] = F.cross_entropy(logits.float(), labels)
        return losses


@register_method("kd")
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
        logits = _forward(model, batch, ("joint",)).logits["joint"]
        return distillation_objective(logits, teacher_logits["joint"], batch["labels"], self.alpha,
                                      temperature=self.temperature)


@register_method("gram")
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
        out = _forward(model, batch, VIEWS)
        return gram_objective(out.logits, teacher_logits, batch["labels"], alpha=self.alpha, beta=self.beta,
                              gamma=self.gamma, lam=self.lam, temperature=self.temperature,
                              kd_weight=self.kd_weight, gram_input=self.gram_input, gram_target=self.gram_target,
                              gram_temperature=self.gram_temperature)


@register_method("msd")
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

    def describe(self):
        return {"name": self.name, **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)}}

    def setup(self, model, accelerator, meta_data, config):
        self.weight_log = []
        self.scheme.setup(model=model, accelerator=accelerator, meta_data=meta_data, config=config,
                          forward=lambda m, b: _forward(m, b, VIEWS).logits, objective=self._loss)

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
        out = _forward(model, batch, VIEWS)
        weights = self.weights(model, batch, teacher_logits, out.logits)
        if self.scheme.per_sample:  # per-sample weights with their row index, for the figures
            logged = {k: torch.as_tensor(w).detach().float().cpu() for k, w in weights.items()}
            logged["index"] = batch["index"].detach().cpu()
            self.weight_log.append(logged)
        return self._loss(out.logits, teacher_logits, batch, weights)


@register_method("ce3")
@dataclasses.dataclass
class ThreeViewCrossEntropyKD(GramRelationKD):
    """The Gram objective without its Gram term (λ = 0): CE on the three views + KD. The ablation that
    tells how much of Gram's effect comes from the three-view CE alone."""

    lam: float = 0.0
    has_gram_term = False

    def __post_init__(self):
        super().__post_init__()
        if self.lam != 0:
            raise ValueError(f"method {self.name!r} is the Gram objective with lam = 0 (got lam={self.lam!r}); "
                             "use method 'gram'")


@register_method("msd_gram")
@dataclasses.dataclass
class ModalitySpecificGramKD(ModalitySpecificKD):
    """MSD plus Liu's Gram relation loss (``gram_lam`` > 0): a combination neither paper tried."""

    gram_lam: float = 1.0
    has_gram_term = True

    def __post_init__(self):
        super().__post_init__()
        if not self.gram_lam > 0:
            raise ValueError(f"method {self.name!r} needs gram_lam > 0 (got {self.gram_lam!r}); "
                             "use method 'msd' without it")


def make_method(name: str, **kwargs) -> Method:
    """Build a registered method by name (see :data:`METHODS`); unknown names and arguments list the known ones."""
    if name not in METHODS:
        raise ValueError(f"make_method: unknown method {name!r}; registered: {sorted(METHODS)}")
    try:
        return METHODS[name](**kwargs)
    except TypeError as error:
        fields = [f.name for f in dataclasses.fields(METHODS[name])]
        raise ValueError(f"method {name!r}: {error}; accepted parameters: {fields}") from None
