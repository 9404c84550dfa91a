"""The script entry points: multi-process runs (torch.distributed, gloo), reproduce's plan and index, summary."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from mmkd_core import reproduce, results
from mmkd_core.run import load_config

TINY = ['dataset_options={"task": "nlvr", "n_train": 96, "n_validation": 48, "n_test": 48}',
        "teacher_epochs=1", "student_max_steps=4", "student_eval_every=2", "batch_size=24", "n_labelled=48",
        'teacher_overrides={"hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64}',
        'student_overrides={"hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64}']


def test_two_processes_train_the_same_student(tmp_path):
    """torchrun with 2 CPU processes (gloo): both ranks end with identical weights; rank 0 writes runs.csv."""
    env = {**os.environ, "MMKD_DATA_DIR": str(tmp_path / "data"), "OMP_NUM_THREADS": "1"}
    torchrun = Path(sys.executable).parent / "torchrun"
    command = [str(torchrun), "--nproc_per_node", "2", "--master_port", "29561", "-m", "mmkd_core.run", "student",
               "--set", *TINY, "--method", "kd", "--data", "transfer", "--seeds", "0", "--out", str(tmp_path / "out")]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    checksums = dict(re.findall(r"rank (\d) seed 0 weights (\w+)", done.stdout))
    assert set(checksums) == {"0", "1"} and checksums["0"] == checksums["1"], done.stdout[-3000:]
    runs = pd.read_csv(tmp_path / "out" / "runs.csv")
    assert list(runs["method"]) == ["kd"] and 0.0 <= runs["test/accuracy"].item() <= 1.0
    assert (tmp_path / "out" / "seed0" / "checkpoint" / "model.safetensors").exists()


def test_run_config_rejects_unknown_fields(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("teacher_epochs: 2\nlearning_rate: 3\n")
    with pytest.raises(ValueError, match="unknown config fields \\['learning_rate'\\]"):
        load_config(str(path), [])
    assert load_config(None, ["student_max_steps=30"]).student_max_steps == 30


def test_reproduce_plan_errors_and_index(tmp_path):
    bad = tmp_path / "plan.yaml"
    bad.write_text("notebooks: []\n")
    with pytest.raises(ValueError, match="non-empty 'notebooks' list"):
        reproduce.load_plan(bad)
    bad.write_text("notebooks:\n  - path: notebooks/99_missing.ipynb\n")
    with pytest.raises(FileNotFoundError, match="99_missing"):
        reproduce.load_plan(bad)
    reports = tmp_path / "reports"
    (reports / "tables").mkdir(parents=True)
    (reports / "figures").mkdir()
    (reports / "tables" / "02_vanilla_kd.md").write_text("|a|\n")
    (reports / "figures" / "02_vanilla_kd_bars.png").write_bytes(b"")
    index = reproduce.write_index(reports, ["notebooks/02_vanilla_multimodal_kd.ipynb"], {"02_x.ipynb": 12.0})
    text = index.read_text()
    assert "tables/02_vanilla_kd.md" in text and "figures/02_vanilla_kd_bars.png" in text and "| **total** | 12 |" in text


def test_reproduce_stops_at_a_failing_notebook_and_names_it(tmp_path, capsys, monkeypatch):
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    notebook = Path(reproduce.REPO / "notebooks" / "_tmp_failing_test.ipynb")
    nb = new_notebook(cells=[new_code_cell("raise RuntimeError('boom')")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, notebook)
    plan = tmp_path / "plan.yaml"
    plan.write_text(f"notebooks:\n  - path: notebooks/{notebook.name}\n")
    try:
        code = reproduce.main(["--config", str(plan), "--reports", str(tmp_path / "reports")])
    finally:
        notebook.unlink()
    assert code == 1
    err = capsys.readouterr().err
    assert f"FAILED: notebook notebooks/{notebook.name}" in err and "executed copy" in err


def _runs():
    rows = []
    for method, accs in {"teacher": [0.9], "CE (no teacher)": [0.60, 0.62, 0.61, 0.60, 0.61],
                         "KD (transfer set)": [0.70, 0.71, 0.69, 0.70, 0.70],
                         "Gram": [0.71, 0.70, 0.72, 0.71, 0.70]}.items():
        for seed, acc in enumerate(accs):
            rows.append({"task": "ve", "method": method, "seed": seed, "test/accuracy": acc,
                         "validation/accuracy": acc, "params": 10, "train_seconds": 1.0,
                         "checkpoint_rule": "best-val", "best_epoch": 2.0, "epochs": 5.0})
    return pd.DataFrame(rows)


def test_claims_are_computed_from_the_runs():
    claims = results.claims_check(_runs()).set_index("comparison")
    gram = claims.loc["Gram − KD (transfer set)"]
    assert gram["difference (points)"] == pytest.approx(0.8)
    assert bool(gram["CIs overlap"]) is True and "below what this experiment resolves" in gram["verdict"]
    assert 0 < gram["resolvable difference (points)"] < 2
    assert bool(claims.loc["teacher − CE (no teacher)", "CIs overlap"]) is False
    kd = claims.loc["KD (transfer set) − CE (no teacher)"]
    assert not kd["CIs overlap"] and kd["verdict"].startswith("KD (transfer set) beats CE (no teacher)")
    text = " ".join(results.claims_text(results.claims_check(_runs())))
    assert "outside that range" in text  # +0.8 is outside the paper's +1.2 to +1.7
    assert "something to distil" in text and "too small" not in text  # the teacher clears the CE student here


def test_resolvable_difference_is_welchs_half_width():
    from scipy import stats

    a, b = [1.0, 2.0, 3.0], [2.0, 4.0, 6.0, 8.0]
    se2 = 1.0 / 3 + (20.0 / 3) / 4
    nu = se2 ** 2 / ((1.0 / 3) ** 2 / 2 + ((20.0 / 3) / 4) ** 2 / 3)
    assert results.resolvable_difference(a, b) == pytest.approx(stats.t.ppf(0.975, nu) * se2 ** 0.5)
    # a single run (the teacher) is a constant: the half-width is the other side's own CI
    assert results.resolvable_difference([5.0], b) == pytest.approx(stats.t.ppf(0.975, 3) * (20.0 / 3 / 4) ** 0.5)


def test_collect_runs_keeps_one_copy_of_identical_runs(tmp_path):
    runs = _runs()
    runs.to_csv(tmp_path / "02_vanilla_kd_runs.csv", index=False)
    runs[runs["method"] == "KD (transfer set)"].to_csv(tmp_path / "04_table1_runs.csv", index=False)
    collected = results.collect_runs(tmp_path)
    assert len(collected) == len(runs)
    with pytest.raises(FileNotFoundError, match="run notebooks"):
        results.collect_runs(tmp_path / "empty")


def test_unconverged_runs_are_the_ones_that_kept_their_last_checkpoint():
    runs = _runs()
    runs.loc[3, "best_epoch"] = runs.loc[3, "epochs"]
    flagged = results.unconverged_runs(runs)
    assert list(flagged.index) == [3]


def test_vision_script_runs_one_tiny_seed(tmp_path):
    from mmkd_core import run

    code = run.main(["vision", "--set", "width=16", "num_heads=2", "teacher_depth=1", "student_depth=1",
                     "teacher_epochs=1", "student_epochs=1", "--seeds", "0", "--out", str(tmp_path)])
    assert code == 0
    runs = pd.read_csv(tmp_path / "runs.csv")
    assert len(runs) >= 3 and runs["seed"].eq(0).all()


def test_readme_results_block_is_copied_from_reports(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n{reproduce.README_START}\nold\n{reproduce.README_END}\ntail\n")
    reports = tmp_path / "reports"
    (reports / "tables").mkdir(parents=True)
    assert reproduce.update_readme(readme, reports) is False  # nothing to copy yet
    (reports / "tables" / "05_all_methods.md").write_text("| method | ve test |\n|---|---|\n| KD | 61.2 ± 0.4 |\n")
    assert reproduce.update_readme(readme, reports) is True
    text = readme.read_text()
    assert "| KD | 61.2 ± 0.4 |" in text and "old" not in text and text.endswith("tail\n")


def test_teacher_key_ignores_student_settings_and_sees_the_teacher_pool():
    from mmkd_core.experiments import ExperimentConfig

    base = ExperimentConfig()
    # students' settings do not retrain (or re-key) the teacher ...
    assert ExperimentConfig(student_batch_size=32, student_max_steps=20, student_lr=1e-3, n_labelled=100).key() == base.key()
    # ... the teacher's training data does
    assert ExperimentConfig.preset("embedded", "ve").key() != ExperimentConfig.preset("embedded", "nlvr").key()
    assert ExperimentConfig(teacher_patience=3).key() != base.key()
