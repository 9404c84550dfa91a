import dataclasses
import json
import math

import pandas as pd
import pytest
import torch

from mmkd_core.models.multimodal import MultimodalClassifier, build_multimodal_model
from mmkd_core.training.cache import TeacherCache
from mmkd_core.training.methods import make_method
from mmkd_core.training.trainer import (
    TrainConfig, evaluate, improves, lr_multiplier, make_optimizer, make_schedule, train,
)


def _model(tokenizer, preset="student", seed=0, num_labels=3):
    return build_multimodal_model(num_labels, len(tokenizer), preset, seed=seed, hidden_size=32,
                                  num_attention_heads=2, intermediate_size=64)


CONFIG = dict(epochs=2, batch_size=32, progress=False)


def test_training_is_deterministic_and_logs_every_term(tokenizer, tiny_data, tmp_path):
    results = []
    for _ in range(2):
        model = _model(tokenizer)
        results.append(train(model, make_method("ce"), tiny_data["train"], tiny_data["validation"],
                             TrainConfig(**CONFIG, seed=3), run_dir=tmp_path / "run"))
    pd.testing.assert_frame_equal(results[0].steps, results[1].steps)
    assert {"ce", "total", "lr"} <= set(results[0].steps.columns)
    assert "val/joint/accuracy" in results[0].epochs.columns
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["checkpoint_rule"] == "best-val" and 1 <= run["best_epoch"] <= 2
    assert run["precision"] == "fp32" and run["config"]["precision"] == "default"  # computed in, and requested
    assert (tmp_path / "run" / "checkpoint" / "model.safetensors").exists()
    assert not list((tmp_path / "run").rglob("*.pt")) and not list((tmp_path / "run").rglob("*.bin"))


def test_best_val_keeps_the_best_epoch_weights(tokenizer, tiny_data):
    result = train(_model(tokenizer), make_method("ce"), tiny_data["train"], tiny_data["validation"],
                   TrainConfig(epochs=3, batch_size=32, progress=False, lr=5e-3))
    best = result.epochs["val/joint/accuracy"].max()
    assert evaluate(result.model, tiny_data["validation"])["joint/accuracy"] == pytest.approx(best)
    kept = result.evaluations.set_index("step").loc[result.best_step, "val/joint/accuracy"]
    assert kept == pytest.approx(best)


def test_early_stopping_stops_after_patience_validations_without_improvement(tokenizer, tiny_data):
    config = TrainConfig(epochs=200, batch_size=32, progress=False, lr=5e-3, eval_every=2, patience=3,
                         schedule="constant")
    result = train(_model(tokenizer), make_method("ce"), tiny_data["train"], tiny_data["validation"], config)
    assert result.stopped_early
    scores = result.evaluations["val/joint/accuracy"].tolist()
    best_index = scores.index(max(scores))
    assert len(scores) - 1 - best_index == 3  # exactly `patience` validations after the best one
    assert result.best_step == result.evaluations["step"].iloc[best_index] < result.trained_steps
    assert result.evaluations["step"].tolist() == list(range(2, result.trained_steps + 1, 2))


def test_improves_asks_for_min_improvement_over_the_last_counted_score():
    assert improves(0.738, 0.737, 0.0) and not improves(0.737, 0.737, 0.0)
    assert not improves(0.738, 0.737, 0.002)
    # float32 accuracies: 0.741 - 0.739 is 0.00199997 in float32 arithmetic, and still counts
    assert improves(float(torch.tensor(0.741)), float(torch.tensor(0.739)), 0.002)
    assert improves(0.5, -math.inf, 0.002)


def test_min_improvement_ends_the_wait_but_the_checkpoint_follows_every_best(tokenizer, tiny_data):
    """With a bar no validation can clear after the first, the run stops `patience` validations after the first
    one; the kept checkpoint is still the best validation among them, not the first."""
    config = TrainConfig(epochs=200, batch_size=32, progress=False, lr=5e-3, eval_every=2, patience=4,
                         schedule="constant", min_improvement=0.99)
    result = train(_model(tokenizer), make_method("ce"), tiny_data["train"], tiny_data["validation"], config)
    scores = result.evaluations["val/joint/accuracy"].tolist()
    assert result.stopped_early and len(scores) == 5
    assert result.best_step == result.evaluations["step"].iloc[scores.index(max(scores))]
    baseline = train(_model(tokenizer), make_method("ce"), tiny_data["train"], tiny_data["validation"],
                     dataclasses.replace(config, min_improvement=0.0))
    assert baseline.evaluations["val/joint/accuracy"].tolist()[:5] == scores  # the bar changes when, not how
    with pytest.raises(ValueError, match="min_improvement"):
        TrainConfig(min_improvement=-0.1)


def test_min_steps_holds_off_early_stopping(tokenizer, tiny_data):
    config = TrainConfig(epochs=200, batch_size=32, progress=False, lr=5e-3, eval_every=2, patience=1,
                         schedule="constant", min_steps=20)
    result = train(_model(tokenizer), make_method("ce"), tiny_data["train"], tiny_data["validation"], config)
    assert result.stopped_early and result.trained_steps >= 20


def test_max_steps_caps_the_run_and_on_evaluate_sees_every_validation(tokenizer, tiny_data):
    seen = []
    config = TrainConfig(epochs=50, max_steps=7, batch_size=32, progress=False, eval_every=3)
    result = train(_model(tokenizer), make_method("ce"), tiny_data["train"], tiny_data["validation"], config,
                   on_evaluate=lambda info, model: seen.append((info["step"], model.training)))
    assert result.trained_steps == 7 and not result.stopped_early
    assert [s for s, _ in seen] == [3, 6, 7]


def test_cross_entropy_ignores_unlabelled_rows():
    from mmkd_core.losses.ce import UNLABELLED, labelled_cross_entropy

    logits = torch.tensor([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0]], requires_grad=True)
    labels = torch.tensor([0, UNLABELLED, 1])
    per_row = torch.nn.functional.cross_entropy(logits, labels.clamp(min=0), reduction="none")
    # golden values: rows 0 and 2 labelled; batch reading divides by B = 3, labelled reading by |L| = 2
    assert labelled_cross_entropy(logits, labels).item() == pytest.approx((per_row[0] + per_row[2]).item() / 3)
    assert labelled_cross_entropy(logits, labels).item() == pytest.approx(0.2734, abs=1e-4)
    assert labelled_cross_entropy(logits, labels, "labelled").item() == pytest.approx(0.4100, abs=1e-4)
    full = torch.tensor([0, 1, 1])
    assert labelled_cross_entropy(logits, full).item() == labelled_cross_entropy(logits, full, "labelled").item()
    with pytest.raises(ValueError, match="accepted"):
        labelled_cross_entropy(logits, labels, "sum")
    none = labelled_cross_entropy(logits, torch.full((3,), UNLABELLED))
    none.backward()
    assert none.item() == 0.0 and torch.all(logits.grad == 0)


def test_bad_train_config_values_name_the_setting():
    with pytest.raises(ValueError, match="patience"):
        TrainConfig(patience=0)
    with pytest.raises(ValueError, match="schedule"):
        TrainConfig(schedule="exponential")
    with pytest.raises(ValueError, match="warmup_ratio"):
        TrainConfig(warmup_ratio=1.0)
    with pytest.raises(ValueError, match="compile_backend.*inductor"):
        TrainConfig(compile_backend="turbo")
    with pytest.raises(ValueError, match="precision.*'native'.*'fp32'"):
        TrainConfig(precision="fp16")


def test_bf16_student_on_the_cpu_trains_close_to_float32(tokenizer, tiny_data):
    """precision="bf16" autocasts the forward pass on the CPU too (teachers and students share one process, so
    the trainer autocasts itself rather than through Accelerate's once-per-process setting): the losses differ
    from float32 by bf16 rounding only, the result records the precision, and float32 runs are unchanged."""
    runs = {p: train(_model(tokenizer), make_method("ce"), tiny_data["train"], None,
                     TrainConfig(**CONFIG, seed=3, precision=p)) for p in ("fp32", "bf16", "default")}
    assert (runs["fp32"].precision, runs["bf16"].precision, runs["default"].precision) == ("fp32", "bf16", "fp32")
    pd.testing.assert_series_equal(runs["fp32"].steps["ce"], runs["default"].steps["ce"])
    fp32, bf16 = runs["fp32"].steps["ce"], runs["bf16"].steps["ce"]
    assert not fp32.equals(bf16)  # it really computed in bf16
    assert (fp32 - bf16).abs().max() < 0.05 * fp32.abs().max()


def test_gram_matrix_stays_float32_under_autocast():
    from mmkd_core.losses.gram import modality_gram

    outputs = torch.randn(4, 3, 5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        gram = modality_gram(outputs)
    assert gram.dtype == torch.float32
    torch.testing.assert_close(gram, outputs @ outputs.transpose(-1, -2))


def test_compiled_student_trains_like_the_eager_one(tokenizer, tiny_data):
    """The torch.compile switch goes through Accelerate's dynamo plugin; with the "eager" backend the captured
    graphs run the same kernels, so the run must match the uncompiled one (inductor is for GPUs: see README)."""
    runs = [train(_model(tokenizer), make_method("ce"), tiny_data["train"], None,
                  TrainConfig(**CONFIG, seed=3, compile_backend=backend)) for backend in (None, "eager")]
    pd.testing.assert_series_equal(runs[0].steps["ce"], runs[1].steps["ce"])
    assert not isinstance(runs[1].model, torch._dynamo.eval_frame.OptimizedModule)  # unwrapped, as returned


def test_cosine_schedule_warms_up_then_decays_to_zero():
    parameter = torch.nn.Parameter(torch.zeros(1))
    config = TrainConfig(lr=0.5, warmup_ratio=0.2, schedule="cosine")
    optimizer = make_optimizer([parameter], config)
    schedule = make_schedule(optimizer, config, total_steps=10)
    rates = []
    for _ in range(10):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    # warm-up over round(0.2 * 10) = 2 steps to the peak lr, then half a cosine down to 0 at step 10
    assert rates[:3] == pytest.approx([0.25, 0.5, 0.5])
    assert rates[3:] == pytest.approx([0.25 * (1 + math.cos(math.pi * k / 8)) for k in range(1, 8)])
    assert max(rates) == 0.5 and optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
    no_warmup = lr_multiplier(TrainConfig(warmup_ratio=0.0, schedule="cosine"), 4)
    assert [no_warmup(step) for step in range(5)] == pytest.approx([1.0, 0.5 + 0.5 ** 1.5, 0.5, 0.5 - 0.5 ** 1.5, 0.0])


@pytest.fixture(scope="module")
def teacher_and_cache(tokenizer, tiny_data):
    teacher = _model(tokenizer, seed=7)
    train(teacher, make_method("ce"), tiny_data["train"], None, TrainConfig(**CONFIG))
    return teacher, TeacherCache.build(teacher, tiny_data["train"], progress=False)


@pytest.mark.parametrize("name,kwargs,terms", [
    ("kd", {}, {"ce", "kd"}),
    ("ce3", {}, {"ce_text", "ce_image", "ce_joint", "kd_joint"}),
    ("ce_views", {}, {"ce_text", "ce_image", "ce_joint"}),
    ("ce_modality_dropout", {}, {"ce_text", "ce_image", "ce_joint"}),
    ("gram", {}, {"gram", "ce_joint"}),
    ("msd", {"weighting": "population"}, {"kd_text", "kd_image", "weighted_text"}),
    ("msd", {"weighting": "instance"}, {"kd_text", "weighted_image"}),
    ("msd", {"weighting": "meta"}, {"kd_text", "weighted_image"}),
    ("msd_gram", {}, {"gram", "kd_text"}),
])
def test_every_method_trains_from_the_cache(name, kwargs, terms, tokenizer, tiny_data, teacher_and_cache):
    _, cache = teacher_and_cache
    method = make_method(name, **kwargs)
    result = train(_model(tokenizer), method, tiny_data["train"], tiny_data["validation"],
                   TrainConfig(epochs=1, batch_size=32, progress=False), teacher_cache=cache,
                   meta_data=tiny_data["validation"])
    assert terms | {"total"} <= set(result.steps.columns)
    assert torch.isfinite(torch.tensor(result.steps["total"].values)).all()


def test_cache_matches_live_teacher(tokenizer, tiny_data, teacher_and_cache):
    """A cached KD run and a live-teacher KD run produce the same training trajectory."""
    teacher, cache = teacher_and_cache
    runs = [train(_model(tokenizer), make_method("kd"), tiny_data["train"], None,
                  TrainConfig(epochs=1, batch_size=32, progress=False), **source)
            for source in ({"teacher_cache": cache}, {"teacher": teacher})]
    pd.testing.assert_series_equal(runs[0].steps["kd"], runs[1].steps["kd"], rtol=1e-4, atol=1e-5)


def test_cache_round_trip_and_wrong_teacher_or_data(tokenizer, tiny_data, teacher_and_cache, tmp_path):
    teacher, cache = teacher_and_cache
    path = cache.save(tmp_path / "cache.safetensors")
    again = TeacherCache.load(path)
    torch.testing.assert_close(again.logits["text"], cache.logits["text"])
    other_teacher = _model(tokenizer, seed=99)
    with pytest.raises(ValueError, match="built for teacher"):
        train(_model(tokenizer), make_method("kd"), tiny_data["train"], None, TrainConfig(**CONFIG),
              teacher_cache=cache, teacher=other_teacher)
    with pytest.raises(ValueError, match="built for data"):
        train(_model(tokenizer), make_method("kd"), tiny_data["validation"], None, TrainConfig(**CONFIG),
              teacher_cache=cache)


def test_augmenting_data_refuses_the_cache(tokenizer, tiny_data, teacher_and_cache):
    _, cache = teacher_and_cache
    tiny_data["train"].augments = True
    try:
        with pytest.raises(ValueError, match="augments=True"):
            train(_model(tokenizer), make_method("kd"), tiny_data["train"], None, TrainConfig(**CONFIG),
                  teacher_cache=cache)
    finally:
        tiny_data["train"].augments = False


def test_bad_input(tokenizer, tiny_data, teacher_and_cache):
    _, cache = teacher_and_cache
    with pytest.raises(ValueError, match="unknown method 'fitnet'; registered"):
        make_method("fitnet")
    with pytest.raises(ValueError, match="temperature must be > 0"):
        make_method("kd", temperature=0)
    with pytest.raises(ValueError, match=r"alpha must lie in \[0, 1\]"):
        make_method("kd", alpha=-0.1)
    with pytest.raises(ValueError, match="unknown weighting 'learned'"):
        make_method("msd", weighting="learned")
    with pytest.raises(ValueError, match="accepted parameters"):
        make_method("kd", beta=1.0)
    with pytest.raises(ValueError, match="pass teacher_cache= or teacher="):
        train(_model(tokenizer), make_method("kd"), tiny_data["train"], None, TrainConfig(**CONFIG))
    with pytest.raises(ValueError, match="teacher predicts 3 classes, the student 2"):
        train(_model(tokenizer, num_labels=2), make_method("kd"), tiny_data["train"], None,
              TrainConfig(**CONFIG), teacher_cache=cache)
    with pytest.raises(ValueError, match="checkpoint_rule"):
        TrainConfig(checkpoint_rule="best")
    with pytest.raises(ValueError, match="meta_data"):
        train(_model(tokenizer), make_method("msd", weighting="meta"), tiny_data["train"], None,
              TrainConfig(**CONFIG), teacher_cache=cache)


def test_methods_are_registered_and_unknown_names_list_them():
    from mmkd_core.training.methods import METHODS, Method, register_method

    assert {"ce", "kd", "ce3", "gram", "msd", "msd_gram"} <= set(METHODS)
    with pytest.raises(ValueError, match="registered: \\['ce', 'ce3'"):
        make_method("hinton")
    with pytest.raises(ValueError, match="accepted parameters"):
        make_method("kd", temprature=2.0)
    with pytest.raises(ValueError, match="lam = 0"):
        make_method("ce3", lam=1.0)
    with pytest.raises(ValueError, match="already registered"):
        register_method("kd", label="Other", order=99)(type("Other", (Method,), {}))
    assert make_method("msd_gram").gram_lam > 0 and make_method("ce3").describe()["name"] == "ce3"
