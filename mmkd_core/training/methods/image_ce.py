"""``image_ce``: cross-entropy of an image classifier, with random translations (notebook 01's supervised runs)."""
from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import Method, register_method


def random_shift(images: Tensor, max_shift: int, generator: torch.Generator, fill: float = -1.0) -> Tensor:
    """Translate every image by its own random (dy, dx) ∈ [-max_shift, max_shift]², filling with ``fill``."""
    if max_shift <= 0:
        return images
    size = images.shape[-1]
    padded = F.pad(images, (max_shift,) * 4, value=fill)
    offsets = torch.randint(0, 2 * max_shift + 1, (images.shape[0], 2), generator=generator)
    return torch.stack([padded[i, :, dy:dy + size, dx:dx + size] for i, (dy, dx) in enumerate(offsets.tolist())])


@register_method("image_ce", label="CE on images", order=101)
@dataclasses.dataclass
class ImageCrossEntropy(Method):
    """CE(f(shift(x)), y) for a model ``f`` that maps images [B, C, H, W] to logits: notebook 01's embedded teacher
    (every label, shifts of up to ``max_shift`` pixels) and its supervised students (no shift).

    The shifts are drawn from a generator of the method's own, seeded with the run's seed + 1, so the batch order
    (the trainer's generator) and the augmentation do not depend on each other.
    """

    student_views = ()
    max_shift: int = 0

    def __post_init__(self):
        if not isinstance(self.max_shift, int) or self.max_shift < 0:
            raise ValueError(f"method {self.name!r}: max_shift must be an integer >= 0, got {self.max_shift!r}")

    def setup(self, model, accelerator, meta_data, config) -> None:
        self._shifts = torch.Generator().manual_seed(config.seed + 1)

    def step_losses(self, model, batch, teacher_logits):
        images = random_shift(batch["pixel_values"], self.max_shift, self._shifts)
        ce = F.cross_entropy(model(images).float(), batch["labels"])
        return {"ce": ce, "total": ce}
