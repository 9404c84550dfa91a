"""Training methods (mdistiller style): one small class per method, one module per method.

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

**Adding a method is one new file** in this folder: a class decorated with
``@register_method(name, label=..., order=...)`` (:mod:`.base`). This package imports every module of its folder
(:func:`mmkd_core.sources.import_submodules`), so the new method is registered with no list to edit, its source
enters the run cache's key (:func:`mmkd_core.runs.training_modules`), and results tables list its rows under its
label at its ``order``.
"""
from __future__ import annotations

from ...sources import import_submodules
from .base import (GRAM_TEMPERATURE, KD_TEMPERATURE, METHODS, Method, forward_views, make_method, method_for_label,
                   register_method)
# the classes, importable from the package as from the single module it once was (a new method needs no line here)
from .ce import CrossEntropy
from .ce3 import ThreeViewCrossEntropyKD
from .ce_modality_dropout import ModalityDropoutCrossEntropy
from .ce_views import MultiViewCrossEntropy
from .gram import GramRelationKD
from .kd import VanillaKD
from .msd import ModalitySpecificKD
from .msd_gram import ModalitySpecificGramKD

import_submodules(__name__, __path__)  # every method module of this folder, the ones above and any new one

__all__ = ["GRAM_TEMPERATURE", "KD_TEMPERATURE", "METHODS", "CrossEntropy", "GramRelationKD", "Method",
           "ModalityDropoutCrossEntropy", "ModalitySpecificGramKD", "ModalitySpecificKD", "MultiViewCrossEntropy",
           "ThreeViewCrossEntropyKD", "VanillaKD", "forward_views", "make_method", "method_for_label",
           "register_method"]
