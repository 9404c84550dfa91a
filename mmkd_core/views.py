"""The three input views of a multimodal example, shared by the model, the losses and the weighting schemes.

A view is named after the modality that is *kept*:

* ``"joint"``: text and image together (the normal input);
* ``"text"``: the text alone, the image removed;
* ``"image"``: the image alone, the text removed.

So "the prediction without modality m" is the view named after the *other* modality:
``VIEW_WITHOUT["text"] == "image"`` and ``VIEW_WITHOUT["image"] == "text"``.
"""
from __future__ import annotations

from collections.abc import Mapping

VIEWS: tuple[str, ...] = ("joint", "text", "image")
"""Every view a model produces logits for, keyed by these names."""

AUX_VIEWS: tuple[str, ...] = ("text", "image")
"""The auxiliary (unimodal) views: the ones MSD adds a weighted KD term for, in this order."""

VIEW_WITHOUT: dict[str, str] = {"text": "image", "image": "text"}
"""Modality removed -> the view that remains (without text, only the image is left)."""


def check_views(by_view: Mapping, what: str, views: tuple[str, ...] = VIEWS) -> None:
    """Raise ``ValueError`` naming the missing view(s) and the expected keys if ``by_view`` lacks one of ``views``.

    Extra keys are allowed (a model may return more than the loss needs).
    """
    if not isinstance(by_view, Mapping):
        raise ValueError(f"{what}: expected a dict keyed by view {views}, got {type(by_view).__name__}")
    missing = [v for v in views if v not in by_view]
    if missing:
        raise ValueError(f"{what} is missing view(s) {missing}; expected keys {views}, got {tuple(by_view)}")
