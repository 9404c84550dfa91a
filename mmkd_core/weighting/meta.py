r"""Meta-learned MSD weights: a small network maps per-sample signals to ``(w_text, w_image)`` and is trained
so that the student, after a step on the weighted MSD loss, does better on held-out data.

This is the one-step look-ahead of "learning to reweight" (M. Ren, W. Zeng, B. Yang, R. Urtasun, "Learning
to Reweight Examples for Robust Deep Learning", ICML 2018) with an explicit weight network as in
Meta-Weight-Net (J. Shu et al., NeurIPS 2019), both cited by MSD for its meta-learned weights. One
:func:`meta_step` with student parameters :math:`\theta` and weight-net parameters :math:`\phi`:

1. weights :math:`w = g_\phi(\text{features})` and the weighted training loss
   :math:`\mathcal{L}_{train}(\theta, w)` (e.g. :func:`mmkd_core.losses.msd.msd_loss`);
2. a virtual SGD step :math:`\hat\theta(\phi) = \theta - \eta\,\nabla_\theta \mathcal{L}_{train}` kept in the graph
   (``torch.autograd.grad(..., create_graph=True)``);
3. the student with :math:`\hat\theta` (``torch.func.functional_call``) on a **meta batch from the validation
   split**: :math:`\mathcal{L}_{meta}(\hat\theta(\phi))`, by default plain CE on the joint view;
4. :math:`\nabla_\phi \mathcal{L}_{meta}` into the weight net, one step of its optimizer.

The student itself is not changed: the caller then takes its real step on the MSD loss with the
(detached) weights of the updated weight net, see :meth:`MetaReweighter.weights`.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call

from ..losses.ce import fill_unlabelled
from ..losses.kd import check_temperature, kd_loss
from ..views import AUX_VIEWS, check_views

__all__ = ["FEATURE_NAMES", "OUTPUTS", "weight_features", "WeightNet", "FunctionalStudent", "joint_ce_meta_loss",
           "meta_step", "MetaReweighter"]

FEATURE_NAMES: tuple[str, ...] = ("log1p_kd_text", "log1p_kd_image", "teacher_conf_text", "teacher_conf_image",
                                  "teacher_conf_joint")
"""Columns of :func:`weight_features`."""
OUTPUTS: tuple[str, ...] = ("2sigmoid", "softplus")


@torch.no_grad()
def weight_features(student_logits: Mapping[str, torch.Tensor], teacher_logits: Mapping[str, torch.Tensor],
                    labels: torch.Tensor, temperature: float) -> torch.Tensor:
    r"""Per-sample inputs of :class:`WeightNet`, ``[B, 5]``, detached (columns :data:`FEATURE_NAMES`):

    :math:`\log(1 + \mathcal{L}_{KD,text})`, :math:`\log(1 + \mathcal{L}_{KD,image})` (per-sample KD of the
    student against the teacher at ``temperature``, log-compressed so its scale stays near the others) and
    the teacher's confidence in the true label :math:`p^t_v(y)` for the text, image and joint views (on an
    unlabelled row, in the teacher's joint prediction).
    """
    check_temperature(temperature, receiver="weight_features")
    check_views(student_logits, "weight_features: student_logits")
    check_views(teacher_logits, "weight_features: teacher_logits")
    # unlabelled rows of a transfer set: the teacher's own prediction stands in for the label
    idx = fill_unlabelled(labels.long(), teacher_logits["joint"]).unsqueeze(1)
    cols = [torch.log1p(kd_loss(student_logits[m].detach(), teacher_logits[m], temperature, reduction="none"))
            for m in AUX_VIEWS]
    cols += [F.softmax(teacher_logits[v].detach().float(), dim=-1).gather(1, idx).squeeze(1)
             for v in ("text", "image", "joint")]
    return torch.stack(cols, dim=1)


class WeightNet(nn.Module):
    """MLP ``[B, F] -> [B, 2]``: per-sample weights for the ``("text", "image")`` KD terms (column order).

    ``output="2sigmoid"`` (default): :math:`2\\,\\sigma(h)`, weights in ``(0, 2)``, bounded so one bad meta
    step cannot blow a term up. ``output="softplus"``: :math:`\\log(1 + e^h)`, weights in ``(0, inf)``.
    The last layer starts at zero weight and a bias that makes every initial weight exactly 1.0, i.e. the
    meta-learner starts from unweighted MSD.
    """

    def __init__(self, in_features: int = len(FEATURE_NAMES), hidden: int = 32, output: str = "2sigmoid"):
        super().__init__()
        if output not in OUTPUTS:
            raise ValueError(f"WeightNet: unknown output {output!r}; accepted: {OUTPUTS}")
        self.output = output
        self.hidden = nn.Linear(in_features, hidden)
        self.head = nn.Linear(hidden, len(AUX_VIEWS))
        nn.init.zeros_(self.head.weight)
        nn.init.constant_(self.head.bias, 0.0 if output == "2sigmoid" else math.log(math.e - 1.0))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.dim() != 2 or features.shape[1] != self.hidden.in_features:
            raise ValueError(f"WeightNet: expected features [B, {self.hidden.in_features}], "
                             f"got {tuple(features.shape)}")
        h = self.head(torch.relu(self.hidden(features.float())))
        return 2.0 * torch.sigmoid(h) if self.output == "2sigmoid" else F.softplus(h)

    @staticmethod
    def as_dict(weights: torch.Tensor) -> dict[str, torch.Tensor]:
        """``[B, 2] -> {"text": [B], "image": [B]}``, the form ``msd_loss`` takes."""
        return {m: weights[:, i] for i, m in enumerate(AUX_VIEWS)}


class FunctionalStudent:
    """Callable stand-in for ``student`` that runs its ``forward`` with other parameters
    (``torch.func.functional_call``); buffers not in ``params`` are the module's own."""

    def __init__(self, module: nn.Module, params: Mapping[str, torch.Tensor]):
        self.module, self.params = module, dict(params)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return functional_call(self.module, self.params, args, kwargs)


def joint_ce_meta_loss(student_outputs: Mapping[str, torch.Tensor], batch: Any) -> torch.Tensor:
    """Default meta loss: plain CE of the joint view against ``batch["labels"]``."""
    if not isinstance(batch, Mapping) or "labels" not in batch:
        raise ValueError("joint_ce_meta_loss: the default meta loss reads batch['labels']; pass meta_loss_fn "
                         "for other batch types")
    return F.cross_entropy(student_outputs["joint"].float(), batch["labels"])


ForwardFn = Callable[[Callable[..., Any], Any], Mapping[str, torch.Tensor]]
LossFn = Callable[[Mapping[str, torch.Tensor], Any, Mapping[str, torch.Tensor]], torch.Tensor]
FeaturesFn = Callable[[Mapping[str, torch.Tensor], Any], torch.Tensor]
MetaLossFn = Callable[[Mapping[str, torch.Tensor], Any], torch.Tensor]


def meta_step(student: nn.Module, weight_net: WeightNet, weight_optimizer: torch.optim.Optimizer,
              train_batch: Any, meta_batch: Any, *, forward_fn: ForwardFn, loss_fn: LossFn,
              features_fn: FeaturesFn, inner_lr: float, meta_loss_fn: MetaLossFn = joint_ce_meta_loss,
              student_outputs: Mapping[str, torch.Tensor] | None = None) -> dict[str, Any]:
    """One look-ahead update of ``weight_net`` (steps 1-4 of the module docstring); ``student`` is untouched
    (neither its parameters nor their ``.grad``).

    Args:
        forward_fn: ``forward_fn(model, batch) -> {view: logits}``; ``model`` is ``student`` or a
            :class:`FunctionalStudent` with the virtual parameters, call it like the module (only its
            ``forward`` is reparametrised, so ``forward`` must produce what you need).
        loss_fn: ``loss_fn(student_outputs, batch, weights) -> scalar`` with ``weights`` a
            ``{"text": [B], "image": [B]}`` dict still attached to ``weight_net``, e.g.
            ``lambda out, b, w: msd_loss(out, b["teacher_logits"], b["labels"], w, T)["total"]``.
        features_fn: ``features_fn(student_outputs, batch) -> [B, F]`` inputs of ``weight_net``, e.g.
            ``lambda out, b: weight_features(out, b["teacher_logits"], b["labels"], T)``.
        inner_lr: learning rate of the virtual SGD step (use the student's current learning rate).
        meta_loss_fn: ``meta_loss_fn(student_outputs, meta_batch) -> scalar``; default CE on the joint view.
        student_outputs: the student's ``{view: logits}`` on ``train_batch`` if the caller already ran that
            forward with the current parameters (still attached to the graph); skips a second forward.

    Returns:
        ``meta_loss`` and ``train_loss`` (detached), ``weights`` (detached, before the update) and
        ``student_outputs`` (the training forward, still attached to the unchanged student: reuse it for the
        real step to save a forward pass, or drop it). The graph of that forward is retained (as after
        ``backward(retain_graph=True)``), so a later ``backward`` through it works.
    """
    if not inner_lr > 0:
        raise ValueError(f"meta_step: inner_lr must be > 0, got {inner_lr!r}")
    trainable = [(n, p) for n, p in student.named_parameters() if p.requires_grad]
    if not trainable:
        raise ValueError("meta_step: the student has no parameter with requires_grad=True to take a virtual step on")
    names, params = zip(*trainable)
    if student_outputs is None:
        student_outputs = forward_fn(student, train_batch)
    features = features_fn(student_outputs, train_batch).detach()
    weights = WeightNet.as_dict(weight_net(features))
    train_loss = loss_fn(student_outputs, train_batch, weights)
    grads = torch.autograd.grad(train_loss, params, create_graph=True, allow_unused=True)
    virtual = {n: p if g is None else p - inner_lr * g for n, p, g in zip(names, params, grads)}
    meta_outputs = forward_fn(FunctionalStudent(student, virtual), meta_batch)
    meta_loss = meta_loss_fn(meta_outputs, meta_batch)
    phi = [p for p in weight_net.parameters() if p.requires_grad]
    meta_grads = torch.autograd.grad(meta_loss, phi, allow_unused=True)
    weight_optimizer.zero_grad(set_to_none=True)
    for p, g in zip(phi, meta_grads):
        p.grad = None if g is None else g.detach()
    weight_optimizer.step()
    return {"meta_loss": meta_loss.detach(), "train_loss": train_loss.detach(),
            "weights": {m: w.detach() for m, w in weights.items()}, "student_outputs": student_outputs}


class MetaReweighter:
    """:func:`meta_step` with its closures bound, plus the weights for the real student step.

    Per training iteration::

        info = reweighter.step(train_batch, next(meta_iter))     # updates the weight net only
        out = info["student_outputs"]                           # or a fresh forward of the student
        w = reweighter.weights(out, train_batch)                # detached, from the updated net
        loss_fn(out, train_batch, w).backward(); student_optimizer.step()
    """

    def __init__(self, student: nn.Module, weight_net: WeightNet, weight_optimizer: torch.optim.Optimizer, *,
                 forward_fn: ForwardFn, loss_fn: LossFn, features_fn: FeaturesFn, inner_lr: float,
                 meta_loss_fn: MetaLossFn = joint_ce_meta_loss):
        if not inner_lr > 0:
            raise ValueError(f"MetaReweighter: inner_lr must be > 0, got {inner_lr!r}")
        self.student, self.weight_net, self.weight_optimizer = student, weight_net, weight_optimizer
        self.forward_fn, self.loss_fn, self.features_fn = forward_fn, loss_fn, features_fn
        self.meta_loss_fn, self.inner_lr = meta_loss_fn, inner_lr

    def step(self, train_batch: Any, meta_batch: Any,
             student_outputs: Mapping[str, torch.Tensor] | None = None) -> dict[str, Any]:
        """One :func:`meta_step` (updates the weight net only); returns its dict."""
        return meta_step(self.student, self.weight_net, self.weight_optimizer, train_batch, meta_batch,
                         forward_fn=self.forward_fn, loss_fn=self.loss_fn, features_fn=self.features_fn,
                         inner_lr=self.inner_lr, meta_loss_fn=self.meta_loss_fn, student_outputs=student_outputs)

    def reweight(self, train_batch: Any, meta_batch: Any,
                 student_outputs: Mapping[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """:meth:`step` then :meth:`weights`: the detached weights of the *updated* net for ``train_batch``."""
        info = self.step(train_batch, meta_batch, student_outputs)
        return self.weights(info["student_outputs"], train_batch)

    @torch.no_grad()
    def weights(self, student_outputs: Mapping[str, torch.Tensor], batch: Any) -> dict[str, torch.Tensor]:
        """Detached ``{"text": [B], "image": [B]}`` from the current weight net."""
        return WeightNet.as_dict(self.weight_net(self.features_fn(student_outputs, batch).detach()))
