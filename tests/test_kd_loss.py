import math

import pytest
import torch

from mmkd_core.losses import distillation_objective, kd_loss


def _softmax(values, t):
    exps = [math.exp(v / t) for v in values]
    return [e / sum(exps) for e in exps]


def test_golden_value_hand_computed():
    student, teacher = [1.0, 2.0, 3.0], [3.0, 2.0, 1.0]
    for t in (1.0, 2.0, 4.0):
        p, q = _softmax(teacher, t), _softmax(student, t)
        expected = t**2 * sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))
        got = kd_loss(torch.tensor([student]), torch.tensor([teacher]), temperature=t)
        assert got.item() == pytest.approx(expected, rel=1e-5)


def test_pinned_values():
    s = torch.tensor([[1.0, 2.0, 3.0], [0.5, -0.5, 0.0]])
    t = torch.tensor([[3.0, 2.0, 1.0], [0.0, 0.0, 1.0]])
    # values pinned from the analytic formula above (batchmean over the two rows)
    rows = []
    for srow, trow in zip(s.tolist(), t.tolist()):
        p, q = _softmax(trow, 2.0), _softmax(srow, 2.0)
        rows.append(4.0 * sum(pi * math.log(pi / qi) for pi, qi in zip(p, q)))
    assert kd_loss(s, t, 2.0).item() == pytest.approx(sum(rows) / 2, rel=1e-5)
    assert kd_loss(s, t, 2.0, reduction="none").tolist() == pytest.approx(rows, rel=1e-5)
    # by hand at T=1: row 1 logits differ by ±2, KL = 2·(p₁ − p₃) = 2·(0.66524 − 0.09003) = 1.15042;
    # row 2: p = (0.21194, 0.21194, 0.57612), q = (0.50648, 0.18632, 0.30720), KL = 0.20496
    assert kd_loss(s, t, 1.0).item() == pytest.approx((1.15042 + 0.20496) / 2, abs=1e-4)


def test_zero_when_identical_and_teacher_gets_no_gradient():
    s = torch.randn(4, 5, requires_grad=True)
    teacher = s.detach().clone().requires_grad_(True)
    assert kd_loss(s, teacher, 3.0).item() == pytest.approx(0.0, abs=1e-6)
    kd_loss(s * 2, teacher, 3.0).backward()
    assert teacher.grad is None and s.grad is not None


def test_t_squared_keeps_gradient_magnitude_comparable_across_temperatures():
    torch.manual_seed(0)
    s = torch.randn(256, 10) * 0.5
    t = torch.randn(256, 10) * 0.5
    norms = {}
    for temperature in (1.0, 4.0, 16.0):
        x = s.clone().requires_grad_(True)
        kd_loss(x, t, temperature).backward()
        norms[temperature] = x.grad.norm().item()
    # Without T² the gradient would shrink ~T² (256× from T=1 to 16); with it, it shrinks by at most ~T.
    # In the high-temperature limit the gradient is (z_s - z_t)/(C·B)·T⁰ ... so the norms stay within 4×.
    assert max(norms.values()) / min(norms.values()) < 4.0
    x = s.clone().requires_grad_(True)
    (kd_loss(x, t, 16.0) / 16.0**2).backward()  # the same loss without the T² factor
    assert x.grad.norm().item() < norms[16.0] / 100


def test_objective_combines_terms():
    s, t, y = torch.randn(8, 3), torch.randn(8, 3), torch.randint(0, 3, (8,))
    out = distillation_objective(s, t, y, alpha=0.25, temperature=2.0)
    assert set(out) == {"ce", "kd", "total"}
    assert out["total"].item() == pytest.approx(0.25 * out["ce"].item() + 0.75 * out["kd"].item(), rel=1e-6)


@pytest.mark.parametrize("kwargs,match", [
    (dict(temperature=0.0), "temperature must be > 0"),
    (dict(temperature=-1.0), "temperature must be > 0"),
])
def test_bad_temperature(kwargs, match):
    with pytest.raises(ValueError, match=match):
        kd_loss(torch.randn(2, 3), torch.randn(2, 3), **kwargs)


def test_bad_alpha_and_class_mismatch():
    with pytest.raises(ValueError, match=r"alpha must lie in \[0, 1\]"):
        distillation_objective(torch.randn(2, 3), torch.randn(2, 3), torch.tensor([0, 1]), alpha=1.5, temperature=1.0)
    with pytest.raises(ValueError, match="teacher has 4 classes but student has 3"):
        kd_loss(torch.randn(2, 3), torch.randn(2, 4), 1.0)


def test_temperatures_are_required_and_checked_in_one_place():
    from mmkd_core.losses import check_temperature, msd_loss, stack_views
    from mmkd_core.training.methods import make_method
    from mmkd_core.weighting import instance_weights, weight_features

    with pytest.raises(ValueError, match="gram_objective: gram_temperature must be > 0, got 0"):
        check_temperature(0, "gram_temperature", receiver="gram_objective")
    for method in ("gram", "msd", "msd_gram"):
        with pytest.raises(ValueError, match="gram_temperature must be > 0"):
            make_method(method, gram_temperature=0.0)
        with pytest.raises(ValueError, match="temperature must be > 0"):
            make_method(method, temperature=-1.0)
    assert {make_method(m).temperature for m in ("kd", "gram", "ce3", "msd", "msd_gram")} == {4.0}
    views = {v: torch.randn(2, 3) for v in ("joint", "text", "image")}
    y = torch.tensor([0, 1])
    for call in (lambda: kd_loss(views["joint"], views["joint"]),
                 lambda: distillation_objective(views["joint"], views["joint"], y),
                 lambda: msd_loss(views, views, y, {"text": 1.0, "image": 1.0}),
                 lambda: stack_views(views), lambda: instance_weights(views), lambda: weight_features(views, views, y)):
        with pytest.raises(TypeError, match="temperature"):
            call()
