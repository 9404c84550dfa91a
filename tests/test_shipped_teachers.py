"""Teachers shipped with the repository (data/teachers): a fresh clone loads them instead of training them."""
import shutil

import pytest
import torch

from mmkd_core.experiments import ExperimentConfig, get_teacher, get_teacher_cache, multimodal, prepare_data

TINY_MODEL = {"hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64}


@pytest.fixture()
def tiny(tmp_path, monkeypatch):
    monkeypatch.setenv("MMKD_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(multimodal, "SHIPPED_TEACHERS_DIR", tmp_path / "shipped")
    config = ExperimentConfig.preset("fast", "ve", dataset_options={"n_train": 64, "n_validation": 32, "n_test": 32},
                                     n_labelled=16, teacher_overrides=TINY_MODEL, student_overrides=TINY_MODEL,
                                     batch_size=32)
    return config, prepare_data(config)


def test_a_shipped_teacher_is_loaded_instead_of_trained(tiny, monkeypatch):
    config, data = tiny
    with pytest.raises(FileNotFoundError, match="no trained teacher to ship in .* train it first"):
        multimodal.ship_teacher(config)
    trained, info = get_teacher(config, data, progress=False)
    assert info["source"] == "trained"
    shipped = multimodal.ship_teacher(config)
    assert sorted(p.name for p in shipped.rglob("*") if p.is_file()) == [
        "config.json", "evaluations.csv", "model.safetensors", "run.json"]  # no output caches, no per-step log
    shutil.rmtree(multimodal.checkpoint_dir(config))  # a fresh clone: nothing trained here
    assert multimodal.teacher_checkpoint_exists(config)
    loaded, loaded_info = get_teacher(config, data, progress=False)
    assert loaded_info["source"] == "shipped" and loaded_info["best_step"] == info["best_step"]
    for (name, a), (_, b) in zip(trained.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    cache = get_teacher_cache(loaded, data, config, progress=False)  # its outputs are rebuilt under data/checkpoints
    assert len(cache) == len(data.pool) and multimodal.checkpoint_dir(config).is_dir()
    monkeypatch.setenv("MMKD_SHIPPED_TEACHERS", "0")  # ignore the shipped copy: train again
    assert not multimodal.teacher_checkpoint_exists(config)


def test_ship_teachers_ships_the_plans_trained_teachers_and_removes_stale_ones(tiny, tmp_path, monkeypatch):
    from mmkd_core import reproduce

    config, data = tiny
    monkeypatch.setattr(reproduce, "SHIPPED_TEACHERS_DIR", multimodal.SHIPPED_TEACHERS_DIR)
    stale = multimodal.SHIPPED_TEACHERS_DIR / "teacher-000000000000"
    (stale / "checkpoint").mkdir(parents=True)
    get_teacher(config, data, progress=False)
    entry = {"preset": "fast", "task": "ve", "dataset_options": dict(config.dataset_options), "n_labelled": 16,
             "teacher_overrides": TINY_MODEL, "student_overrides": TINY_MODEL, "batch_size": 32}
    untrained = {**entry, "teacher_seed": 7}
    shipped, missing = reproduce.ship_teachers([entry, untrained, {**entry, "two_tower": {"input_size": 64}}])
    assert shipped == [multimodal.shipped_teacher_dir(config)] and len(missing) == 1 and "teacher_seed=7" in missing[0]
    assert not stale.exists() and multimodal.shipped_teacher_dir(config).is_dir()
