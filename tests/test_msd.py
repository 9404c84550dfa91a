"""MSD loss: golden values from the analytic formula, per-sample weighting, and the input errors."""
import math

import pytest
import torch

from mmkd_core.losses import msd_loss
from mmkd_core.views import VIEWS

LN3 = math.log(3.0)
# KL((3/4, 1/4) || (1/2, 1/2)) written out by hand
KL_34_VS_HALF = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)


def _views(joint, text, image):
    return {"joint": torch.tensor(joint), "text": torch.tensor(text), "image": torch.tensor(image)}


def _setup():
    # student outputs uniform (1/2, 1/2) on every view; teacher: joint (3/4, 1/4), text (1/4, 3/4), image uniform
    student = _views([[0.0, 0.0]], [[0.0, 0.0]], [[0.0, 0.0]])
    teacher = _views([[LN3, 0.0]], [[0.0, LN3]], [[0.0, 0.0]])
    return student, teacher, torch.tensor([0])


def test_golden_values_population_weights():
    student, teacher, labels = _setup()
    out = msd_loss(student, teacher, labels, {"text": 2.0, "image": 5.0}, temperature=1.0)
    assert out["ce"].item() == pytest.approx(math.log(2.0), abs=1e-6)
    assert out["kd_joint"].item() == pytest.approx(KL_34_VS_HALF, abs=1e-6)
    assert out["kd_text"].item() == pytest.approx(KL_34_VS_HALF, abs=1e-6)  # (1/4, 3/4) vs uniform: same KL
    assert out["kd_image"].item() == pytest.approx(0.0, abs=1e-7)
    assert out["weighted_text"].item() == pytest.approx(2.0 * KL_34_VS_HALF, abs=1e-6)
    assert out["weighted_image"].item() == pytest.approx(0.0, abs=1e-7)
    expected_total = math.log(2.0) + KL_34_VS_HALF + 2.0 * KL_34_VS_HALF
    assert out["total"].item() == pytest.approx(expected_total, abs=1e-6)
    assert set(out) == {"ce", "kd_joint", "kd_text", "kd_image", "weighted_text", "weighted_image", "total"}


def test_temperature_scales_kd_by_t_squared():
    # at T = 2, teacher logits (2 ln 3, 0) soften to (3/4, 1/4): KD = T^2 * KL = 4 * KL
    student = _views([[0.0, 0.0]], [[0.0, 0.0]], [[0.0, 0.0]])
    teacher = _views([[2 * LN3, 0.0]], [[0.0, 0.0]], [[0.0, 0.0]])
    out = msd_loss(student, teacher, torch.tensor([1]), {"text": 1.0, "image": 1.0}, temperature=2.0)
    assert out["kd_joint"].item() == pytest.approx(4.0 * KL_34_VS_HALF, abs=1e-6)
    assert out["ce"].item() == pytest.approx(math.log(2.0), abs=1e-6)  # CE stays at T = 1


def test_per_sample_weights_multiply_before_the_mean():
    # sample 0: text KD = KL_34_VS_HALF, sample 1: text KD = 0
    student = _views([[0.0, 0.0]] * 2, [[0.0, 0.0]] * 2, [[0.0, 0.0]] * 2)
    teacher = _views([[0.0, 0.0]] * 2, [[LN3, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, LN3]])
    w = {"text": torch.tensor([3.0, 100.0]), "image": torch.tensor([100.0, 5.0])}
    out = msd_loss(student, teacher, torch.tensor([0, 1]), w, temperature=1.0)
    assert out["kd_text"].item() == pytest.approx(KL_34_VS_HALF / 2, abs=1e-6)
    assert out["weighted_text"].item() == pytest.approx(3.0 * KL_34_VS_HALF / 2, abs=1e-6)
    assert out["weighted_image"].item() == pytest.approx(5.0 * KL_34_VS_HALF / 2, abs=1e-6)
    assert out["total"].item() == pytest.approx(math.log(2.0) + 8.0 * KL_34_VS_HALF / 2, abs=1e-6)


def test_zero_d_tensor_weight_equals_float_and_zero_weight_is_plain_kd():
    student, teacher, labels = _setup()
    a = msd_loss(student, teacher, labels, {"text": torch.tensor(2.0), "image": 0.5}, temperature=1.0)
    b = msd_loss(student, teacher, labels, {"text": 2.0, "image": 0.5}, temperature=1.0)
    assert torch.allclose(a["total"], b["total"])
    c = msd_loss(student, teacher, labels, {"text": 0.0, "image": 0.0}, temperature=1.0)
    assert c["total"].item() == pytest.approx(c["ce"].item() + c["kd_joint"].item(), abs=1e-7)


def test_gradients_reach_student_and_weights_not_teacher():
    torch.manual_seed(0)
    student = {v: torch.randn(4, 3, requires_grad=True) for v in VIEWS}
    teacher = {v: torch.randn(4, 3, requires_grad=True) for v in VIEWS}
    w = {"text": torch.rand(4, requires_grad=True), "image": torch.tensor(1.0, requires_grad=True)}
    msd_loss(student, teacher, torch.tensor([0, 1, 2, 0]), w, temperature=2.0)["total"].backward()
    assert all(student[v].grad is not None and student[v].grad.abs().sum() > 0 for v in VIEWS)
    assert all(teacher[v].grad is None for v in VIEWS)
    assert w["text"].grad is not None and w["image"].grad is not None  # needed by the meta-learner


def test_missing_view_is_named():
    student, teacher, labels = _setup()
    del student["image"]
    with pytest.raises(ValueError, match=r"student_logits is missing view\(s\) \['image'\].*'joint', 'text', 'image'"):
        msd_loss(student, teacher, labels, {"text": 1.0, "image": 1.0}, temperature=1.0)
    student, teacher, labels = _setup()
    del teacher["text"]
    with pytest.raises(ValueError, match=r"teacher_logits is missing view\(s\) \['text'\]"):
        msd_loss(student, teacher, labels, {"text": 1.0, "image": 1.0}, temperature=1.0)


@pytest.mark.parametrize("bad", [torch.ones(2), torch.ones(1, 1), torch.ones(1, 2)])
def test_wrong_weight_shape(bad):
    student, teacher, labels = _setup()
    with pytest.raises(ValueError, match=r"weights\['text'\].*\[B\] = \[1\]"):
        msd_loss(student, teacher, labels, {"text": bad, "image": 1.0}, temperature=1.0)


def test_unknown_and_missing_weight_keys():
    student, teacher, labels = _setup()
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['audio'\]"):
        msd_loss(student, teacher, labels, {"text": 1.0, "image": 1.0, "audio": 1.0}, temperature=1.0)
    with pytest.raises(ValueError, match=r"missing auxiliary view\(s\) \['image'\]"):
        msd_loss(student, teacher, labels, {"text": 1.0}, temperature=1.0)
    with pytest.raises(ValueError, match="python float"):
        msd_loss(student, teacher, labels, {"text": "1.0", "image": 1.0}, temperature=1.0)


def test_mismatched_shapes_and_labels():
    student, teacher, labels = _setup()
    teacher["text"] = torch.zeros(1, 3)
    with pytest.raises(ValueError, match="view 'text'.*classes"):
        msd_loss(student, teacher, labels, {"text": 1.0, "image": 1.0}, temperature=1.0)
    student, teacher, _ = _setup()
    with pytest.raises(ValueError, match=r"labels: expected a \[B\] = \[1\]"):
        msd_loss(student, teacher, torch.tensor([0, 1]), {"text": 1.0, "image": 1.0}, temperature=1.0)
