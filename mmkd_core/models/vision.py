"""Vision teacher and student for notebook 01 (data2vec-style feature distillation).

Teacher: BEiT v2 [Peng et al. 2022] from timm. Student: a shallow ``transformers.Data2VecVisionModel``
[Baevski et al. 2022] whose first k layers, at real scale, come from the pretrained
``facebook/data2vec-vision-base`` checkpoint: layers of a *different* pretrained model organised into
the student, as the draft (``docs/references.md#unimodal-vision-kd-draft``) argues.

Two scales:
  * real scale: :func:`build_beit_teacher` with ``pretrained=True`` and
    :func:`build_data2vec_vision_student` from the hub checkpoint (needs the files in the HF cache);
  * embedded scale: :func:`build_tiny_beit_teacher` / :func:`build_tiny_data2vec_student` with the same
    classes at 32 px, patch 8, width 64, built from random weights (the notebook trains the teacher).

:func:`hidden_states` gives one [B, N, D] tensor per Transformer block (N = 1 CLS + patches) for
either model, which is what :func:`mmkd_core.losses.data2vec_targets` consumes.
"""
from __future__ import annotations

import dataclasses
import os

import timm
import torch
from timm.models.beit import Beit
from torch import Tensor, nn
from transformers import Data2VecVisionConfig, Data2VecVisionModel

from ..hub import (CheckpointUnavailableError, from_pretrained_or_explain, hub_call_or_explain,
                   timm_create_or_explain)

# timm ships BEiT v2 only fine-tuned (no self-supervised-only weights); in1k_ft_in1k is the closest to
# the draft's "self-supervised pretrained on ImageNet-1K" (pretraining and fine-tuning on ImageNet-1K).
TEACHER_MODEL_NAME = "beitv2_base_patch16_224.in1k_ft_in1k"
STUDENT_CHECKPOINT = "facebook/data2vec-vision-base"


# --------------------------------------------------------------------------------------------------
# Teacher: timm BEiT v2
# --------------------------------------------------------------------------------------------------
def build_beit_teacher(model_name: str = TEACHER_MODEL_NAME, *, pretrained: bool = True, num_classes: int = 0,
                       checkpoint_file: str | os.PathLike | None = None, **overrides) -> Beit:
    """Real-scale BEiT v2 teacher from timm (``beitv2_base_patch16_224``: 12 layers, D = 768, patch 16).

    Args:
        model_name: a timm BEiT name, optionally with a pretrained tag.
        pretrained: load the weights (from the HF hub cache, or from ``checkpoint_file``).
        num_classes: 0 drops the classifier (a feature teacher); the draft only uses activations.
        checkpoint_file: a local state-dict file to load instead of the hub (timm's ``pretrained_cfg_overlay``).
        overrides: timm model kwargs (``img_size``, ``depth``, ...), for tests with tiny random configs.

    Raises:
        CheckpointUnavailableError: the weights are neither reachable nor cached, with how to fetch them.
    """
    kwargs = dict(pretrained=pretrained, num_classes=num_classes, **overrides)
    if checkpoint_file is not None:
        if not os.path.isfile(checkpoint_file):
            raise CheckpointUnavailableError(f"teacher checkpoint file '{checkpoint_file}' does not exist")
        kwargs["pretrained_cfg_overlay"] = dict(file=os.fspath(checkpoint_file))
    model = timm_create_or_explain(model_name, **kwargs)
    if not isinstance(model, Beit):
        raise ValueError(f"{model_name!r} is not a timm BEiT model (got {type(model).__name__})")
    return model


def build_tiny_beit_teacher(image_size: int = 32, patch_size: int = 8, embed_dim: int = 64, depth: int = 6,
                            num_heads: int = 4, num_classes: int = 10, in_chans: int = 3,
                            layer_scale_init: float = 0.1) -> Beit:
    """The BEiT v2 architecture (relative position bias, layer scale) at an embedded size, random weights.

    With ``num_classes > 0`` it has timm's classifier head (mean of patch tokens, LayerNorm, Linear), so
    the notebook can train it supervised; :func:`hidden_states` ignores the head.

    ``layer_scale_init`` is 0.1 (data2vec-vision's value) rather than BEiT v2's 1e-5: with 1e-5 a short
    CPU run barely moves the residual branches, and the tiny products fall into float32 denormals,
    which made a training step on CPU about 40× slower in our measurement.
    """
    return timm.create_model(
        "beitv2_base_patch16_224", pretrained=False, img_size=image_size, patch_size=patch_size,
        embed_dim=embed_dim, depth=depth, num_heads=num_heads, num_classes=num_classes, in_chans=in_chans,
        init_values=layer_scale_init,
    )


# --------------------------------------------------------------------------------------------------
# Student: transformers Data2VecVisionModel
# --------------------------------------------------------------------------------------------------
def tiny_data2vec_vision_config(image_size: int = 32, patch_size: int = 8, hidden_size: int = 64, num_layers: int = 2,
                                num_heads: int = 4, mlp_ratio: int = 4, num_channels: int = 3) -> Data2VecVisionConfig:
    """A small ``Data2VecVisionConfig`` with data2vec-vision-base's design (relative position bias per layer,
    layer scale 0.1, mean pooling) but embedded sizes. No drop path: the tiny runs are short."""
    return Data2VecVisionConfig(
        image_size=image_size, patch_size=patch_size, num_channels=num_channels, hidden_size=hidden_size,
        num_hidden_layers=num_layers, num_attention_heads=num_heads, intermediate_size=mlp_ratio * hidden_size,
        use_relative_position_bias=True, use_absolute_position_embeddings=False, use_mean_pooling=True,
        drop_path_rate=0.0,
    )


def build_tiny_data2vec_student(num_layers: int = 2, **config_kwargs) -> Data2VecVisionModel:
    """Random-init student from :func:`tiny_data2vec_vision_config` (with the mean-pooling head)."""
    return Data2VecVisionModel(tiny_data2vec_vision_config(num_layers=num_layers, **config_kwargs), add_pooling_layer=True)


def build_data2vec_vision_student(num_layers: int, checkpoint: str | os.PathLike = STUDENT_CHECKPOINT, *,
                                  local_files_only: bool = False) -> Data2VecVisionModel:
    """Real-scale student: the first ``num_layers`` blocks of a pretrained Data2Vec vision checkpoint.

    The checkpoint's patch embedding and blocks 0..k-1 are loaded; blocks k.. are not (the config is
    loaded with ``num_hidden_layers = k``, so their weights are reported as unused and dropped).
    Safetensors only, never remote code.

    Raises:
        ValueError: ``num_layers`` < 1 or larger than the checkpoint's depth.
        CheckpointUnavailableError: the checkpoint is neither reachable nor cached, with how to fetch it.
    """
    checkpoint = os.fspath(checkpoint)
    config = hub_call_or_explain(
        Data2VecVisionConfig.from_pretrained, checkpoint, "checkpoint (Data2VecVisionConfig)",
        f"from huggingface_hub import snapshot_download; snapshot_download('{checkpoint}')",
        local_files_only=local_files_only)
    if isinstance(num_layers, bool) or not isinstance(num_layers, int) or not 1 <= num_layers <= config.num_hidden_layers:
        raise ValueError(f"num_layers must be an int in 1..{config.num_hidden_layers} (the checkpoint's depth); got {num_layers!r}")
    config.num_hidden_layers = num_layers
    return from_pretrained_or_explain(Data2VecVisionModel, checkpoint, config=config,
                                      local_files_only=local_files_only, add_pooling_layer=True)


def truncate_data2vec_vision(model: Data2VecVisionModel, num_layers: int) -> Data2VecVisionModel:
    """Keep the first ``num_layers`` blocks of an in-memory Data2Vec vision model (in place; returns it)."""
    depth = len(model.encoder.layer)
    if isinstance(num_layers, bool) or not isinstance(num_layers, int) or not 1 <= num_layers <= depth:
        raise ValueError(f"num_layers must be an int in 1..{depth} (the model's depth); got {num_layers!r}")
    model.encoder.layer = nn.ModuleList(list(model.encoder.layer)[:num_layers])
    model.config.num_hidden_layers = num_layers
    return model


# --------------------------------------------------------------------------------------------------
# One adapter for both
# --------------------------------------------------------------------------------------------------
def _unwrap(model: nn.Module) -> nn.Module:
    # A task model (e.g. Data2VecVisionForImageClassification) keeps its backbone here.
    return getattr(model, "data2vec_vision", model)


def hidden_states(model: nn.Module, pixel_values: Tensor) -> list[Tensor]:
    """Per-block outputs [B, 1 + P, D] (CLS first, then the P patches), one per Transformer layer.

    timm BEiT: ``forward_intermediates`` (block outputs before the final norm) with the CLS (prefix)
    token put back in front. transformers Data2Vec vision: ``output_hidden_states=True`` minus entry 0,
    the embedding output, so both give exactly one tensor per block.
    """
    if pixel_values.dim() != 4:
        raise ValueError(f"pixel_values must be [B, C, H, W]; got {tuple(pixel_values.shape)}")
    inner = _unwrap(model)
    if isinstance(inner, Beit):
        pairs = inner.forward_intermediates(pixel_values, output_fmt="NLC", return_prefix_tokens=True, intermediates_only=True)
        return [torch.cat([prefix, patches], dim=1) for patches, prefix in pairs]
    if isinstance(inner, Data2VecVisionModel):
        return list(inner(pixel_values=pixel_values, output_hidden_states=True).hidden_states[1:])
    raise ValueError(f"hidden_states supports timm Beit and transformers Data2VecVisionModel; got {type(model).__name__}")


def pooled_features(model: nn.Module, pixel_values: Tensor, pooling: str = "mean_patches") -> Tensor:
    """Frozen image features [B, D] from the last block: mean of the patch tokens (BEiT / data2vec linear-probe
    convention) or the CLS token (``pooling="cls"``). The same rule for every model keeps the probes comparable."""
    last = hidden_states(model, pixel_values)[-1]
    if pooling == "mean_patches":
        return last[:, 1:].mean(dim=1)
    if pooling == "cls":
        return last[:, 0]
    raise ValueError(f"pooling must be 'mean_patches' or 'cls'; got {pooling!r}")


def model_width(model: nn.Module) -> int:
    """Hidden size D of either model."""
    inner = _unwrap(model)
    if isinstance(inner, Beit):
        return inner.embed_dim
    if isinstance(inner, Data2VecVisionModel):
        return inner.config.hidden_size
    raise ValueError(f"model_width supports timm Beit and transformers Data2VecVisionModel; got {type(model).__name__}")


@dataclasses.dataclass(frozen=True)
class TinyVisionSizes:
    """Embedded sizes shared by teacher and student (equal widths, so no projection head is needed)."""

    image_size: int = 32
    patch_size: int = 8
    width: int = 64
    num_heads: int = 4
    teacher_depth: int = 6
    student_depth: int = 2

    def teacher(self, num_classes: int = 10) -> Beit:
        return build_tiny_beit_teacher(self.image_size, self.patch_size, self.width, self.teacher_depth, self.num_heads, num_classes)

    def student(self) -> Data2VecVisionModel:
        return build_tiny_data2vec_student(self.student_depth, image_size=self.image_size, patch_size=self.patch_size,
                                           hidden_size=self.width, num_heads=self.num_heads)


class FeatureClassifier(nn.Module):
    """A linear classifier on a backbone's last block: on the mean of its patch tokens (``readout="mean_patches"``),
    or on all its tokens concatenated (``readout="flattened_tokens"``, which needs ``num_tokens``, CLS included).

    Each token is layer-normed first. The flattened read-out keeps where in the image each token is, which the
    mean discards (the embedded models have only relative position biases, no absolute position embedding).
    """

    def __init__(self, backbone: nn.Module, num_classes: int, readout: str = "mean_patches",
                 num_tokens: int | None = None):
        super().__init__()
        if readout not in ("mean_patches", "flattened_tokens"):
            raise ValueError(f"readout must be 'mean_patches' or 'flattened_tokens'; got {readout!r}")
        if readout == "flattened_tokens" and not num_tokens:
            raise ValueError("readout='flattened_tokens' needs num_tokens (1 + number of patches)")
        self.backbone, self.readout = backbone, readout
        width = model_width(backbone)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width * (num_tokens if readout == "flattened_tokens" else 1), num_classes)

    def forward(self, pixel_values: Tensor) -> Tensor:
        if self.readout == "mean_patches":
            return self.head(self.norm(pooled_features(self.backbone, pixel_values)))
        return self.head(self.norm(hidden_states(self.backbone, pixel_values)[-1]).flatten(1))
