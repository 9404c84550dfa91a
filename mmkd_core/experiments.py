"""The experiment protocol shared by notebooks 02–05 (and ``python -m mmkd_core.run``).

One :class:`ExperimentConfig` fixes the data, the model sizes and the training budget. From it:

1. :func:`prepare_data` loads and encodes the train / validation / test splits;
2. :func:`get_teacher` trains the teacher once and caches it under ``data/checkpoints/`` keyed by the
   configuration, so every notebook distils from the *same* teacher;
3. :func:`get_teacher_cache` runs that teacher once on the training set for all three views;
4. :func:`run_student` trains one student with one method and seed and returns a row of metrics;
5. :func:`run_grid` runs methods × seeds with a progress bar, and :func:`summarize` turns the rows
   into the mean ± 95% CI table every report uses.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any, Iterable

import pandas as pd
import torch
from accelerate import PartialState
from tqdm.auto import tqdm

from .data import default_data_dir, load
from .data.encoding import EncodedDataset, ImageTextProcessor, LazyDataset
from .data.tokenizer import build_shapes_tokenizer
from .evaluation.stats import format_mean_ci, mean_ci
from .evaluation.probes import count_parameters, timed_throughput
from .models.multimodal import MultimodalClassifier, build_multimodal_model
from .training.cache import TeacherCache
from .training.methods import make_method
from .training.trainer import TrainConfig, classification_metrics, predict, train

BINARY_PRIMARY = "auroc"


@dataclasses.dataclass
class ExperimentConfig:
    """Everything that defines an experiment; notebooks expose these as papermill parameters."""

    dataset: str = "shapes"
    dataset_options: dict = dataclasses.field(default_factory=lambda: {"task": "ve"})
    data_root: str | None = None
    image_size: int = 32
    patch_size: int = 16  # one patch per grid cell of the benchmark: an object-level token, like a region feature
    max_text_length: int = 12  # the longest benchmark statement is 10 words + [CLS] + [SEP]
    tokenizer: str | None = None  # None: the benchmark's own word-level tokenizer; else a hub name/path
    teacher_preset: str = "teacher"
    student_preset: str = "student"
    teacher_overrides: dict = dataclasses.field(default_factory=dict)
    student_overrides: dict = dataclasses.field(default_factory=dict)
    teacher_epochs: int = 12
    student_epochs: int = 6
    batch_size: int = 128
    student_batch_size: int | None = None  # None: batch_size. Students see few samples: smaller batches, more steps
    teacher_lr: float = 2e-3
    student_lr: float = 2e-3
    teacher_seed: int = 1234
    # The teacher's unimodal predictions (what MSD and Gram distil) must be trained, not
    # out-of-distribution guesses: "ce_modality_dropout" sees each sample through a random view
    # (one pass per step); "ce_views" trains all three views every step (3x the cost); "ce": joint only.
    teacher_method: str = "ce_modality_dropout"
    checkpoint_rule: str = "best-val"
    lazy_images: bool = False  # True for real datasets: decode images per batch
    # Real scale: start the teacher from a hub ViLT backbone (e.g. "dandelin/vilt-b32-mlm"; set image_size
    # and patch_size to the checkpoint's, e.g. 384 and 32, and tokenizer to the same name), and optionally
    # initialise students DistilBERT-style from some of the trained teacher's layers (e.g. [0, 11]).
    teacher_pretrained: str | None = None
    student_init_layers: list | None = None
    # The teacher may train on more data than the students (as a pretrained teacher has seen more than
    # the task's training set): with the shapes benchmark, the first n_train rows of a teacher_train_size
    # split are exactly the students' training rows (same seed, same stream). None: the students' split.
    teacher_train_size: int | None = None

    def key(self) -> str:
        """Hash of the fields that define the teacher (data, sizes, teacher training)."""
        fields = dataclasses.asdict(self)
        for name in ("student_preset", "student_overrides", "student_epochs", "student_lr", "student_batch_size"):
            fields.pop(name)
        return hashlib.sha1(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:12]


@dataclasses.dataclass
class ExperimentData:
    train: Any
    validation: Any
    test: Any
    tokenizer: Any
    label_names: list[str]

    @property
    def num_labels(self) -> int:
        return len(self.label_names)


def prepare_data(config: ExperimentConfig) -> ExperimentData:
    if config.tokenizer is None:
        tokenizer = build_shapes_tokenizer()
    else:
        from .hub import load_tokenizer

        tokenizer = load_tokenizer(config.tokenizer)
    processor = ImageTextProcessor(tokenizer, image_size=config.image_size, max_length=config.max_text_length)
    wrap = LazyDataset if config.lazy_images else EncodedDataset
    with PartialState().main_process_first():  # one process generates / caches, the others then read
        splits = {split: wrap(load(config.dataset, split, root=config.data_root, **config.dataset_options), processor)
                  for split in ("train", "validation", "test")}
    return ExperimentData(**splits, tokenizer=tokenizer, label_names=splits["train"].label_names)


def _build(config: ExperimentConfig, data: ExperimentData, preset: str, overrides: dict, seed: int):
    return build_multimodal_model(num_labels=data.num_labels, vocab_size=len(data.tokenizer), preset=preset,
                                  image_size=config.image_size, patch_size=config.patch_size, seed=seed,
                                  **overrides)


def checkpoint_dir(config: ExperimentConfig) -> Path:
    return default_data_dir() / "checkpoints" / f"teacher-{config.key()}"


def get_teacher(config: ExperimentConfig, data: ExperimentData, retrain: bool = False,
                progress: bool = True) -> tuple[MultimodalClassifier, dict]:
    """The experiment's teacher: loaded from its checkpoint folder, or trained once and saved there."""
    folder = checkpoint_dir(config)
    if not retrain and (folder / "checkpoint" / "model.safetensors").exists():
        info = json.loads((folder / "run.json").read_text())
        return MultimodalClassifier.load(folder / "checkpoint"), info
    if config.teacher_pretrained:
        from .models.multimodal import from_pretrained_vilt

        torch.manual_seed(config.teacher_seed)  # the new classifier head
        teacher = from_pretrained_vilt(config.teacher_pretrained, num_labels=data.num_labels)
    else:
        teacher = _build(config, data, config.teacher_preset, config.teacher_overrides, config.teacher_seed)
    train_config = TrainConfig(epochs=config.teacher_epochs, batch_size=config.batch_size, lr=config.teacher_lr,
                               seed=config.teacher_seed, checkpoint_rule=config.checkpoint_rule,
                               progress=progress)
    result = train(teacher, make_method(config.teacher_method), teacher_train_data(config, data), data.validation,
                   train_config, run_dir=folder, description="teacher")
    PartialState().wait_for_everyone()  # under accelerate launch, only the main process writes the folder
    info = json.loads((folder / "run.json").read_text())
    return result.model, info


def teacher_train_data(config: ExperimentConfig, data: ExperimentData):
    """The teacher's training set: the students' one, or a larger shapes split (see ``teacher_train_size``)."""
    if not config.teacher_train_size:
        return data.train
    if config.dataset != "shapes":
        raise ValueError("teacher_train_size is for the generated shapes benchmark; with a real dataset, "
                         "train the teacher on its own data (or start it from teacher_pretrained)")
    options = {**config.dataset_options, "n_train": config.teacher_train_size}
    with PartialState().main_process_first():
        rows = load("shapes", "train", root=config.data_root, **options)
    return EncodedDataset(rows, ImageTextProcessor(data.tokenizer, image_size=config.image_size,
                                                   max_length=config.max_text_length))


def get_teacher_cache(teacher, data: ExperimentData, config: ExperimentConfig) -> TeacherCache:
    with PartialState().main_process_first():  # the main process computes and saves, the others load
        return TeacherCache.build(teacher, data.train, cache_dir=checkpoint_dir(config))


def split_metrics(model, data: ExperimentData, views: Iterable[str] = ("joint",)) -> dict[str, float]:
    """``"<split>/<metric>"`` on validation and test for the joint view (other views prefixed)."""
    metrics: dict[str, float] = {}
    for split in ("validation", "test"):
        out = predict(model, getattr(data, split), views=tuple(views))
        for view, logits in out["logits"].items():
            prefix = split if view == "joint" else f"{split}/{view}"
            for name, value in classification_metrics(logits, out["labels"]).items():
                metrics[f"{prefix}/{name}"] = value
    return metrics


def run_student(method_name: str, seed: int, config: ExperimentConfig, data: ExperimentData,
                teacher_cache: TeacherCache | None, method_kwargs: dict | None = None, label: str | None = None,
                run_dir: str | Path | None = None, progress: bool = False,
                keep_model: bool = False, eval_views: Iterable[str] = ("joint",)) -> dict[str, Any]:
    """Train one student; return a flat row: method, seed, metrics, cost, logs."""
    method = make_method(method_name, **(method_kwargs or {}))
    if config.student_init_layers:
        from .models.multimodal import student_from_teacher

        teacher, _ = get_teacher(config, data, progress=False)
        torch.manual_seed(seed)
        student = student_from_teacher(teacher, config.student_init_layers)
    else:
        student = _build(config, data, config.student_preset, config.student_overrides, seed)
    train_config = TrainConfig(epochs=config.student_epochs, batch_size=config.student_batch_size or config.batch_size,
                               lr=config.student_lr,
                               seed=seed, checkpoint_rule=config.checkpoint_rule, progress=progress)
    result = train(student, method, data.train, data.validation, train_config,
                   teacher_cache=teacher_cache if method.needs_teacher else None,
                   meta_data=data.validation, run_dir=run_dir, description=label or method_name)
    row = {"method": label or method_name, "seed": seed, **split_metrics(result.model, data, eval_views),
           "params": count_parameters(result.model), "train_seconds": result.train_seconds,
           "best_epoch": result.best_epoch, "checkpoint_rule": result.checkpoint_rule,
           "steps": result.steps, "epochs": result.epochs}
    if getattr(method, "weight_log", None):  # per-sample MSD weights over training, with row indices
        row["weights"] = pd.DataFrame({k: torch.cat([w[k].reshape(-1) for w in method.weight_log]).numpy()
                                       for k in method.weight_log[0]})
        row["weights"]["step"] = [i for i, w in enumerate(method.weight_log) for _ in range(len(w["index"]))]
    if keep_model:
        row["model"] = result.model
    return row


def run_grid(specs: list[dict], seeds: Iterable[int], config: ExperimentConfig, data: ExperimentData,
             teacher_cache: TeacherCache | None, desc: str = "students",
             run_root: str | Path | None = None) -> list[dict]:
    """Run every spec (``{"label", "method", "kwargs"}``) for every seed, with one progress bar.

    The first seed's row keeps its trained ``model`` (for throughput and figures); the others drop it.
    With ``run_root``, each run also writes its logs (every loss term per step and per epoch, CSV),
    ``run.json`` and its safetensors checkpoint to ``<run_root>/<label>/seed<k>/``.
    """
    seeds = list(seeds)
    rows = []
    with tqdm(total=len(specs) * len(seeds), desc=desc) as bar:
        for spec in specs:
            for seed in seeds:
                bar.set_postfix_str(f"{spec['label']} seed {seed}")
                rows.append(run_student(spec["method"], seed, config, data, teacher_cache,
                                        method_kwargs=spec.get("kwargs"), label=spec["label"],
                                        keep_model=seed == seeds[0],
                                        run_dir=None if run_root is None else
                                        Path(run_root) / slug(spec["label"]) / f"seed{seed}"))
                bar.update(1)
    return rows


def slug(label: str) -> str:
    """A folder name for a method label ('MSD + Gram' → 'msd-gram')."""
    return "-".join("".join(c if c.isalnum() else " " for c in label.lower()).split()) or "run"


def runs_dir(notebook: str) -> Path:
    """Where a notebook's per-run logs and checkpoints go: ``data/runs/<notebook>`` (git-ignored)."""
    return default_data_dir() / "runs" / notebook


def metric_columns(rows: list[dict]) -> list[str]:
    columns = [k for k in rows[0] if k.startswith(("validation/", "test/")) and k.count("/") == 1]
    return columns


def summarize(rows: list[dict], metrics: Iterable[str] | None = None) -> pd.DataFrame:
    """One line per method: ``metric`` as 'mean ± 95% CI' (percent) and the raw mean/half-width."""
    frame = rows_frame(rows)
    metrics = list(metrics) if metrics is not None else metric_columns(rows)
    lines = []
    for method, group in frame.groupby("method", sort=False):
        line: dict[str, Any] = {"method": method, "seeds": len(group)}
        for metric in metrics:
            mean, half = mean_ci(group[metric])
            line[metric] = format_mean_ci(group[metric])
            line[f"{metric} mean"] = mean
            line[f"{metric} ci95"] = half
        line["params"] = int(group["params"].iloc[0])
        line["train s"] = round(float(group["train_seconds"].mean()), 1)
        line["checkpoint"] = group["checkpoint_rule"].iloc[0]
        lines.append(line)
    return pd.DataFrame(lines)


def display_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The human columns of :func:`summarize` (no raw mean / half-width columns)."""
    return summary[[c for c in summary.columns if not c.endswith((" mean", " ci95"))]]


def rows_frame(rows: list[dict]) -> pd.DataFrame:
    """Per-run metrics (one line per method × seed), without logs or models: what goes into CSVs."""
    return pd.DataFrame([{k: v for k, v in r.items() if not isinstance(v, (pd.DataFrame, dict, torch.nn.Module))}
                         for r in rows])



@torch.no_grad()
def inference_throughput(model, dataset, batch_size: int = 256, batches: int = 4, views=("joint",)) -> float:
    """Samples per second of ``model`` in eval mode on the first ``batches`` batches (after one warm-up)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False,
                                         collate_fn=getattr(dataset, "collate_fn", None))
    prepared = [{k: v.to(device) for k, v in batch.items() if k in ("input_ids", "attention_mask", "pixel_values")}
                for _, batch in zip(range(batches + 1), loader)]
    timed = prepared[1:] or prepared
    rate = timed_throughput(lambda batch: model(**batch, views=views), prepared[:1], timed,
                            sum(batch["input_ids"].shape[0] for batch in timed), device)
    model.train(was_training)
    return rate


def teacher_row(teacher, data: ExperimentData, info: dict | None = None) -> dict[str, Any]:
    """The teacher as one more row of a results table (a single training run: no CI)."""
    row = {"method": "teacher", "seed": (info or {}).get("config", {}).get("seed", None),
           **split_metrics(teacher, data), "params": count_parameters(teacher),
           "train_seconds": (info or {}).get("train_seconds", float("nan")),
           "best_epoch": (info or {}).get("best_epoch"), "checkpoint_rule": (info or {}).get("checkpoint_rule")}
    return row


def trained_models(rows: list[dict]) -> dict[str, torch.nn.Module]:
    """Method label → the model kept by :func:`run_grid` (first seed)."""
    return {row["method"]: row["model"] for row in rows if "model" in row}


def add_throughput(summary: pd.DataFrame, models: dict[str, torch.nn.Module], dataset) -> pd.DataFrame:
    """Add an inference 'samples/s' column, measured now for one model per method."""
    summary = summary.copy()
    summary["samples/s"] = [round(inference_throughput(models[m], dataset)) if m in models else float("nan")
                            for m in summary["method"]]
    return summary
