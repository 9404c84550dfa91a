"""report_to="tensorboard": a tiny run writes TensorBoard event files through Accelerate's tracker API."""
from __future__ import annotations

import pytest

from mmkd_core.models.multimodal import build_multimodal_model
from mmkd_core.training import tracking
from mmkd_core.training.methods import make_method
from mmkd_core.training.trainer import TrainConfig, train


def test_tensorboard_run_writes_parsable_events(tokenizer, tiny_data, tmp_path, monkeypatch):
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    monkeypatch.setenv("MMKD_DATA_DIR", str(tmp_path))
    model = build_multimodal_model(3, len(tokenizer), "student", seed=0, hidden_size=32, num_attention_heads=2,
                                   intermediate_size=64)
    config = TrainConfig(epochs=2, batch_size=32, progress=False, report_to="tensorboard")
    result = train(model, make_method("ce"), tiny_data["train"], tiny_data["validation"], config,
                   description="ce tiny")
    events = sorted((tmp_path / "runs").rglob("events.out.tfevents.*"))
    assert events, f"no event files under {tmp_path / 'runs'}"
    scalar_tags = set()
    for event_file in events:
        accumulator = event_accumulator.EventAccumulator(str(event_file))
        accumulator.Reload()
        scalar_tags |= set(accumulator.Tags()["scalars"])
        if "train/total" in accumulator.Tags()["scalars"]:
            totals = accumulator.Scalars("train/total")
            assert [e.step for e in totals] == list(result.steps["step"])
            assert totals[-1].value == pytest.approx(result.steps["total"].iloc[-1], rel=1e-6)
    assert {"train/ce", "train/total", "train/lr", "epoch/total", "val/joint/accuracy"} <= scalar_tags
    assert events[0].relative_to(tmp_path / "runs").parts[0] == "ce_tiny"  # one folder per method


def test_tracking_is_off_by_default_and_checked():
    assert TrainConfig().report_to is None and tracking.accelerator_options(None) == {}
    with pytest.raises(ValueError, match="report_to='wandb'; accepted: None .*'tensorboard'"):
        TrainConfig(report_to="wandb")
