"""The README's papermill examples run, in the small setting, and leave reports/ untouched.

The commands are read from README.md at test time, so an example edited there (or a notebook whose
parameters change under it) is tested as written. Each runs with ``MMKD_FAST=1``, its executed copy in a
temporary folder and ``-p reports_dir <temporary folder>``. Examples on a real dataset (``data_root``) need
files that are not in the repository and are skipped.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"```(?:bash|sh|shell)\n(.*?)```", re.S)
# make test writes reports/_fast/ (possibly at the same time as this test): not a change by the examples
CONCURRENT_WRITERS = ("_fast",)


def readme_papermill_commands() -> list[str]:
    commands = []
    for block in FENCE.findall((REPO / "README.md").read_text()):
        for command in block.replace("\\\n", " ").splitlines():
            command = command.split(" #", 1)[0].strip()
            if command and Path(shlex.split(command)[0]).name == "papermill":
                commands.append(" ".join(command.split()))
    return commands


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.rglob("*")
            if p.is_file() and p.relative_to(folder).parts[0] not in CONCURRENT_WRITERS}


def test_the_readme_has_papermill_examples():
    commands = readme_papermill_commands()
    assert commands, "README.md has no papermill example in a ```bash block"
    assert any("data_root" not in c for c in commands), "no example runs on the embedded benchmark"


@pytest.mark.parametrize("command", readme_papermill_commands())
def test_readme_papermill_example_runs(command, tmp_path):
    if "data_root" in command:
        pytest.skip("runs on a real dataset (data_root), which is not in the repository")
    arguments = shlex.split(command)
    notebook, executed = arguments[1], arguments[2]
    assert notebook.endswith(".ipynb") and executed.endswith(".ipynb"), f"papermill INPUT OUTPUT ...: {command}"
    assert not executed.startswith("reports/") or executed.startswith("reports/_scratch/"), \
        f"the example writes its executed copy into reports/ itself: {executed}"
    run = [sys.executable, "-m", "papermill", notebook, str(tmp_path / Path(executed).name), *arguments[3:],
           "-p", "reports_dir", str(tmp_path / "reports"), "--no-progress-bar"]
    environment = {**os.environ, "MMKD_FAST": "1", "PYTHONPATH": os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
    environment.pop("MMKD_REPRODUCE", None)
    before = snapshot(REPO / "reports")
    done = subprocess.run(run, cwd=REPO, env=environment, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{command}\nfailed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    assert (tmp_path / Path(executed).name).is_file()
    assert list((tmp_path / "reports").rglob("*.md")) or list((tmp_path / "reports").rglob("*.png")), \
        "the notebook wrote no table or figure into its reports_dir"
    after = snapshot(REPO / "reports")
    changed = sorted(name for name in set(before) | set(after) if before.get(name) != after.get(name))
    assert not changed, f"the example changed files in reports/: {changed}"
