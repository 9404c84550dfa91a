"""data2vec-style targets and regression loss for feature distillation (notebook 01).

The student regresses the teacher's *contextualized representations*: every layer's output for every
token (CLS and patches), normalised and averaged, not just the final CLS vector. Source: an unpublished
thesis-chapter draft (Eq. 1-4; ``docs/references.md#unimodal-vision-kd-draft``, its slips and our readings in
``docs/references.md#draft-gaps-and-our-readings``), which follows data2vec [Baevski et al. 2022,
arXiv:2202.03555] and data2vec 2.0 [Baevski et al. 2023, arXiv:2212.07525].

For a stack of layer outputs H_l ∈ R^{B×N×D}, l = 1..L (N tokens incl. CLS, D channels):

    H'_l = InstanceNorm(H_l)                      (Eq. 1)  per sample and channel, over the N tokens
    Ĥ    = 1/K · Σ_{l = L-K+1..L} H'_l            (Eq. 2)  mean of the top K layers (K = L: all)
    Y    = LayerNorm(Ĥ)                           (Eq. 3)  per token over D, no affine parameters
    L_KD = 1/(N) Σ_n  1/D ||y_n - ŷ_n||²          (Eq. 4)  MSE over CLS and every patch token

Teacher (target Y) and student (prediction Ŷ) go through the same transform. Reading of "InstanceNorm"
(the draft does not say over which axis): as fairseq's data2vec, ``F.instance_norm`` on the
transposed [B, D, N] tensor, i.e. each channel is standardised over the tokens of one image. The
other reading (per token over channels, a parameter-free layer norm) is ``instance_norm_over="features"``.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

NORM_EPS = 1e-5  # the default of F.instance_norm / F.layer_norm, as fairseq's data2vec uses them


def _check_hidden_states(hidden_states: Sequence[Tensor], name: str) -> list[Tensor]:
    if isinstance(hidden_states, Tensor):
        raise ValueError(
            f"{name} must be a sequence of [B, N, D] tensors, one per layer; got a single tensor of "
            f"shape {tuple(hidden_states.shape)} (wrap it in a list, or split a stacked [L, B, N, D] tensor)"
        )
    layers = list(hidden_states)
    if not layers:
        raise ValueError(f"{name} is empty: expected at least one [B, N, D] layer output")
    for index, layer in enumerate(layers):
        if not isinstance(layer, Tensor) or layer.dim() != 3:
            shape = tuple(layer.shape) if isinstance(layer, Tensor) else type(layer).__name__
            raise ValueError(f"{name}[{index}] must be a [B, N, D] tensor; got {shape}")
        if layer.shape != layers[0].shape:
            raise ValueError(
                f"{name}[{index}] has shape {tuple(layer.shape)} but layer 0 has {tuple(layers[0].shape)}; "
                "every layer must have the same [B, N, D]"
            )
    return layers


def instance_norm_over_tokens(hidden: Tensor, eps: float = NORM_EPS) -> Tensor:
    """Standardise every channel of every sample over its tokens: (h_{n,d} - μ_d) / √(σ²_d + ε).

    μ_d, σ²_d are the mean and (biased) variance of channel d over the N tokens of one sample; this is
    fairseq data2vec's ``F.instance_norm(h.transpose(1, 2))``. Computed in float32 so that bf16
    activations do not lose the small per-channel differences.
    """
    return F.instance_norm(hidden.float().transpose(1, 2), eps=eps).transpose(1, 2)


def parameter_free_layer_norm(hidden: Tensor, eps: float = NORM_EPS) -> Tensor:
    """(h_n - mean(h_n)) / √(var(h_n) + ε) per token over channels, with no learnable scale or shift."""
    return F.layer_norm(hidden.float(), hidden.shape[-1:], eps=eps)


def data2vec_targets(
    hidden_states: Sequence[Tensor],
    top_k: int | None = None,
    instance_norm: bool = True,
    layer_norm: bool = True,
    *,
    instance_norm_over: Literal["tokens", "features"] = "tokens",
    layer_norm_per_layer: bool = False,
    eps: float = NORM_EPS,
) -> Tensor:
    """Contextualized representation of a layer stack (draft Eq. 1-3): [B, N, D] in float32.

    Args:
        hidden_states: one [B, N, D] tensor per layer (block outputs, no embedding output).
        top_k: average only the last ``top_k`` layers (data2vec's K); ``None`` averages all of them.
        instance_norm: Eq. 1, normalise each layer before averaging (see ``instance_norm_over``).
        layer_norm: Eq. 3, parameter-free layer norm of the average.
        instance_norm_over: ``"tokens"`` (default, fairseq) standardises each channel over the tokens;
            ``"features"`` standardises each token over its channels (the other reading of Eq. 1).
        layer_norm_per_layer: data2vec 1's vision variant, a parameter-free layer norm of each layer
            before averaging (fairseq's ``layer_norm_target_layer``), applied after the instance norm.
        eps: the ε of both normalisations.

    Raises:
        ValueError: an empty list, layers of different shapes, non-3-D tensors, or ``top_k`` not in
        1..len(hidden_states).
    """
    layers = _check_hidden_states(hidden_states, "data2vec_targets: hidden_states")
    if top_k is not None:
        if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= len(layers):
            raise ValueError(
                f"data2vec_targets: top_k must be None or an int in 1..{len(layers)} (the number of layers "
                f"given); got {top_k!r}"
            )
        layers = layers[-top_k:]
    if instance_norm_over not in ("tokens", "features"):
        raise ValueError(f"data2vec_targets: instance_norm_over must be 'tokens' or 'features'; "
                         f"got {instance_norm_over!r}")

    normalised = []
    for layer in layers:
        layer = layer.float()
        if instance_norm:
            layer = (
                instance_norm_over_tokens(layer, eps)
                if instance_norm_over == "tokens"
                else parameter_free_layer_norm(layer, eps)
            )
        if layer_norm_per_layer:
            layer = parameter_free_layer_norm(layer, eps)
        normalised.append(layer)
    average = torch.stack(normalised).mean(dim=0)
    return parameter_free_layer_norm(average, eps) if layer_norm else average


@dataclasses.dataclass(frozen=True)
class Data2VecLossConfig:
    """One typed switch per transform, named as in fairseq's data2vec configs, so an ablation is one field.

    Defaults are the draft's method (Eq. 1-4). :meth:`data2vec1_vision` and :meth:`data2vec2` give the
    two published recipes for comparison.

    Attributes:
        instance_norm_target_layer: Eq. 1, instance norm of each layer before averaging.
        instance_norm_over: "tokens" (fairseq) or "features"; which axis Eq. 1 normalises over.
        layer_norm_target_layer: parameter-free layer norm of each layer before averaging (data2vec 1).
        layer_norm_targets: Eq. 3, parameter-free layer norm of the layer average.
        average_top_k_layers: teacher layers averaged for the target (None: all, as the draft).
        student_average_top_k_layers: student layers averaged for the prediction (None: all).
        cls_target: "token" regresses the teacher's own CLS target (draft); "mean_of_patches" uses the
            mean of the patch targets as the CLS target (data2vec 2.0).
        loss_beta: 0 gives the squared error (draft); > 0 gives smooth L1 with this β (data2vec 1 uses 2).
        feature_reduction: how one token's error is reduced over its D channels: "mean" (draft's
            L_MSE of two d-dim vectors) or "sum" (data2vec 2.0).
        loss_scale: factor on the loss, a number or "inv_sqrt_dim" for 1/√D (data2vec 2.0's default).
    """

    instance_norm_target_layer: bool = True
    instance_norm_over: Literal["tokens", "features"] = "tokens"
    layer_norm_target_layer: bool = False
    layer_norm_targets: bool = True
    average_top_k_layers: int | None = None
    student_average_top_k_layers: int | None = None
    cls_target: Literal["token", "mean_of_patches"] = "token"
    loss_beta: float = 0.0
    feature_reduction: Literal["mean", "sum"] = "mean"
    loss_scale: float | Literal["inv_sqrt_dim"] = 1.0

    def __post_init__(self):
        if self.cls_target not in ("token", "mean_of_patches"):
            raise ValueError(f"Data2VecLossConfig: cls_target must be 'token' or 'mean_of_patches'; "
                             f"got {self.cls_target!r}")
        if self.feature_reduction not in ("mean", "sum"):
            raise ValueError(f"Data2VecLossConfig: feature_reduction must be 'mean' or 'sum'; "
                             f"got {self.feature_reduction!r}")
        if self.instance_norm_over not in ("tokens", "features"):
            raise ValueError(f"Data2VecLossConfig: instance_norm_over must be 'tokens' or 'features'; "
                             f"got {self.instance_norm_over!r}")
        if self.loss_beta < 0:
            raise ValueError(f"Data2VecLossConfig: loss_beta must be >= 0 (0: squared error); got {self.loss_beta}")
        if not (self.loss_scale == "inv_sqrt_dim" or isinstance(self.loss_scale, (int, float))):
            raise ValueError(f"Data2VecLossConfig: loss_scale must be a number or 'inv_sqrt_dim'; "
                             f"got {self.loss_scale!r}")

    @classmethod
    def draft(cls) -> "Data2VecLossConfig":
        """The draft's Eq. 1-4: instance norm per layer, mean of all layers, layer norm, MSE, CLS token."""
        return cls()

    @classmethod
    def data2vec1_vision(cls) -> "Data2VecLossConfig":
        """data2vec 1 for vision: layer norm of each layer only, top 6 layers, smooth L1 with β = 2."""
        return cls(instance_norm_target_layer=False, layer_norm_target_layer=True, layer_norm_targets=False,
                   average_top_k_layers=6, loss_beta=2.0)

    @classmethod
    def data2vec2(cls) -> "Data2VecLossConfig":
        """data2vec 2.0 images: instance norm per layer, layer norm, CLS target = mean of patch targets,
        squared error summed over channels and scaled by 1/√D."""
        return cls(cls_target="mean_of_patches", feature_reduction="sum", loss_scale="inv_sqrt_dim")

    def targets(self, teacher_hidden_states: Sequence[Tensor]) -> Tensor:
        """Teacher target Y (Eq. 1-3) with this config's teacher flags, CLS target rule applied."""
        target = data2vec_targets(
            teacher_hidden_states, self.average_top_k_layers, self.instance_norm_target_layer,
            self.layer_norm_targets, instance_norm_over=self.instance_norm_over,
            layer_norm_per_layer=self.layer_norm_target_layer,
        )
        if self.cls_target == "mean_of_patches":
            target = apply_cls_target_mean_of_patches(target)
        return target

    def predictions(self, student_hidden_states: Sequence[Tensor], projection: nn.Module | None = None) -> Tensor:
        """Student prediction Ŷ: the same transform on the student's layers (projected before the final LN)."""
        # Averaging first, projecting second: the projection is one D_s→D_t map shared by all layers.
        average = data2vec_targets(
            student_hidden_states, self.student_average_top_k_layers, self.instance_norm_target_layer,
            layer_norm=False, instance_norm_over=self.instance_norm_over,
            layer_norm_per_layer=self.layer_norm_target_layer,
        )
        if projection is not None:
            average = projection(average.to(next(projection.parameters()).dtype)).float()
        return parameter_free_layer_norm(average) if self.layer_norm_targets else average


def apply_cls_target_mean_of_patches(target: Tensor) -> Tensor:
    """data2vec 2.0's CLS target: replace token 0 by the mean of the patch targets y_1..y_N."""
    if target.dim() != 3 or target.shape[1] < 2:
        raise ValueError(f"apply_cls_target_mean_of_patches: expected a [B, N, D] target with a CLS token and at "
                         f"least one patch; got {tuple(target.shape)}")
    return torch.cat([target[:, 1:].mean(dim=1, keepdim=True), target[:, 1:]], dim=1)


def data2vec_regression_loss(prediction: Tensor, target: Tensor, config: Data2VecLossConfig = Data2VecLossConfig()) -> Tensor:
    """Eq. 4: mean over samples and tokens (CLS and every patch) of the per-token error.

    per-token error = reduce_D( (ŷ - y)² )            loss_beta = 0
                      reduce_D( smooth_l1_β(ŷ - y) )   loss_beta > 0
    with reduce_D = mean (draft) or sum (data2vec 2.0), then times ``loss_scale`` (1/√D for "inv_sqrt_dim").
    The draft writes Σ_{n=1}^{M} but means the N patches plus the CLS token, normalised by N + 1.
    """
    if prediction.shape != target.shape:
        what = "token counts" if prediction.shape[:1] == target.shape[:1] and prediction.shape[1] != target.shape[1] else "shapes"
        raise ValueError(
            f"data2vec_regression_loss: student prediction and teacher target differ in {what}: {tuple(prediction.shape)} vs "
            f"{tuple(target.shape)}; expected the same [B, N, D] (same image size and patch grid, and a "
            "projection head if the widths differ)"
        )
    prediction, target = prediction.float(), target.float()
    if config.loss_beta == 0:
        error = (prediction - target).pow(2)
    else:
        error = F.smooth_l1_loss(prediction, target, reduction="none", beta=config.loss_beta)
    per_token = error.mean(dim=-1) if config.feature_reduction == "mean" else error.sum(dim=-1)
    scale = 1.0 / math.sqrt(target.shape[-1]) if config.loss_scale == "inv_sqrt_dim" else float(config.loss_scale)
    return per_token.mean() * scale


def check_student_teacher_pair(student_hidden_states: Sequence[Tensor], teacher_hidden_states: Sequence[Tensor],
                               projection: nn.Module | None = None,
                               receiver: str = "check_student_teacher_pair") -> None:
    """ValueError unless both stacks share batch size and token count, and widths match or a projection is given.

    ``receiver`` (the function the stacks were passed to) starts every message."""
    student = _check_hidden_states(student_hidden_states, f"{receiver}: student_hidden_states")
    teacher = _check_hidden_states(teacher_hidden_states, f"{receiver}: teacher_hidden_states")
    _check_pair_shapes(student[0].shape, teacher[0].shape, projection, receiver)


def _check_pair_shapes(student_shape, teacher_shape, projection: nn.Module | None, receiver: str) -> None:
    (bs, ns, ds), (bt, nt, dt) = student_shape, teacher_shape
    if bs != bt:
        raise ValueError(f"{receiver}: student and teacher batch sizes differ: {bs} vs {bt}; expected the same images")
    if ns != nt:
        raise ValueError(
            f"{receiver}: student and teacher token counts differ: {ns} vs {nt}; expected the same number of tokens "
            "(CLS + patches), i.e. the same image size and patch size"
        )
    if ds != dt and projection is None:
        raise ValueError(
            f"{receiver}: student width {ds} differs from teacher width {dt}: expected a projection head "
            f"(e.g. nn.Linear({ds}, {dt})); see Data2VecDistillationLoss(student_dim=..., teacher_dim=...)"
        )


def data2vec_loss(student_hidden_states: Sequence[Tensor], teacher_hidden_states: Sequence[Tensor],
                  config: Data2VecLossConfig = Data2VecLossConfig(), projection: nn.Module | None = None) -> Tensor:
    """Feature-KD loss (draft Eq. 1-4): regress the teacher's target Y with the student's prediction Ŷ.

    The teacher side is computed without gradients. ``projection`` maps the student's width to the
    teacher's when they differ (see :class:`Data2VecDistillationLoss`).
    """
    check_student_teacher_pair(student_hidden_states, teacher_hidden_states, projection, receiver="data2vec_loss")
    with torch.no_grad():
        target = config.targets(teacher_hidden_states)
    return data2vec_regression_loss(config.predictions(student_hidden_states, projection), target, config)


class Data2VecDistillationLoss(nn.Module):
    """The loss as a module, owning the optional student-side projection head.

    With ``student_dim != teacher_dim`` a linear head W ∈ R^{D_t×D_s} (with bias) maps the student's
    layer average to the teacher's width before the final parameter-free layer norm:
    Ŷ = LayerNorm(W · mean_l InstanceNorm(H^s_l) + b). It is trained with the student and thrown away
    afterwards. Equal widths need no head (``self.projection`` is None), as in the draft (768 = 768).
    """

    def __init__(self, config: Data2VecLossConfig = Data2VecLossConfig(), student_dim: int | None = None,
                 teacher_dim: int | None = None):
        super().__init__()
        self.config = config
        if (student_dim is None) != (teacher_dim is None):
            raise ValueError("Data2VecDistillationLoss: give both student_dim and teacher_dim, or neither "
                             "(equal widths)")
        self.projection = nn.Linear(student_dim, teacher_dim) if student_dim is not None and student_dim != teacher_dim else None

    def forward(self, student_hidden_states: Sequence[Tensor], teacher_hidden_states: Sequence[Tensor] | None = None,
                *, teacher_targets: Tensor | None = None) -> Tensor:
        """Loss from the teacher's hidden states, or from cached ``teacher_targets`` (= ``config.targets(...)``)."""
        if (teacher_hidden_states is None) == (teacher_targets is None):
            raise ValueError("Data2VecDistillationLoss: pass exactly one of teacher_hidden_states or teacher_targets")
        if teacher_hidden_states is not None:
            return data2vec_loss(student_hidden_states, teacher_hidden_states, self.config, self.projection)
        student = _check_hidden_states(student_hidden_states, "Data2VecDistillationLoss: student_hidden_states")
        if teacher_targets.dim() != 3:
            raise ValueError(f"Data2VecDistillationLoss: teacher_targets must be [B, N, D]; "
                             f"got {tuple(teacher_targets.shape)}")
        _check_pair_shapes(student[0].shape, teacher_targets.shape, self.projection, "Data2VecDistillationLoss")
        return data2vec_regression_loss(self.config.predictions(student, self.projection), teacher_targets, self.config)
