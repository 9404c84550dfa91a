"""``make reproduce``: execute the notebooks in order with papermill and rebuild ``reports/``.

Parameters come from one version-controlled file (``reproduce.yaml``). Executed copies go to
``reports/executed/``; the notebooks themselves write tables to ``reports/tables/`` and figures to
``reports/figures/`` (only here: the kernels get ``MMKD_REPRODUCE=1``, without which a notebook writes to
``reports/_scratch/``; see :func:`mmkd_core.reporting.default_reports_dir`). A notebook that fails stops
the run with a message naming it and its executed copy; reports written by earlier notebooks stay as they
are. At the end, ``reports/README.md`` indexes every table and figure by the notebook that made it, with
the time each notebook took.

- **The plan first**: the notebooks to run, the teachers to train or found cached, the run cache's size and the
  time each step took last time, with how many student runs it trained rather than loaded from the run cache
  (``reproduce_timings.csv``'s ``runs trained``; ``--plan`` prints it and stops).
- **Teachers**: the plan's ``teachers`` train first, in worker processes, with a live bar each (epoch, last
  validation accuracy, time left; :mod:`mmkd_core.progress`).
- **Part of the notebooks**: ``--only 03 04`` runs those plus the summary notebook (the plan's entry with
  ``summary: true``, which reads the others' tables); other notebooks' files are left as they are.
- **Nothing stale**: after a notebook runs, its tables and figures (``NN_*`` of its number) that this run did not
  write are removed, so ``reports/`` holds exactly what the last run of each notebook wrote.
- **Sections**: an entry with ``section: NAME`` runs a notebook again on other data (its ``parameters``, e.g.
  ``dataset: easy_vqa``) and writes to ``reports/NAME/`` (tables, figures, executed copy), so its files never
  collide with the main run's. ``--only NAME`` runs that section's entries (and the summary); ``--only 02`` runs
  notebook 02 in every section, ``--only NAME/02`` only the section's. The teachers of a section's dataset are prepared in the teachers phase too
  (:meth:`~mmkd_core.experiments.Protocol.dataset_teachers`, derived from the entries' parameters).

Usage: ``python -m mmkd_core.reproduce --config reproduce.yaml [--only 00 02 easy_vqa] [--plan]``
"""
from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

from .reporting import REPRODUCE_ENV, figure_caption
from .experiments.protocol import Protocol
from .experiments.multimodal import (SHIPPED_TEACHERS_DIR, checkpoint_dir, is_saved_teacher, ship_teacher,
                                     shipped_teacher_dir)
from .runs import (FRESH_SINCE_ENV, cache_root, fresh, prepare_teachers, teacher_is_cached, teacher_label,
                   teacher_setting)
from .progress import TeacherBars

REPO = Path(__file__).resolve().parents[1]


# ipykernel logs "Kernel is running over TCP without encryption" at WARNING on every start. papermill runs
# the kernel on this machine's loopback interface, where the notice is noise for a user. The kernel app's
# log level is its supported option for that: errors still show, and cell outputs (warnings too) are untouched.
QUIET_KERNEL_ARGUMENTS = ("--IPKernelApp.log_level=ERROR",)


def execute_notebook(source: str | os.PathLike, executed: str | os.PathLike, parameters: dict | None = None,
                     **papermill_options) -> None:
    """``papermill.execute_notebook`` in the notebook's folder with the python3 kernel, kernel notice quiet."""
    import papermill

    papermill.execute_notebook(str(source), str(executed), parameters=parameters or {},
                               cwd=str(Path(source).parent), kernel_name="python3",
                               extra_arguments=list(QUIET_KERNEL_ARGUMENTS), **papermill_options)


def load_plan(config_path: Path) -> list[dict]:
    plan = yaml.safe_load(config_path.read_text())
    entries = plan.get("notebooks") if isinstance(plan, dict) else None
    if not entries:
        raise ValueError(f"{config_path}: expected a mapping with a non-empty 'notebooks' list of "
                         f"{{path: ..., parameters: {{...}}}} entries")
    for entry in entries:
        path = REPO / entry["path"]
        if not path.exists():
            raise FileNotFoundError(f"{config_path}: notebook {entry['path']} does not exist")
        entry.setdefault("parameters", {})
        section = entry.get("section")
        if section is not None and not (isinstance(section, str) and re.fullmatch(r"[a-z][a-z0-9_-]*", section)):
            raise ValueError(f"{config_path}: section {section!r} of {entry['path']} must be a folder name of "
                             "lower-case letters, digits, '_' or '-' starting with a letter (e.g. easy_vqa)")
        if section is not None and entry.get("summary"):
            raise ValueError(f"{config_path}: the summary notebook ({entry['path']}) cannot be in a section")
    names = [entry_name(entry) for entry in entries]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"{config_path}: {repeated} listed more than once; run a notebook again under another "
                         "`section: NAME`")
    summaries = [entry["path"] for entry in entries if entry.get("summary")]
    if len(summaries) > 1:
        raise ValueError(f"{config_path}: only one notebook can be the summary (summary: true); got {summaries}")
    return entries


def entry_name(entry: dict) -> str:
    """An entry's name in timings and messages: the notebook's file name, after ``SECTION/`` in a section."""
    name = Path(entry["path"]).name
    return f"{entry['section']}/{name}" if entry.get("section") else name


def entry_reports(reports: Path, entry: dict) -> Path:
    """Where an entry's tables, figures and executed copy go: ``reports/``, or ``reports/SECTION/``."""
    return reports / entry["section"] if entry.get("section") else reports


def select_notebooks(plan: list[dict], only: list[str] | None) -> list[dict]:
    """The entries to run: all of them, or those named in ``only`` plus the summary notebook (``summary: true``),
    which reads the others' tables and so must follow any of them. A name is a number (that notebook in every
    section: ``02``), a section (its every notebook: ``easy_vqa``) or both (one section's notebook: ``easy_vqa/06``)."""
    if not only:
        return plan
    known = [prefix_of(Path(entry["path"]).name) for entry in plan]
    sections = [entry.get("section") for entry in plan]
    in_section = [f"{section}/{number}" if section else None for number, section in zip(known, sections)]
    unknown = sorted(set(only) - set(known) - set(sections) - set(in_section))
    if unknown:
        names = " ".join(dict.fromkeys(known + [s for s in sections + in_section if s]))
        raise ValueError(f"--only {' '.join(unknown)}: no notebook of the plan has that number or section; "
                         f"known: {names}")
    return [entry for entry, number, section, both in zip(plan, known, sections, in_section)
            if number in only or section in only or both in only or entry.get("summary")]


TEACHERS_STEP = "00a_teachers_in_parallel"  # sorts before the notebooks in reproduce_timings.csv
TEACHER_NOTEBOOKS = ("02", "03", "04", "06", "07")  # the notebooks that distil from the prepared teachers


def plan_reports(config_path: Path) -> str | None:
    """The plan's optional ``reports`` folder (relative to the repository), for profiles other than the default."""
    plan = yaml.safe_load(config_path.read_text())
    folder = plan.get("reports") if isinstance(plan, dict) else None
    return str(REPO / folder) if folder else None


def load_teachers(config_path: Path, notebooks=None) -> list[dict]:
    """The plan's optional ``teachers``: experiments whose teachers are trained up front, in parallel.

    ``{protocol: NAME}`` takes every teacher the notebooks train under that protocol (:meth:`Protocol.teachers`,
    so the list is never typed twice), or with ``notebooks`` (``--only``'s numbers and sections) those that these
    notebooks load; then the teachers of the sections' datasets (:meth:`Protocol.dataset_teachers`, from the entries'
    ``dataset`` / ``task`` / ``data_root`` parameters). An explicit list of ``{preset: ..., task: ..., ...}`` entries
    is also accepted (and taken whole)."""
    plan = yaml.safe_load(config_path.read_text())
    entries = plan.get("teachers", []) if isinstance(plan, dict) else []
    if isinstance(entries, dict) and set(entries) == {"protocol"}:
        protocol = Protocol.named(entries["protocol"])
        selected = select_notebooks(load_plan(config_path), notebooks) if plan.get("notebooks") else []
        teachers = protocol.teachers(None if notebooks is None else [n for n in notebooks if n.isdigit()])
        for entry in selected:
            number, parameters = prefix_of(Path(entry["path"]).name), entry["parameters"]
            if not entry.get("section") or number not in TEACHER_NOTEBOOKS or \
                    parameters.get("dataset", "shapes") == "shapes":
                continue
            for teacher in protocol.dataset_teachers(parameters["dataset"], parameters.get("task"),
                                                     parameters.get("data_root"), two_tower=number == "06"):
                if teacher not in teachers:
                    teachers.append(teacher)
        return teachers
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ValueError(f"{config_path}: 'teachers' must be {{protocol: NAME}} or a list of "
                         f"{{preset: ..., task: ..., ...}} entries, got {entries!r}")
    return entries


def prefix_of(name: str) -> str:
    match = re.match(r"(\d\d)_", name)
    return match.group(1) if match else ""


TRAINED_COLUMN = "runs trained"  # reproduce_timings.csv: the student runs a step trained (the others it loaded)


def read_timings(path: Path) -> dict[str, float]:
    """``reproduce_timings.csv``: seconds per step (notebook file name, or :data:`TEACHERS_STEP`); {} when absent."""
    if not path.exists():
        return {}
    return {name: float(seconds) for name, seconds in pd.read_csv(path)[["notebook", "seconds"]].itertuples(index=False)}


def read_trained(path: Path) -> dict[str, int]:
    """``reproduce_timings.csv``: how many student runs each step trained rather than loaded from the run cache, for
    the steps whose run recorded it (a file from before the column, or the teachers phase, has none)."""
    if not path.exists():
        return {}
    frame = pd.read_csv(path)
    if TRAINED_COLUMN not in frame:
        return {}
    return {name: int(count) for name, count in frame[["notebook", TRAINED_COLUMN]].dropna().itertuples(index=False)}


def write_timings(path: Path, timings: dict[str, float], trained: dict[str, int]) -> None:
    """Write ``reproduce_timings.csv``: each step's seconds and the student runs it trained (blank where unknown)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"notebook,seconds,{TRAINED_COLUMN}\n" + "".join(
        f"{name},{seconds:.1f},{trained.get(name, '')}\n" for name, seconds in sorted(timings.items())))


def finished_runs(since: float | None = None) -> int:
    """The student runs in the run cache (:func:`~mmkd_core.runs.cache_root`) that finished; with ``since`` (a
    ``time.time()``), only those that finished from then on (a run retrained under FRESH=1 counts too: its entry is
    written anew)."""
    runs = cache_root()
    if not runs.is_dir():
        return 0
    marks = [folder / "complete" for folder in runs.iterdir()]
    return sum(1 for mark in marks if mark.exists() and (since is None or mark.stat().st_mtime >= since))


def _shown(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def _duration(seconds: float) -> str:
    return f"{seconds:,.0f} s" + (f" ({seconds / 60:.0f} min)" if seconds >= 600 else "")


def plan_lines(config_path: Path, selected: list[dict], teachers: list[dict], reports: Path) -> list[str]:
    """What a run will do, as printed before it starts (and by ``--plan``): the teachers to train or found cached,
    the notebooks, the run cache's size, and the time each step took in the last run (its timings file)."""
    timings_path = reports / "tables" / "reproduce_timings.csv"
    last, trained = read_timings(timings_path), read_trained(timings_path)
    lines = [f"plan ({_shown(config_path)} → {_shown(reports)}/):"]
    expected: list[float | None] = []

    def last_time(name: str) -> str:
        expected.append(last.get(name))
        if name not in last:
            return "no earlier timing"
        runs = ("" if name not in trained else ", every run loaded from the cache" if trained[name] == 0
                else f", {trained[name]} run{'s' if trained[name] != 1 else ''} trained")
        return f"last run {last[name]:,.0f} s{runs}"

    if teachers:
        cached = [teacher_is_cached(entry) for entry in teachers]
        if all(cached):  # loading them takes seconds, whatever training them took last time
            expected.append(0.0)
            when = "loaded in seconds"
        else:
            when = last_time(TEACHERS_STEP)
        lines.append(f"  teachers, in parallel: {len(teachers) - sum(cached)} to train, {sum(cached)} cached ({when})")
        lines += [f"    {'cached  ' if is_cached else 'to train'}  {teacher_label(entry)}"
                  for entry, is_cached in zip(teachers, cached)]
    lines.append(f"  notebooks to run: {len(selected)}")
    names = [entry_name(entry).removesuffix(".ipynb") + (" (summary)" if entry.get("summary") else "")
             for entry in selected]
    width = max(map(len, names))
    for name, entry in zip(names, selected):
        lines.append(f"    {name:<{width}}  {last_time(entry_name(entry))}")
    runs, count = cache_root(), finished_runs()
    use = ("FRESH=1: the runs cached before this reproduction are trained again" if fresh()
           else "a run whose key matches is loaded, not trained")
    lines.append(f"  run cache: {count} finished student runs in {_shown(runs)} ({use})")
    known = [seconds for seconds in expected if seconds is not None]
    if not known:
        lines.append(f"  expected time: no earlier timings ({_shown(timings_path)} is absent)")
        return lines
    missing = len(expected) - len(known)
    line = (f"  expected time: {'at least ' if missing else ''}{_duration(sum(known))}, from the last run's times "
            f"({_shown(timings_path)}; longer where a run the last one loaded from the cache must now be trained: "
            "after an edit of the code a run imports, or with other parameters)")
    if missing:
        line += f"; {missing} step{'s' if missing > 1 else ''} without one"
    lines.append(line)
    return lines


def prefixed_outputs(reports: Path, prefix: str) -> dict[Path, int]:
    """The tables and figures of the notebook numbered ``prefix`` (``NN_*``), with their modification times (ns)."""
    if not prefix:  # a notebook without a number owns no file by name
        return {}
    return {path: path.stat().st_mtime_ns for folder in ("tables", "figures")
            for path in sorted((reports / folder).glob(f"{prefix}_*")) if path.is_file()}


def remove_unwritten(before: dict[Path, int]) -> list[Path]:
    """Remove the files of ``before`` (:func:`prefixed_outputs` taken before a notebook ran) that the notebook did
    not write: still there with the same modification time. Returns them.

    The times are compared with the file's own earlier time, not with the clock at the notebook's start: a file
    system's timestamps can be coarser than the clock or, on a network drive, come from another machine's clock,
    and a fresh table must never be taken for a stale one.
    """
    removed = []
    for path, modified in before.items():
        if path.exists() and path.stat().st_mtime_ns == modified:
            path.unlink()
            removed.append(path)
    return removed


def write_index(reports: Path, notebooks: list[str | dict], timings: dict[str, float]) -> Path:
    """``reports/README.md``: every table and figure, grouped by the notebook that made it. ``notebooks``: the plan's
    entries (or their paths); a section's entries are listed after the others, with links into ``reports/SECTION/``."""
    entries = [{"path": entry} if isinstance(entry, str) else entry for entry in notebooks]
    entries = [e for e in entries if not e.get("section")] + [e for e in entries if e.get("section")]
    lines = ["# Reports", "",
             "Generated by `make reproduce` (papermill, parameters from `reproduce.yaml`). Do not edit by hand.", ""]
    if timings:
        lines += ["| notebook | seconds |", "|---|---|"]
        lines += [f"| `{name}` | {seconds:.0f} |" for name, seconds in timings.items()]
        lines += [f"| **total** | {sum(timings.values()):.0f} |", ""]
    for entry in entries:
        notebook, section = entry["path"], entry.get("section")
        folder = entry_reports(reports, entry)
        at = f"{section}/" if section else ""  # links are relative to reports/
        prefix = prefix_of(Path(notebook).name)
        tables = sorted((folder / "tables").glob(f"{prefix}_*.md"))
        figures = sorted((folder / "figures").glob(f"{prefix}_*.png"))
        executed = folder / "executed" / Path(notebook).name
        title = f"## [{Path(notebook).stem}](../{notebook})" + (f", section `{section}`" if section else "")
        lines += [title, ""]
        if section:
            lines += [f"The same notebook on other data, parameters {entry.get('parameters', {})}; "
                      f"files in [{section}/]({section}/).", ""]
        if executed.exists():
            lines += [f"Executed copy: [{at}executed/{executed.name}]({at}executed/{executed.name})", ""]
        lines += [f"- table: [{t.stem}]({at}tables/{t.name}) ([csv]({at}tables/{t.stem}.csv))" for t in tables]
        lines += [f"- figure: [{f.stem}]({at}figures/{f.name})" + (f": {c}" if (c := figure_caption(f)) else "")
                  for f in figures]
        lines.append("")
    # Tables no notebook writes: the driver's own timings, and `make bench`'s tables where they were committed
    # (bench_*: python -m mmkd_core.bench --reports-dir reports/tables). Listed, so every file here is indexed.
    others = sorted(p for p in (reports / "tables").glob("*.md") if not prefix_of(p.name)) + \
        sorted(p for p in (reports / "tables").glob("*.csv") if not prefix_of(p.name) and not p.with_suffix(".md").exists())
    if others:
        lines += ["## Not from a notebook", ""]
        lines += [f"- table: [{t.stem}](tables/{t.name})" + (f" ([csv](tables/{t.stem}.csv))" if t.suffix == ".md" else "")
                  for t in others]
        lines.append("")
    path = reports / "README.md"
    path.write_text("\n".join(lines))
    return path


README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"
REGIME_COLUMNS = ["teacher", "transfer rows", "comparison", "method", "baseline", "paired difference (points)",
                  "resolvable difference (points)", "reading"]


def regime_block(reports: Path, rel) -> list[str]:
    """The README lines of notebook 07's regime map (its paired comparisons against KD, and its figure); none when
    the map has not run."""
    table = reports / "tables" / "07_regime_map.csv"
    if not table.exists():
        return []
    regime = pd.read_csv(table)
    lines = ["Where MSD and Gram help, hurt or tie against KD on benchmark v2 (notebook 07; differences paired by "
             "seed, in points, with their resolvable difference):", "",
             regime[[c for c in REGIME_COLUMNS if c in regime]].to_markdown(index=False), ""]
    figure = reports / "figures" / "07_regime_map.png"
    if figure.exists():
        lines += [f"![regime map]({rel}/figures/{figure.name})", ""]
    return lines


PERFORMANCE_START, PERFORMANCE_END = "<!-- performance:start -->", "<!-- performance:end -->"
STEP_COLUMNS = ["step", "median ms", "× plain CE", "GFLOP/s", "fraction of fp32 peak"]
STEP_DIGITS = {"median ms": 1, "× plain CE": 2, "GFLOP/s": 1, "fraction of fp32 peak": 2}


def performance_block(reports: Path) -> list[str]:
    """The README's performance numbers, rendered from the tables of the last reproduction: the step bench
    (``bench_steps_cpu.csv``, notebook 05's ``make bench``), the trainer against a bare loop and the time of each
    step of ``make reproduce`` (``reproduce_timings.csv``). Empty when none of them exists."""
    tables = reports / "tables"
    lines = []
    steps = tables / "bench_steps_cpu.csv"
    if steps.exists():
        bench = pd.read_csv(steps)
        kinds = bench[bench["GFLOP per step"].notna()]
        ratio = bench[bench["GFLOP per step"].isna()]
        device = bench["device"].iloc[0]
        lines += [f"Training steps on {device} (`make bench`, float32, batch as the notebooks'; "
                  f"`reports/tables/bench_steps_cpu.csv`). FLOPs are counted by `torch.utils.flop_counter` "
                  "(matmuls and attention, not element-wise work, so the rate is a lower bound) and set against a "
                  "2048² matmul timed on the same cores:", "",
                  kinds[[c for c in STEP_COLUMNS if c in kinds]].round(STEP_DIGITS).to_markdown(index=False), ""]
        peak_fp32 = kinds["peak GFLOP/s (fp32 matmul)"].iloc[0]
        peak_bf16 = kinds["peak GFLOP/s (bf16 matmul)"].iloc[0]
        lines += [f"Matmul peak on these cores: {peak_fp32:.0f} GFLOP/s in float32, {peak_bf16:.0f} in bf16."]
        if len(ratio):
            lines += [f"The training loop as the notebooks run it (validation every 40 steps included) reaches "
                      f"{ratio['× plain CE'].iloc[0]:.2f}× the samples/s of a bare forward/backward/AdamW loop on "
                      "the same batches (`bench_trainer_cpu.csv`)."]
        lines.append("")
    timings = tables / "reproduce_timings.csv"
    if timings.exists():
        times = pd.read_csv(timings)
        sections = times["notebook"].str.contains("/")
        main, section = times[~sections], times[sections]
        teachers = times.loc[times["notebook"] == TEACHERS_STEP, "seconds"]
        if TRAINED_COLUMN in times:  # blank where the run that timed the step did not count
            times[TRAINED_COLUMN] = times[TRAINED_COLUMN].map(lambda v: "" if pd.isna(v) else f"{int(v)}")
        lines += [f"`make reproduce` (`reports/tables/reproduce_timings.csv`, each step's time in the run that last "
                  f"executed it; a step that loaded its runs from the run cache takes far less than one that trained "
                  f"them, and `{TRAINED_COLUMN}` says how many it trained, where recorded): the main notebooks "
                  f"{main['seconds'].sum():,.0f} s ({main['seconds'].sum() / 60:.0f} min), the easy-VQA section "
                  f"{section['seconds'].sum():,.0f} s ({section['seconds'].sum() / 60:.0f} min)"
                  + (f"; the main notebooks' time includes the teachers phase, {teachers.iloc[0]:,.0f} s"
                     if len(teachers) else "") + ".", "",
                  times.assign(seconds=times["seconds"].round(0).astype(int)).to_markdown(index=False), ""]
    return lines


def _replace_block(text: str, start_marker: str, end_marker: str, lines: list[str]) -> str:
    """``text`` with the lines between its two markers replaced; unchanged when a marker is missing."""
    if start_marker not in text or end_marker not in text:
        return text
    start, end = text.index(start_marker), text.index(end_marker) + len(end_marker)
    return text[:start] + "\n".join([start_marker, "", *lines, end_marker]) + text[end:]


def update_readme(readme: Path, reports: Path) -> bool:
    """Copy the headline table (notebook 05) and figure into the README between the result markers, and the
    performance numbers (:func:`performance_block`) between the performance markers.

    The README then shows results without anyone running anything, and its numbers still come from
    the papermill run, never typed in. Returns False when there is nothing to copy or no markers.
    """
    table = reports / "tables" / "05_all_methods.md"
    claims = reports / "tables" / "05_claims.md"
    if not table.exists() or not readme.exists():
        return False
    text = readme.read_text()
    if README_START not in text or README_END not in text:
        return False
    rel = reports.relative_to(readme.parent) if reports.is_relative_to(readme.parent) else reports
    block = ["All methods on the embedded benchmark, test/validation accuracy (%) as mean ± 95% CI over",
             "seeds, best-validation checkpoints (from `make reproduce`, notebook 05). The `params` column lists every",
             "size a method ran at across the tasks; `train s` and `epochs` are means over all of a method's runs, every",
             "task pooled:", "", table.read_text().strip(), ""]
    if claims.exists():
        block += ["The papers' claims checked against these runs:", "", claims.read_text().strip(), ""]
    figure = reports / "figures" / "05_accuracy_vs_cost.png"
    if figure.exists():
        block += [f"![accuracy vs cost]({rel}/figures/{figure.name})", ""]
    agreement = reports / "tables" / "05_easy_vqa_vs_shapes.md"
    if agreement.exists():
        block += ["easy-VQA (a public dataset, notebooks 02-04 and 06 run again on it) against the shapes benchmark: "
                  "each comparison's outcome on both (higher or lower: intervals separate; else tie):", "",
                  agreement.read_text().strip(), ""]
    block += regime_block(reports, rel)
    text = _replace_block(text, README_START, README_END, block)
    readme.write_text(_replace_block(text, PERFORMANCE_START, PERFORMANCE_END, performance_block(reports)))
    return True


def prepare_section(config_path: Path, section: str, out: Path) -> list[Path]:
    """Copies of a section's notebooks with its parameters injected (papermill, not executed), for ``make test``'s
    nbval run of that section in the fast setting: the parameters come from the plan, never typed twice."""
    import papermill

    plan = load_plan(config_path)
    entries = [entry for entry in plan if entry.get("section") == section]
    if not entries:
        known = sorted({entry["section"] for entry in plan if entry.get("section")})
        raise ValueError(f"{config_path}: no notebook in section {section!r}; sections: {known}")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for entry in entries:
        target = out / Path(entry["path"]).name
        papermill.execute_notebook(str(REPO / entry["path"]), str(target), parameters=entry["parameters"],
                                   prepare_only=True, kernel_name="python3", progress_bar=False)
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "reproduce.yaml"))
    parser.add_argument("--only", nargs="*", default=None,
                        help="notebook number prefixes to run (e.g. 03 04); the summary notebook runs too")
    parser.add_argument("--plan", action="store_true", help="print what a run would do, and stop")
    parser.add_argument("--reports", default=None, help="reports folder (default: the plan's `reports`, else reports/)")
    parser.add_argument("--prepare-section", metavar="SECTION", default=None,
                        help="write the section's notebooks with its parameters injected to --out, run nothing")
    parser.add_argument("--out", default=None, help="folder for --prepare-section")
    parser.add_argument("--ship-teachers", action="store_true",
                        help="copy the plan's from-scratch teachers trained here into data/teachers/ (tracked), "
                             "so that a fresh clone loads them instead of training them; run nothing")
    args = parser.parse_args(argv)
    if args.ship_teachers:
        shipped, missing = ship_teachers(load_teachers(Path(args.config)))
        print(f"shipped {len(shipped)} teachers to {SHIPPED_TEACHERS_DIR}")
        if missing:
            print(f"not trained here yet, so not shipped ({len(missing)}):", *missing, sep="\n  ")
        return 0
    if args.prepare_section:
        if not args.out:
            parser.error("--prepare-section needs --out DIR")
        try:
            written = prepare_section(Path(args.config), args.prepare_section, Path(args.out))
        except (ValueError, FileNotFoundError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        print("\n".join(str(path) for path in written))
        return 0

    with reproduction_environment():
        return _run(args)


def ship_teachers(entries: list[dict]) -> tuple[list[Path], list[str]]:
    """:func:`~mmkd_core.experiments.multimodal.ship_teacher` for every from-scratch teacher of ``entries`` (the
    teachers phase's) trained under ``data/checkpoints``; returns the shipped folders and the labels of those not
    trained here. Two-tower teachers are not shipped: their tower features are large, and rebuilt offline."""
    shipped, missing, wanted = [], [], set()
    for entry in entries:
        if entry.get("two_tower") is not None:
            continue
        config, _ = teacher_setting(entry)
        wanted.add(shipped_teacher_dir(config).name)
        if is_saved_teacher(checkpoint_dir(config)):
            shipped.append(ship_teacher(config))
        else:
            missing.append(teacher_label(entry))
    for stale in sorted(SHIPPED_TEACHERS_DIR.glob("teacher-*")):  # shipped once, loaded by no entry of the plan now
        if stale.name not in wanted:
            shutil.rmtree(stale)
            print(f"removed {stale.name}: no teacher of the plan loads it any more")
    return shipped, missing


@contextlib.contextmanager
def reproduction_environment():
    """``MMKD_REPRODUCE=1`` while inside: the kernels papermill starts inherit it, and with it (only with
    it) notebooks write to reports/. With ``MMKD_FRESH=1`` also the moment this reproduction started
    (:func:`mmkd_core.runs.fresh_since`): runs cached before it are retrained, runs trained since are shared between
    notebooks. Both are restored afterwards, so a caller's later runs are ad hoc again."""
    settings = {REPRODUCE_ENV: "1"}
    if fresh():
        settings[FRESH_SINCE_ENV] = repr(time.time())
    previous = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _run(args: argparse.Namespace) -> int:
    config_path = Path(args.config)
    try:
        all_entries = load_plan(config_path)
        plan = select_notebooks(all_entries, args.only)
    except (ValueError, FileNotFoundError) as error:  # a wrong plan or --only: the message says it all
        print(f"error: {error}", file=sys.stderr)
        return 2
    reports = Path(args.reports or plan_reports(config_path) or REPO / "reports")
    teachers = load_teachers(config_path, args.only or None)
    if args.only and not {prefix_of(Path(entry["path"]).name) for entry in plan} & set(TEACHER_NOTEBOOKS):
        teachers = []  # none of the notebooks asked for distils from them
    for line in plan_lines(config_path, plan, teachers, reports):
        print(line, flush=True)
    if args.plan:
        return 0
    (reports / "executed").mkdir(parents=True, exist_ok=True)
    main_reports = reports.resolve() == (REPO / "reports").resolve()
    for entry in plan:
        if entry.get("section") or not main_reports:  # a section, or another profile: its own folder
            entry["parameters"].setdefault("reports_dir", str(entry_reports(reports, entry).resolve()))
    timings: dict[str, float] = {}
    if teachers:
        timings[TEACHERS_STEP] = _prepare_teachers(teachers, len(plan))
    timings_path = reports / "tables" / "reproduce_timings.csv"
    for name, seconds in read_timings(timings_path).items():  # keep the times of notebooks not rerun this time
        timings.setdefault(name, seconds)
    trained = read_trained(timings_path)
    for number, entry in enumerate(plan, start=1):
        source, name = REPO / entry["path"], entry_name(entry)
        executed = entry_reports(reports, entry) / "executed" / source.name
        executed.parent.mkdir(parents=True, exist_ok=True)
        print(f"[{number}/{len(plan)}] {entry['path']}" + (f" (section {entry['section']})" if entry.get("section")
                                                           else "") + f" → {_shown(executed)}", flush=True)
        outputs_before = prefixed_outputs(entry_reports(reports, entry), prefix_of(source.name))
        start, started_at = time.perf_counter(), time.time()
        try:
            execute_notebook(source, executed, entry["parameters"], progress_bar=True, log_output=False)
        except Exception as error:  # papermill raises PapermillExecutionError with the cell's traceback
            print(f"\nFAILED: notebook {entry['path']} (see its executed copy {executed}).\n"
                  f"Reports from the notebooks before it are unchanged.\n{type(error).__name__}: "
                  f"{str(error)[-2000:]}", file=sys.stderr)
            return 1
        timings[name], trained[name] = time.perf_counter() - start, finished_runs(since=started_at)
        print(f"    done in {timings[name]:.0f} s, {trained[name]} student runs trained", flush=True)
        for path in remove_unwritten(outputs_before):
            print(f"    removed {_shown(path)}: this run of the notebook did not write it", flush=True)
        write_timings(timings_path, timings, trained)
    index = write_index(reports, all_entries, dict(sorted(timings.items())))
    if main_reports and update_readme(REPO / "README.md", reports):
        print("README results section updated from reports/tables/05_all_methods.md")
    print(f"reports indexed in {index}; total {sum(timings.values()):.0f} s")
    return 0


def _prepare_teachers(teachers: list[dict], notebooks: int) -> float:
    """The teachers phase, one live bar per teacher; returns its seconds."""
    cached = [teacher_is_cached(entry) for entry in teachers]
    print(f"[0/{notebooks}] teachers in parallel: {len(teachers) - sum(cached)} to train, {sum(cached)} cached "
          f"(data/checkpoints, data/pretrained)", flush=True)
    start = time.perf_counter()
    bars = TeacherBars([teacher_label(entry) for entry in teachers], cached)
    try:
        lines = prepare_teachers(teachers, on_progress=bars)
    finally:
        bars.close()
    for line in lines:
        print(f"    {line}", flush=True)
    seconds = time.perf_counter() - start
    print(f"    done in {seconds:.0f} s", flush=True)
    return seconds


if __name__ == "__main__":
    sys.exit(main())
