"""Efficiency benchmark: ``python -m mmkd_core.bench`` (or ``make bench``).

Measured in one run, side by side, on the machine at hand (CPU always; CUDA with bf16 autocast when present):

* training-step time of the student for: plain CE, KD with the cached teacher, KD with a live teacher,
  MSD (three views in one batched pass), Gram (three views), MSD + Gram;
* the training loop as the notebooks run it (:func:`mmkd_core.training.trainer.train`, validation every
  ``eval_every`` steps included) against a bare loop of forward + backward + AdamW step on the same model
  and the same batches, as samples per second;
* inference throughput of a 2-layer student against a 12-layer teacher **of equal width**;
* per step kind, the FLOPs of one step (``torch.utils.flop_counter``), the FLOP/s it achieves, and their fraction of
  the device's measured peak (a large float32 matmul; bf16 listed beside it).

Targets from the issue tracker: cached-KD step ≤ 1.1× the plain step; three-view steps ≤ 2.0× (the token
count of a joint pass plus one packed unimodal pass); trainer ≥ 0.85× the bare loop; 2-layer student ≥ 5×
the throughput of the 12-layer teacher. Results go to ``reports/tables/bench_*.{md,csv}`` with the device name.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import pandas as pd
import torch

from .data import load
from .data.encoding import EncodedDataset, ImageTextProcessor
from .data.tokenizer import build_shapes_tokenizer
from .experiments import ExperimentConfig, inference_throughput
from .evaluation.probes import count_parameters
from .models.multimodal import build_multimodal_model
from .reporting import save_table
from .training.cache import TeacherCache
from .training.methods import make_method
from .data.batches import iterate_batches
from .training.trainer import TrainConfig, make_accelerator, make_optimizer, optimisation_step, teacher_outputs, train

STEP_CASES = [
    ("plain CE", "ce", {}, "none"),
    ("KD, cached teacher", "kd", {}, "cache"),
    ("KD, live teacher", "kd", {}, "live"),
    ("MSD (3 views)", "msd", {}, "cache"),
    ("Gram (3 views)", "gram", {}, "cache"),
    ("MSD + Gram", "msd_gram", {}, "cache"),
]


def device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def time_steps(student, method, batches, teacher_cache, teacher, accelerator, repeats: int) -> list[float]:
    """Seconds per optimisation step (teacher lookup or forward included), after one warm-up step."""
    optimizer = make_optimizer(student, TrainConfig(lr=1e-4))
    times = []
    for i in range(repeats + 1):
        batch = {k: v.to(accelerator.device) for k, v in batches[i % len(batches)].items()}
        if accelerator.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = teacher_outputs(method, batch, teacher_cache, teacher, accelerator)
        optimisation_step(student, method, batch, out, optimizer, accelerator)
        if accelerator.device.type == "cuda":
            torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - start)
    return times


def step_flops(student, method, batch, teacher_cache, teacher, accelerator) -> int:
    """Floating-point operations of one optimisation step (forward, backward, optimiser), counted by
    ``torch.utils.flop_counter`` from the operators the step dispatches (matmuls, convolutions, attention:
    the operators it has formulas for; element-wise work is not counted, so the count is a lower bound)."""
    from torch.utils.flop_counter import FlopCounterMode

    optimizer = make_optimizer(student, TrainConfig(lr=1e-4))
    batch = {k: v.to(accelerator.device) for k, v in batch.items()}
    with FlopCounterMode(display=False) as counter:
        out = teacher_outputs(method, batch, teacher_cache, teacher, accelerator)
        optimisation_step(student, method, batch, out, optimizer, accelerator)
    return int(counter.get_total_flops())


def matmul_peak(dtype: torch.dtype, device: torch.device, size: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of a large square matmul in ``dtype`` on ``device``, best of ``repeats``: the most this device's
    cores deliver on the operation a transformer step is made of, the ceiling a step's FLOP/s is set against."""
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    seconds = []
    for _ in range(repeats + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        torch.mm(a, b)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    return 2 * size ** 3 / min(seconds[1:])  # the first call warms the kernels up and is not counted


def bare_loop_seconds(model, data, config: TrainConfig, steps: int) -> float:
    """Forward + cross-entropy + backward + AdamW step on the trainer's batches, nothing else."""
    device = next(model.parameters()).device
    optimizer = make_optimizer(model, config)
    generator = torch.Generator().manual_seed(config.seed)
    batches = []
    while len(batches) < steps:
        batches += list(iterate_batches(data, config.batch_size, shuffle=True, generator=generator))
    model.train()
    start = time.perf_counter()
    for batch in batches[:steps]:
        batch = {k: v.to(device) for k, v in batch.items()}
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       pixel_values=batch["pixel_values"]).logits["joint"]
        loss = torch.nn.functional.cross_entropy(logits.float(), batch["labels"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def trainer_overhead(build_student, train_data, val_data, steps: int = 100, batch_size: int = 128,
                     eval_every: int | None = None, repeats: int = 3) -> pd.DataFrame:
    """Samples/s of ``train()`` (as run_student calls it) and of the bare loop; best of ``repeats``.

    ``eval_every``: None, the students' setting of the embedded preset (validation included in the timing).
    """
    eval_every = eval_every or ExperimentConfig.preset("embedded").student_eval_every
    config = TrainConfig(epochs=10**6, max_steps=steps, batch_size=batch_size, eval_every=eval_every,
                         patience=None, schedule="constant", progress=False, lr=2e-3, seed=0)
    trainer_s, bare_s = [], []
    for _ in range(repeats):  # interleaved, so drifting machine load hits both alike
        result = train(build_student(), make_method("ce"), train_data, val_data, config)
        trainer_s.append(result.train_seconds)
        bare_s.append(bare_loop_seconds(build_student(), train_data, config, steps))
    samples = steps * batch_size
    frame = pd.DataFrame([
        {"loop": f"bare loop (forward, backward, AdamW; {steps} steps)", "seconds": min(bare_s),
         "samples/s": samples / min(bare_s)},
        {"loop": f"trainer as the notebooks run it (validation every {eval_every} steps)", "seconds": min(trainer_s),
         "samples/s": samples / min(trainer_s)},
    ])
    frame["× bare loop"] = frame["samples/s"] / frame["samples/s"].iloc[0]
    frame["device"] = device_name()
    return frame


def run(batch_size: int = 128, repeats: int = 10, width: int = 96, teacher_layers: int = 12,
        student_layers: int = 2, n_samples: int = 1024, reports_dir=None) -> dict[str, pd.DataFrame]:
    torch.manual_seed(0)
    tokenizer = build_shapes_tokenizer()
    data = EncodedDataset(load("shapes", "validation", n_validation=n_samples), ImageTextProcessor(tokenizer, max_length=12))
    accelerator = make_accelerator()
    # the notebooks' geometry: 32 px images, one 16 px patch per grid cell, 12 text tokens
    size = dict(hidden_size=width, num_attention_heads=4, intermediate_size=2 * width, image_size=32, patch_size=16)
    teacher = build_multimodal_model(data.num_labels, len(tokenizer), "teacher", seed=0,
                                     num_hidden_layers=teacher_layers, **size).to(accelerator.device).eval()
    student_kwargs = dict(num_hidden_layers=student_layers, **size)
    notebook_student = dict(image_size=32, patch_size=16)  # the notebooks' student preset (2 layers, width 64)
    cache = TeacherCache.build(teacher, data, progress=False)
    batches = [b for _, b in zip(range(4), iterate_batches(data, batch_size, shuffle=True, seed=0))]

    rows = []
    for label, name, kwargs, source in STEP_CASES:
        method = make_method(name, **kwargs)
        student = build_multimodal_model(data.num_labels, len(tokenizer), "student", seed=0,
                                         **notebook_student).to(accelerator.device).train()
        method.setup(model=student, accelerator=accelerator, meta_data=None, config=None)
        times = time_steps(student, method, batches, cache if source == "cache" else None,
                           teacher if source == "live" else None, accelerator, repeats)
        flops = step_flops(student, method, batches[0], cache if source == "cache" else None,
                           teacher if source == "live" else None, accelerator)
        rows.append({"step": label, "median ms": 1000 * statistics.median(times),
                     "min ms": 1000 * min(times), "steps timed": len(times), "GFLOP per step": flops / 1e9,
                     "GFLOP/s": flops / 1e9 / statistics.median(times)})
    steps = pd.DataFrame(rows)
    plain = steps.loc[steps["step"] == "plain CE", "median ms"].item()
    steps["× plain CE"] = steps["median ms"] / plain
    # The steps run in float32 here (the bench's accelerator is built with the default precision): their ceiling
    # is the float32 matmul; the bf16 peak is listed beside it for the students' bf16 setting.
    peak_fp32 = matmul_peak(torch.float32, accelerator.device) / 1e9
    steps["peak GFLOP/s (fp32 matmul)"] = peak_fp32
    steps["peak GFLOP/s (bf16 matmul)"] = matmul_peak(torch.bfloat16, accelerator.device) / 1e9
    steps["fraction of fp32 peak"] = steps["GFLOP/s"] / peak_fp32
    steps["device"] = device_name()

    student = build_multimodal_model(data.num_labels, len(tokenizer), "student", seed=0, **student_kwargs)
    student = student.to(accelerator.device)
    throughput = pd.DataFrame([
        {"model": f"teacher ({teacher_layers} layers, width {width})", "params": count_parameters(teacher),
         "samples/s": inference_throughput(teacher, data, batch_size=256)},
        {"model": f"student ({student_layers} layers, width {width})", "params": count_parameters(student),
         "samples/s": inference_throughput(student, data, batch_size=256)},
    ])
    throughput["× teacher"] = throughput["samples/s"] / throughput["samples/s"].iloc[0]
    throughput["device"] = device_name()

    val = EncodedDataset(load("shapes", "test", n_test=1000), ImageTextProcessor(tokenizer, max_length=12))
    loop = trainer_overhead(lambda: build_multimodal_model(data.num_labels, len(tokenizer), "student", seed=0,
                                                           **notebook_student).to(accelerator.device),
                            data, val, batch_size=batch_size, repeats=max(1, min(3, repeats)))
    steps = pd.concat([steps, pd.DataFrame([{
        "step": "trainer / bare loop (samples/s ratio)", "median ms": float("nan"), "min ms": float("nan"),
        "steps timed": 100, "× plain CE": float(loop["× bare loop"].iloc[1]), "device": device_name()}])],
        ignore_index=True)
    suffix = "cuda" if accelerator.device.type == "cuda" else "cpu"
    save_table(steps.round(3), f"bench_steps_{suffix}", reports_dir)
    save_table(throughput.round(3), f"bench_throughput_{suffix}", reports_dir)
    save_table(loop.round(3), f"bench_trainer_{suffix}", reports_dir)
    return {"steps": steps, "throughput": throughput, "trainer": loop}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="mmkd efficiency benchmark")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--width", type=int, default=96)
    parser.add_argument("--reports-dir", default=None)
    args = parser.parse_args(argv)
    results = run(batch_size=args.batch_size, repeats=args.repeats, width=args.width, reports_dir=args.reports_dir)
    for name, frame in results.items():
        print(f"\n{name}\n{frame.round(3).to_string(index=False)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
