"""The script entry points: multi-process runs (torch.distributed, gloo), reproduce's plan and index, summary."""
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import numpy as np
import pytest
from scipy import stats

from mmkd_core import reproduce, results
from mmkd_core.reporting import REPO_ROOT
from mmkd_core.run import default_out, load_config

# --set values that shrink a student experiment to seconds: one teacher epoch, 4 student steps, 32-wide models
TOY_SIZES = ["teacher_epochs=1", "student_max_steps=4", "student_eval_every=2", "batch_size=24",
             'teacher_overrides={"hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64}',
             'student_overrides={"hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64}']
TOY_SHAPES_SPLITS = {"n_train": 96, "n_validation": 48, "n_test": 48}
TINY = ['dataset_options={"task": "nlvr", "n_train": 96, "n_validation": 48, "n_test": 48}', "n_labelled=48",
        *TOY_SIZES]


def free_port() -> int:
    """A port nobody listens on now: torchrun's rendezvous, so that concurrent test runs do not meet."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_script(command: list[str], tmp_path: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run a script from the repository root as a user would, in the small setting (``MMKD_FAST=1``), with
    its data under ``tmp_path`` and one thread a process; it must succeed without printing a traceback."""
    environment = {**os.environ, "MMKD_FAST": "1", "MMKD_DATA_DIR": str(tmp_path / "data"), "OMP_NUM_THREADS": "1",
                   "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    environment.pop("MMKD_REPRODUCE", None)
    done = subprocess.run(command, cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{command}\nfailed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    assert "Traceback" not in done.stderr, f"{command}\nprinted a traceback:\n{done.stderr[-5000:]}"
    return done


def assert_ranks_agree(stdout: str, seeds: list[int], processes: int) -> None:
    """Every process printed ``rank <r> seed <s> weights <sha1>`` for every seed, the same checksum on all ranks."""
    for seed in seeds:
        checksums = dict(re.findall(rf"rank (\d+) seed {seed} weights (\w+)", stdout))
        assert set(checksums) == {str(rank) for rank in range(processes)}, stdout[-3000:]
        assert len(set(checksums.values())) == 1, f"seed {seed}: the ranks disagree: {checksums}"


def test_two_processes_train_the_same_student(tmp_path):
    """torchrun with 2 CPU processes (gloo): both ranks end with identical weights; rank 0 writes runs.csv."""
    torchrun = Path(sys.executable).parent / "torchrun"
    command = [str(torchrun), "--nproc_per_node", "2", "--master_port", str(free_port()), "-m", "mmkd_core.run",
               "student", "--set", *TINY, "--method", "kd", "--data", "transfer", "--seeds", "0",
               "--out", str(tmp_path / "out")]
    done = run_script(command, tmp_path)
    assert_ranks_agree(done.stdout, [0], processes=2)
    runs = pd.read_csv(tmp_path / "out" / "runs.csv")
    assert list(runs["method"]) == ["kd"] and 0.0 <= runs["test/accuracy"].item() <= 1.0
    assert (tmp_path / "out" / "seed0" / "checkpoint" / "model.safetensors").exists()


def test_script_runs_write_to_the_scratch_folder_by_default(monkeypatch):
    """Without --out a script writes under reports/_scratch/ (reports/_fast/ in CI), never into reports/ itself,
    even in a shell that inherited make reproduce's MMKD_REPRODUCE=1."""
    monkeypatch.delenv("MMKD_FAST", raising=False)
    monkeypatch.delenv("MMKD_REPRODUCE", raising=False)
    assert default_out("student") == REPO_ROOT / "reports" / "_scratch" / "runs" / "student"
    monkeypatch.setenv("MMKD_REPRODUCE", "1")
    assert default_out("student") == REPO_ROOT / "reports" / "_scratch" / "runs" / "student"
    monkeypatch.setenv("MMKD_FAST", "1")
    assert default_out("teacher") == REPO_ROOT / "reports" / "_fast" / "runs" / "teacher"


def test_run_config_rejects_unknown_fields(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("teacher_epochs: 2\nlearning_rate: 3\n")
    with pytest.raises(ValueError, match="unknown config fields \\['learning_rate'\\]"):
        load_config(str(path), [])
    assert load_config(None, ["student_max_steps=30"]).student_max_steps == 30


def test_repeated_set_options_add_up_and_the_last_value_wins():
    from mmkd_core.run import argument_parser

    args = argument_parser().parse_args(["student", "--set", "batch_size=8", "student_max_steps=4", "--method", "kd",
                                         "--set", "student_max_steps=200"])
    assert args.set == ["batch_size=8", "student_max_steps=4", "student_max_steps=200"]
    config = load_config(None, args.set)
    assert (config.batch_size, config.student_max_steps) == (8, 200)


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
    assert gram["paired difference (points)"] == pytest.approx(0.8)  # seeds 0-4 of both: +1, -1, +3, +1, 0
    assert gram["paired resolvable difference (points)"] == pytest.approx(
        100 * stats.t.ppf(0.975, 4) * np.std([0.01, -0.01, 0.03, 0.01, 0.0], ddof=1) / 5 ** 0.5, abs=0.01)
    assert np.isnan(claims.loc["teacher − CE (no teacher)", "paired difference (points)"])  # one teacher run: unpaired
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


def test_report_runs_include_every_sections_tables_and_not_the_scratch_folder(tmp_path):
    runs = _runs()
    (tmp_path / "tables").mkdir()
    runs.to_csv(tmp_path / "tables" / "02_vanilla_kd_runs.csv", index=False)
    for folder, task in (("easy_vqa", "easy_vqa"), ("_scratch", "scratch")):
        (tmp_path / folder / "tables").mkdir(parents=True)
        runs.assign(task=task).to_csv(tmp_path / folder / "tables" / "03_msd_runs.csv", index=False)
    collected = results.collect_report_runs(tmp_path)
    assert set(collected["task"]) == {"ve", "easy_vqa"} and len(collected) == 2 * len(runs)
    assert set(collected["source"]) == {"02", "easy_vqa/03"}
    with pytest.raises(FileNotFoundError, match="run notebooks"):
        results.collect_report_runs(tmp_path / "empty")


def test_task_agreement_compares_outcomes_of_the_same_comparison():
    shifted = _runs()
    # the other benchmark: Gram now clearly above KD, KD still above CE, the teacher row absent
    shifted.loc[shifted["method"] == "Gram", "test/accuracy"] += 0.05
    other = shifted[shifted["method"] != "teacher"].assign(task="easy_vqa")
    claims = results.claims_check(pd.concat([_runs(), other], ignore_index=True))
    agreement = results.task_agreement(claims, {"easy_vqa": "ve"}).set_index("comparison")
    assert "teacher − CE (no teacher)" not in agreement.index  # only what both ran
    assert agreement.loc["KD (transfer set) − CE (no teacher)", ["reference outcome", "outcome", "agree"]].tolist() == [
        "higher", "higher", True]
    gram = agreement.loc["Gram − KD (transfer set)"]
    assert (gram["reference outcome"], gram["outcome"], gram["agree"]) == ("tie", "higher", False)
    text = results.agreement_text(results.task_agreement(claims, {"easy_vqa": "ve"}))
    assert len(text) == 1 and text[0].startswith("easy_vqa against ve: 1 of 2 comparisons have the same outcome")
    assert "Gram − KD (transfer set) (ve +0.8, tie; easy_vqa +5.8, higher)" in text[0]


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
    assert "regime map" not in text  # notebook 07 has not run
    pd.DataFrame([{"task": "ve", "teacher": "from scratch", "transfer rows": 0, "comparison": "Gram − KD",
                   "paired difference (points)": 1.5, "resolvable difference (points)": 0.9, "separated": True,
                   "reading": "helps"}]).to_csv(reports / "tables" / "07_regime_map.csv", index=False)
    assert reproduce.update_readme(readme, reports) is True
    text = readme.read_text()
    assert "Gram − KD" in text and "helps" in text and "separated" not in text and text.endswith("tail\n")


def test_teacher_key_ignores_student_settings_and_sees_the_teacher_pool():
    from mmkd_core.experiments import ExperimentConfig

    base = ExperimentConfig()
    # students' settings do not retrain (or re-key) the teacher ...
    assert ExperimentConfig(student_batch_size=32, student_max_steps=20, student_lr=1e-3, n_labelled=100).key() == base.key()
    # ... the teacher's training data does
    assert ExperimentConfig.preset("embedded", "ve").key() != ExperimentConfig.preset("embedded", "nlvr").key()
    assert ExperimentConfig(teacher_patience=3).key() != base.key()
