"""What every method shares: the base class, the registry with each method's table label and place, the forward pass.

A method is a class registered under a name (:func:`register_method`), built by name with :func:`make_method`. Its
``label`` is how results tables name it and its ``order`` is its place among the tables' rows
(:func:`mmkd_core.results.ordered_methods` reads both through :func:`method_for_label`).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch

KD_TEMPERATURE = 4.0
"""The default softmax temperature T of the KD terms of every distilling method (Hinton et al. use 2-20)."""
GRAM_TEMPERATURE = 1.0
"""The default softmax temperature of the Gram's inputs (``gram_temperature`` of ``gram`` and ``msd_gram``)."""

METHODS: dict[str, type] = {}


def register_method(name: str, *, label: str, order: float):
    """Class decorator: make a method buildable as ``make_method(name, **kwargs)`` (torchdistill / mdistiller
    style registries), shown as ``label`` in results tables at position ``order`` (smaller first).

    The class's ``name``, ``label`` and ``order`` attributes are set. Names and labels are unique: a table row is
    told to belong to a method by its label (:func:`method_for_label`).
    """
    if not isinstance(label, str) or not label.strip():
        raise ValueError(f"register_method({name!r}): label must be a non-empty string, got {label!r}")
    if isinstance(order, bool) or not isinstance(order, (int, float)) or not math.isfinite(order):
        raise ValueError(f"register_method({name!r}): order must be a finite number, got {order!r}")

    def wrap(cls):
        if name in METHODS:
            raise ValueError(f"register_method: method name {name!r} is already registered by "
                             f"{METHODS[name].__name__}")
        taken = [other for other, registered in METHODS.items() if registered.label == label]
        if taken:
            raise ValueError(f"register_method({name!r}): label {label!r} is already the label of method "
                             f"{taken[0]!r}; expected a label of its own")
        cls.name, cls.label, cls.order = name, label, order
        METHODS[name] = cls
        return cls
    return wrap


def method_for_label(row_label: str) -> type | None:
    """The registered method a results row's label names, or None.

    A row is labelled with its method's ``label``, alone or followed by a space and what sets the row apart
    ("KD (transfer set)", "MSD population"). Of the labels that begin ``row_label`` so, the longest wins: "MSD + Gram"
    is ``msd_gram``, not ``msd``; "CE×3 + KD (no Gram)" is ``ce3``, not ``ce`` ("CE" is not followed by a space).
    """
    matches = [cls for cls in METHODS.values() if row_label == cls.label or row_label.startswith(cls.label + " ")]
    return max(matches, key=lambda cls: len(cls.label), default=None)


def forward_views(model, batch, views):
    """The model's outputs on ``batch`` for ``views`` (a tuple of :data:`mmkd_core.views.VIEWS`)."""
    return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                 pixel_values=batch["pixel_values"], views=views)


class Method:
    """Base class. Subclasses are registered (:func:`register_method`) and set ``student_views``,
    ``teacher_views`` and ``step_losses``."""

    name = "base"
    label: str | None = None  # set by register_method: the method's name in results tables
    order: float | None = None  # set by register_method: its place among the tables' rows
    student_views: tuple[str, ...] = ("joint",)
    teacher_views: tuple[str, ...] = ()
    has_gram_term = False  # True: the student's G (gram_input, gram_temperature) is part of the loss
    learns_on_meta_data = False  # True: setup() reads meta_data (a held-out labelled set), e.g. meta-learned weights

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


def make_method(name: str, **kwargs) -> Method:
    """Build a registered method by name (see :data:`METHODS`); unknown names and arguments list the known ones."""
    if name not in METHODS:
        raise ValueError(f"make_method: unknown method {name!r}; registered: {sorted(METHODS)}")
    try:
        return METHODS[name](**kwargs)
    except TypeError as error:
        fields = [f.name for f in dataclasses.fields(METHODS[name])]
        raise ValueError(f"method {name!r}: {error}; accepted parameters: {fields}") from None
