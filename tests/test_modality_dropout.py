"""Modality dropout has one draw (training/modality_dropout.py), shared by the teachers' method and the two-tower
fusion head: from the same random numbers it draws the views their own copies drew before they shared it.

The golden values were computed with the code before the draw was factored out: the method's inline
``torch.multinomial`` on torch's global generator, and the fusion head's loop on its own generator."""
import types

import pytest
import torch

from mmkd_core.training.methods import make_method
from mmkd_core.training.modality_dropout import draw_views

# (joint_probability, rows, seed): views drawn, then the next two torch.rand values (the generator's state after)
METHOD_GOLDEN = {
    (0.5, 12, 0): ([2, 1, 0, 2, 1, 2, 0, 0, 1, 0, 0, 0], [0.41940832138061523, 0.5529070496559143]),
    (0.2, 9, 3): ([0, 1, 2, 0, 2, 2, 0, 1, 1], [0.8473186492919922, 0.8748562335968018]),
    (1.0, 5, 1): ([0, 0, 0, 0, 0], [0.6386804580688477, 0.524665892124176]),
}
# train_fusion_head(10 rows, batch 4, 2 epochs, joint_probability 0.3, seed 5): the views of each training batch
FUSION_GOLDEN = [[2, 1, 0, 1], [0, 1, 0, 0], [2, 1], [1, 2, 1, 0], [1, 2, 0, 0], [0, 1]]


@pytest.mark.parametrize("setting", list(METHOD_GOLDEN))
def test_the_method_draws_the_views_it_drew_before(setting):
    joint_probability, rows, seed = setting
    seen = {}

    def model(input_ids, attention_mask, pixel_values, view_index):
        seen["views"] = view_index.tolist()
        return types.SimpleNamespace(logits={"per_sample": torch.zeros(len(view_index), 3, requires_grad=True)})

    torch.manual_seed(seed)
    batch = {"labels": torch.zeros(rows, dtype=torch.long), "input_ids": None, "attention_mask": None,
             "pixel_values": None}
    make_method("ce_modality_dropout", joint_probability=joint_probability).step_losses(model, batch, None)
    views, after = METHOD_GOLDEN[setting]
    assert seen["views"] == views
    assert torch.rand(2).tolist() == after  # the same random numbers consumed, no more


@pytest.mark.parametrize("setting", list(METHOD_GOLDEN))
def test_draw_views_from_the_global_generator_or_a_given_one_consumes_the_same_numbers(setting):
    joint_probability, rows, seed = setting
    views, after = METHOD_GOLDEN[setting]
    torch.manual_seed(seed)
    assert draw_views(rows, joint_probability).tolist() == views
    assert torch.rand(2).tolist() == after
    generator = torch.Generator().manual_seed(seed)
    assert draw_views(rows, joint_probability, generator=generator).tolist() == views
    assert torch.rand(2, generator=generator).tolist() == after


def test_draw_views_from_a_generator_continues_the_fusion_heads_old_sequence():
    """The fusion head's old loop drew from its own generator: one randperm per epoch, one draw per batch. The same
    calls through draw_views give the views that loop gave (FUSION_GOLDEN, recorded from train_fusion_head)."""
    generator = torch.Generator().manual_seed(5)
    drawn = []
    for _ in range(2):  # epochs
        order = torch.randperm(10, generator=generator)
        for begin in range(0, 10, 4):
            drawn.append(draw_views(len(order[begin:begin + 4]), 0.3, generator=generator).tolist())
    assert drawn == FUSION_GOLDEN


def test_draw_views_splits_the_rest_evenly_between_text_and_image():
    torch.manual_seed(0)
    views = draw_views(60_000, 0.4)
    shares = torch.bincount(views, minlength=3).float() / len(views)
    assert shares.tolist() == pytest.approx([0.4, 0.3, 0.3], abs=0.01)
