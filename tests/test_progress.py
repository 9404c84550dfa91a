"""The teachers phase's live progress: events from worker processes reach the parent, and change no teacher."""
import io
import queue

import torch

from mmkd_core.experiments import ExperimentConfig, get_teacher, prepare_data
from mmkd_core.progress import TeacherBars, TeacherReporter
from mmkd_core.runs import prepare_teachers, teacher_is_cached

TINY = {"hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64}
ROWS = {"n_train": 96, "n_validation": 48, "n_test": 24}


def tiny_teacher(task: str) -> dict:
    """A teachers-list entry of the fast preset (2 epochs), small enough for a few seconds in a worker."""
    return {"preset": "fast", "task": task, "dataset_options": dict(ROWS), "teacher_overrides": TINY,
            "batch_size": 32}


def test_epochs_of_teachers_in_workers_reach_the_parent_and_draw_bars(tmp_path, monkeypatch):
    monkeypatch.setenv("MMKD_DATA_DIR", str(tmp_path / "data"))  # the spawned workers inherit it
    entries = [tiny_teacher("ve"), tiny_teacher("memes")]
    assert not any(teacher_is_cached(entry) for entry in entries)
    events = []
    lines = prepare_teachers(entries, workers=2, on_progress=events.append)  # two entries: two worker processes
    assert lines[0].startswith("fast/ve n_train=96 n_validation=48 n_test=24 teacher_overrides=")
    assert lines[1].startswith("fast/memes ") and all(": teacher kept epoch" in line for line in lines)
    for number in (0, 1):
        mine = [event for event in events if event["teacher"] == number]
        assert mine[0] == {"teacher": number, "done": 0, "total": 2, "unit": "epoch"}  # sent before any epoch
        epochs = mine[1:-1]
        assert [event["done"] for event in epochs] == [1, 2]
        assert all(0.0 <= event["accuracy"] <= 1.0 for event in epochs)
        assert mine[-1]["finished"] and mine[-1]["summary"].startswith("teacher kept epoch")

    # the bars the parent draws from these events: each teacher ends "done" with its summary
    output = io.StringIO()
    bars = TeacherBars(["ve", "memes"], [False, False], file=output)
    for event in events:
        bars(event)
    bars.close()
    assert output.getvalue().count("done in") >= 2 and "teacher kept epoch" in output.getvalue()

    # a second phase finds both cached: no epoch is reported, and the bars show them cached from the start
    assert all(teacher_is_cached(entry) for entry in entries)
    again = []
    prepare_teachers(entries, workers=1, on_progress=again.append)
    assert not [event for event in again if event.get("unit") == "epoch" and event["done"]]
    output = io.StringIO()
    bars = TeacherBars(["ve", "memes"], [True, True], file=output)
    for event in again:
        bars(event)
    bars.close()
    assert "cached" in output.getvalue() and "epoch" not in output.getvalue().replace("kept epoch", "")


def test_a_teacher_trained_with_the_progress_callback_has_the_same_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("MMKD_DATA_DIR", str(tmp_path / "data"))
    config = ExperimentConfig.preset("fast", "ve")
    data = prepare_data(config)
    plain, _ = get_teacher(config, data, retrain=True, progress=False)
    events = queue.Queue()  # what a worker's manager queue does, in this process
    reported, _ = get_teacher(config, data, retrain=True, progress=False,
                              on_evaluate=TeacherReporter(events, 0).epoch_callback(config.teacher_epochs))
    assert events.qsize() == config.teacher_epochs
    plain_state, reported_state = plain.state_dict(), reported.state_dict()
    assert plain_state.keys() == reported_state.keys()
    assert all(torch.equal(plain_state[name], reported_state[name]) for name in plain_state)
