"""``msd_gram``: ``msd`` + λ·Gram relation loss, a combination neither paper tried."""
from __future__ import annotations

import dataclasses

from .base import register_method
from .msd import ModalitySpecificKD


@register_method("msd_gram", label="MSD + Gram", order=60)
@dataclasses.dataclass
class ModalitySpecificGramKD(ModalitySpecificKD):
    """MSD plus Liu's Gram relation loss (``gram_lam`` > 0): a combination neither paper tried."""

    gram_lam: float = 1.0
    has_gram_term = True

    def __post_init__(self):
        super().__post_init__()
        if not self.gram_lam > 0:
            raise ValueError(f"method {self.name!r} needs gram_lam > 0 (got {self.gram_lam!r}); "
                             "use method 'msd' without it")
