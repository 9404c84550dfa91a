"""Vision teacher/student builders and the hidden-states adapter (mmkd_core.models.vision), offline.

Real-scale builders are exercised with tiny random configs of the same classes, saved locally, so the
"first k layers" truncation and the loading paths are tested without the hub.
"""
import pytest
import timm
from safetensors.torch import save_file
import torch

from mmkd_core.models import vision
from mmkd_core.models.vision import (
    CheckpointUnavailableError, TinyVisionSizes, build_beit_teacher, build_data2vec_vision_student,
    build_tiny_beit_teacher, build_tiny_data2vec_student, hidden_states, model_width, pooled_features,
    truncate_data2vec_vision,
)

IMAGES = torch.randn(2, 3, 32, 32)


def test_tiny_teacher_gives_one_cls_plus_patches_tensor_per_block():
    teacher = build_tiny_beit_teacher(depth=3, embed_dim=32, num_heads=2)
    layers = hidden_states(teacher, IMAGES)
    assert len(layers) == 3 and all(layer.shape == (2, 1 + 16, 32) for layer in layers)
    # the adapter's last block is what timm's own forward_features returns (its final norm is Identity here)
    features = teacher.forward_features(IMAGES)
    torch.testing.assert_close(layers[-1], features)


def test_tiny_student_drops_the_embedding_output():
    student = build_tiny_data2vec_student(num_layers=2, hidden_size=32, num_heads=2)
    layers = hidden_states(student, IMAGES)
    assert len(layers) == 2 and layers[0].shape == (2, 17, 32)
    torch.testing.assert_close(layers[-1], student(pixel_values=IMAGES).last_hidden_state)


def test_sizes_share_width_and_pooled_features():
    sizes = TinyVisionSizes()
    teacher, student = sizes.teacher(), sizes.student()
    assert model_width(teacher) == model_width(student) == sizes.width
    assert pooled_features(teacher, IMAGES).shape == (2, sizes.width)
    assert pooled_features(student, IMAGES, pooling="cls").shape == (2, sizes.width)
    with pytest.raises(ValueError, match="pooling"):
        pooled_features(student, IMAGES, pooling="max")


def test_student_from_checkpoint_keeps_the_first_k_layers(tmp_path):
    torch.manual_seed(0)
    source = build_tiny_data2vec_student(num_layers=4, hidden_size=32, num_heads=2)
    source.save_pretrained(tmp_path)
    student = build_data2vec_vision_student(2, tmp_path, local_files_only=True)
    assert len(student.encoder.layer) == 2 and student.config.num_hidden_layers == 2
    for index in range(2):
        for (name, got), (_, want) in zip(student.encoder.layer[index].state_dict().items(),
                                          source.encoder.layer[index].state_dict().items()):
            torch.testing.assert_close(got, want, msg=f"layer {index} {name}")
    torch.testing.assert_close(student.embeddings.patch_embeddings.projection.weight,
                               source.embeddings.patch_embeddings.projection.weight)
    # the truncated model computes what the first two blocks of the source compute
    source.eval(), student.eval()
    with torch.no_grad():
        torch.testing.assert_close(hidden_states(student, IMAGES), hidden_states(source, IMAGES)[:2])
    with pytest.raises(ValueError, match=r"num_layers must be an int in 1\.\.4"):
        build_data2vec_vision_student(5, tmp_path, local_files_only=True)


def test_truncate_in_memory():
    model = build_tiny_data2vec_student(num_layers=3, hidden_size=32, num_heads=2)
    first = model.encoder.layer[0]
    truncate_data2vec_vision(model, 1)
    assert len(model.encoder.layer) == 1 and model.encoder.layer[0] is first
    with pytest.raises(ValueError, match=r"1\.\.1"):
        truncate_data2vec_vision(model, 2)


def test_missing_student_checkpoint_says_what_and_how():
    with pytest.raises(CheckpointUnavailableError) as info:
        build_data2vec_vision_student(2, "facebook/data2vec-vision-base", local_files_only=True)
    message = str(info.value)
    assert "facebook/data2vec-vision-base" in message and "HF_HUB_OFFLINE=1" in message and "HF_HOME" in message


def test_teacher_from_local_file_and_missing_hub_weights(tmp_path, monkeypatch):
    tiny = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2)
    source = timm.create_model("beitv2_base_patch16_224", pretrained=False, num_classes=0, **tiny)
    save_file(source.state_dict(), tmp_path / "teacher.safetensors")  # weights as safetensors, never pickles
    teacher = build_beit_teacher("beitv2_base_patch16_224", checkpoint_file=tmp_path / "teacher.safetensors", **tiny)
    torch.testing.assert_close(teacher.state_dict(), source.state_dict())
    with pytest.raises(CheckpointUnavailableError, match="does not exist"):
        build_beit_teacher(checkpoint_file=tmp_path / "missing.safetensors", **tiny)

    def unreachable(*args, **kwargs):  # what timm raises offline, without its minute of retries
        raise OSError("We couldn't connect to 'https://huggingface.co'")

    monkeypatch.setattr(vision.timm, "create_model", unreachable)
    with pytest.raises(CheckpointUnavailableError) as info:
        build_beit_teacher()
    assert "timm/beitv2_base_patch16_224.in1k_ft_in1k" in str(info.value) and "HF_HUB_OFFLINE=1" in str(info.value)


def test_adapter_rejects_other_models_and_bad_images():
    with pytest.raises(ValueError, match="timm Beit and transformers Data2VecVisionModel"):
        hidden_states(torch.nn.Linear(2, 2), IMAGES)
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        hidden_states(build_tiny_data2vec_student(1, hidden_size=32, num_heads=2), torch.randn(3, 32, 32))
