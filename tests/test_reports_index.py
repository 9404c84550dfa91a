"""reports/ holds exactly the last reproduction: every table and figure is in the index, every index link exists."""
import re
from pathlib import Path

import pytest

from mmkd_core.reproduce import write_index

REPO = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(((?:[a-z][a-z0-9_-]*/)?(?:tables|figures)/[^)]+)\)")  # a section's folder first, or none


def indexed_and_present(reports: Path) -> tuple[set[str], set[str]]:
    indexed = set(LINK.findall((reports / "README.md").read_text()))
    sections = [p.parent.name + "/" for p in reports.glob("*/tables") if p.parent.name[:1].isalpha()]
    present = {str(p.relative_to(reports)) for section in ["", *sections] for folder in ("tables", "figures")
               for p in (reports / section / folder).glob("*") if p.is_file()}
    return indexed, present


def test_the_committed_reports_index_names_every_file_and_only_existing_files():
    indexed, present = indexed_and_present(REPO / "reports")
    assert not present - indexed, f"files in reports/ that the index does not name: {sorted(present - indexed)}"
    assert not indexed - present, f"index links to missing files: {sorted(indexed - present)}"


def test_write_index_lists_notebook_files_and_the_tables_of_no_notebook(tmp_path):
    for name in ("tables/02_kd.md", "tables/02_kd.csv", "figures/02_bars.png", "tables/bench_steps_cpu.md",
                 "tables/bench_steps_cpu.csv", "tables/reproduce_timings.csv"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    write_index(tmp_path, ["notebooks/02_vanilla_multimodal_kd.ipynb"], {})
    indexed, present = indexed_and_present(tmp_path)
    assert indexed == present


@pytest.mark.parametrize("folder", ["tables", "figures"])
def test_every_committed_notebook_file_comes_from_a_notebook_of_the_plan(folder):
    import yaml

    prefixes = {Path(e["path"]).name[:2] for e in yaml.safe_load((REPO / "reproduce.yaml").read_text())["notebooks"]}
    stray = [p.name for p in (REPO / "reports" / folder).glob("[0-9][0-9]_*") if p.name[:2] not in prefixes]
    assert not stray, f"reports/{folder} files of no notebook in reproduce.yaml: {stray}"
