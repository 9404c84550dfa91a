"""Efficiency benchmark: ``python -m mmkd_core.bench`` (or ``make bench``).

Measured in one run, side by side, on the machine at hand (CPU always; CUDA with bf16 autocast when present):

* training-step time of the student for: plain CE, KD with the cached teacher, KD with a live teacher,
  MSD (three views in one batched pass), Gram (three views), MSD + Gram;
* inference throughput of a 2-layer student against a 12-layer teacher **of equal width**.

Targets from the issue tracker: cached-KD step ≤ 1.1× the plain step; 2-layer student ≥ 5× the
throughput of the 12-layer teacher. Results go to ``reports/tables/bench_*.{md,csv}`` with the device name.
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
from .experiments import inference_throughput
from .evaluation.probes import count_parameters
from .models.multimodal import build_multimodal_model
from .reporting import save_table
from .training.cache import TeacherCache
from .training.methods import make_method
from .training.trainer import make_accelerator, optimisation_step, teacher_outputs

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
    optimizer = torch.optim.AdamW(student.parameters(), lr=1e-4)
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


def run(batch_size: int = 128, repeats: int = 10, width: int = 96, teacher_layers: int = 12,
        student_layers: int = 2, n_samples: int = 1024, reports_dir=None) -> dict[str, pd.DataFrame]:
    torch.manual_seed(0)
    tokenizer = build_shapes_tokenizer()
    data = EncodedDataset(load("shapes", "validation", n_validation=n_samples), ImageTextProcessor(tokenizer, max_length=12))
    accelerator = make_accelerator()
    size = dict(hidden_size=width, num_attention_heads=4, intermediate_size=2 * width)
    teacher = build_multimodal_model(data.num_labels, len(tokenizer), "teacher", seed=0,
                                     num_hidden_layers=teacher_layers, **size).to(accelerator.device).eval()
    student_kwargs = dict(num_hidden_layers=student_layers, **size)
    cache = TeacherCache.build(teacher, data, progress=False)
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    batches = [b for _, b in zip(range(4), loader)]

    rows = []
    for label, name, kwargs, source in STEP_CASES:
        method = make_method(name, **kwargs)
        student = build_multimodal_model(data.num_labels, len(tokenizer), "student", seed=0,
                                         **student_kwargs).to(accelerator.device).train()
        method.setup(model=student, accelerator=accelerator, meta_data=None, config=None)
        times = time_steps(student, method, batches, cache if source == "cache" else None,
                           teacher if source == "live" else None, accelerator, repeats)
        rows.append({"step": label, "median ms": 1000 * statistics.median(times),
                     "min ms": 1000 * min(times), "steps timed": len(times)})
    steps = pd.DataFrame(rows)
    plain = steps.loc[steps["step"] == "plain CE", "median ms"].item()
    steps["× plain CE"] = steps["median ms"] / plain
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
    suffix = "gpu" if accelerator.device.type == "cuda" else "cpu"
    save_table(steps.round(3), f"bench_steps_{suffix}", reports_dir)
    save_table(throughput.round(3), f"bench_throughput_{suffix}", reports_dir)
    return {"steps": steps, "throughput": throughput}


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
