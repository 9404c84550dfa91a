import pytest
import torch

from mmkd_core.data import load
from mmkd_core.data.encoding import EncodedDataset, ImageTextProcessor
from mmkd_core.data.tokenizer import build_shapes_tokenizer

SMALL = dict(n_train=96, n_validation=48, n_test=48)


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def tokenizer():
    return build_shapes_tokenizer()


@pytest.fixture(scope="session")
def processor(tokenizer):
    return ImageTextProcessor(tokenizer, image_size=32, max_length=16)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory, processor):
    """Encoded train/validation splits of a tiny 3-way shapes benchmark (cached in a temp folder)."""
    root = tmp_path_factory.mktemp("shapes")
    return {split: EncodedDataset(load("shapes", split, root=root, **SMALL), processor)
            for split in ("train", "validation")}


TINY_MODEL = {"hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64}


@pytest.fixture()
def experiment(tmp_path, monkeypatch):
    """A tiny ve experiment in its own data folder, with its trained teacher's cache: (config, data, cache)."""
    from mmkd_core.experiments import ExperimentConfig, get_teacher, get_teacher_cache, prepare_data

    monkeypatch.setenv("MMKD_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("MMKD_FRESH", raising=False)
    config = ExperimentConfig.preset("fast", "ve", dataset_options={"n_train": 96, "n_validation": 48, "n_test": 48},
                                     n_labelled=32, teacher_overrides=TINY_MODEL, student_overrides=TINY_MODEL,
                                     batch_size=32, student_max_steps=6, student_eval_every=3)
    data = prepare_data(config)
    teacher, _ = get_teacher(config, data, progress=False)
    return config, data, get_teacher_cache(teacher, data, config)
