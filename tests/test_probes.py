"""Frozen-feature probes and efficiency helpers (mmkd_core.evaluation.probes)."""
import numpy as np
import pytest
import torch

from mmkd_core.evaluation.probes import count_parameters, extract_features, knn_accuracy, linear_probe_accuracy, measure_throughput

# Two classes on two directions; cosine similarity ignores the norms.
TRAIN_X = np.array([[1.0, 0.0], [5.0, 0.5], [0.0, 1.0], [0.3, 4.0]])
TRAIN_Y = np.array([0, 0, 1, 1])


def test_knn_golden_values():
    test_x = np.array([[10.0, 1.0], [0.1, 2.0]])
    assert knn_accuracy(TRAIN_X, TRAIN_Y, test_x, np.array([0, 1]), k=1) == 1.0
    assert knn_accuracy(TRAIN_X, TRAIN_Y, test_x, np.array([1, 1]), k=1) == 0.5


def test_knn_tie_goes_to_the_more_similar_class():
    # k = 2 over two training points: always one vote each, so the summed similarity decides.
    train_x, train_y = np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([0, 1])
    test_x = np.array([[1.0, 0.5], [0.5, 1.0]])  # cos 0.89 vs 0.45, then the reverse
    assert knn_accuracy(train_x, train_y, test_x, np.array([0, 1]), k=2) == 1.0


def test_linear_probe_separates_separable_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5))
    y = (x[:, 0] > 0).astype(int)
    assert linear_probe_accuracy(x[:150], y[:150], x[150:], y[150:]) > 0.9


def test_probe_errors():
    with pytest.raises(ValueError, match="k must be an int in 1..4"):
        knn_accuracy(TRAIN_X, TRAIN_Y, TRAIN_X, TRAIN_Y, k=5)
    with pytest.raises(ValueError, match="differ in width"):
        linear_probe_accuracy(TRAIN_X, TRAIN_Y, np.ones((2, 3)), np.array([0, 1]))
    with pytest.raises(ValueError, match="one label per row"):
        knn_accuracy(TRAIN_X, TRAIN_Y[:3], TRAIN_X, TRAIN_Y)


def test_extract_features_batches_and_checks():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    images = torch.randn(5, 3, 2, 2)
    features = extract_features(model, images, batch_size=2)
    assert features.shape == (5, 3) and features.dtype == np.float32
    np.testing.assert_allclose(features, model(images).detach().numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"\[M, C, H, W\]"):
        extract_features(model, torch.randn(5, 12))


def test_parameters_and_throughput():
    shared = torch.nn.Linear(3, 3)
    model = torch.nn.Sequential(shared, shared, torch.nn.Linear(3, 1))
    assert count_parameters(model) == 12 + 4
    rate = measure_throughput(model, torch.randn(8, 3), warmup=1, iterations=2)
    assert rate > 0
    with pytest.raises(ValueError, match="non-empty"):
        measure_throughput(model, torch.randn(0, 3))


def test_timed_throughput_runs_warmup_untimed_and_counts_the_given_samples():
    from mmkd_core.evaluation.probes import timed_throughput

    calls = []
    rate = timed_throughput(calls.append, ["w1", "w2"], ["a", "b", "c"], samples=30, device=torch.device("cpu"))
    assert calls == ["w1", "w2", "a", "b", "c"] and rate > 0


def test_inference_throughput_times_the_model_and_restores_its_mode(tokenizer, tiny_data):
    from mmkd_core.experiments import inference_throughput
    from mmkd_core.models.multimodal import build_multimodal_model

    model = build_multimodal_model(num_labels=3, vocab_size=len(tokenizer), preset="student", seed=0).train()
    seen = []
    model.register_forward_hook(lambda module, args, kwargs_out: seen.append(1))
    rate = inference_throughput(model, tiny_data["validation"], batch_size=16, batches=2)
    assert rate > 0 and model.training  # back in training mode
    assert len(seen) == 3  # one warm-up batch, then two timed ones
