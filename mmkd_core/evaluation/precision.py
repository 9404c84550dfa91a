"""The one precision policy: what a forward pass computes in, on which device, for training and for inference.

``precision`` is one of :data:`PRECISIONS`; :func:`resolve_precision` says what it means on a device (``"bf16"``
autocast or ``"fp32"``). Inference (:func:`mmkd_core.evaluation.predict.predict`) runs at ``"default"`` through
:func:`autocast_for`; the trainer (:mod:`mmkd_core.training.trainer`) runs at ``TrainConfig.precision`` through
:func:`precision_autocast`, which also defers to its Accelerate ``Accelerator`` when nothing is autocast to bf16.
"""
from __future__ import annotations

import contextlib

import torch

PRECISIONS = {
    "default": "bf16 autocast on CUDA, float32 on the CPU",
    "native": "bf16 autocast wherever the hardware computes bf16 natively (CUDA; CPUs with AVX512-BF16 or AMX), "
              "else float32",
    "bf16": "bf16 autocast on any device (emulated, so slower, on a CPU without bf16 instructions)",
    "fp32": "float32 everywhere",
}
"""``TrainConfig.precision``: what each value computes in. Losses are computed in float32 in every case."""


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; accepted: {list(PRECISIONS)}")


def cpu_computes_bf16() -> bool:
    """Whether this CPU has bf16 instructions (AVX512-BF16 or AMX tiles), so bf16 matmuls run natively."""
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def resolve_precision(precision: str, on_cpu: bool) -> str:
    """``"bf16"`` or ``"fp32"``: what ``precision`` (one of :data:`PRECISIONS`) means on this device."""
    check_precision(precision)
    if precision in ("bf16", "fp32"):
        return precision
    if not on_cpu:
        return "bf16"
    return "bf16" if precision == "native" and cpu_computes_bf16() else "fp32"


def autocast_for(device: torch.device, precision: str = "default"):
    """The autocast context of a forward pass at ``precision`` on ``device``: bf16 autocast where it resolves to
    ``"bf16"``, else none (float32). At ``"default"``: bf16 on CUDA, nothing elsewhere (CPU numbers stay exactly
    float32). Only CUDA counts as an accelerator here: the package computes on CUDA or on the CPU."""
    if resolve_precision(precision, on_cpu=device.type != "cuda") == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def precision_autocast(accelerator, precision: str = "default"):
    """The autocast context of a training forward pass at ``precision`` on an Accelerate ``accelerator``'s device.

    bf16 autocast where ``precision`` resolves to ``"bf16"``; else the accelerator's own ``autocast()``: nothing on
    the CPU, and on CUDA whatever mixed precision Accelerate was built with (it fixes it once per process).
    """
    if resolve_precision(precision, accelerator.device.type == "cpu") == "bf16":
        return torch.autocast(accelerator.device.type, dtype=torch.bfloat16)
    return accelerator.autocast()
