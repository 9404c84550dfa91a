"""Notebook 01's training (mmkd_core.training.feature_kd) on the one trainer: tiny, seeded, repeatable on CPU."""
import pytest
import torch

from mmkd_core.data.digits import load_digits_splits
from mmkd_core.losses import Data2VecDistillationLoss, Data2VecLossConfig
from mmkd_core.models.vision import TinyVisionSizes, hidden_states
from mmkd_core.training import feature_kd, trainer
from mmkd_core.training.feature_kd import (
    FeatureClassifier, cache_teacher_targets, default_config, random_shift, seed_everything, train_classifier,
    train_feature_kd,
)

SIZES = TinyVisionSizes(width=32, num_heads=2, teacher_depth=2, student_depth=1)
CONFIG = default_config(epochs=2, batch_size=16, progress=False)


@pytest.fixture(scope="module")
def data():
    return load_digits_splits(max_train=48, max_test=16)


def test_digits_splits(data):
    assert data.train_images.shape == (48, 3, 32, 32) and data.test_images.shape == (16, 3, 32, 32)
    assert data.train_images.min() >= -1 and data.train_images.max() <= 1
    with pytest.raises(ValueError, match="image_size"):
        load_digits_splits(image_size=4)


def _distil(data):
    seed_everything(0)
    teacher = SIZES.teacher()
    targets = cache_teacher_targets(teacher, data.train_images, batch_size=20)
    student = SIZES.student()
    history = train_feature_kd(student, data.train_images, targets, config=CONFIG)
    return teacher, targets, student, history


def test_cached_targets_match_the_loss_config(data):
    teacher, targets, student, history = _distil(data)
    assert targets.shape == (48, 17, 32)
    with torch.no_grad():
        direct = Data2VecLossConfig().targets(hidden_states(teacher, data.train_images[:4]))
    torch.testing.assert_close(targets[:4], direct)
    assert len(history.steps) == 2 * 3 and {"step", "lr", "data2vec", "total"} <= set(history.steps.columns)


def test_distillation_is_repeatable_and_learns(data):
    _, _, _, first = _distil(data)
    _, _, _, second = _distil(data)
    assert first.steps["total"].tolist() == second.steps["total"].tolist()
    assert first.steps["total"].iloc[-1] < first.steps["total"].iloc[0]


def test_projection_head_trains_with_the_student(data):
    seed_everything(0)
    targets = cache_teacher_targets(SIZES.teacher(), data.train_images)
    narrow = TinyVisionSizes(width=16, num_heads=2, student_depth=1).student()
    loss = Data2VecDistillationLoss(student_dim=16, teacher_dim=32)
    before = loss.projection.weight.detach().clone()
    train_feature_kd(narrow, data.train_images, targets, loss, CONFIG)
    assert not torch.equal(before, loss.projection.weight.detach())


def test_supervised_training_runs_for_teacher_and_student(data):
    seed_everything(0)
    history = train_classifier(SIZES.teacher(), data.train_images, data.train_labels, CONFIG, max_shift=1)
    assert len(history.steps) == 6 and "ce" in history.steps
    classifier = FeatureClassifier(SIZES.student(), num_classes=10)
    assert classifier(data.test_images[:2]).shape == (2, 10)
    flat = FeatureClassifier(SIZES.student(), num_classes=10, readout="flattened_tokens", num_tokens=17)
    assert flat(data.test_images[:2]).shape == (2, 10) and flat.head.in_features == 17 * 32
    with pytest.raises(ValueError, match="num_tokens"):
        FeatureClassifier(SIZES.student(), num_classes=10, readout="flattened_tokens")
    with pytest.raises(ValueError, match="labels must be"):
        train_classifier(classifier, data.train_images, data.train_labels[:3], CONFIG)


def test_bad_targets_and_shift(data):
    with pytest.raises(ValueError, match="one per image"):
        train_feature_kd(SIZES.student(), data.train_images, torch.zeros(3, 17, 32), config=CONFIG)
    shifted = random_shift(torch.zeros(2, 1, 4, 4), 1, torch.Generator().manual_seed(0), fill=-1.0)
    assert shifted.shape == (2, 1, 4, 4)



def test_early_stopping_reads_the_validation_score_and_keeps_the_best_epoch(data):
    """The trainer's rule: validate after every epoch, stop after ``patience`` epochs without a better score,
    restore the best epoch's weights (here a score that peaks at epoch 2 of a 6-epoch cap)."""
    seed_everything(0)
    scores = iter([0.1, 0.5, 0.3, 0.2, 0.4, 0.9])
    snapshots = []

    def score(model):
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        return next(scores)

    model = SIZES.teacher()
    result = train_classifier(model, data.train_images, data.train_labels,
                              default_config(epochs=6, batch_size=16, progress=False, patience=2), val_score=score)
    assert result.trained_epochs == 4 and result.best_epoch == 2 and result.stopped_early
    assert result.evaluations["val/score"].tolist() == [0.1, 0.5, 0.3, 0.2]
    for name, value in result.model.state_dict().items():
        torch.testing.assert_close(value, snapshots[1][name])


def test_the_loops_use_the_trainers_config_with_a_cosine_schedule(data):
    assert type(CONFIG) is trainer.TrainConfig and CONFIG.schedule == "cosine"
    assert (CONFIG.weight_decay, CONFIG.warmup_ratio, CONFIG.max_grad_norm) == (0.05, 0.1, 1.0)
    seed_everything(0)
    history = train_classifier(SIZES.teacher(), data.train_images, data.train_labels,
                               feature_kd.default_config(epochs=2, batch_size=8, lr=0.01, progress=False))
    rates = history.steps["lr"].tolist()  # 12 steps, warm-up over round(1.2) = 1 of them
    assert len(rates) == 12 and rates[0] == pytest.approx(0.01) and rates[-1] == pytest.approx(0.0, abs=1e-12)
    assert rates == sorted(rates, reverse=True)
    assert CONFIG.flush_denormals and CONFIG.optimizer_foreach is None


def test_no_module_but_the_trainer_owns_an_optimisation_loop():
    """One training loop: only training/trainer.py builds an optimiser and steps it over batches. The others that
    touch an optimiser do not train a model anyone keeps: the meta-learned weights' outer step (a method's own
    update of its weight net, run inside the trainer's loop) and make bench's timing of bare steps."""
    import re
    from pathlib import Path

    package = Path(feature_kd.__file__).resolve().parents[1]
    owners = {str(path.relative_to(package)) for path in package.rglob("*.py")
              if re.search(r"torch\.optim\.|\.backward\(|optimizer\.step\(", path.read_text())}
    assert owners == {"training/trainer.py", "weighting/meta.py", "weighting/schemes.py", "bench.py"}
