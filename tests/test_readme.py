"""Every command in README.md's ```bash blocks runs as written, or says what it needs, and none writes reports/.

The commands are read from README.md at test time, so an example edited there (or a notebook or script whose
arguments change under it) is tested as written. Each command is one of:

- a papermill example: run with ``MMKD_FAST=1``, its executed copy and ``reports_dir`` in a temporary folder;
- a script (``-m mmkd_core.run``, under torchrun or not): run with its launcher as written, toy sizes added
  *before* the README's own arguments (so every value the README sets is run as written), its data and
  output in a temporary folder; all ranks must end with the same weights;
- ``make test`` / ``make reproduce``: see ``COVERED_ELSEWHERE``;
- a command ending in ``# needs: ...``: it needs data or hardware this repository does not have. The test
  checks that the comment names them (the data folder it reads, GPUs for a multi-GPU launch or the gpu
  preset), that its program and config files exist, and runs a script in one process at toy size, on the
  official-layout fixtures of tests/test_real_datasets.py where it names a real dataset.

None may print a traceback or change a file in reports/.
"""
from __future__ import annotations

import dataclasses
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from mmkd_core.experiments import ExperimentConfig
from mmkd_core.run import argument_parser, load_config
from test_real_datasets import make_hateful_memes, make_nlvr, make_nlvr2, make_snli_ve
from test_scripts import TOY_SHAPES_SPLITS, TOY_SIZES, assert_ranks_agree, free_port, run_script

REPO = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"```(?:bash|sh|shell)\n(.*?)```", re.S)
NEEDS = re.compile(r"needs:\s*(.*)")
# make test writes reports/_fast/ (possibly at the same time as this test): not a change by the examples
CONCURRENT_WRITERS = ("_fast",)
# Official-layout fixtures (a few rows) that stand in for a real dataset when a command's needs are data.
FIXTURE_WRITERS = {"hateful_memes": make_hateful_memes, "snli_ve": make_snli_ve, "nlvr": make_nlvr,
                   "nlvr2": make_nlvr2}
# Commands this file does not run itself, and what does.
COVERED_ELSEWHERE = {
    # CI (.ci/run) runs exactly `make test`; running it here would run this very test inside itself.
    "make test": "CI",
    # The real thing takes 40 minutes to an hour on 2 cores, too long for a test. What can break without the
    # unit tests noticing is the path from the make target to the notebooks: the Makefile recipe, reproduce.yaml,
    # mmkd_core.reproduce. test_make_reproduce_runs_its_plan_in_the_small_setting runs that very path, through
    # make, on one notebook with MMKD_FAST=1 and a temporary reports folder.
    "make reproduce": "test_make_reproduce_runs_its_plan_in_the_small_setting",
}


@dataclasses.dataclass(frozen=True)
class Command:
    text: str  # continuation lines joined, whitespace normalised, trailing comment removed
    needs: str | None  # what its "# needs: ..." comment names; None without one

    @property
    def words(self) -> list[str]:
        return shlex.split(self.text)

    @property
    def program(self) -> str:
        return Path(self.words[0]).name

    def __str__(self) -> str:
        return self.text


def readme_commands() -> list[Command]:
    commands = []
    for block in FENCE.findall((REPO / "README.md").read_text()):
        for line in block.replace("\\\n", " ").splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            text, _, comment = line.partition(" #")
            needs = NEEDS.match(comment.strip())
            commands.append(Command(" ".join(text.split()), needs.group(1).strip() if needs else None))
    return commands


def is_script(command: Command) -> bool:
    words = command.words
    return "-m" in words and words[words.index("-m") + 1:][:1] == ["mmkd_core.run"]


def papermill_commands() -> list[Command]:
    return [c for c in readme_commands() if c.program == "papermill" and c.needs is None]


def script_commands(needs: bool) -> list[Command]:
    return [c for c in readme_commands() if is_script(c) and (c.needs is not None) == needs]


def option(words: list[str], name: str) -> str | None:
    """The value after ``name`` (``--config FILE``), or of ``-p name VALUE`` for a papermill parameter."""
    for i, word in enumerate(words[:-1]):
        if word == name:
            return words[i + 1]
        if word == "-p" and words[i + 1] == name and i + 2 < len(words):
            return words[i + 2]
    return None


def script_arguments(command: Command):
    """The command's arguments to mmkd_core.run, as that script parses them."""
    words = command.words
    return argument_parser().parse_args(words[words.index("-m") + 2:])


def script_config(command: Command) -> ExperimentConfig:
    arguments = script_arguments(command)
    return load_config(str(REPO / arguments.config) if arguments.config else None, arguments.set)


def what_it_needs(command: Command) -> list[str]:
    """What the command uses that this repository does not have, each as the words its needs comment must use."""
    words = command.words
    data_root = script_config(command).data_root if is_script(command) else option(words, "data_root")
    needed = [data_root] if data_root and not (REPO / data_root).resolve().is_relative_to(REPO) else []
    processes = option(words, "--num_processes") or option(words, "--nproc_per_node") or "1"
    if (command.program == "accelerate" and int(processes) > 1) or option(words, "protocol") == "gpu":
        needed.append("GPU")  # torchrun without GPUs runs its processes on the CPU (gloo); accelerate does not
    return needed


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.rglob("*")
            if p.is_file() and p.relative_to(folder).parts[0] not in CONCURRENT_WRITERS}


def assert_unchanged(before: dict, command) -> None:
    after = snapshot(REPO / "reports")
    changed = sorted(name for name in set(before) | set(after) if before.get(name) != after.get(name))
    assert not changed, f"{command}\nchanged files in reports/: {changed}"


def test_every_readme_command_is_run_or_says_what_it_needs():
    commands = readme_commands()
    assert papermill_commands(), "README.md has no papermill example in a ```bash block"
    assert script_commands(needs=False), "README.md has no mmkd_core.run example that runs without data or GPUs"
    for command in commands:
        covered = command.needs is not None or command.program == "papermill" or is_script(command) \
            or command.text in COVERED_ELSEWHERE
        assert covered, (f"README command not covered by tests/test_readme.py: {command}\nrun it here, or end "
                         f"it with '# needs: <the data or hardware it needs>'")


@pytest.mark.parametrize("command", readme_commands(), ids=str)
def test_readme_command_uses_the_projects_environment(command):
    """`make ...`, or a program of the virtual environment called by its path (`.venv/bin/...`): a fresh clone
    has no activated environment, so a bare `accelerate` is `command not found` there."""
    if command.program == "make":
        return
    assert command.words[0].startswith(".venv/bin/"), f"call it as .venv/bin/{command.program}: {command}"
    assert (Path(sys.executable).parent / command.program).exists(), \
        f"{command.program} is not installed by `make venv`: {command}"
    config = option(command.words, "--config")
    if config:
        assert (REPO / config).is_file(), f"{command}\nnames a config that is not in the repository: {config}"


@pytest.mark.parametrize("command", readme_commands(), ids=str)
def test_readme_command_names_what_it_needs(command):
    needed = what_it_needs(command)
    if command.needs is None:
        assert not needed, f"{command}\nneeds {needed}: end it with '# needs: ...' naming them"
        return
    assert re.search(r"[A-Za-z]{3,}", command.needs), f"'# needs:' names nothing: {command}"
    missing = [item for item in needed if item not in command.needs]
    assert not missing, f"{command}\nits '# needs: {command.needs}' does not name {missing}"
    assert needed, (f"{command}\nsays it needs {command.needs!r}, but nothing this test knows to be missing here: "
                    f"run it, or teach what_it_needs() what it lacks")


@pytest.mark.parametrize("command", [str(c) for c in papermill_commands()])
def test_readme_papermill_example_runs(command, tmp_path):
    arguments = shlex.split(command)
    notebook, executed = arguments[1], arguments[2]
    assert notebook.endswith(".ipynb") and executed.endswith(".ipynb"), f"papermill INPUT OUTPUT ...: {command}"
    assert not executed.startswith("reports/") or executed.startswith("reports/_scratch/"), \
        f"the example writes its executed copy into reports/ itself: {executed}"
    run = [sys.executable, "-m", "papermill", notebook, str(tmp_path / Path(executed).name), *arguments[3:],
           "-p", "reports_dir", str(tmp_path / "reports"), "--no-progress-bar"]
    before = snapshot(REPO / "reports")
    run_script(run, tmp_path, timeout=900)
    assert (tmp_path / Path(executed).name).is_file()
    assert list((tmp_path / "reports").rglob("*.md")) or list((tmp_path / "reports").rglob("*.png")), \
        "the notebook wrote no table or figure into its reports_dir"
    assert_unchanged(before, command)


def toy_overrides(config: ExperimentConfig, tmp_path: Path) -> list[str]:
    """--set values that shrink the experiment to seconds; a real dataset is replaced by its fixture tree."""
    if config.dataset == "shapes":
        data = [f"dataset_options={json.dumps({**config.dataset_options, **TOY_SHAPES_SPLITS})}", "n_labelled=48"]
    else:
        root = FIXTURE_WRITERS[config.dataset](tmp_path / config.dataset)
        data = [f"data_root={root}", "n_labelled=2"]
    return [*data, *TOY_SIZES]


def run_readme_script(command: Command, tmp_path: Path, one_process: bool) -> None:
    """The README's script command with toy sizes, output into tmp_path; every rank's weights must agree."""
    words = command.words
    module = words.index("-m")
    parsed = script_arguments(command)
    assert parsed.experiment == "student", f"this test knows the outputs of the 'student' experiment only: {command}"
    assert parsed.out is None or parsed.out.startswith(("reports/_scratch/", "data/")), \
        f"{command}\nwrites {parsed.out}: only make reproduce writes reports/"
    launcher = [sys.executable] if one_process else [str(Path(sys.executable).parent / command.program),
                                                      *words[1:module]]
    processes = 1 if one_process else int(option(words, "--nproc_per_node") or 1)
    if not one_process and command.program == "torchrun":
        launcher.insert(1, f"--master_port={free_port()}")  # the README's default port may be taken
    elif not one_process:
        assert command.program == "python", f"this test runs python and torchrun launches only: {command}"
    toy = toy_overrides(script_config(command), tmp_path)
    # the toy sizes first: every value the README sets itself (after them) is run as written
    run = [*launcher, "-m", "mmkd_core.run", "student", "--set", *toy, *words[module + 3:], "--out", str(tmp_path / "out")]
    before = snapshot(REPO / "reports")
    done = run_script(run, tmp_path)
    runs = pd.read_csv(tmp_path / "out" / "runs.csv")
    assert sorted(runs["seed"]) == sorted(parsed.seeds) and set(runs["method"]) == {parsed.method}, runs
    assert_ranks_agree(done.stdout, parsed.seeds, processes)
    assert_unchanged(before, command)


@pytest.mark.parametrize("command", script_commands(needs=False), ids=str)
def test_readme_script_example_runs(command, tmp_path):
    run_readme_script(command, tmp_path, one_process=False)


@pytest.mark.parametrize("command", script_commands(needs=True), ids=str)
def test_readme_script_that_needs_gpus_or_data_runs_in_one_process_at_toy_size(command, tmp_path):
    """What each process of the multi-GPU launch runs, on its config (a real dataset's replaced by a fixture)."""
    run_readme_script(command, tmp_path, one_process=True)


def test_example_configs_are_the_notebooks_settings():
    """The shipped configs are the experiments the README says they are, field for field."""
    assert load_config(str(REPO / "configs" / "student_example.yaml"), []) == ExperimentConfig.preset("embedded", "ve")
    memes = ExperimentConfig.preset("gpu", dataset="hateful_memes", data_root="/data/hateful_memes", n_labelled=1000)
    assert load_config(str(REPO / "configs" / "hateful_memes_gpu.yaml"), []) == memes
    named = {option(c.words, "--config") for c in readme_commands()} - {None}
    assert named == {str(p.relative_to(REPO)) for p in (REPO / "configs").glob("*.yaml")}, \
        "every config in configs/ is an example the README names, and every one it names is there"


def test_make_reproduce_runs_its_plan_in_the_small_setting(tmp_path):
    """`make reproduce` through its make target and mmkd_core.reproduce, on a plan that is reproduce.yaml cut to
    its notebook 00 entry (parameters as written, no teachers) with its `reports` folder in tmp_path, and
    MMKD_FAST=1: the full run takes most of an hour."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    # STAMP= : use this interpreter's environment as it is (no venv creation or pip install in a test)
    make = ["make", "--no-print-directory", "reproduce", "STAMP=", f"VENV={sys.prefix}"]
    recipe = subprocess.run([*make, "-n"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert "-m mmkd_core.reproduce --config reproduce.yaml" in recipe, recipe
    plan = yaml.safe_load((REPO / "reproduce.yaml").read_text())
    plan["notebooks"] = [entry for entry in plan["notebooks"] if Path(entry["path"]).name.startswith("00_")]
    plan["teachers"] = []
    plan["reports"] = str(tmp_path / "reports")  # an absolute path: mmkd_core.reproduce.plan_reports keeps it
    assert len(plan["notebooks"]) == 1, "reproduce.yaml has no notebook 00 entry"
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(plan))
    before = snapshot(REPO / "reports")
    run_script([*make, f"CONFIG={tmp_path / 'plan.yaml'}"], tmp_path, timeout=600)
    assert (tmp_path / "reports" / "executed" / "00_embedded_benchmark.ipynb").is_file()
    assert list((tmp_path / "reports" / "tables").glob("00_*.md")) and (tmp_path / "reports" / "README.md").is_file()
    assert_unchanged(before, "make reproduce")
