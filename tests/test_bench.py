"""make bench's FLOP count and peak: the numbers its fraction-of-peak column is made of."""
import torch

from mmkd_core.bench import matmul_peak, step_flops
from mmkd_core.data.batches import iterate_batches
from mmkd_core.models.multimodal import build_multimodal_model
from mmkd_core.training.methods import make_method
from mmkd_core.training.trainer import make_accelerator

TINY = dict(hidden_size=32, num_attention_heads=2, intermediate_size=64, image_size=32, patch_size=16)


def test_a_step_counts_at_least_three_times_its_classifier_matmul(tiny_data, tokenizer):
    train = tiny_data["train"]
    batch = next(iter(iterate_batches(train, 16, shuffle=False)))
    accelerator = make_accelerator()
    student = build_multimodal_model(train.num_labels, len(tokenizer), "student", seed=0, **TINY)
    flops = step_flops(student, make_method("ce"), batch, None, None, accelerator)
    classifier = [m for m in student.modules() if isinstance(m, torch.nn.Linear)][-1]
    # forward 2·B·in·out, backward twice that: a lower bound the counted step must exceed (it has the encoder too)
    assert flops > 3 * 2 * 16 * classifier.in_features * classifier.out_features
    # twice the rows, twice the work: the count follows the batch
    double = {k: torch.cat([v, v]) for k, v in batch.items()}
    assert abs(step_flops(student, make_method("ce"), double, None, None, accelerator) / flops - 2) < 0.05


def test_matmul_peak_is_a_positive_rate():
    assert matmul_peak(torch.float32, torch.device("cpu"), size=256, repeats=2) > 1e6
