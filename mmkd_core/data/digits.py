"""scikit-learn's bundled handwritten digits as image tensors (notebook 01's embedded vision data).

1,797 real 8×8 grey-level scans of handwritten digits 0-9 (UCI optdigits test set), shipped inside the
scikit-learn wheel, so they load offline with no extra dependency. They are the smallest real images
a registry package installs; the shapes benchmark's scenes would make the probe a colour/shape lookup.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split


@dataclasses.dataclass(frozen=True)
class ImageSplits:
    """Images [M, 3, S, S] normalised to [-1, 1] and integer labels [M], for train, test and (optionally) validation."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    num_classes: int
    validation_images: torch.Tensor | None = None
    validation_labels: torch.Tensor | None = None


def load_digits_splits(image_size: int = 32, test_fraction: float = 0.3, split_seed: int = 0,
                       max_train: int | None = None, max_test: int | None = None,
                       validation_fraction: float = 0.0, max_validation: int | None = None) -> ImageSplits:
    """Stratified train/test split of the digits, upsampled bilinearly from 8×8 to ``image_size`` px.

    ``validation_fraction`` > 0 moves that fraction of the training rows (stratified) into a validation
    split, for early stopping; the test split does not change with it.

    Grey levels 0..16 become [0, 1], then (x - 0.5) / 0.5 as data2vec-vision's preprocessing, and the one
    channel is repeated three times for RGB models. ``max_train`` / ``max_test`` keep the first rows
    of each (already shuffled) split, for the small CI setting.
    """
    if image_size < 8:
        raise ValueError(f"image_size must be >= 8 (the digits are 8×8); got {image_size}")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1); got {test_fraction}")
    if not 0 <= validation_fraction < 1:
        raise ValueError(f"validation_fraction must be in [0, 1); got {validation_fraction}")
    digits = load_digits()
    pixels = torch.from_numpy(digits.images.astype(np.float32) / 16.0).unsqueeze(1)  # [M, 1, 8, 8]
    pixels = F.interpolate(pixels, size=(image_size, image_size), mode="bilinear", align_corners=False)
    images = ((pixels - 0.5) / 0.5).repeat(1, 3, 1, 1).contiguous()
    labels = torch.from_numpy(digits.target.astype(np.int64))
    train_index, test_index = train_test_split(
        np.arange(len(labels)), test_size=test_fraction, random_state=split_seed, stratify=digits.target,
    )
    validation_index = None
    if validation_fraction > 0:
        train_index, validation_index = train_test_split(
            train_index, test_size=validation_fraction, random_state=split_seed, stratify=digits.target[train_index],
        )
        validation_index = validation_index[:max_validation]
    train_index, test_index = train_index[:max_train], test_index[:max_test]
    validation = (images[validation_index], labels[validation_index]) if validation_index is not None else (None, None)
    return ImageSplits(images[train_index], labels[train_index], images[test_index], labels[test_index], num_classes=10,
                       validation_images=validation[0], validation_labels=validation[1])
