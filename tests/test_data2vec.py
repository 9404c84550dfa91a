"""data2vec targets and loss (mmkd_core.losses.data2vec): golden values on hand-computed tensors, errors."""
import math

import pytest
import torch

from mmkd_core.losses import Data2VecDistillationLoss, Data2VecLossConfig, data2vec_loss, data2vec_regression_loss, data2vec_targets
from mmkd_core.losses.data2vec import apply_cls_target_mean_of_patches, instance_norm_over_tokens

# Two layers of one sample with N = 2 tokens and D = 2 channels.
#   layer 1: channel 0 = (1, 3) → mean 2, var 1 → (-1, 1); channel 1 = (6, 2) → mean 4, var 4 → (1, -1)
#   layer 2: channel 0 = (0, 2) → (-1, 1);                  channel 1 = (0, 2) → (-1, 1)
LAYER_1 = torch.tensor([[[1.0, 6.0], [3.0, 2.0]]])
LAYER_2 = torch.tensor([[[0.0, 0.0], [2.0, 2.0]]])
TOL = dict(atol=1e-4, rtol=0)


def test_instance_norm_normalises_each_channel_over_tokens():
    expected = torch.tensor([[[-1.0, 1.0], [1.0, -1.0]]])
    torch.testing.assert_close(instance_norm_over_tokens(LAYER_1), expected, **TOL)


def test_mean_of_instance_normed_layers_without_layer_norm():
    # ((-1, 1) + (-1, -1)) / 2 = (-1, 0) for token 0; ((1, -1) + (1, 1)) / 2 = (1, 0) for token 1
    expected = torch.tensor([[[-1.0, 0.0], [1.0, 0.0]]])
    torch.testing.assert_close(data2vec_targets([LAYER_1, LAYER_2], layer_norm=False), expected, **TOL)


def test_full_target_layer_norms_the_average():
    # token (-1, 0): mean -0.5, var 0.25 → (-1, 1); token (1, 0) → (1, -1)
    expected = torch.tensor([[[-1.0, 1.0], [1.0, -1.0]]])
    torch.testing.assert_close(data2vec_targets([LAYER_1, LAYER_2]), expected, **TOL)


def test_top_k_keeps_the_last_layers():
    # only layer 2: instance norm gives (-1, -1), (1, 1); each token is constant, so layer norm gives 0
    torch.testing.assert_close(data2vec_targets([LAYER_1, LAYER_2], top_k=1), torch.zeros(1, 2, 2), **TOL)
    torch.testing.assert_close(data2vec_targets([LAYER_1, LAYER_2], top_k=1, layer_norm=False),
                               torch.tensor([[[-1.0, -1.0], [1.0, 1.0]]]), **TOL)
    torch.testing.assert_close(data2vec_targets([LAYER_1, LAYER_2], top_k=2), data2vec_targets([LAYER_1, LAYER_2]))


def test_without_any_normalisation_the_target_is_the_plain_mean():
    expected = (LAYER_1 + LAYER_2) / 2
    torch.testing.assert_close(data2vec_targets([LAYER_1, LAYER_2], instance_norm=False, layer_norm=False), expected)


def test_instance_norm_over_features_is_the_other_reading():
    # per token over channels: token (1, 6) → (-1, 1); token (3, 2) → (1, -1)
    out = data2vec_targets([LAYER_1], instance_norm_over="features", layer_norm=False)
    torch.testing.assert_close(out, torch.tensor([[[-1.0, 1.0], [1.0, -1.0]]]), **TOL)


def test_target_is_invariant_to_per_layer_channel_scale_and_shift():
    # Why instance norm before averaging: a layer with large activations cannot dominate the mean.
    torch.manual_seed(0)
    layers = [torch.randn(2, 5, 4) for _ in range(3)]
    rescaled = [layers[0] * 100 + 7, layers[1], layers[2] * 0.5]
    torch.testing.assert_close(data2vec_targets(layers), data2vec_targets(rescaled), atol=1e-3, rtol=0)


def test_output_shape_and_dtype_for_bf16_inputs():
    layers = [torch.randn(3, 7, 8, dtype=torch.bfloat16) for _ in range(4)]
    out = data2vec_targets(layers, top_k=2)
    assert out.shape == (3, 7, 8) and out.dtype == torch.float32


def test_mse_loss_golden_value():
    prediction = torch.zeros(1, 2, 2)
    target = torch.tensor([[[1.0, 1.0], [2.0, 0.0]]])
    # token errors: mean(1, 1) = 1, mean(4, 0) = 2 → mean over tokens 1.5
    assert data2vec_regression_loss(prediction, target).item() == pytest.approx(1.5)


def test_data2vec2_loss_sums_channels_and_scales_by_inverse_sqrt_dim():
    prediction = torch.zeros(1, 2, 2)
    target = torch.tensor([[[1.0, 1.0], [2.0, 0.0]]])
    config = Data2VecLossConfig(feature_reduction="sum", loss_scale="inv_sqrt_dim")
    # token sums 2 and 4 → mean 3, times 1/√2
    assert data2vec_regression_loss(prediction, target, config).item() == pytest.approx(3 / math.sqrt(2))


def test_smooth_l1_with_beta():
    prediction = torch.zeros(1, 1, 2)
    target = torch.tensor([[[1.0, 3.0]]])
    # smooth L1 (β = 2): |x| < β → 0.5 x² / β = 0.25; |x| ≥ β → |x| - β/2 = 2 → mean 1.125
    config = Data2VecLossConfig(loss_beta=2.0)
    assert data2vec_regression_loss(prediction, target, config).item() == pytest.approx(1.125)


def test_cls_target_mean_of_patches():
    target = torch.tensor([[[9.0, 9.0], [1.0, 2.0], [3.0, 6.0]]])
    expected = torch.tensor([[[2.0, 4.0], [1.0, 2.0], [3.0, 6.0]]])
    torch.testing.assert_close(apply_cls_target_mean_of_patches(target), expected)


def test_loss_is_zero_for_identical_stacks_and_positive_otherwise():
    torch.manual_seed(0)
    teacher = [torch.randn(2, 5, 8) for _ in range(6)]
    assert data2vec_loss(teacher, teacher).item() == pytest.approx(0.0, abs=1e-6)
    # A shallower student with different activations: positive loss, gradients reach the student.
    student = [torch.randn(2, 5, 8, requires_grad=True) for _ in range(2)]
    loss = data2vec_loss(student, teacher)
    loss.backward()
    assert loss.item() > 0 and student[0].grad is not None


def test_presets_differ_as_documented():
    assert Data2VecLossConfig.draft() == Data2VecLossConfig()
    d2v1 = Data2VecLossConfig.data2vec1_vision()
    assert (d2v1.instance_norm_target_layer, d2v1.layer_norm_target_layer, d2v1.average_top_k_layers, d2v1.loss_beta) == (False, True, 6, 2.0)
    d2v2 = Data2VecLossConfig.data2vec2()
    assert (d2v2.cls_target, d2v2.loss_scale) == ("mean_of_patches", "inv_sqrt_dim")


def test_module_with_projection_for_different_widths_and_cached_targets():
    torch.manual_seed(0)
    teacher = [torch.randn(2, 5, 16) for _ in range(4)]
    student = [torch.randn(2, 5, 8) for _ in range(2)]
    loss_module = Data2VecDistillationLoss(student_dim=8, teacher_dim=16)
    assert loss_module.projection.in_features == 8 and loss_module.projection.out_features == 16
    from_states = loss_module(student, teacher)
    from_cache = loss_module(student, teacher_targets=loss_module.config.targets(teacher))
    torch.testing.assert_close(from_states, from_cache)
    assert Data2VecDistillationLoss(student_dim=16, teacher_dim=16).projection is None


# ---------------------------------------------------------------------------------------- bad input
def test_empty_layer_list_is_rejected():
    with pytest.raises(ValueError, match="empty"):
        data2vec_targets([])


@pytest.mark.parametrize("top_k", [0, 3, -1])
def test_top_k_outside_depth_is_rejected(top_k):
    with pytest.raises(ValueError, match=r"top_k must be None or an int in 1\.\.2"):
        data2vec_targets([LAYER_1, LAYER_2], top_k=top_k)


def test_mismatched_token_counts_are_rejected():
    with pytest.raises(ValueError, match="token counts differ: 5 vs 7"):
        data2vec_loss([torch.randn(2, 5, 8)], [torch.randn(2, 7, 8)])
    with pytest.raises(ValueError, match="token counts"):
        Data2VecDistillationLoss()([torch.randn(2, 5, 8)], teacher_targets=torch.randn(2, 7, 8))


def test_different_widths_without_projection_are_rejected():
    with pytest.raises(ValueError, match="projection head"):
        data2vec_loss([torch.randn(2, 5, 8)], [torch.randn(2, 5, 16)])


def test_layers_of_different_shapes_and_single_tensor_are_rejected():
    with pytest.raises(ValueError, match=r"hidden_states\[1\] has shape"):
        data2vec_targets([torch.randn(1, 2, 2), torch.randn(1, 3, 2)])
    with pytest.raises(ValueError, match="sequence of"):
        data2vec_targets(torch.randn(1, 2, 2))
    with pytest.raises(ValueError, match=r"\[B, N, D\]"):
        data2vec_targets([torch.randn(2, 2)])


def test_bad_config_values_are_rejected():
    with pytest.raises(ValueError, match="cls_target"):
        Data2VecLossConfig(cls_target="first")
    with pytest.raises(ValueError, match="loss_scale"):
        Data2VecLossConfig(loss_scale="sqrt")
