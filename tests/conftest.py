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
