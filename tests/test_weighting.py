"""MSD weighting schemes: population grid selection, instance-wise teacher saliency / confidence, meta-learning."""
import math

import pytest
import torch
import torch.nn as nn

from mmkd_core.losses import msd_loss
from mmkd_core.weighting import (MetaReweighter, WeightNet, instance_weights, meta_step, population_grid,
                                 select_population_weights, weight_features)
from mmkd_core.weighting.meta import FEATURE_NAMES
from mmkd_core.weighting.schemes import SCHEMES, WeightingScheme, make_weighting

LN3 = math.log(3.0)
KL_34_VS_HALF = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
# JS((3/4, 1/4), (1/2, 1/2)) with midpoint m = (5/8, 3/8), written out by hand
JS_34_VS_HALF = 0.5 * (0.75 * math.log(0.75 / 0.625) + 0.25 * math.log(0.25 / 0.375)) + \
    0.5 * (0.5 * math.log(0.5 / 0.625) + 0.5 * math.log(0.5 / 0.375))


# ---------------------------------------------------------------- population
def test_population_grid():
    grid = population_grid()
    assert len(grid) == 16
    assert grid[0] == {"text": 0.0, "image": 0.0} and grid[1] == {"text": 0.0, "image": 0.5}
    assert grid[-1] == {"text": 2.0, "image": 2.0}
    assert population_grid((1, 1, 0.5)) == [{"text": 1.0, "image": 1.0}, {"text": 1.0, "image": 0.5},
                                            {"text": 0.5, "image": 1.0}, {"text": 0.5, "image": 0.5}]
    with pytest.raises(ValueError, match="non-negative"):
        population_grid((1.0, -0.5))
    with pytest.raises(ValueError, match="at least one"):
        population_grid(())


def test_select_population_weights_and_ties():
    results = [({"text": 0.0, "image": 0.0}, 0.70), ({"text": 1.0, "image": 0.5}, 0.74),
               ({"text": 0.5, "image": 1.0}, 0.74), ({"text": 0.5, "image": 0.5}, 0.72)]
    # tie at .74: equal totals, so the smaller text weight wins, whatever the order
    assert select_population_weights(results) == {"text": 0.5, "image": 1.0}
    assert select_population_weights(results[::-1]) == {"text": 0.5, "image": 1.0}
    tie_total = [({"text": 2.0, "image": 2.0}, 0.8), ({"text": 0.0, "image": 1.0}, 0.8)]
    assert select_population_weights(tie_total) == {"text": 0.0, "image": 1.0}
    assert select_population_weights(results, higher_is_better=False) == {"text": 0.0, "image": 0.0}
    with pytest.raises(ValueError, match="non-empty"):
        select_population_weights([])
    with pytest.raises(ValueError, match="NaN"):
        select_population_weights([({"text": 0.0, "image": 0.0}, float("nan"))])
    with pytest.raises(ValueError, match="keys"):
        select_population_weights([({"text": 0.0}, 0.5)])


# ---------------------------------------------------------------- instance-wise
def _teacher():
    # joint (3/4, 1/4); the text view agrees with it, the image view is uniform:
    # removing the text (-> image view) moves the prediction, removing the image (-> text view) does not
    return {"joint": torch.tensor([[LN3, 0.0]]), "text": torch.tensor([[LN3, 0.0]]),
            "image": torch.tensor([[0.0, 0.0]])}


def test_saliency_golden_and_view_mapping():
    raw = instance_weights(_teacher(), normalize=False, temperature=1.0)
    assert raw["text"].item() == pytest.approx(JS_34_VS_HALF, abs=1e-6)
    assert raw["image"].item() == pytest.approx(0.0, abs=1e-7)
    kl = instance_weights(_teacher(), normalize=False, divergence="kl", temperature=1.0)
    assert kl["text"].item() == pytest.approx(KL_34_VS_HALF, abs=1e-6)
    # joint normalisation: mean over the 2B = 2 entries is JS/2, so text -> 2, image -> 0
    w = instance_weights(_teacher(), temperature=1.0)
    assert w["text"].item() == pytest.approx(2.0, abs=1e-5) and w["image"].item() == pytest.approx(0.0, abs=1e-6)
    assert w["text"].shape == (1,)


def test_saliency_temperature():
    t = {v: 2.0 * x for v, x in _teacher().items()}  # at T = 2 the probabilities equal those of _teacher()
    assert instance_weights(t, temperature=2.0, normalize=False)["text"].item() == pytest.approx(JS_34_VS_HALF,
                                                                                                 abs=1e-6)


def test_confidence_golden():
    raw = instance_weights(_teacher(), torch.tensor([0]), method="confidence", normalize=False, temperature=1.0)
    assert raw["text"].item() == pytest.approx(0.75) and raw["image"].item() == pytest.approx(0.5)
    w = instance_weights(_teacher(), torch.tensor([0]), method="confidence", temperature=1.0)  # / mean 0.625
    assert w["text"].item() == pytest.approx(1.2) and w["image"].item() == pytest.approx(0.8)
    w1 = instance_weights(_teacher(), torch.tensor([1]), method="confidence", normalize=False, temperature=1.0)
    assert w1["text"].item() == pytest.approx(0.25)


def test_normalisation_clipping_and_degenerate_batch():
    torch.manual_seed(0)
    t = {v: torch.randn(6, 4) for v in ("joint", "text", "image")}
    w = instance_weights(t, max_weight=None, temperature=1.0)
    assert torch.cat([w["text"], w["image"]]).mean().item() == pytest.approx(1.0, abs=1e-5)
    pv = instance_weights(t, normalize="per_view", max_weight=None, temperature=1.0)
    assert pv["text"].mean().item() == pytest.approx(1.0, abs=1e-5)
    assert pv["image"].mean().item() == pytest.approx(1.0, abs=1e-5)
    # one salient entry out of 2B = 8: normalised to 8, clipped to max_weight
    sal = {"joint": torch.tensor([[LN3, 0.0]] * 4), "text": torch.tensor([[LN3, 0.0]] * 4),
           "image": torch.tensor([[0.0, 0.0]] + [[LN3, 0.0]] * 3)}
    w = instance_weights(sal, max_weight=5.0, temperature=1.0)
    assert w["text"].tolist() == pytest.approx([5.0, 0.0, 0.0, 0.0], abs=1e-5)
    assert instance_weights(sal, max_weight=None, temperature=1.0)["text"][0].item() == pytest.approx(8.0, abs=1e-4)
    same = {v: torch.tensor([[1.0, 2.0]] * 3) for v in ("joint", "text", "image")}
    assert torch.equal(instance_weights(same, scale=0.5, temperature=1.0)["image"], torch.full((3,), 0.5))


def test_instance_weights_are_detached_and_errors():
    t = {v: torch.randn(2, 3, requires_grad=True) for v in ("joint", "text", "image")}
    w = instance_weights(t, temperature=1.0)
    assert not w["text"].requires_grad
    with pytest.raises(ValueError, match="unknown method 'gradcam'.*'saliency', 'confidence'"):
        instance_weights(t, method="gradcam", temperature=1.0)
    with pytest.raises(ValueError, match="needs labels"):
        instance_weights(t, method="confidence", temperature=1.0)
    with pytest.raises(ValueError, match="unknown divergence"):
        instance_weights(t, divergence="tv", temperature=1.0)
    with pytest.raises(ValueError, match="unknown normalize"):
        instance_weights(t, normalize="batch", temperature=1.0)
    with pytest.raises(ValueError, match=r"missing view\(s\) \['joint'\]"):
        instance_weights({"text": t["text"], "image": t["image"]}, temperature=1.0)


# ---------------------------------------------------------------- meta-learned
class ViewLinear(nn.Module):
    """Tiny student: features [0:2] are the 'text', [2:4] the 'image'; a view zeroes the other modality."""

    def __init__(self, classes=3):
        super().__init__()
        self.lin = nn.Linear(4, classes)
        self.register_buffer("mask_text", torch.tensor([1.0, 1.0, 0.0, 0.0]))

    def forward(self, x):
        return {"joint": self.lin(x), "text": self.lin(x * self.mask_text), "image": self.lin(x * (1 - self.mask_text))}


def _batch(gen, n=64, classes=3, flip_text=True):
    x = torch.randn(n, 4, generator=gen)
    w_true = torch.tensor([[2.0, -1.0, 0.5], [0.0, 1.5, -2.0], [1.0, 1.0, -1.0], [-2.0, 0.5, 1.5]])
    y = (x @ w_true).argmax(dim=1)
    onehot = nn.functional.one_hot(y, classes).float()
    noise_y = (y + 1) % classes if flip_text else y  # label-flipped teacher text predictions: harmful
    teacher = {"joint": 4.0 * onehot, "image": 4.0 * onehot,
               "text": 4.0 * nn.functional.one_hot(noise_y, classes).float()}
    return {"x": x, "labels": y, "teacher_logits": teacher}


def _closures(temperature=1.0):
    def forward_fn(model, b):
        return model(b["x"])

    def loss_fn(out, b, w):
        return msd_loss(out, b["teacher_logits"], b["labels"], w, temperature)["total"]

    def features_fn(out, b):
        return weight_features(out, b["teacher_logits"], b["labels"], temperature)

    return forward_fn, loss_fn, features_fn


def test_weight_features_and_weightnet_ranges():
    gen = torch.Generator().manual_seed(0)
    b = _batch(gen, n=8)
    student = ViewLinear()
    out = student(b["x"])
    f = weight_features(out, b["teacher_logits"], b["labels"], 1.0)
    assert f.shape == (8, len(FEATURE_NAMES)) and not f.requires_grad
    # column 2 = teacher text confidence in the true label: flipped text teacher -> softmax(0, 4, 0)-style low p
    assert torch.allclose(f[:, 2], torch.full((8,), 1.0 / (2.0 + math.exp(4.0))))
    assert torch.allclose(f[:, 4], torch.full((8,), math.exp(4.0) / (2.0 + math.exp(4.0))))
    for output in ("2sigmoid", "softplus"):
        net = WeightNet(output=output)
        assert torch.allclose(net(f), torch.ones(8, 2))  # starts at unweighted MSD
    net = WeightNet()
    with torch.no_grad():
        net.head.bias.fill_(50.0)
    assert net(f).max().item() <= 2.0
    with pytest.raises(ValueError, match="unknown output"):
        WeightNet(output="relu")
    with pytest.raises(ValueError, match=r"expected features \[B, 5\]"):
        net(torch.zeros(3, 4))


def test_meta_step_updates_weight_net_only():
    gen = torch.Generator().manual_seed(1)
    torch.manual_seed(1)
    student, net = ViewLinear(), WeightNet()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    before_student = {k: v.clone() for k, v in student.state_dict().items()}
    before_net = [p.clone() for p in net.parameters()]
    forward_fn, loss_fn, features_fn = _closures()
    info = meta_step(student, net, opt, _batch(gen), _batch(gen, flip_text=False), forward_fn=forward_fn,
                     loss_fn=loss_fn, features_fn=features_fn, inner_lr=0.5)
    assert any(not torch.equal(a, b) for a, b in zip(before_net, net.parameters()))
    assert all(torch.equal(before_student[k], v) for k, v in student.state_dict().items())
    assert all(p.grad is None for p in student.parameters())
    assert info["meta_loss"].ndim == 0 and set(info["weights"]) == {"text", "image"}
    with pytest.raises(ValueError, match="inner_lr"):
        meta_step(student, net, opt, _batch(gen), _batch(gen), forward_fn=forward_fn, loss_fn=loss_fn,
                  features_fn=features_fn, inner_lr=0.0)


def _meta_train(flip_text, steps=20):
    gen = torch.Generator().manual_seed(2)
    torch.manual_seed(2)
    student, net = ViewLinear(), WeightNet()
    student_opt = torch.optim.SGD(student.parameters(), lr=0.2)
    forward_fn, loss_fn, features_fn = _closures()
    rw = MetaReweighter(student, net, torch.optim.Adam(net.parameters(), lr=0.05), forward_fn=forward_fn,
                        loss_fn=loss_fn, features_fn=features_fn, inner_lr=0.2)
    for _ in range(steps):
        # meta batch: a held-out (validation) batch with true labels
        train, meta = _batch(gen, flip_text=flip_text), _batch(gen, flip_text=False)
        info = rw.step(train, meta)
        w = rw.weights(info["student_outputs"], train)
        assert not w["text"].requires_grad
        student_opt.zero_grad()
        loss_fn(info["student_outputs"], train, w).backward()
        student_opt.step()
    w = rw.weights(student(train["x"]), train)
    return w["text"].mean().item(), w["image"].mean().item()


def test_meta_learning_down_weights_a_harmful_modality():
    w_text, w_image = _meta_train(flip_text=True)  # teacher text view predicts a wrong label
    assert w_text < 0.7 < 1.3 < w_image


def test_meta_learning_control_keeps_a_helpful_text_view():
    w_text, w_image = _meta_train(flip_text=False)  # same setup, honest text teacher
    assert w_text > 1.3 and w_image > 1.3


def test_reweight_reuses_the_callers_forward():
    gen = torch.Generator().manual_seed(3)
    torch.manual_seed(3)
    student = ViewLinear()
    train, meta = _batch(gen), _batch(gen, flip_text=False)
    forward_fn, loss_fn, features_fn = _closures()
    nets = [WeightNet(), WeightNet()]
    nets[1].load_state_dict(nets[0].state_dict())
    rws = [MetaReweighter(student, n, torch.optim.SGD(n.parameters(), lr=0.5), forward_fn=forward_fn,
                          loss_fn=loss_fn, features_fn=features_fn, inner_lr=0.5) for n in nets]
    out = student(train["x"])
    w_reused = rws[0].reweight(train, meta, student_outputs=out)
    w_fresh = rws[1].reweight(train, meta)
    assert all(torch.allclose(w_reused[m], w_fresh[m]) for m in ("text", "image"))
    assert not torch.allclose(w_fresh["text"], torch.ones(64))  # the net moved away from its start
    loss_fn(out, train, w_reused).backward()  # the caller's graph survives the meta step
    assert student.lin.weight.grad is not None


# ---------------------------------------------------------------- schemes (the objects MSD composes)
class _Rows:
    """A tensor dataset in the form iterate_batches reads (``.tensors``)."""

    def __init__(self, **tensors):
        self.tensors = tensors

    def __len__(self):
        return len(next(iter(self.tensors.values())))


def test_unknown_weighting_lists_the_known_ones():
    known = r"unknown weighting 'learned'; accepted: \['population', 'instance', 'meta'\]"
    with pytest.raises(ValueError, match=known):
        make_weighting("learned")
    with pytest.raises(ValueError, match="unknown instance_method 'gradcam'"):
        make_weighting("instance", temperature=1.0, instance_method="gradcam")
    assert list(SCHEMES) == ["population", "instance", "meta"]


def test_each_scheme_weights_the_auxiliary_views():
    from types import SimpleNamespace

    gen = torch.Generator().manual_seed(0)
    b = _batch(gen, n=8)
    student = ViewLinear()
    out = student(b["x"])
    settings = dict(text_weight=0.5, image_weight=2.0, temperature=2.0, meta_every=2, unread=None)
    for name in SCHEMES:
        scheme = make_weighting(name, **settings)  # each takes the settings it declares
        assert isinstance(scheme, WeightingScheme) and scheme.name == name
        scheme.setup(model=student, accelerator=SimpleNamespace(device=torch.device("cpu")),
                     meta_data=_Rows(x=b["x"], labels=b["labels"]), config=SimpleNamespace(batch_size=4, seed=0),
                     forward=lambda m, batch: m(batch["x"]),
                     objective=lambda s, t, batch, w: msd_loss(s, t, batch["labels"], w, 2.0))
        for _ in range(3):
            w = scheme.weights(student, b, b["teacher_logits"], out)
            assert set(w) == {"text", "image"}
            if scheme.per_sample:
                assert all(v.shape == (8,) and not v.requires_grad for v in w.values())
    assert make_weighting("population", **settings).weights(student, b, b["teacher_logits"], out) == \
        {"text": 0.5, "image": 2.0}
    assert not make_weighting("population").per_sample and make_weighting("instance", temperature=1.0).per_sample
    with pytest.raises(ValueError, match="meta_data"):
        make_weighting("meta", temperature=1.0).setup(model=student, accelerator=None, meta_data=None, config=None,
                                                      forward=None, objective=None)
