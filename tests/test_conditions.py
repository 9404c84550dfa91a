"""The measured conditions behind a method's help or tie (mmkd_core.conditions): golden values and errors."""
import pandas as pd
import pytest

from mmkd_core.conditions import (conditions_reading, cue_ceiling, measured_conditions, view_references,
                                   weight_movement)
from mmkd_core.experiments import ExperimentConfig

TEACHER = {"test/accuracy": 0.90, "test/text/accuracy": 0.70, "test/image/accuracy": 0.40}
REFERENCES = {"text": ("text cue ceiling", 0.55), "image": ("image cue ceiling", 0.35)}


def kd_runs(*accuracies):
    return pd.DataFrame({"method": ["KD (transfer set)"] * len(accuracies), "seed": range(len(accuracies)),
                         "test/accuracy": accuracies})


def comparison(difference, resolvable, overlap):
    return pd.DataFrame([{"comparison": "MSD population − KD (transfer set)", "difference (points)": difference,
                          "resolvable difference (points)": resolvable, "CIs overlap": overlap}])


def test_measured_conditions_golden_values():
    table = measured_conditions(TEACHER, kd_runs(0.80, 0.82), REFERENCES, gram_distance=0.25,
                                weights={"meta": {"text mean |w − 1|": 0.1}}).set_index("condition")["value"]
    assert table["headroom: teacher − KD student"] == pytest.approx(9.0)
    assert table["text-only view − text cue ceiling"] == pytest.approx(15.0)
    assert table["image-only view − image cue ceiling"] == pytest.approx(5.0)
    assert table["joint view − best single view"] == pytest.approx(20.0)
    assert table["‖Ḡ − uniform‖ (teacher's mean Gram matrix)"] == pytest.approx(0.25)
    assert table["meta weights, text mean |w − 1|"] == pytest.approx(0.1)


def test_reading_expects_a_help_with_headroom_and_a_view_of_its_own_and_says_what_was_measured():
    conditions = measured_conditions(TEACHER, kd_runs(0.80, 0.82), REFERENCES)
    lines = conditions_reading(conditions, comparison(1.0, 2.0, True), "MSD")
    assert "9.0 points above the KD student" in lines[0] and "2.0 points" in lines[0]
    assert lines[-1].startswith("So MSD could help here") and "text view carries" in lines[-1]
    assert lines[-1].endswith("every comparison with KD is a tie here.")
    assert "it helps here" in conditions_reading(conditions, comparison(3.0, 2.0, False), "MSD")[-1]


def test_reading_says_why_not_without_headroom_or_without_single_view_evidence():
    no_room = measured_conditions(TEACHER, kd_runs(0.894, 0.90), REFERENCES)
    line = conditions_reading(no_room, comparison(0.0, 1.0, True), "Gram")[-1]
    assert line.startswith("So Gram is not expected to help here") and "(+0.3 points) is no more than the 1.0 points" in line
    flat_views = measured_conditions({**TEACHER, "test/text/accuracy": 0.56}, kd_runs(0.8), REFERENCES)
    line = conditions_reading(flat_views, comparison(0.0, 1.0, True), "Gram")[-1]
    assert "no single-modality view is 10 points above its reference" in line


def test_weight_movement_per_sample_late_means():
    weights = pd.DataFrame({"index": [0, 1, 0, 1], "step": [0, 0, 10, 10],
                            "text": [5.0, 5.0, 1.5, 0.5], "image": [1.0, 1.0, 1.0, 1.0]})
    moved = weight_movement(weights, start=1.0, last_fraction=0.5)  # only step 10 is late
    assert moved["text mean |w − 1|"] == pytest.approx(0.5)
    assert moved["text std across samples"] == pytest.approx(0.5)
    assert moved["image mean |w − 1|"] == 0 and moved["image std across samples"] == 0


def test_view_references_on_shapes_are_the_cue_ceilings():
    config = ExperimentConfig.preset("fast", dataset_options={"text_cue": 0.4, "image_cue": 0.1})
    references = view_references("shapes", config)
    assert references["text"] == ("text cue ceiling", pytest.approx(0.4 + 0.6 / 3))
    assert references["image"] == ("image cue ceiling", pytest.approx(0.1 + 0.9 / 3))


def test_view_references_elsewhere_read_the_texts_and_the_label_counts():
    train = pd.DataFrame({"text": ["a", "a", "b", "c"], "label": [1, 1, 0, 1]})
    test = pd.DataFrame({"text": ["a", "b", "d", "b"], "label": [1, 0, 0, 1]})
    references = view_references("easy_vqa", train_rows=train, test_rows=test)
    assert references["text"][1] == pytest.approx(0.5)   # a→1 right, b→0 right, d→1 (fallback) wrong, b→0 wrong
    assert references["image"] == ("most frequent label", pytest.approx(0.5))


@pytest.mark.parametrize("call, message", [
    (lambda: measured_conditions({"test/accuracy": 0.9}, kd_runs(0.8), REFERENCES), "with the text and image views"),
    (lambda: measured_conditions(TEACHER, kd_runs(0.8).assign(method="CE"), REFERENCES), r"no 'KD \(transfer set\)'"),
    (lambda: weight_movement(pd.DataFrame({"text": [1.0]})), "lacks columns"),
    (lambda: view_references("shapes"), "need the experiment's config"),
    (lambda: view_references("easy_vqa"), "needs its training and test rows"),
    (lambda: conditions_reading(measured_conditions(TEACHER, kd_runs(0.8), REFERENCES), comparison(0, 1, True)[:0],
                                "MSD"), "no comparison"),
])
def test_bad_input_names_what_was_expected(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_cue_ceiling_of_each_modality():
    from mmkd_core.data.shapes import ShapesConfig

    config = ShapesConfig(text_cue=0.3, image_cue=0.0, task="nlvr")
    assert cue_ceiling(config, "text") == pytest.approx(0.3 + 0.7 / 2)
    assert cue_ceiling(config, "image") == pytest.approx(0.5)
    with pytest.raises(ValueError, match="'text' or 'image'"):
        cue_ceiling(config, "joint")


def test_collect_overview_and_reading_across_notebooks_and_sections(tmp_path):
    from mmkd_core.conditions import collect_conditions, conditions_overview, overview_reading

    (tmp_path / "tables").mkdir()
    (tmp_path / "easy_vqa" / "tables").mkdir(parents=True)
    (tmp_path / "_scratch" / "tables").mkdir(parents=True)
    measured_conditions(TEACHER, kd_runs(0.80), REFERENCES).assign(task="ve").to_csv(
        tmp_path / "tables" / "03_conditions.csv", index=False)
    measured_conditions(TEACHER, kd_runs(0.89), REFERENCES, gram_distance=0.3).assign(task="easy_vqa").to_csv(
        tmp_path / "easy_vqa" / "tables" / "04_conditions.csv", index=False)
    measured_conditions(TEACHER, kd_runs(0.0), REFERENCES).assign(task="ignored").to_csv(
        tmp_path / "_scratch" / "tables" / "03_conditions.csv", index=False)
    collected = collect_conditions(tmp_path)
    assert sorted(collected["source"].unique()) == ["03", "easy_vqa/04"]
    overview = conditions_overview(collected).set_index("task")
    assert overview.loc["ve", "headroom (points)"] == pytest.approx(10.0)
    assert overview.loc["easy_vqa", "‖Ḡ − uniform‖"] == pytest.approx(0.3)
    assert overview.loc["easy_vqa", "measured in"] == "easy_vqa/04"
    claims = pd.DataFrame([
        {"task": "ve", "comparison": "MSD population − KD (transfer set)", "difference (points)": 2.5,
         "resolvable difference (points)": 1.0, "CIs overlap": False},
        {"task": "easy_vqa", "comparison": "Gram − KD (transfer set)", "difference (points)": 0.1,
         "resolvable difference (points)": 1.5, "CIs overlap": True},
        {"task": "ve", "comparison": "KD (transfer set) − CE (no teacher)", "difference (points)": 20.0,
         "resolvable difference (points)": 9.0, "CIs overlap": False}])
    ve, easy = overview_reading(overview.reset_index(), claims)
    assert ve.startswith("ve: headroom +10.0 points against a resolvable 1.0") and "could help" in ve
    assert ve.endswith("1 of 1 comparisons with KD separate upward.")
    assert "would not be expected to help" in easy   # headroom 1.0 is below the resolvable 1.5
    assert conditions_overview(collect_conditions(tmp_path / "nothing")).empty


def test_a_comparison_with_every_run_at_100_percent_is_at_ceiling_not_unresolved():
    from mmkd_core import results

    runs = pd.DataFrame({"task": "memes", "method": ["Gram"] * 3 + ["KD (transfer set)"] * 3 + ["CE"] * 3,
                         "seed": [0, 1, 2] * 3, "test/accuracy": [1.0] * 6 + [1.0, 0.9, 1.0]})
    ceiling = results.compare(runs, "memes", "Gram", "KD (transfer set)")
    assert ceiling["at ceiling"] and results.verdict(ceiling).startswith("at ceiling")
    below = results.compare(runs, "memes", "CE", "KD (transfer set)")
    assert not below["at ceiling"] and not results.verdict(below).startswith("at ceiling")


def test_reading_says_when_the_runs_contradict_the_conditions():
    flat_views = measured_conditions({**TEACHER, "test/text/accuracy": 0.56}, kd_runs(0.8), REFERENCES)
    line = conditions_reading(flat_views, comparison(2.8, 1.3, False), "MSD")[-1]
    assert line.startswith("So by these conditions MSD would not be expected to help here")
    assert "yet it helps here (MSD population − KD (transfer set))" in line and "not measured here" in line


def test_view_references_load_the_rows_the_experiment_reads(monkeypatch):
    import types

    from mmkd_core import conditions

    calls = []
    rows = {"train": pd.DataFrame({"text": ["a", "a", "b"], "label": [1, 1, 0]}),
            "test": pd.DataFrame({"text": ["a", "b"], "label": [1, 1]})}

    def fake_load(dataset, split, root=None, **options):
        calls.append((dataset, split, root, options))
        return rows[split]

    monkeypatch.setattr(conditions, "load", fake_load)
    config = types.SimpleNamespace(dataset_options={"max_questions": {"train": 10}})
    references = view_references("easy_vqa", config, data_root="/data/evqa")
    assert calls == [("easy_vqa", split, "/data/evqa", {"max_questions": {"train": 10}}) for split in ("train", "test")]
    assert references["text"][1] == pytest.approx(0.5) and references["image"][1] == pytest.approx(1.0)
