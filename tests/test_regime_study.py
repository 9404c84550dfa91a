"""Notebook 07's study: its settings, premises and plateau check (the runs themselves: test_runs, test_regime)."""
import pandas as pd
import pytest
import torch

from mmkd_core.experiments import Protocol
from mmkd_core.experiments import regimes
from mmkd_core.training.cache import TeacherCache


def test_the_study_runs_under_benchmark_v2_and_protocol_v3_whatever_the_notebooks_protocol():
    protocol = Protocol.named("embedded-v2")
    study = protocol.regime_protocol()
    config = study.experiment_config(protocol.regimes.task)
    assert config.dataset_options["text_evidence"] > 0 and config.dataset_options["disjoint_splits"] is True
    assert config.teacher_rows == 18000 and config.teacher_epochs == 60
    assert config.student_min_steps == 600 and config.meta_rows == 50
    assert not set(study.tuning_seeds) & set(study.seeds)  # tuning seeds apart from the evaluation seeds
    assert "text_evidence" not in protocol.experiment_config("ve").dataset_options  # notebooks 02-06 keep v1 there
    assert Protocol.embedded().regime_protocol().experiment_config("ve") == Protocol.embedded().experiment_config("ve")
    assert Protocol.named("embedded", benchmark="v2").experiment_config("memes").dataset_options["label_noise"] == 0.3
    with pytest.raises(ValueError, match="unknown shapes benchmark 'v3'"):
        Protocol.named("embedded", benchmark="v3").experiment_config("ve")


@pytest.mark.parametrize("bad, match", [
    ({"teachers": ("oracle",)}, r"unknown teachers \['oracle'\]; accepted: \['from scratch', 'pretrained two-tower'\]"),
    ({"methods": ("KD", "DKD")}, r"unknown methods \['DKD'\]"),
    ({"methods": ("MSD", "Gram")}, "must include the baseline 'KD'"),
])
def test_a_study_names_what_it_accepts(bad, match):
    with pytest.raises(ValueError, match=match):
        regimes.RegimeStudy(**bad)


def test_a_spec_carries_the_chosen_cell_and_the_transfer_size():
    from mmkd_core import regime_map

    made = regime_map.spec("Gram", {"config.student_lr": 1e-3, "lam": 10.0}, transfer_rows=1000)
    assert made == {"label": "Gram", "method": "gram", "kwargs": {"lam": 10.0}, "data": "transfer",
                    "config": {"student_lr": 1e-3, "transfer_rows": 1000}}


def test_plateau_runs_flags_a_run_on_the_plateau_only_when_a_sibling_left_it():
    runs = pd.DataFrame({"teacher": ["t"] * 5, "transfer rows": [0, 0, 0, 1000, 1000], "method": ["KD"] * 5,
                         "seed": [0, 1, 2, 0, 1], "test/accuracy": [0.52, 0.70, 0.60, 0.51, 0.53],
                         "best_step": [100] * 5, "steps": [300] * 5})
    flagged = regimes.plateau_runs(runs, plateau=0.51)
    # cell 0: seed 0 sits 1 point from the plateau while seed 1 ended 19 above it; seed 2 is 9 points above: not flagged.
    # cell 1000: both seeds sit on the plateau, no sibling left it: nothing to flag.
    assert flagged[["transfer rows", "seed"]].values.tolist() == [[0, 0]]
    assert regimes.plateau_runs(runs[runs["transfer rows"] == 1000], plateau=0.51).empty


def test_the_gram_distance_is_zero_for_a_teacher_that_says_nothing():
    flat = TeacherCache({v: torch.zeros(10, 3) for v in ("text", "image", "joint")},
                        {v: torch.zeros(10, 4) for v in ("text", "image", "joint")}, "t", "d")
    assert regimes.teacher_gram_distance(flat, 3) == pytest.approx(0.0, abs=1e-7)
    sure = TeacherCache({v: torch.tensor([[50.0, 0.0, 0.0]] * 10) for v in ("text", "image", "joint")},
                        {v: torch.zeros(10, 4) for v in ("text", "image", "joint")}, "t", "d")
    # one-hot outputs agreeing on one class: every entry of G is 1, so ‖G − 1/3‖_F = 3 · (2/3) = 2
    assert regimes.teacher_gram_distance(sure, 3, temperature=1.0) == pytest.approx(2.0, abs=1e-4)


def test_premises_in_points():
    teacher = regimes.Teacher("from scratch", None, {"test/accuracy": 0.80, "test/text/accuracy": 0.55,
                                                     "test/image/accuracy": 0.50})
    control = pd.DataFrame({"test/accuracy": [0.70, 0.74]})
    ceilings = {"text": 0.56, "image": 0.55, "cues": 0.45, "text cue ceiling": 0.40, "image cue ceiling": 0.40}
    [line] = regimes.premises([teacher], control, ceilings, {"from scratch": 0.3}).to_dict("records")
    assert line["teacher − CE (all labels) (points)"] == pytest.approx(8.0)
    assert line["text-only − cue ceiling (points)"] == pytest.approx(15.0)
    assert line["image-only − cue ceiling (points)"] == pytest.approx(10.0)
    assert line["joint − best single view (points)"] == pytest.approx(25.0)
    assert line["kept epoch / trained epochs"] == "None / None"  # a teacher row without them
