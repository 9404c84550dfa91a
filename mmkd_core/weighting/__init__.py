"""Weights of the MSD auxiliary terms: population (grid on validation), instance-wise (teacher saliency or
confidence) and meta-learned (one-step look-ahead on a validation batch)."""
from .instance import instance_weights
from .meta import MetaReweighter, WeightNet, meta_step, weight_features
from .population import population_grid, select_population_weights
from .schemes import SCHEMES, WeightingScheme, make_weighting

__all__ = ["instance_weights", "MetaReweighter", "WeightNet", "meta_step", "weight_features", "population_grid",
           "select_population_weights", "SCHEMES", "WeightingScheme", "make_weighting"]
