"""Distillation losses. Each is a small function whose docstring gives the formula and its source."""
from .kd import check_logits_pair, check_temperature, distillation_objective, kd_loss

__all__ = ["check_logits_pair", "check_temperature", "distillation_objective", "kd_loss"]
from .data2vec import Data2VecDistillationLoss, Data2VecLossConfig, data2vec_loss, data2vec_regression_loss, data2vec_targets  # noqa: E402

__all__ += ["Data2VecDistillationLoss", "Data2VecLossConfig", "data2vec_loss", "data2vec_regression_loss", "data2vec_targets"]
from .msd import msd_loss  # noqa: E402
from .gram import gram_objective, gram_relation_loss, modality_gram, stack_views  # noqa: E402

__all__ += ["msd_loss", "gram_objective", "gram_relation_loss", "modality_gram", "stack_views"]
