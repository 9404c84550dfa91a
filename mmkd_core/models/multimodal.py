"""A single-stream image+text classifier on top of transformers' ViLT.

Text tokens and image patches share one transformer encoder (the UNITER/ViLT family the papers use);
a classifier reads the pooled first token. The weights are a plain ``transformers.ViltModel``, so a hub
checkpoint such as ``dandelin/vilt-b32-mlm`` loads into the same class (see :func:`from_pretrained_vilt`).

Why not call ``ViltModel.forward``? Its image embedding samples patches at random per sample (a
training-time augmentation of the original ViLT) and cannot drop the image entirely. We reuse ViLT's
own sub-modules (text embeddings, patch projection, position and modality-type embeddings, encoder,
final layer norm, pooler) but assemble the sequence ourselves: every patch, in order, deterministic.

Views, in one batched encoder pass (:data:`mmkd_core.views.VIEWS`):

- ``joint``: all text tokens and all image tokens attend to each other.
- ``text``:  image tokens are masked out of attention (keys), so no text token can see them.
- ``image``: every text token except the leading [CLS] is masked. [CLS] carries no content (its
  embedding is the same for every sample); it stays as the query whose output is pooled.

Masking a token as a key removes it from every other token's softmax: the output of an unmasked
token is then exactly what it would be if the masked tokens were dropped from the sequence.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Iterable

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import ViltConfig, ViltModel

from ..views import VIEWS
from ..hub import from_pretrained_or_explain


@dataclasses.dataclass
class MultimodalOutput:
    logits: dict[str, torch.Tensor]
    pooled: dict[str, torch.Tensor]
    hidden_states: dict[str, tuple[torch.Tensor, ...]] | None = None


# Sizes of the embedded default (CPU, minutes) and of the papers (12-layer teacher, 2-layer student,
# hidden 768). ``build_multimodal_model`` overrides any field with keyword arguments.
PRESETS: dict[str, dict] = {
    "teacher": dict(hidden_size=96, num_hidden_layers=4, num_attention_heads=4, intermediate_size=192),
    "student": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128),
    "paper-teacher": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
    "paper-student": dict(hidden_size=768, num_hidden_layers=2, num_attention_heads=12, intermediate_size=3072),
}


class MultimodalClassifier(nn.Module):
    """ViLT encoder + classifier head, with the three views of :mod:`mmkd_core.views`."""

    def __init__(self, config: ViltConfig, num_labels: int, vilt: ViltModel | None = None):
        super().__init__()
        if num_labels < 2:
            raise ValueError(f"num_labels must be >= 2, got {num_labels}")
        self.config = config
        self.num_labels = num_labels
        if vilt is None:
            vilt = ViltModel(config, add_pooling_layer=True)
            # transformers leaves ViLT's image position embeddings and image [CLS] at zero (a checkpoint
            # overwrites them). Trained from scratch, zero positions make every patch look alike to
            # attention until the positions slowly grow: initialise them as ViT does.
            nn.init.trunc_normal_(vilt.embeddings.position_embeddings, std=config.initializer_range)
            nn.init.trunc_normal_(vilt.embeddings.cls_token, std=config.initializer_range)
        self.vilt = vilt
        self.classifier = nn.Sequential(
            nn.Dropout(config.hidden_dropout_prob),
            nn.Linear(config.hidden_size, num_labels),
        )

    # ------------------------------------------------------------------ embeddings
    def _image_embeddings(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] → [B, 1 + P, D]: image [CLS] + every patch, with (interpolated) positions."""
        emb = self.vilt.embeddings
        if pixel_values.dim() != 4 or pixel_values.shape[1] != self.config.num_channels:
            raise ValueError(f"pixel_values: expected [batch, {self.config.num_channels}, H, W], "
                             f"got {tuple(pixel_values.shape)}")
        patches = emb.patch_embeddings(pixel_values)  # [B, D, h, w]
        batch, dim, h, w = patches.shape
        grid = self.config.image_size // self.config.patch_size
        positions = emb.position_embeddings[:, 1:, :].transpose(1, 2).reshape(1, dim, grid, grid)
        if (h, w) != (grid, grid):  # another resolution than pretraining: resize the position grid
            positions = F.interpolate(positions, size=(h, w), mode="bilinear", align_corners=True)
        patches = (patches + positions).flatten(2).transpose(1, 2)
        cls = (emb.cls_token + emb.position_embeddings[:, :1, :]).expand(batch, -1, -1)
        return torch.cat([cls, patches], dim=1)

    def _embed(self, input_ids, pixel_values) -> tuple[torch.Tensor, int]:
        emb = self.vilt.embeddings
        text = emb.text_embeddings(input_ids=input_ids)
        text = text + emb.token_type_embeddings(torch.zeros_like(input_ids))
        image = self._image_embeddings(pixel_values)
        image = image + emb.token_type_embeddings(
            torch.ones(image.shape[:2], dtype=torch.long, device=image.device))
        return torch.cat([text, image], dim=1), text.shape[1]

    @staticmethod
    def view_mask(view: str, attention_mask: torch.Tensor, n_image_tokens: int) -> torch.Tensor:
        """Key mask [B, L_text + L_image] (1 = visible) that removes a modality for ``view``."""
        batch = attention_mask.shape[0]
        text_mask = attention_mask.to(torch.long)
        image_mask = torch.ones(batch, n_image_tokens, dtype=torch.long, device=attention_mask.device)
        if view == "text":
            image_mask = torch.zeros_like(image_mask)
        elif view == "image":
            text_mask = torch.zeros_like(text_mask)
            text_mask[:, 0] = 1  # keep [CLS] as the pooling query; it holds no sample content
        return torch.cat([text_mask, image_mask], dim=1)

    # ------------------------------------------------------------------ forward
    def forward_per_sample_view(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                                pixel_values: torch.Tensor, view_index: torch.Tensor) -> torch.Tensor:
        """Logits [B, C] where sample b is seen through view ``VIEWS[view_index[b]]``.

        Modality dropout at the cost of one joint pass: each sample gets its own modality mask.
        """
        if view_index.shape != (input_ids.shape[0],):
            raise ValueError(f"view_index: expected shape [{input_ids.shape[0]}], got {tuple(view_index.shape)}")
        embeddings, n_text = self._embed(input_ids, pixel_values)
        n_image = embeddings.shape[1] - n_text
        masks = torch.stack([self.view_mask(v, attention_mask, n_image) for v in VIEWS])  # [V, B, L]
        mask = masks[view_index, torch.arange(input_ids.shape[0], device=view_index.device)]
        additive = (1.0 - mask[:, None, None, :].to(embeddings.dtype)) * torch.finfo(embeddings.dtype).min
        encoded = self.vilt.encoder(self.vilt.embeddings.dropout(embeddings), attention_mask=additive,
                                    return_dict=True)
        return self.classifier(self.vilt.pooler(self.vilt.layernorm(encoded.last_hidden_state)))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, pixel_values: torch.Tensor,
                views: Iterable[str] = ("joint",), output_hidden_states: bool = False,
                view_index: torch.Tensor | None = None, **_: object) -> MultimodalOutput:
        """Logits (and pooled features) for each requested view, all views in one encoder pass.

        With ``view_index`` ([B] indices into ``VIEWS``), each sample is seen through its own view instead
        and the result has one entry, ``"per_sample"`` (see :meth:`forward_per_sample_view`). Going through
        ``forward`` keeps DistributedDataParallel's gradient synchronisation in the loop.
        """
        if view_index is not None:
            logits = self.forward_per_sample_view(input_ids, attention_mask, pixel_values, view_index)
            return MultimodalOutput(logits={"per_sample": logits}, pooled={})
        views = requested_views(views)
        if input_ids.shape[0] != pixel_values.shape[0]:
            raise ValueError(f"text batch {input_ids.shape[0]} != image batch {pixel_values.shape[0]}")
        max_text = self.config.max_position_embeddings
        if input_ids.shape[1] > max_text:
            raise ValueError(f"text length {input_ids.shape[1]} exceeds max_position_embeddings={max_text}")
        embeddings, n_text = self._embed(input_ids, pixel_values)
        if not output_hidden_states and any(v in views for v in ("text", "image")):
            return self._packed_views(embeddings, n_text, attention_mask, views)
        n_image = embeddings.shape[1] - n_text
        n_views = len(views)
        stacked = embeddings.repeat(n_views, 1, 1)
        masks = torch.cat([self.view_mask(v, attention_mask, n_image) for v in views], dim=0)
        dtype = stacked.dtype
        additive = (1.0 - masks[:, None, None, :].to(dtype)) * torch.finfo(dtype).min
        encoded = self.vilt.encoder(self.vilt.embeddings.dropout(stacked), attention_mask=additive,
                                    output_hidden_states=output_hidden_states, return_dict=True)
        sequence = self.vilt.layernorm(encoded.last_hidden_state)
        pooled = self.vilt.pooler(sequence)
        logits = self.classifier(pooled)
        batch = input_ids.shape[0]
        out = MultimodalOutput(
            logits={v: logits[i * batch:(i + 1) * batch] for i, v in enumerate(views)},
            pooled={v: pooled[i * batch:(i + 1) * batch] for i, v in enumerate(views)},
        )
        if output_hidden_states:
            out.hidden_states = {v: tuple(h[i * batch:(i + 1) * batch] for h in encoded.hidden_states[1:])
                                 for i, v in enumerate(views)}
        return out

    def _packed_views(self, embeddings: torch.Tensor, n_text: int, attention_mask: torch.Tensor,
                      views: tuple[str, ...]) -> MultimodalOutput:
        """The unimodal views at (almost) the cost of one extra joint pass instead of two.

        Masking a modality out of attention (:meth:`view_mask`) still runs its tokens as queries, so three
        views cost three joint passes. Here the text-only and image-only views share *one* sequence per
        sample, ``[text tokens | copy of [CLS] | image tokens]``, with a block-diagonal attention mask: text
        queries see only text keys (the text view, pooled at position 0), and the copied [CLS] and the image
        tokens see only each other (the image view, pooled at the copy). Each block computes exactly what
        the masked single-view pass computes, because masked keys drop out of every softmax (tested against
        :meth:`forward_per_sample_view`). The joint view runs on the same padded length with the copy masked.
        Token count: (T + P) + (T + 1 + P) per sample instead of 3 (T + P).
        """
        batch, length, _ = embeddings.shape
        n_image = length - n_text
        device, dtype = embeddings.device, embeddings.dtype
        cls_copy = embeddings[:, :1]  # text [CLS] with its position and token type: the image view's query
        packed = torch.cat([embeddings[:, :n_text], cls_copy, embeddings[:, n_text:]], dim=1)
        total = length + 1
        text_keys = attention_mask.to(torch.bool)
        image_block = torch.zeros(total, dtype=torch.bool, device=device)
        image_block[n_text:] = True  # the [CLS] copy and every image token
        # joint rows: every real text token and image token is a key, the copy is not
        joint_keys = torch.cat([text_keys, torch.zeros(batch, 1, dtype=torch.bool, device=device),
                                torch.ones(batch, n_image, dtype=torch.bool, device=device)], dim=1)
        joint_mask = joint_keys[:, None, :].expand(batch, total, total)
        # unimodal rows: text queries see text keys; copy + image queries see copy + image keys
        text_part = torch.cat([text_keys, torch.zeros(batch, 1 + n_image, dtype=torch.bool, device=device)], dim=1)
        uni_mask = torch.where(image_block[None, :, None], image_block[None, None, :].expand(batch, total, total),
                               text_part[:, None, :].expand(batch, total, total))
        want_joint = "joint" in views
        rows = ([packed] if want_joint else []) + [packed]
        masks = ([joint_mask] if want_joint else []) + [uni_mask]
        hidden = torch.cat(rows, dim=0)
        visible = torch.cat(masks, dim=0)[:, None, :, :]
        additive = (~visible).to(dtype) * torch.finfo(dtype).min
        encoded = self.vilt.encoder(self.vilt.embeddings.dropout(hidden), attention_mask=additive, return_dict=True)
        sequence = encoded.last_hidden_state
        offset = batch if want_joint else 0
        query = {"joint": sequence[:batch, 0], "text": sequence[offset:, 0], "image": sequence[offset:, n_text]}
        stacked = torch.cat([query[v] for v in views], dim=0)[:, None, :]
        pooled = self.vilt.pooler(self.vilt.layernorm(stacked))
        logits = self.classifier(pooled)
        return MultimodalOutput(
            logits={v: logits[i * batch:(i + 1) * batch] for i, v in enumerate(views)},
            pooled={v: pooled[i * batch:(i + 1) * batch] for i, v in enumerate(views)},
        )

    # ------------------------------------------------------------------ checkpoints
    def save(self, folder: str | Path, extra: dict | None = None) -> Path:
        """Plain checkpoint: ``model.safetensors`` (state dict) + ``config.json`` (ViLT config + head)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        save_file(state, str(folder / "model.safetensors"))
        meta = {"vilt_config": self.config.to_dict(), "num_labels": self.num_labels, **(extra or {})}
        (folder / "config.json").write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
        return folder

    @classmethod
    def load(cls, folder: str | Path, map_location: str = "cpu") -> "MultimodalClassifier":
        folder = Path(folder)
        config_path, weights_path = folder / "config.json", folder / "model.safetensors"
        for path in (config_path, weights_path):
            if not path.exists():
                raise FileNotFoundError(f"checkpoint file {path} is missing; a checkpoint folder holds "
                                        f"config.json and model.safetensors (written by .save())")
        meta = json.loads(config_path.read_text())
        model = cls(ViltConfig(**meta["vilt_config"]), num_labels=int(meta["num_labels"]))
        model.load_state_dict(load_file(str(weights_path), device=map_location))
        return model


def requested_views(views: Iterable[str]) -> tuple[str, ...]:
    views = tuple(views)
    unknown = [v for v in views if v not in VIEWS]
    if unknown or not views or len(set(views)) != len(views):
        raise ValueError(f"views {views!r}: expected a non-empty list of distinct names from {list(VIEWS)}")
    return views


def make_vilt_config(vocab_size: int, image_size: int = 32, patch_size: int = 8, preset: str = "student",
                     max_text_length: int = 40, **overrides) -> ViltConfig:
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; accepted: {sorted(PRESETS)}")
    if image_size % patch_size:
        raise ValueError(f"image_size {image_size} must be a multiple of patch_size {patch_size}")
    fields = dict(PRESETS[preset], vocab_size=vocab_size, image_size=image_size, patch_size=patch_size,
                  max_position_embeddings=max_text_length, hidden_dropout_prob=0.0,
                  attention_probs_dropout_prob=0.0, max_image_length=-1)
    fields.update(overrides)
    return ViltConfig(**fields)


def build_multimodal_model(num_labels: int, vocab_size: int, preset: str = "student", image_size: int = 32,
                           patch_size: int = 8, seed: int | None = None, **overrides) -> MultimodalClassifier:
    """A randomly initialised classifier of a preset size (``teacher``, ``student``, ``paper-*``)."""
    if seed is not None:
        torch.manual_seed(seed)
    config = make_vilt_config(vocab_size, image_size, patch_size, preset, **overrides)
    return MultimodalClassifier(config, num_labels)


def from_pretrained_vilt(checkpoint: str, num_labels: int, **kwargs) -> MultimodalClassifier:
    """Start from a hub ViLT backbone (e.g. ``dandelin/vilt-b32-mlm``); the classifier head is new."""
    vilt = from_pretrained_or_explain(ViltModel, checkpoint, **kwargs)
    return MultimodalClassifier(vilt.config, num_labels, vilt=vilt)


def student_from_teacher(teacher: MultimodalClassifier, layers: Iterable[int]) -> MultimodalClassifier:
    """DistilBERT-style initialisation: a shallower copy of ``teacher`` keeping the listed layers."""
    layers = list(layers)
    depth = teacher.config.num_hidden_layers
    if not layers or any(not 0 <= i < depth for i in layers):
        raise ValueError(f"layers {layers} must be a non-empty list of indices in [0, {depth})")
    config = ViltConfig(**{**teacher.config.to_dict(), "num_hidden_layers": len(layers)})
    student = MultimodalClassifier(config, teacher.num_labels)
    state = teacher.state_dict()
    renamed = {}
    for key, value in state.items():
        if key.startswith("vilt.encoder.layer."):
            index = int(key.split(".")[3])
            if index not in layers:
                continue
            rest = key.split(".", 4)[4]
            key = f"vilt.encoder.layer.{layers.index(index)}.{rest}"
        renamed[key] = value.clone()
    student.load_state_dict(renamed)
    return student

