"""parallel_map: results in input order whichever worker finishes first, the same serial and in processes."""
import pytest

from mmkd_core.parallel import default_workers, parallel_map


@pytest.mark.parametrize("workers", [1, 2])
def test_parallel_map_keeps_input_order_and_reports_each_result(workers):
    seen = []
    results = parallel_map(abs, [-3, 1, -2, 0], workers, on_result=lambda item, result: seen.append((item, result)))
    assert results == [3, 1, 2, 0]
    assert sorted(seen) == [(-3, 3), (-2, 2), (0, 0), (1, 1)]


def test_parallel_map_of_nothing_starts_no_worker():
    assert parallel_map(abs, [], workers=4) == []
    assert default_workers() >= 1


# ------------------------------------------------------------------------------------------ quiet shutdown
# A grid as a notebook runs one, in a child process of its own session (so the signals below reach it and its
# workers, never pytest). Its pool stays alive after the grid, as run_grid keeps it for the next grid.
GRID_SCRIPT = r'''
import os, signal, sys, time
from mmkd_core import runs
from mmkd_core.experiments import ExperimentConfig, setup

tiny = {"hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64}
long = sys.argv[1] == "interrupt"  # the interrupted grid would run for hours: no cap, no early stop
config = ExperimentConfig.preset("fast", "ve", dataset_options={"n_train": 96, "n_validation": 48, "n_test": 48},
                                 n_labelled=32, teacher_overrides=tiny, student_overrides=tiny, batch_size=32,
                                 student_max_steps=10**6 if long else 6, student_eval_every=3,
                                 student_patience=10**6 if long else 2)
experiment = setup(config, progress=False)
specs = [{"label": "CE", "method": "ce"}]
if sys.argv[1] == "group_signal":
    runs.run_grid(specs, [0, 1], config, experiment.data, experiment.cache, workers=2, use_cache=False)
    # Jupyter interrupting or shutting down the kernel signals the whole process group, idle workers included
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.killpg(os.getpgid(0), signal.SIGINT)
    time.sleep(2)
    print("done", flush=True)
elif sys.argv[1] == "interrupt":
    import threading

    # A terminal's Ctrl-C raises KeyboardInterrupt in Python; a process started in the background by a
    # non-interactive shell (CI runners, `nohup ... &`) inherits SIGINT ignored instead. Restore the terminal case.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    def press_ctrl_c_once_training():
        # Ctrl-C in a terminal reaches the whole foreground group; press it once both workers are alive and
        # have had time to start training (a fixed delay from outside failed on a loaded machine)
        while len([p for p in getattr(runs._POOL.get("pool"), "_processes", {}).values() if p.is_alive()]) < 2:
            time.sleep(0.2)
        time.sleep(5)
        os.killpg(os.getpgid(0), signal.SIGINT)

    threading.Thread(target=press_ctrl_c_once_training, daemon=True).start()
    print("grid starts", flush=True)
    try:
        runs.run_grid(specs, [0, 1], config, experiment.data, experiment.cache, workers=2, use_cache=False)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(130)
'''


def _grid_process(mode: str, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    environment = {**os.environ, "MMKD_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).resolve().parents[1]), *filter(None, [os.environ.get("PYTHONPATH")])])}
    return subprocess.Popen([sys.executable, "-c", GRID_SCRIPT, mode], env=environment, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def test_a_grid_and_its_idle_pool_take_a_group_signal_without_a_traceback(tmp_path):
    process = _grid_process("group_signal", tmp_path)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-3000:]
    assert "done" in stdout
    assert "Traceback" not in stderr, stderr[-3000:]


def test_an_interrupted_grid_stops_its_workers_without_a_traceback(tmp_path):
    import os
    import signal
    import subprocess

    process = _grid_process("interrupt", tmp_path)  # presses Ctrl-C itself once its workers train
    try:
        stdout, stderr = process.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise AssertionError("the interrupted grid did not stop: the workers held the exit") from None
    assert process.returncode == 130 and "interrupted" in stdout, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
