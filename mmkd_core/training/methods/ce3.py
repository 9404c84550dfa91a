"""``ce3``: α·CE(text) + β·CE(image) + γ·CE(joint) + KD(joint), the Gram paper's Eq. 2 without its Gram term."""
from __future__ import annotations

import dataclasses

from .base import register_method
from .gram import GramRelationKD


@register_method("ce3", label="CE×3 + KD (no Gram)", order=40)
@dataclasses.dataclass
class ThreeViewCrossEntropyKD(GramRelationKD):
    """The Gram objective without its Gram term (λ = 0): CE on the three views + KD. The ablation that
    tells how much of Gram's effect comes from the three-view CE alone."""

    lam: float = 0.0
    has_gram_term = False

    def __post_init__(self):
        super().__post_init__()
        if self.lam != 0:
            raise ValueError(f"method {self.name!r} is the Gram objective with lam = 0 (got lam={self.lam!r}); "
                             "use method 'gram'")
