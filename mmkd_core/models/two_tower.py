"""A two-tower teacher from genuinely pretrained, frozen towers and a small trained fusion head.

The towers (:mod:`mmkd_core.models.pretrained`) are ImageNet-pretrained EfficientNet-Lite0 and
sentence-pretrained all-MiniLM-L6-v2. They stay frozen, so their features are computed once per
(weights, rows) and cached (:func:`tower_features`); only the fusion head is trained, in seconds.

Pipeline::

    rows (image, text, label) ──► tower_features ──► FusionHead (trained, modality dropout) ──► logits per view
                                     cached under data/pretrained/features/        └─► teacher_cache(...) → TeacherCache

Images. The shapes benchmark renders 32 px scenes at the student's size. We feed the CNN *those same
pixels*, bilinearly upsampled to ``input_size`` (128 by default), rather than re-rendering the benchmark
at a larger ``image_size``: the generator draws its pixel noise per pixel, so another ``image_size``
consumes the random stream differently and yields other scenes and statements (other rows), and the
teacher would not have seen the students' rows. 128 px puts one 16 px grid cell at 64 px, an object
size the ImageNet filters respond to, at ~1/7 of the cost of 224 px on a CPU (one thread, measured:
~25 ms per row at 128 px, towers together, i.e. ~3.5 min for 8000 rows; 224 px took ~130 ms per image).

Missing modality. MSD and Gram distil the teacher's text-only and image-only predictions, so the head
must answer from one modality. We use a **learned null embedding** per tower (one vector for the text,
one per image region), substituted for the projected features of the removed modality, and train the
head with **modality dropout**: each training sample is seen through one view drawn at random (joint with
probability 1/2, text-only and image-only 1/4 each, as the repository's ``ce_modality_dropout`` does for
the from-scratch teachers). Zeros instead of a learned vector would be an input the head never saw in
training; a separate head per view would not share the fused representation. With both, the text-only
logits are the head's best guess from the text alone, which is what MSD's weights and Gram's matrix read.

Public API: :class:`TowerFeatures`, :func:`load_towers`, :func:`tower_features`, :class:`FusionHead`. Training the
head, the teacher cache it makes and its metrics are :mod:`mmkd_core.training.fusion_head`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from ..determinism import CACHED_COMPUTATION_THREADS, fixed_cpu_threads
from ..views import VIEWS
from . import pretrained
from .multimodal import MultimodalOutput
from ..data.encoding import check_columns, dataset_fingerprint, ImageTextProcessor

# Bump when the feature computation changes, so old caches are not reused. 2: computed on one CPU thread wherever
# they are computed (version 1 depended on the computing process's thread count; mmkd_core.determinism).
FEATURES_VERSION = 2


# --------------------------------------------------------------------------------------- tower features
@dataclasses.dataclass
class TowerFeatures:
    """Frozen-tower features of every row of one split.

    ``text``: ``[N, 384]`` L2-normalised MiniLM sentence embeddings; ``image``: ``[N, R, 1280]``
    EfficientNet-Lite0 region features (R = grid², row-major); ``labels``: ``[N]``.
    ``data_key`` equals :attr:`mmkd_core.data.encoding.EncodedDataset.fingerprint` of the same rows, so a
    :class:`~mmkd_core.training.cache.TeacherCache` built from these features passes the trainer's check.
    ``seconds``: the time the towers took when the features were computed (also kept on a cache hit);
    ``from_cache``: whether this call read them from disk.
    """

    text: torch.Tensor
    image: torch.Tensor
    labels: torch.Tensor
    data_key: str
    towers_key: str
    seconds: float = 0.0
    from_cache: bool = False

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def head(self, n: int) -> "TowerFeatures":
        """The first ``n`` rows (a label-limited training set). The data key marks the subset."""
        if not 0 < n <= len(self):
            raise ValueError(f"n={n!r}: accepted 1..{len(self)}")
        return dataclasses.replace(self, text=self.text[:n], image=self.image[:n], labels=self.labels[:n],
                                   data_key=f"{self.data_key}[:{n}]")

    def prefix_for(self, rows, pool_rows) -> "TowerFeatures":
        """These features restricted to ``rows``, which must be the first ``len(rows)`` rows of ``pool_rows``.

        ``pool_rows``: the split these features were computed on. The shapes benchmark's students' training
        split is the first ``n_train`` rows of the teacher's larger pool (same seed, same stream), so its
        features need no second pass through the towers. Every image, text and label of ``rows`` is checked
        against the pool (a mismatch raises ``ValueError``); the result carries ``rows``' fingerprint as
        ``data_key``, so its :func:`teacher_cache` matches the students' ``EncodedDataset``.
        """
        if dataset_fingerprint(pool_rows) != self.data_key:
            raise ValueError("pool_rows are not the rows these features were computed on")
        n = len(rows)
        if n > len(self):
            raise ValueError(f"{n} rows but the pool has {len(self)}")
        pool = pool_rows[:n]
        same = (list(rows["text"]) == list(pool["text"]) and list(rows["label"]) == list(pool["label"])
                and all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(rows["image"], pool["image"])))
        if not same:
            raise ValueError("rows are not the first rows of pool_rows: compute their features with tower_features")
        return dataclasses.replace(self.head(n), data_key=dataset_fingerprint(rows))


def load_towers(root: str | Path | None = None) -> tuple:
    """``(image_model, text_model, tokenizer)``: both frozen pretrained towers, in eval mode."""
    image_model = pretrained.load_image_tower(root)
    text_model, tokenizer = pretrained.load_text_tower()
    return image_model, text_model, tokenizer


def _features_path(root, towers_key: str, data_key: str, input_size: int, grid: int) -> Path:
    key = hashlib.sha1(json.dumps([FEATURES_VERSION, towers_key, data_key, input_size, grid]).encode()).hexdigest()[:16]
    return pretrained.pretrained_dir(root) / "features" / f"towers-{key}.safetensors"


def tower_features(rows, input_size: int = 128, grid: int = 2, root: str | Path | None = None,
                   batch_size: int = 64, cache: bool = True, towers=None) -> TowerFeatures:
    """Text and image features of the frozen pretrained towers for every row of ``rows``.

    ``rows``: a ``datasets.Dataset`` with ``image`` (PIL), ``text`` and ``label`` columns (e.g.
    ``mmkd_core.data.load("shapes", "train", task="ve")``). Images are read at their own size (the
    students' pixels), scaled to [-1, 1] and upsampled to ``input_size`` (see the module docstring);
    ``grid``: the region grid of :func:`~mmkd_core.models.pretrained.embed_images`.

    Cached as safetensors under ``<data>/pretrained/features/``, keyed by the towers' weights (SHA-1 of the
    packaged files), the rows (their fingerprint), ``input_size``, ``grid`` and a format version. A hit loads
    no tower at all. ``towers``: ``(image_model, text_model, tokenizer)`` already loaded (by
    :func:`load_towers`), to share them across splits, or a function returning them (called on a miss only);
    None loads them on a miss.
    """
    from safetensors import safe_open
    from safetensors.torch import save_file

    check_columns(rows)
    data_key = dataset_fingerprint(rows)
    towers_key = pretrained.towers_fingerprint()
    path = _features_path(root, towers_key, data_key, input_size, grid)
    if cache and path.is_file():
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata()
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}
        return TowerFeatures(tensors["text"], tensors["image"].float(), tensors["labels"], data_key, towers_key,
                             seconds=float(meta["seconds"]), from_cache=True)
    if callable(towers):  # a loader, called only on a miss (shares the towers across splits, loads none on hits)
        towers = towers()
    image_model, text_model, tokenizer = towers if towers is not None else load_towers(root)
    first = rows[0]["image"]
    processor = ImageTextProcessor(tokenizer=None, image_size=first.size[0],
                                   mean=pretrained.IMAGE_MEAN, std=pretrained.IMAGE_STD)
    start = time.perf_counter()
    texts, images, labels = [], [], []
    with fixed_cpu_threads(next(image_model.parameters()).device):
        for begin in range(0, len(rows), 512):
            chunk = rows[begin:begin + 512]
            images.append(pretrained.embed_images(processor.encode_images(chunk["image"]), image_model,
                                                  input_size=input_size, grid=grid, batch_size=batch_size))
            texts.append(pretrained.embed_texts(chunk["text"], text_model, tokenizer))
            labels.append(torch.tensor(chunk["label"], dtype=torch.long))
    seconds = time.perf_counter() - start
    features = TowerFeatures(torch.cat(texts), torch.cat(images), torch.cat(labels), data_key, towers_key, seconds)
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Image features in float16 halve the file (8000 rows: ~80 MB); the head trains in float32.
        save_file({"text": features.text.contiguous(), "image": features.image.half().contiguous(),
                   "labels": features.labels.contiguous()}, str(path),
                  metadata={"data_key": data_key, "towers_key": towers_key, "seconds": f"{seconds:.3f}",
                            "input_size": str(input_size), "grid": str(grid), "torch": torch.__version__,
                            "cpu_threads": str(CACHED_COMPUTATION_THREADS), "version": str(FEATURES_VERSION)})
        features.image = features.image.half().float()  # the same values a later cache hit returns
    return features


# ------------------------------------------------------------------------------------------ fusion head
FUSIONS = ("concat", "cross_attention")


class FusionHead(nn.Module):
    """Fusion of a sentence embedding and image region features into per-view logits.

    Both inputs are projected to ``width`` (linear + LayerNorm); each region gets a learned position
    embedding. Then, with ``t`` the text vector and ``r_1..r_R`` the regions:

    - ``"concat"``: :math:`z = [t;\\ r_1..r_R;\\ t \\odot r_1..t \\odot r_R]`. The products are the cheap
      text–region match scores ("is the red circle in this cell?") that a plain concatenation would
      leave the MLP to discover.
    - ``"cross_attention"``: the text attends over the regions (one multi-head attention layer),
      :math:`a = \\mathrm{Attn}(t, r)`, :math:`z = [t;\\ a;\\ t \\odot a]`.

    ``z`` goes through an MLP (``width * k → hidden → hidden``, GELU, dropout) whose output is the
    ``pooled`` feature, then a linear classifier. A removed modality is replaced by its learned null
    embedding (``null_text``: one vector; ``null_image``: one per region) after projection, before fusion.
    """

    def __init__(self, num_labels: int, fusion: str = "concat", text_dim: int = pretrained.TEXT_FEATURES,
                 image_dim: int = pretrained.IMAGE_FEATURES, regions: int = 4, width: int = 128,
                 hidden: int = 256, dropout: float = 0.1, heads: int = 4):
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {fusion!r}; accepted: {FUSIONS}")
        self.config = dict(num_labels=num_labels, fusion=fusion, text_dim=text_dim, image_dim=image_dim,
                           regions=regions, width=width, hidden=hidden, dropout=dropout, heads=heads)
        self.fusion = fusion
        self.text_proj = nn.Sequential(nn.Linear(text_dim, width), nn.LayerNorm(width))
        self.image_proj = nn.Sequential(nn.Linear(image_dim, width), nn.LayerNorm(width))
        self.region_position = nn.Parameter(torch.randn(regions, width) * 0.02)
        self.null_text = nn.Parameter(torch.randn(width) * 0.02)
        self.null_image = nn.Parameter(torch.randn(regions, width) * 0.02)
        if fusion == "cross_attention":
            self.attention = nn.MultiheadAttention(width, heads, dropout=dropout, batch_first=True)
            fused = 3 * width
        else:
            fused = width * (1 + 2 * regions)
        self.mlp = nn.Sequential(nn.Dropout(dropout), nn.Linear(fused, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, hidden), nn.GELU())
        self.classifier = nn.Linear(hidden, num_labels)

    def _fuse(self, text: torch.Tensor, image: torch.Tensor, keep_text: torch.Tensor,
              keep_image: torch.Tensor) -> torch.Tensor:
        t = self.text_proj(text.float())
        r = self.image_proj(image.float())
        t = torch.where(keep_text[:, None], t, self.null_text.expand_as(t))
        r = torch.where(keep_image[:, None, None], r, self.null_image.expand_as(r)) + self.region_position
        if self.fusion == "cross_attention":
            attended, _ = self.attention(t[:, None], r, r, need_weights=False)
            attended = attended[:, 0]
            z = torch.cat([t, attended, t * attended], dim=-1)
        else:
            z = torch.cat([t, r.flatten(1), (t[:, None] * r).flatten(1)], dim=-1)
        return self.mlp(z)

    def forward(self, text: torch.Tensor, image: torch.Tensor, views: Sequence[str] = VIEWS,
                view_index: torch.Tensor | None = None) -> MultimodalOutput:
        """Logits and pooled features per view (``joint``, ``text``, ``image``), as the repository's models.

        With ``view_index`` (``[B]``, indices into :data:`~mmkd_core.views.VIEWS`), each sample is seen
        through its own view and the result is keyed ``"per_sample"`` (modality-dropout training).
        """
        batch = text.shape[0]
        if view_index is not None:
            keep_text = (view_index == VIEWS.index("joint")) | (view_index == VIEWS.index("text"))
            keep_image = (view_index == VIEWS.index("joint")) | (view_index == VIEWS.index("image"))
            pooled = self._fuse(text, image, keep_text, keep_image)
            return MultimodalOutput(logits={"per_sample": self.classifier(pooled)}, pooled={"per_sample": pooled})
        logits, pooled = {}, {}
        yes, no = torch.ones(batch, dtype=torch.bool, device=text.device), torch.zeros(batch, dtype=torch.bool,
                                                                                       device=text.device)
        for view in views:
            keep = {"joint": (yes, yes), "text": (yes, no), "image": (no, yes)}[view]
            pooled[view] = self._fuse(text, image, *keep)
            logits[view] = self.classifier(pooled[view])
        return MultimodalOutput(logits=logits, pooled=pooled)

    @torch.no_grad()
    def predict(self, features: TowerFeatures, views: Sequence[str] = VIEWS,
                batch_size: int = 1024) -> MultimodalOutput:
        """Eval-mode logits and pooled features per view on every row of ``features``."""
        was_training = self.training
        self.eval()
        device = self.classifier.weight.device  # the features are cached on the CPU; the head may sit on a GPU
        with fixed_cpu_threads(device):
            parts = [self(features.text[i:i + batch_size].to(device), features.image[i:i + batch_size].to(device),
                          views) for i in range(0, len(features), batch_size)]
        self.train(was_training)
        return MultimodalOutput(logits={v: torch.cat([p.logits[v].cpu() for p in parts]) for v in views},
                                pooled={v: torch.cat([p.pooled[v].cpu() for p in parts]) for v in views})
