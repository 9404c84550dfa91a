"""Frozen-feature evaluation and efficiency measurements, generic over any feature extractor.

Everything here takes a callable ``features(pixel_values) -> [B, D]`` (or ready feature arrays), so a
notebook can evaluate a timm model, a transformers model or a distilled student the same way.

* linear probe: logistic regression on standardised frozen features (the usual self-supervised
  evaluation, e.g. BEiT and data2vec report it), accuracy on held-out data;
* k-NN: cosine similarity, majority vote of the k nearest training features (as in DINO's k-NN
  evaluation, without the temperature weighting);
* parameter count and inference throughput (images per second after warm-up).
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import Tensor, nn

FeatureFn = Callable[[Tensor], Tensor]


def _device_of(features: FeatureFn, device: str | torch.device | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    module = getattr(features, "__self__", features)
    if isinstance(module, nn.Module):
        parameter = next(module.parameters(), None)
        if parameter is not None:
            return parameter.device
    return torch.device("cpu")


@torch.no_grad()
def extract_features(features: FeatureFn, images: Tensor, batch_size: int = 256,
                     device: str | torch.device | None = None) -> np.ndarray:
    """Apply ``features`` to ``images`` [M, C, H, W] in batches, without gradients; returns float32 [M, D].

    ``device`` defaults to that of ``features`` when it is a module (or a bound method of one), else CPU.
    """
    if images.dim() != 4:
        raise ValueError(f"images must be [M, C, H, W]; got {tuple(images.shape)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    device = _device_of(features, device)
    chunks = []
    for start in range(0, images.shape[0], batch_size):
        out = features(images[start:start + batch_size].to(device))
        if out.dim() != 2:
            raise ValueError(f"features must return [B, D]; got {tuple(out.shape)}")
        chunks.append(out.float().cpu())
    return torch.cat(chunks).numpy()


def _check_split(train_x, train_y, test_x, test_y) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    train_x, test_x = np.asarray(train_x, dtype=np.float64), np.asarray(test_x, dtype=np.float64)
    train_y, test_y = np.asarray(train_y), np.asarray(test_y)
    if train_x.ndim != 2 or test_x.ndim != 2:
        raise ValueError(f"features must be 2-D [M, D]; got train {train_x.shape}, test {test_x.shape}")
    if train_x.shape[1] != test_x.shape[1]:
        raise ValueError(f"train and test features differ in width: {train_x.shape[1]} vs {test_x.shape[1]}")
    if train_y.shape != (train_x.shape[0],) or test_y.shape != (test_x.shape[0],):
        raise ValueError(
            f"expected one label per row: train {train_x.shape[0]} rows / {train_y.shape} labels, "
            f"test {test_x.shape[0]} rows / {test_y.shape} labels"
        )
    if train_x.shape[0] == 0 or test_x.shape[0] == 0:
        raise ValueError("train and test features must be non-empty")
    return train_x, train_y, test_x, test_y


def linear_probe_accuracy(train_x, train_y, test_x, test_y, *, C: float = 1.0, max_iter: int = 2000,
                          seed: int = 0) -> float:
    """Test accuracy of multinomial logistic regression (L2, strength 1/C) on standardised features.

    The scaler is fitted on the training features only. Deterministic for a fixed ``seed``.
    """
    train_x, train_y, test_x, test_y = _check_split(train_x, train_y, test_x, test_y)
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter, random_state=seed))
    probe.fit(train_x, train_y)
    return float((probe.predict(test_x) == test_y).mean())


def knn_accuracy(train_x, train_y, test_x, test_y, *, k: int = 10) -> float:
    """Test accuracy of a k-nearest-neighbour vote with cosine similarity.

    For each test feature the k training features with the highest cos(a, b) = a·b / (|a||b|) vote, one
    vote each; a tie goes to the class whose voters have the larger summed similarity.
    """
    train_x, train_y, test_x, test_y = _check_split(train_x, train_y, test_x, test_y)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= train_x.shape[0]:
        raise ValueError(f"k must be an int in 1..{train_x.shape[0]} (the number of training rows); got {k!r}")
    train_unit = train_x / np.maximum(np.linalg.norm(train_x, axis=1, keepdims=True), 1e-12)
    test_unit = test_x / np.maximum(np.linalg.norm(test_x, axis=1, keepdims=True), 1e-12)
    similarity = test_unit @ train_unit.T  # [M_test, M_train]
    nearest = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
    classes, train_index = np.unique(train_y, return_inverse=True)
    votes = np.zeros((test_x.shape[0], classes.size))
    tie_break = np.zeros_like(votes)
    rows = np.repeat(np.arange(test_x.shape[0]), k)
    np.add.at(votes, (rows, train_index[nearest].ravel()), 1.0)
    np.add.at(tie_break, (rows, train_index[nearest].ravel()), np.take_along_axis(similarity, nearest, axis=1).ravel())
    # votes are integers ≤ k and summed similarities lie in [-k, k], so this orders by votes first.
    predicted = classes[np.argmax(votes * (2 * k + 1) + tie_break, axis=1)]
    return float((predicted == test_y).mean())


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (shared tensors counted once)."""
    seen, total = set(), 0
    for parameter in module.parameters():
        if id(parameter) in seen or (trainable_only and not parameter.requires_grad):
            continue
        seen.add(id(parameter))
        total += parameter.numel()
    return total


@torch.no_grad()
def measure_throughput(features: FeatureFn, example_batch: Tensor, *, warmup: int = 2, iterations: int = 5,
                       device: str | torch.device | None = None) -> float:
    """Inference throughput in images per second: B · iterations / wall time, after ``warmup`` untimed calls.

    CUDA work is synchronised before the clock is read, so queued kernels are counted. Use the same
    batch, device and thread count for every model compared.
    """
    if example_batch.dim() < 1 or example_batch.shape[0] == 0:
        raise ValueError(f"example_batch must be a non-empty batch; got shape {tuple(example_batch.shape)}")
    if warmup < 0 or iterations < 1:
        raise ValueError(f"warmup must be >= 0 and iterations >= 1; got {warmup}, {iterations}")
    device = _device_of(features, device)
    batch = example_batch.to(device)
    return timed_throughput(features, [batch] * warmup, [batch] * iterations, batch.shape[0] * iterations, device)


def timed_throughput(run_batch: Callable, warmup_batches, timed_batches, samples: int,
                     device: torch.device) -> float:
    """``samples`` / wall time of ``run_batch`` over ``timed_batches``, after untimed ``warmup_batches``.

    The one timing loop behind every throughput number (images or image–text pairs per second). CUDA work is
    synchronised before the clock is read both times, so queued kernels are neither missed nor counted twice.
    """
    synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for batch in warmup_batches:
        run_batch(batch)
    synchronize()
    start = time.perf_counter()
    for batch in timed_batches:
        run_batch(batch)
    synchronize()
    return samples / (time.perf_counter() - start)
