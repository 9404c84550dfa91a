"""``make reproduce``'s driver: the plan it prints, a partial run (``--only``), and no stale report left behind."""
import json
import os
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from mmkd_core import reproduce
from mmkd_core.experiments import ExperimentConfig, checkpoint_dir


def tiny_notebook(path: Path) -> Path:
    """A notebook that writes one table and one figure named by its number, with new bytes on every run."""
    number = path.name[:2]
    nb = new_notebook(cells=[
        new_code_cell("reports_dir = None", metadata={"tags": ["parameters"]}),
        new_code_cell("import os, pathlib, time\n"
                      "out = pathlib.Path(reports_dir)\n"
                      "for kind, name, data in (('tables', 'table.csv', str(time.time_ns()).encode()),\n"
                      "                         ('figures', 'figure.png', os.urandom(16))):\n"
                      "    (out / kind).mkdir(parents=True, exist_ok=True)\n"
                      f"    (out / kind / f'{number}_{{name}}').write_bytes(data)\n")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def write_plan(folder: Path, teachers: list[dict] | None = None) -> Path:
    """A plan of three tiny notebooks (absolute paths), 05 the summary."""
    notebooks = [tiny_notebook(folder / name) for name in ("01_first.ipynb", "02_second.ipynb", "05_summary.ipynb")]
    lines = ["notebooks:"]
    for path in notebooks:
        lines += [f"  - path: {path}", "    parameters: {}"] + (["    summary: true"] if path.name[:2] == "05" else [])
    if teachers:
        lines.append("teachers:")
        lines += [f"  - {entry}" for entry in teachers]
    plan = folder / "plan.yaml"
    plan.write_text("\n".join(lines) + "\n")
    return plan


def snapshot(reports: Path) -> dict[str, tuple[bytes, int]]:
    return {str(path.relative_to(reports)): (path.read_bytes(), path.stat().st_mtime_ns)
            for path in sorted(reports.rglob("*")) if path.is_file()}


def test_only_reruns_the_named_notebooks_and_the_summary_and_leaves_the_others_files(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MMKD_FAST", "1")
    plan, reports = write_plan(tmp_path), tmp_path / "reports"
    assert reproduce.main(["--config", str(plan), "--reports", str(reports)]) == 0
    (reports / "tables" / "02_from_an_older_version.md").write_text("stale")  # no current notebook 02 writes it
    (reports / "tables" / "01_from_an_older_version.md").write_text("stale")  # 01 does not run: it stays
    before = snapshot(reports)
    capsys.readouterr()

    assert reproduce.main(["--config", str(plan), "--reports", str(reports), "--only", "02"]) == 0
    after = snapshot(reports)
    out = capsys.readouterr().out
    assert "notebooks to run: 2" in out and "02_second" in out and "05_summary (summary)" in out
    assert "01_first" not in out.split("run cache")[0].split("notebooks to run")[1]
    untouched = [name for name in before if "01_" in name]
    assert untouched and all(after[name] == before[name] for name in untouched)
    rewritten = ["tables/02_table.csv", "figures/02_figure.png", "tables/05_table.csv", "figures/05_figure.png",
                 "executed/02_second.ipynb", "executed/05_summary.ipynb"]
    assert all(after[name][0] != before[name][0] for name in rewritten[:4])
    assert all(after[name][1] > before[name][1] for name in rewritten + ["README.md"])
    assert "tables/02_from_an_older_version.md" not in after
    assert "removed" in out and "02_from_an_older_version.md" in out
    index = after["README.md"][0].decode()
    assert "tables/01_from_an_older_version.md" in index and "02_from_an_older_version" not in index
    timings = reproduce.read_timings(reports / "tables" / "reproduce_timings.csv")
    assert set(timings) == {"01_first.ipynb", "02_second.ipynb", "05_summary.ipynb"}  # 01's time kept


def test_only_rejects_a_number_no_notebook_has(tmp_path, capsys):
    plan = write_plan(tmp_path)
    assert reproduce.main(["--config", str(plan), "--reports", str(tmp_path / "r"), "--only", "07"]) == 2
    assert "--only 07: no notebook of the plan has that number or section; known: 01 02 05" in capsys.readouterr().err
    entries = reproduce.load_plan(plan)
    chosen = reproduce.select_notebooks(entries, ["01"])
    assert [Path(entry["path"]).name for entry in chosen] == ["01_first.ipynb", "05_summary.ipynb"]
    plan.write_text(plan.read_text().replace("    parameters: {}\n", "    parameters: {}\n    summary: true\n", 1))
    with pytest.raises(ValueError, match="only one notebook can be the summary"):
        reproduce.load_plan(plan)


def test_plan_names_notebooks_teachers_cached_runs_and_the_last_times(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MMKD_DATA_DIR", str(tmp_path / "data"))
    teachers = [{"preset": "fast", "task": "ve"}, {"preset": "fast", "task": "nlvr", "dataset_options": {"n_train": 64}},
                {"preset": "fast", "task": "ve", "two_tower": {"input_size": 64, "label_counts": [30]}}]
    plan, reports = write_plan(tmp_path, teachers), tmp_path / "reports"

    assert reproduce.main(["--config", str(plan), "--reports", str(reports), "--plan"]) == 0
    out = capsys.readouterr().out
    assert not reports.exists()  # a plan writes nothing
    assert "teachers, in parallel: 3 to train, 0 cached" in out
    assert "to train  fast/nlvr n_train=64" in out and "to train  fast/ve two-tower" in out
    assert "notebooks to run: 3" in out and "05_summary (summary)" in out
    assert "run cache: 0 finished student runs" in out
    assert "expected time: no earlier timings" in out

    folder = checkpoint_dir(ExperimentConfig.preset("fast", "ve"))  # what a trained teacher leaves
    (folder / "checkpoint").mkdir(parents=True)
    (folder / "checkpoint" / "model.safetensors").write_bytes(b"")
    (folder / "run.json").write_text("{}")
    for key in ("a1", "b2"):
        (tmp_path / "data" / "run-cache" / key).mkdir(parents=True)
        (tmp_path / "data" / "run-cache" / key / "complete").write_text("ok\n")
    (tmp_path / "data" / "run-cache" / "c3.tmp99").mkdir()  # an entry being written is not a finished run
    (reports / "tables").mkdir(parents=True)
    (reports / "tables" / "reproduce_timings.csv").write_text(
        f"notebook,seconds\n01_first.ipynb,30.0\n02_second.ipynb,600.0\n{reproduce.TEACHERS_STEP},800.0\n")

    assert reproduce.main(["--config", str(plan), "--reports", str(reports), "--plan", "--only", "01"]) == 0
    out = capsys.readouterr().out
    assert "teachers" not in out  # notebooks 02-04 and 06 distil from them, not 01
    assert "notebooks to run: 2" in out and "01_first" in out and "02_second" not in out
    assert "01_first              last run 30 s" in out and "05_summary (summary)  no earlier timing" in out
    assert "run cache: 2 finished student runs" in out
    assert "expected time: at least 30 s, from the last run's times" in out and "; 1 step without one" in out

    lines = reproduce.plan_lines(plan, reproduce.load_plan(plan), teachers, reports)
    assert "teachers, in parallel: 2 to train, 1 cached (last run 800 s)" in lines[1]
    assert lines[2].strip() == "cached    fast/ve"
    assert lines[-1].endswith("; 1 step without one") and "1,430 s (24 min)" in lines[-1]


def test_outputs_a_notebook_did_not_write_are_removed_and_no_other(tmp_path):
    reports = tmp_path / "reports"
    files = {name: reports / name for name in ("tables/03_kept.csv", "tables/03_kept.md", "tables/03_stale.csv",
                                               "figures/03_stale.png", "tables/04_other.csv", "tables/bench_steps.csv",
                                               "executed/03_x.ipynb")}
    for path in files.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("an earlier run")
        os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    before = reproduce.prefixed_outputs(reports, "03")
    assert sorted(str(p.relative_to(reports)) for p in before) == ["figures/03_stale.png", "tables/03_kept.csv",
                                                                 "tables/03_kept.md", "tables/03_stale.csv"]
    for name in ("tables/03_kept.csv", "tables/03_kept.md"):  # what notebook 03 writes this time
        files[name].write_text("this run")
    removed = reproduce.remove_unwritten(before)
    assert sorted(str(p.relative_to(reports)) for p in removed) == ["figures/03_stale.png", "tables/03_stale.csv"]
    assert sorted(str(p.relative_to(reports)) for p in reports.rglob("*") if p.is_file()) == [
        "executed/03_x.ipynb", "tables/03_kept.csv", "tables/03_kept.md", "tables/04_other.csv", "tables/bench_steps.csv"]
    assert reproduce.prefixed_outputs(reports, "") == {}  # a notebook without a number owns nothing by name


def test_a_fresh_reproduction_fixes_its_start_for_every_kernel_and_restores_the_environment(monkeypatch):
    import os

    from mmkd_core.reproduce import reproduction_environment
    from mmkd_core.runs import FRESH_SINCE_ENV, fresh_since

    monkeypatch.delenv(FRESH_SINCE_ENV, raising=False)
    monkeypatch.setenv("MMKD_FRESH", "1")
    with reproduction_environment():
        start = os.environ[FRESH_SINCE_ENV]  # inherited by the papermill kernels
        assert fresh_since() == float(start)
    assert FRESH_SINCE_ENV not in os.environ
    monkeypatch.setenv("MMKD_FRESH", "0")
    with reproduction_environment():
        assert FRESH_SINCE_ENV not in os.environ and fresh_since() is None


def test_teachers_phase_takes_the_protocols_teachers(tmp_path):
    """``teachers: {protocol: NAME}`` is every teacher the notebooks load under that protocol, derived, not typed;
    an explicit list still works, and anything else names both accepted forms."""
    from mmkd_core.experiments import Protocol

    plan = tmp_path / "plan.yaml"
    plan.write_text("teachers: {protocol: fast}\nnotebooks: []\n")
    fast = Protocol.fast()
    entries = reproduce.load_teachers(plan)
    assert entries == fast.teachers()
    assert entries[0] == fast.teacher_entry("ve") and entries[0]["teacher_rows"] == 128  # protocol v3: rows of its own
    assert entries[1] == {**entries[0], "teacher_seed": 1235}  # a second teacher on ve (fast: two)
    assert [e["dataset_options"]["text_cue"] for e in entries if "two_tower" not in e].count(0.0) == 1  # knob sweep's
    assert [e["two_tower"] for e in entries if "two_tower" in e] == [  # notebook 06's, then notebook 07's
        {"input_size": 64, "label_counts": [64, 256]}, {"input_size": 64, "label_counts": []}]
    regime = fast.regime_protocol().experiment_config(fast.regimes.task)  # 07's from-scratch teacher is ve's first
    assert fast.regime_teachers()[0] == entries[0] and regime.teacher_rows == entries[0]["teacher_rows"]
    assert len(entries) == len({json.dumps(e, sort_keys=True) for e in entries})  # each teacher once
    # the committed plan prepares exactly what the embedded protocol's notebooks load
    assert reproduce.load_teachers(reproduce.REPO / "reproduce.yaml") == Protocol.embedded().teachers() + \
        Protocol.embedded().dataset_teachers("easy_vqa")  # and the easy-VQA section's
    # 3 teachers on ve, nlvr, memes, 2 knob-sweep points, 4 pretraining-curve points, notebook 06's and 07's two-tower
    assert len(Protocol.embedded().teachers()) == 13
    plan.write_text("teachers: embedded\nnotebooks: []\n")
    with pytest.raises(ValueError, match=r"'teachers' must be \{protocol: NAME\} or a list"):
        reproduce.load_teachers(plan)


def test_only_prepares_the_teachers_of_the_notebooks_it_runs(tmp_path):
    """--only 07 trains the regime map's two teachers, not the nine of notebooks 02-06 (and the other way round)."""
    from mmkd_core.experiments import Protocol

    plan = tmp_path / "plan.yaml"
    plan.write_text("teachers: {protocol: embedded}\nnotebooks: []\n")
    embedded = Protocol.embedded()
    assert reproduce.load_teachers(plan, ["00", "07"]) == embedded.regime_teachers()
    assert reproduce.load_teachers(plan, ["03"]) == embedded.teachers()[:-1]  # all but 07's two-tower teacher
    assert reproduce.load_teachers(plan, ["00"]) == []
    assert reproduce.load_teachers(plan) == embedded.teachers(["02", "07"]) == embedded.teachers()


def test_a_section_runs_a_notebook_again_into_its_own_folder(tmp_path, monkeypatch, capsys):
    """``section: NAME`` entries write to reports/NAME/, are selected by --only NAME (or their number), keep their
    own timings and index entries, and never touch the main run's files of the same number."""
    monkeypatch.setenv("MMKD_FAST", "1")
    plan, reports = write_plan(tmp_path), tmp_path / "reports"
    text = plan.read_text().replace(
        f"  - path: {tmp_path / '05_summary.ipynb'}",
        f"  - path: {tmp_path / '02_second.ipynb'}\n    section: other_data\n    parameters: {{}}\n"
        f"  - path: {tmp_path / '05_summary.ipynb'}")
    plan.write_text(text)
    assert reproduce.main(["--config", str(plan), "--reports", str(reports)]) == 0
    files = snapshot(reports)
    assert {"other_data/tables/02_table.csv", "other_data/figures/02_figure.png",
            "other_data/executed/02_second.ipynb", "tables/02_table.csv"} <= set(files)
    index = files["README.md"][0].decode()
    assert "## [02_second](" in index and ", section `other_data`" in index
    assert "(other_data/tables/02_table.md)" not in index  # a csv only: the index links .md tables
    assert "(other_data/figures/02_figure.png)" in index and "(other_data/executed/02_second.ipynb)" in index
    timings = reproduce.read_timings(reports / "tables" / "reproduce_timings.csv")
    assert {"02_second.ipynb", "other_data/02_second.ipynb"} <= set(timings)
    capsys.readouterr()

    assert reproduce.main(["--config", str(plan), "--reports", str(reports), "--only", "other_data"]) == 0
    after = snapshot(reports)
    out = capsys.readouterr().out
    assert "other_data/02_second" in out and "notebooks to run: 2" in out
    assert after["tables/02_table.csv"] == files["tables/02_table.csv"]  # the main run's 02 is untouched
    assert after["other_data/tables/02_table.csv"] != files["other_data/tables/02_table.csv"]

    entries = reproduce.load_plan(plan)
    assert [reproduce.entry_name(e) for e in reproduce.select_notebooks(entries, ["02"])] == [
        "02_second.ipynb", "other_data/02_second.ipynb", "05_summary.ipynb"]  # a number selects every section's
    assert [reproduce.entry_name(e) for e in reproduce.select_notebooks(entries, ["other_data/02"])] == [
        "other_data/02_second.ipynb", "05_summary.ipynb"]  # one section's notebook
    with pytest.raises(ValueError, match="known: 01 02 05 other_data other_data/02"):
        reproduce.select_notebooks(entries, ["nothing"])


@pytest.mark.parametrize("section,message", [
    ("Other Data", "must be a folder name"), ("_scratch", "must be a folder name"), (3, "must be a folder name")])
def test_a_section_name_is_a_plain_folder_name(tmp_path, section, message):
    plan = write_plan(tmp_path)
    plan.write_text(plan.read_text().replace("    parameters: {}\n", f"    parameters: {{}}\n    section: {section!r}\n", 1))
    with pytest.raises(ValueError, match=message):
        reproduce.load_plan(plan)


def test_the_same_notebook_twice_needs_a_section(tmp_path):
    plan = write_plan(tmp_path)
    plan.write_text(plan.read_text() + f"  - path: {tmp_path / '01_first.ipynb'}\n    parameters: {{}}\n")
    with pytest.raises(ValueError, match=r"\['01_first.ipynb'\] listed more than once"):
        reproduce.load_plan(plan)


def test_a_sections_dataset_teachers_are_prepared_with_the_others(tmp_path):
    """The committed plan's easy-VQA section adds its two teachers (from scratch and the two-tower), derived from the
    entries' parameters; --only easy_vqa prepares only those, --only 03 none of them."""
    from mmkd_core.experiments import Protocol

    embedded = Protocol.embedded()
    committed = reproduce.REPO / "reproduce.yaml"
    easy = embedded.dataset_teachers("easy_vqa")
    assert easy == [{"preset": "embedded", "task": "easy_vqa", "dataset": "easy_vqa"},
                    {"preset": "embedded", "task": "easy_vqa", "dataset": "easy_vqa",
                     "two_tower": {"input_size": embedded.pretraining.input_size, "label_counts": []}}]
    assert reproduce.load_teachers(committed) == embedded.teachers() + easy
    assert reproduce.load_teachers(committed, ["easy_vqa"]) == easy
    assert reproduce.load_teachers(committed, ["03"]) == embedded.teachers(["03"]) + easy[:1]  # 03 on easy_vqa too
    assert reproduce.load_teachers(committed, ["02"]) == embedded.teachers(["02"]) + easy[:1]  # 06 brings the towers


def test_the_readmes_performance_numbers_come_from_the_last_runs_tables(tmp_path):
    tables = tmp_path / "reports" / "tables"
    tables.mkdir(parents=True)
    (tables / "05_all_methods.md").write_text("| method |\n|:--|\n| KD |\n")
    peaks = "123.4,321.0"
    (tables / "bench_steps_cpu.csv").write_text(
        "step,median ms,GFLOP per step,GFLOP/s,× plain CE,peak GFLOP/s (fp32 matmul),peak GFLOP/s (bf16 matmul),"
        "fraction of fp32 peak,device\n"
        f"plain CE,31.25,1.0,32.0,1.0,{peaks},0.26,CPU (test)\n"
        f"MSD (3 views),50.0,2.0,40.0,1.6,{peaks},0.32,CPU (test)\n"
        "trainer / bare loop (samples/s ratio),,,,0.877,,,,CPU (test)\n")
    (tables / "reproduce_timings.csv").write_text(
        f"notebook,seconds\n{reproduce.TEACHERS_STEP},60.0\n02_x.ipynb,600.0\neasy_vqa/02_x.ipynb,120.0\n")
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- results:start -->\nold\n<!-- results:end -->\nmiddle typed by hand\n"
                      f"{reproduce.PERFORMANCE_START}\nstale 999 s\n{reproduce.PERFORMANCE_END}\noutro\n")
    assert reproduce.update_readme(readme, tmp_path / "reports")
    text = readme.read_text()
    block = text[text.index(reproduce.PERFORMANCE_START):text.index(reproduce.PERFORMANCE_END)]
    assert "stale 999 s" not in text
    for number in ("31.2", "1.6", "0.32", "123 GFLOP/s", "0.88×", "660 s (11 min)", "120 s (2 min)", "60 s"):
        assert number in block, number
    assert "trainer / bare loop" not in block  # the ratio is a sentence, not a row of the steps table
    assert text.startswith("intro\n") and "middle typed by hand\n" in text and text.endswith("outro\n")


def test_a_readme_without_the_performance_markers_keeps_its_text(tmp_path):
    tables = tmp_path / "reports" / "tables"
    tables.mkdir(parents=True)
    (tables / "05_all_methods.md").write_text("| method |\n|:--|\n| KD |\n")
    readme = tmp_path / "README.md"
    readme.write_text("<!-- results:start -->\n<!-- results:end -->\nperformance typed by hand\n")
    assert reproduce.update_readme(readme, tmp_path / "reports")
    assert readme.read_text().endswith("performance typed by hand\n")


def test_timings_record_the_runs_each_step_trained_and_the_plan_shows_them(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MMKD_DATA_DIR", str(tmp_path / "data"))
    cache = tmp_path / "data" / "run-cache"
    for key in ("old1", "old2"):
        (cache / key).mkdir(parents=True)
        (cache / key / "complete").write_text("ok\n")
    started = __import__("time").time()
    assert reproduce.finished_runs() == 2 and reproduce.finished_runs(since=started + 3600) == 0
    timings_path = tmp_path / "reports" / "tables" / "reproduce_timings.csv"
    reproduce.write_timings(timings_path, {"02_second.ipynb": 600.0, "01_first.ipynb": 30.0,
                                           reproduce.TEACHERS_STEP: 800.0}, {"02_second.ipynb": 7, "01_first.ipynb": 0})
    assert reproduce.read_timings(timings_path) == {reproduce.TEACHERS_STEP: 800.0, "01_first.ipynb": 30.0,
                                                    "02_second.ipynb": 600.0}
    assert reproduce.read_trained(timings_path) == {"01_first.ipynb": 0, "02_second.ipynb": 7}
    plan = write_plan(tmp_path)
    lines = reproduce.plan_lines(plan, reproduce.load_plan(plan), [], tmp_path / "reports")
    assert any("01_first" in line and "last run 30 s, every run loaded from the cache" in line for line in lines)
    assert any("02_second" in line and "last run 600 s, 7 runs trained" in line for line in lines)
    old_format = tmp_path / "old.csv"
    old_format.write_text("notebook,seconds\n01_first.ipynb,30.0\n")
    assert reproduce.read_timings(old_format) == {"01_first.ipynb": 30.0} and reproduce.read_trained(old_format) == {}


def test_a_reproduction_counts_the_runs_a_notebook_trained(tmp_path, monkeypatch):
    monkeypatch.setenv("MMKD_FAST", "1")
    monkeypatch.setenv("MMKD_DATA_DIR", str(tmp_path / "data"))
    plan, reports = write_plan(tmp_path), tmp_path / "reports"
    trainer = nbformat.read(tmp_path / "02_second.ipynb", as_version=4)  # 02 "trains" three runs: finished entries
    trainer.cells.append(new_code_cell("from mmkd_core.runs import cache_root\nfor key in 'abc':\n"
                                       "    (cache_root() / key).mkdir(parents=True, exist_ok=True)\n"
                                       "    (cache_root() / key / 'complete').write_text('ok')"))
    nbformat.write(trainer, tmp_path / "02_second.ipynb")
    assert reproduce.main(["--config", str(plan), "--reports", str(reports)]) == 0
    trained = reproduce.read_trained(reports / "tables" / "reproduce_timings.csv")
    assert trained == {"01_first.ipynb": 0, "02_second.ipynb": 3, "05_summary.ipynb": 0}
