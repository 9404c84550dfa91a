"""Gram relation KD: golden values, invariances, gradient flow and the input errors."""
import math

import pytest
import torch

from mmkd_core.losses import gram_objective, gram_relation_loss, modality_gram, stack_views

LN3 = math.log(3.0)
KL_34_VS_HALF = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)


def test_modality_gram_golden():
    a = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    # rows r1=(1,2), r2=(3,4): r1.r1=5, r1.r2=11, r2.r2=25
    assert torch.equal(modality_gram(a), torch.tensor([[[5.0, 11.0], [11.0, 25.0]]]))
    b = torch.randn(3, 4, 5)
    assert torch.equal(modality_gram(b), b @ b.transpose(-1, -2))


def test_gram_loss_golden_and_literal_eq4():
    a_s = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # G_s = I
    a_t = torch.tensor([[[1.0, 1.0], [0.0, 1.0]]])  # G_t = [[2, 1], [1, 1]]
    # G_s - G_t = [[-1, -1], [-1, 0]]: squared sum 3 over B*M*M = 4 entries
    assert gram_relation_loss(a_s, a_t).item() == pytest.approx(0.75)
    # A_s - A_t = [[0, -1], [0, 0]]: squared sum 1 over B*M*C = 4 entries
    assert gram_relation_loss(a_s, a_t, target="outputs").item() == pytest.approx(0.25)


def test_zero_for_identical_inputs():
    a = torch.randn(4, 3, 6)
    assert gram_relation_loss(a, a.clone()).item() == 0.0
    assert gram_relation_loss(a, a.clone(), target="outputs").item() == 0.0


def test_gram_allows_different_output_dims():
    a_s = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    a_t = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])  # same Gram (I), C = 3
    assert gram_relation_loss(a_s, a_t).item() == pytest.approx(0.0)
    with pytest.raises(ValueError, match="equal output dims.*C=2.*C=3"):
        gram_relation_loss(a_s, a_t, target="outputs")


def test_gram_ignores_a_common_rotation_but_eq4_does_not():
    torch.manual_seed(0)
    a = torch.randn(5, 3, 4, dtype=torch.float64)
    r, _ = torch.linalg.qr(torch.randn(4, 4, dtype=torch.float64))  # orthogonal
    assert torch.allclose(modality_gram(a @ r), modality_gram(a), atol=1e-10)
    assert gram_relation_loss(a @ r, a).item() == pytest.approx(0.0, abs=1e-5)
    assert gram_relation_loss(a @ r, a, target="outputs").item() > 0.1


def test_gradients_flow_to_student_only():
    s = torch.randn(2, 3, 4, requires_grad=True)
    t = torch.randn(2, 3, 4, requires_grad=True)
    gram_relation_loss(s, t).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None


def test_gram_loss_errors():
    good = torch.zeros(2, 3, 4)
    with pytest.raises(ValueError, match="student_outputs: expected a 3-D"):
        gram_relation_loss(torch.zeros(3, 4), good)
    with pytest.raises(ValueError, match="teacher_outputs: expected a 3-D"):
        gram_relation_loss(good, torch.zeros(2, 3, 4, 1))
    with pytest.raises(ValueError, match="modalities M differs: student has 3, teacher has 2"):
        gram_relation_loss(good, torch.zeros(2, 2, 4))
    with pytest.raises(ValueError, match="batch sizes differ"):
        gram_relation_loss(good, torch.zeros(1, 3, 4))
    bad = good.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="student_outputs contains NaN"):
        gram_relation_loss(bad, good)
    bad[0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="teacher_outputs contains inf"):
        gram_relation_loss(good, bad)
    with pytest.raises(ValueError, match="unknown target 'relations'.*'gram', 'outputs'"):
        gram_relation_loss(good, good, target="relations")


def test_stack_views_transforms():
    views = {"text": torch.tensor([[LN3, 0.0]]), "image": torch.tensor([[3.0, 4.0]]),
             "joint": torch.tensor([[0.0, 0.0]])}
    a = stack_views(views, temperature=1.0)
    assert a.shape == (1, 3, 2)
    assert torch.equal(a[0], torch.tensor([[LN3, 0.0], [3.0, 4.0], [0.0, 0.0]]))  # order text, image, joint
    p = stack_views(views, transform="probs", temperature=1.0)
    assert torch.allclose(p[0, 0], torch.tensor([0.75, 0.25]))
    assert torch.allclose(p[0, 2], torch.tensor([0.5, 0.5]))
    p2 = stack_views({"text": torch.tensor([[2 * LN3, 0.0]])}, views=("text",), transform="probs", temperature=2.0)
    assert torch.allclose(p2[0, 0], torch.tensor([0.75, 0.25]))
    lp = stack_views(views, transform="log_probs", temperature=1.0)
    assert torch.allclose(lp[0, 0], torch.tensor([math.log(0.75), math.log(0.25)]))
    n = stack_views(views, transform="l2_normalized", temperature=1.0)
    assert torch.allclose(n[0, 1], torch.tensor([0.6, 0.8]))
    feats = {v: torch.randn(2, 7) for v in ("text", "image", "joint")}  # pooled features, any last dim
    assert stack_views(feats, transform="l2_normalized", temperature=1.0).shape == (2, 3, 7)


def test_stack_views_errors():
    views = {"text": torch.zeros(2, 3), "image": torch.zeros(2, 3), "joint": torch.zeros(2, 3)}
    accepted = "'logits', 'probs', 'log_probs', 'l2_normalized'"
    with pytest.raises(ValueError, match=f"unknown transform 'softmax'.*{accepted}"):
        stack_views(views, transform="softmax", temperature=1.0)
    with pytest.raises(ValueError, match=r"missing view\(s\) \['joint'\]"):
        stack_views({"text": views["text"], "image": views["image"]}, temperature=1.0)
    with pytest.raises(ValueError, match="view 'image' has shape"):
        stack_views({**views, "image": torch.zeros(2, 4)}, temperature=1.0)


def _objective_inputs():
    s = {"text": torch.tensor([[0.0, 0.0]]), "image": torch.tensor([[LN3, 0.0]]), "joint": torch.tensor([[0.0, 0.0]])}
    t = {"text": torch.tensor([[0.0, 0.0]]), "image": torch.tensor([[LN3, 0.0]]), "joint": torch.tensor([[LN3, 0.0]])}
    return s, t, torch.tensor([0])


def test_gram_objective_golden():
    s, t, y = _objective_inputs()
    out = gram_objective(s, t, y, alpha=0.5, beta=2.0, gamma=1.0, lam=10.0, temperature=1.0,
                         gram_temperature=1.0, kd_weight=3.0)
    assert out["ce_text"].item() == pytest.approx(math.log(2.0), abs=1e-6)
    assert out["ce_image"].item() == pytest.approx(math.log(4.0 / 3.0), abs=1e-6)
    assert out["ce_joint"].item() == pytest.approx(math.log(2.0), abs=1e-6)
    assert out["kd_joint"].item() == pytest.approx(KL_34_VS_HALF, abs=1e-6)
    # probs rows (text, image, joint): student (.5,.5),(.75,.25),(.5,.5); teacher (.5,.5),(.75,.25),(.75,.25)
    # Gram entries differ at (image, joint), (joint, image): .5 vs .625, and (joint, joint): .5 vs .625
    gram = 3 * 0.125**2 / 9
    assert out["gram"].item() == pytest.approx(gram, abs=1e-7)
    total = 0.5 * math.log(2.0) + 2.0 * math.log(4.0 / 3.0) + math.log(2.0) + 3.0 * KL_34_VS_HALF + 10.0 * gram
    assert out["total"].item() == pytest.approx(total, abs=1e-6)
    assert list(out) == ["ce_text", "ce_image", "ce_joint", "kd_joint", "gram", "total"]
    lit = gram_objective(s, t, y, 0.0, 0.0, 0.0, 1.0, 1.0, gram_temperature=1.0, kd_weight=0.0, gram_target="outputs")
    assert lit["gram"].item() == pytest.approx(2 * 0.25**2 / 6, abs=1e-7)  # joint row differs by (.25, -.25)
    assert lit["total"].item() == pytest.approx(lit["gram"].item(), abs=1e-7)


def test_gram_objective_with_features_of_different_dims():
    s, t, y = _objective_inputs()
    fs = {"text": torch.tensor([[3.0, 4.0]]), "image": torch.tensor([[1.0, 0.0]]), "joint": torch.tensor([[0.0, 2.0]])}
    ft = {"text": torch.tensor([[1.0, 0.0, 0.0]]), "image": torch.tensor([[2.0, 0.0, 0.0]]),
          "joint": torch.tensor([[0.0, 0.0, 5.0]])}
    out = gram_objective(s, t, y, 1.0, 1.0, 1.0, 1.0, 1.0, gram_temperature=1.0, gram_input="features",
                         student_features=fs,
                         teacher_features=ft)
    # normalised student rows (.6,.8),(1,0),(0,1): cosines ti=.6, tj=.8, ij=0; teacher: ti=1, tj=0, ij=0
    assert out["gram"].item() == pytest.approx(2 * (0.4**2 + 0.8**2) / 9, abs=1e-6)
    with pytest.raises(ValueError, match="needs student_features and teacher_features"):
        gram_objective(s, t, y, 1.0, 1.0, 1.0, 1.0, 1.0, gram_temperature=1.0, gram_input="features")


def test_gram_objective_gradients_and_errors():
    torch.manual_seed(0)
    s = {v: torch.randn(3, 4, requires_grad=True) for v in ("text", "image", "joint")}
    t = {v: torch.randn(3, 4, requires_grad=True) for v in ("text", "image", "joint")}
    y = torch.tensor([0, 1, 3])
    gram_objective(s, t, y, 1.0, 1.0, 1.0, 1.0, 2.0, gram_temperature=2.0, gram_input="log_probs")["total"].backward()
    assert all(s[v].grad is not None for v in s) and all(t[v].grad is None for v in t)
    with pytest.raises(ValueError, match="unknown gram_input 'hidden'"):
        gram_objective(s, t, y, 1.0, 1.0, 1.0, 1.0, 1.0, gram_temperature=1.0, gram_input="hidden")
    with pytest.raises(ValueError, match="unknown gram_target 'g'"):
        gram_objective(s, t, y, 1.0, 1.0, 1.0, 1.0, 1.0, gram_temperature=1.0, gram_target="g")
    with pytest.raises(ValueError, match=r"teacher_logits is missing view\(s\) \['image'\]"):
        gram_objective(s, {"text": t["text"], "joint": t["joint"]}, y, 1.0, 1.0, 1.0, 1.0, 1.0, gram_temperature=1.0)
