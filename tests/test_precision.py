"""One precision policy (evaluation/precision.py) for inference and training: predict autocasts to bf16 on CUDA
only, the trainer resolves TrainConfig.precision per device, and the trainer's old names still import."""
import contextlib
import types
import warnings

import pytest
import torch

from mmkd_core.evaluation import precision, predict
from mmkd_core.training import trainer


def test_inference_autocasts_to_bf16_on_cuda_and_not_on_the_cpu():
    assert isinstance(precision.autocast_for(torch.device("cpu")), contextlib.nullcontext)
    with warnings.catch_warnings():  # building a CUDA autocast on a machine without CUDA only warns
        warnings.simplefilter("ignore")
        cuda = precision.autocast_for(torch.device("cuda"))
    assert isinstance(cuda, torch.autocast) and cuda.device == "cuda" and cuda.fast_dtype == torch.bfloat16
    assert predict.autocast_for is precision.autocast_for  # predict reads the policy, it does not keep its own


def test_precisions_resolve_per_device(monkeypatch):
    assert precision.resolve_precision("default", on_cpu=True) == "fp32"
    assert precision.resolve_precision("default", on_cpu=False) == "bf16"
    assert precision.resolve_precision("fp32", on_cpu=False) == "fp32"
    assert precision.resolve_precision("bf16", on_cpu=True) == "bf16"
    for native, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(precision, "cpu_computes_bf16", lambda: native)
        assert precision.resolve_precision("native", on_cpu=True) == expected
        assert precision.resolve_precision("native", on_cpu=False) == "bf16"
    accepted = r"unknown precision 'fp16'; accepted: \['default', 'native', 'bf16', 'fp32'\]"
    with pytest.raises(ValueError, match=accepted):
        precision.resolve_precision("fp16", on_cpu=True)


def test_training_autocasts_as_the_policy_says_and_defers_to_accelerate_otherwise():
    deferred = contextlib.nullcontext()
    accelerator = types.SimpleNamespace(device=torch.device("cpu"), autocast=lambda: deferred)
    assert precision.precision_autocast(accelerator, "default") is deferred
    bf16 = precision.precision_autocast(accelerator, "bf16")
    assert isinstance(bf16, torch.autocast) and bf16.device == "cpu" and bf16.fast_dtype == torch.bfloat16


def test_the_trainer_reexports_the_policy():
    for name in ("PRECISIONS", "check_precision", "cpu_computes_bf16", "resolve_precision", "precision_autocast"):
        assert getattr(trainer, name) is getattr(precision, name)
    with pytest.raises(ValueError, match="unknown precision"):
        trainer.TrainConfig(precision="half")
