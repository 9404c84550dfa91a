"""Notebook 01's experiment, one seed at a time: train the embedded BEiT teacher, distil a Data2Vec student,
train the same student without the teacher, and evaluate every model's frozen features.

Compared models (same architecture for the three students, same initial weights per seed):
  * teacher: tiny BEiT v2, trained supervised on the training labels;
  * student (KD): Data2Vec vision student trained only to regress the teacher's data2vec targets (no labels);
  * student (no teacher): the same student and budget, trained supervised on the labels with a linear head;
  * student (random init): the same initial weights, untrained (the floor).
Checkpoint rule: the last epoch (no model selection on the test split).
"""
from __future__ import annotations

import copy
import dataclasses

import pandas as pd
import torch

from ..data.digits import ImageSplits
from ..evaluation.probes import count_parameters, extract_features, knn_accuracy, linear_probe_accuracy, measure_throughput
from ..evaluation.stats import format_mean_ci
from ..losses.data2vec import Data2VecDistillationLoss, Data2VecLossConfig
from ..models.vision import TinyVisionSizes, hidden_states, pooled_features
from .feature_kd import FeatureClassifier, TrainConfig, TrainHistory, cache_teacher_targets, seed_everything, train_classifier, train_feature_kd

MODEL_ORDER = ["teacher (BEiT v2, supervised)", "student: KD from teacher", "student: no teacher (supervised)",
               "student: random init"]


@dataclasses.dataclass
class SeedResult:
    rows: list[dict]
    histories: dict[str, TrainHistory]


@torch.no_grad()
def _test_kd_loss(model, images: torch.Tensor, targets: torch.Tensor, loss: Data2VecDistillationLoss) -> float:
    model.eval()
    return float(loss(hidden_states(model, images), teacher_targets=targets))


def run_seed(seed: int, data: ImageSplits, sizes: TinyVisionSizes, teacher_config: TrainConfig,
             student_config: TrainConfig, loss_config: Data2VecLossConfig = Data2VecLossConfig(), knn_k: int = 10,
             teacher_max_shift: int = 0, throughput_batch: int = 128) -> SeedResult:
    """One seed of the comparison; returns one row per model and the per-step training logs."""
    teacher_config = dataclasses.replace(teacher_config, seed=seed)
    student_config = dataclasses.replace(student_config, seed=seed)
    seed_everything(seed)
    teacher = sizes.teacher(num_classes=data.num_classes)
    histories = {"teacher": train_classifier(teacher, data.train_images, data.train_labels, teacher_config,
                                             max_shift=teacher_max_shift, description=f"teacher seed {seed}")}
    train_targets = cache_teacher_targets(teacher, data.train_images, loss_config)
    test_targets = cache_teacher_targets(teacher, data.test_images, loss_config)

    seed_everything(seed)
    random_student = sizes.student()
    kd_student, supervised_student = copy.deepcopy(random_student), copy.deepcopy(random_student)
    loss = Data2VecDistillationLoss(loss_config)  # equal widths: no projection head
    histories["student: KD"] = train_feature_kd(kd_student, data.train_images, train_targets, loss, student_config,
                                                description=f"KD student seed {seed}")
    histories["student: no teacher"] = train_classifier(FeatureClassifier(supervised_student, data.num_classes),
                                                        data.train_images, data.train_labels, student_config,
                                                        description=f"supervised student seed {seed}")
    models = dict(zip(MODEL_ORDER, [teacher, kd_student, supervised_student, random_student]))
    device = next(teacher.parameters()).device
    rows = []
    for name, model in models.items():
        model.to(device).eval()
        features = lambda x, model=model: pooled_features(model, x)  # noqa: E731
        train_x = extract_features(features, data.train_images, device=device)
        test_x = extract_features(features, data.test_images, device=device)
        rows.append(dict(
            seed=seed, model=name,
            linear_probe=linear_probe_accuracy(train_x, data.train_labels.numpy(), test_x, data.test_labels.numpy(), seed=seed),
            knn=knn_accuracy(train_x, data.train_labels.numpy(), test_x, data.test_labels.numpy(), k=knn_k),
            kd_test_loss=_test_kd_loss(model, data.test_images.to(device), test_targets.to(device), loss),
            # backbone only: the teacher's classifier head is not part of its features
            params=count_parameters(model) - (count_parameters(model.head) if hasattr(model, "head") else 0),
            images_per_s=measure_throughput(features, data.test_images[:throughput_batch], warmup=1, iterations=3,
                                             device=device),
        ))
    with torch.no_grad():
        teacher_logits = teacher(data.test_images.to(device))
    rows[0]["teacher_head_accuracy"] = float((teacher_logits.argmax(-1).cpu() == data.test_labels).float().mean())
    return SeedResult(rows, histories)


def summarize(rows: list[dict]) -> pd.DataFrame:
    """Mean ± 95% CI over seeds (Student t) per model; accuracies in percent."""
    frame = pd.DataFrame(rows)
    table = []
    for name in [m for m in MODEL_ORDER if m in set(frame.model)]:
        part = frame[frame.model == name]
        table.append({
            "model": name,
            "linear probe acc. (%)": format_mean_ci(part.linear_probe),
            "k-NN acc. (%)": format_mean_ci(part.knn),
            "data2vec loss to teacher (test)": format_mean_ci(part.kd_test_loss, scale=1.0, digits=3),
            "parameters": int(part.params.iloc[0]),
            "throughput (img/s)": f"{part.images_per_s.mean():.0f}",
            "seeds": len(part),
        })
    return pd.DataFrame(table)
