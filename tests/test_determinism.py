"""Cold equals warm: everything cached is a pure function of its key, whichever process and thread count computes it.

The two-tower teacher is the case that broke: its tower features and fusion head were computed in a notebook's
kernel (2 threads) once and in a one-thread worker of ``make reproduce``'s teachers phase another time, and the
teacher came out 0.3 points apart, enough to flip a verdict downstream. Here both paths run and the bytes are
compared.
"""
import functools

import torch

from mmkd_core.data import load
from mmkd_core.determinism import fixed_cpu_threads
from mmkd_core.models import two_tower
from mmkd_core.training import fusion_head
from mmkd_core.parallel import parallel_map

ROWS = dict(task="ve", n_train=96, n_validation=48, n_test=24)
INPUT_SIZE = 64  # small, to keep the CNN at a few seconds; the thread-count effect shows at any size


def features_and_head(_, root: str) -> dict[str, bytes]:
    """Tower features of two splits and a fusion head fitted on them, as bytes (nothing read from a cache)."""
    rows = {split: load("shapes", split, root=root, **ROWS) for split in ("train", "validation")}
    towers = two_tower.load_towers(root)
    features = {split: two_tower.tower_features(part, input_size=INPUT_SIZE, root=root, towers=towers, cache=False)
                for split, part in rows.items()}
    fit = fusion_head.fit_two_tower_teacher(features["train"], features["validation"], num_labels=3,
                                          fusions=("concat",), epochs=2, seed=0, cache=False, root=root)
    out = {f"{split}.{name}": getattr(f, name).contiguous().numpy().tobytes()
           for split, f in features.items() for name in ("text", "image")}
    out.update({f"head.{k}": v.contiguous().numpy().tobytes() for k, v in fit.head.state_dict().items()})
    out["teacher logits"] = fit.head.predict(features["validation"]).logits["joint"].numpy().tobytes()
    return out


def test_two_tower_features_and_head_are_the_same_bytes_in_a_notebook_and_in_a_one_thread_worker(tmp_path):
    root = str(tmp_path)
    previous = torch.get_num_threads()
    torch.set_num_threads(2)  # a notebook's kernel on a 2-core machine
    try:
        here = features_and_head(None, root)
    finally:
        torch.set_num_threads(previous)
    # the teachers phase of make reproduce: a spawned worker on one thread (runs._prepare_teacher)
    [there] = _in_one_thread_worker(root)
    assert here.keys() == there.keys()
    different = [name for name in here if here[name] != there[name]]
    assert not different, f"computed differently in the worker: {different}"


def _one_thread(item, root):
    torch.set_num_threads(1)
    return features_and_head(item, root)


def _in_one_thread_worker(root: str) -> list[dict]:
    # two items, so parallel_map really starts worker processes (one item would run here)
    return parallel_map(functools.partial(_one_thread, root=root), [None, None], workers=2)[:1]


def test_fixed_cpu_threads_sets_one_thread_on_the_cpu_and_restores_the_count():
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with fixed_cpu_threads("cpu"):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with fixed_cpu_threads(None):  # not a CPU computation: left alone
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)
