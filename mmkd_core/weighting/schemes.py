"""The MSD weighting schemes as small objects with one interface, built by name (:func:`make_weighting`).

A scheme answers, on every training step, the weights of MSD's auxiliary KD terms::

    scheme.weights(model, batch, teacher_logits, student_logits) -> {"text": w, "image": w}

with each ``w`` a float (one weight for the population) or a detached ``[B]`` tensor (one per sample;
``per_sample`` is then True and the method logs them). :meth:`WeightingScheme.setup` runs once before the
first step; only the meta-learned scheme needs it (its weight network, optimiser and meta batches).

================  ==========================================================================================
``population``    fixed ``text_weight`` / ``image_weight`` (picked on validation, :mod:`.population`)
``instance``      the teacher's saliency or confidence per sample (:mod:`.instance`)
``meta``          a weight network trained by one-step look-ahead meta-gradients on a held-out set (:mod:`.meta`)
================  ==========================================================================================
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import torch

from ..data.batches import iterate_batches
from ..losses.kd import check_temperature
from .instance import METHODS, instance_weights  # METHODS: the instance weights' methods (saliency, confidence)
from .meta import MetaReweighter, WeightNet, weight_features

__all__ = ["SCHEMES", "WeightingScheme", "PopulationWeighting", "InstanceWeighting", "MetaWeighting",
           "make_weighting"]

Weights = dict[str, "torch.Tensor | float"]
Forward = Callable[[Any, Mapping[str, torch.Tensor]], Mapping[str, torch.Tensor]]
Objective = Callable[[Mapping[str, torch.Tensor], Mapping[str, torch.Tensor], Mapping[str, torch.Tensor], Weights],
                     Mapping[str, torch.Tensor]]


class WeightingScheme:
    """Base class: ``weights`` on every step, ``setup`` once before the first one."""

    name = "base"  # the registry key (SCHEMES)
    per_sample = False  # True: weights are [B] tensors, logged per step with the rows' indices

    def setup(self, *, model, accelerator, meta_data, config, forward: Forward, objective: Objective) -> None:
        """``forward(model, batch) -> {view: logits}`` and ``objective(student_logits, teacher_logits, batch,
        weights) -> {term: loss}`` are the method's own (the meta-learner differentiates through them)."""

    def weights(self, model, batch, teacher_logits, student_logits) -> Weights:
        raise NotImplementedError


@dataclasses.dataclass
class PopulationWeighting(WeightingScheme):
    """One ``(text_weight, image_weight)`` pair for every sample."""

    name = "population"
    text_weight: float = 1.0
    image_weight: float = 1.0

    def weights(self, model, batch, teacher_logits, student_logits) -> Weights:
        return {"text": self.text_weight, "image": self.image_weight}


@dataclasses.dataclass
class InstanceWeighting(WeightingScheme):
    """Per-sample weights from the teacher alone: ``instance_method`` ``"saliency"`` or ``"confidence"`` of its
    probabilities at ``temperature`` (:func:`.instance.instance_weights`)."""

    name = "instance"
    per_sample = True
    temperature: float
    instance_method: str = "saliency"

    def __post_init__(self):
        check_temperature(self.temperature, receiver=f"weighting {self.name!r}")
        if self.instance_method not in METHODS:
            raise ValueError(f"weighting {self.name!r}: unknown instance_method {self.instance_method!r}; "
                             f"accepted: {list(METHODS)}")

    def weights(self, model, batch, teacher_logits, student_logits) -> Weights:
        return instance_weights(teacher_logits, batch["labels"], method=self.instance_method,
                                temperature=self.temperature)


@dataclasses.dataclass
class MetaWeighting(WeightingScheme):
    """A :class:`.meta.WeightNet` (Adam, ``meta_lr``) updated by a one-step look-ahead (virtual SGD step of
    ``inner_lr``) on a batch of ``meta_data`` every ``meta_every`` steps; its inputs are
    :func:`.meta.weight_features` at ``temperature``. Between updates the current net answers."""

    name = "meta"
    per_sample = True
    temperature: float
    meta_lr: float = 1e-3
    inner_lr: float = 1e-3
    meta_every: int = 1

    def __post_init__(self):
        check_temperature(self.temperature, receiver=f"weighting {self.name!r}")
        if isinstance(self.meta_every, bool) or not isinstance(self.meta_every, int) or self.meta_every < 1:
            raise ValueError(f"weighting {self.name!r}: meta_every must be an integer >= 1, got {self.meta_every!r}")
        self._reweighter, self._meta_batches, self._steps = None, None, 0

    def setup(self, *, model, accelerator, meta_data, config, forward: Forward, objective: Objective) -> None:
        if meta_data is None:
            raise ValueError("weighting='meta' learns its weights on a held-out meta set: pass meta_data=")
        device = accelerator.device
        net = WeightNet().to(device)
        self._reweighter = MetaReweighter(
            model, net, torch.optim.Adam(net.parameters(), lr=self.meta_lr), forward_fn=forward,
            loss_fn=lambda out, b, w: objective(out, b["teacher_logits"], b, w)["total"],
            features_fn=lambda out, b: weight_features(out, b["teacher_logits"], b["labels"], self.temperature),
            inner_lr=self.inner_lr)
        self._meta_batches = _cycle(meta_data, config.batch_size, config.seed, device)
        self._steps = 0

    def weights(self, model, batch, teacher_logits, student_logits) -> Weights:
        if self._reweighter is None:
            raise RuntimeError("weighting='meta' builds its weight network in setup(): call the method's setup first")
        batch = {**batch, "teacher_logits": teacher_logits}
        self._steps += 1
        if (self._steps - 1) % self.meta_every == 0:  # a meta update (one-step look-ahead) on this step
            return self._reweighter.reweight(batch, next(self._meta_batches), student_outputs=student_logits)
        return self._reweighter.weights(student_logits, batch)


SCHEMES: dict[str, type[WeightingScheme]] = {scheme.name: scheme for scheme in
                                              (PopulationWeighting, InstanceWeighting, MetaWeighting)}
"""The registry :func:`make_weighting` builds from: the value of a method's ``weighting`` → its scheme."""


def make_weighting(name: str, **settings) -> "WeightingScheme":
    """The scheme registered as ``name``, built from the ``settings`` it declares as fields (a method passes
    all of its own settings; each scheme takes its share). Unknown names list the registered ones."""
    if name not in SCHEMES:
        raise ValueError(f"unknown weighting {name!r}; accepted: {list(SCHEMES)}")
    scheme = SCHEMES[name]
    return scheme(**{f.name: settings[f.name] for f in dataclasses.fields(scheme) if f.name in settings})


def _cycle(dataset, batch_size, seed, device):
    """Endless shuffled batches of the meta set, on ``device``."""
    generator = torch.Generator().manual_seed(seed + 1)
    while True:
        for batch in iterate_batches(dataset, batch_size, shuffle=True, generator=generator):
            yield {k: v.to(device) for k, v in batch.items()}
