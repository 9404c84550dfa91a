"""The sources are cited inside the repository: docs/references.md, with anchors that exist.

The papers the collection was built from were never part of a clone, so a citation of their old location leads
a reader nowhere. Every citation points at a section of docs/references.md instead, and each such link must name
a heading that the page has.
"""
from __future__ import annotations

import re
import subprocess
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REFERENCES = ROOT / "docs" / "references.md"

# Built from two pieces so that this file does not contain, and trip on, the very strings it forbids.
FORBIDDEN = ("shared" + "/papers", "../" + "shared")
# reports/executed/ holds notebooks as the last `make reproduce` ran them; they are rewritten from notebooks/ on
# the next reproduce, so an old citation there disappears then and is not a source to fix by hand.
EXCLUDED_PREFIXES = (".git/", ".venv/", "reports/executed/")
LINK = re.compile(r"docs/references\.md#([\w-]+)")
PAGE_INTERNAL_LINK = re.compile(r"\]\(#([\w-]+)\)")
# The files that cite a source text: each must keep at least one link to the page.
CITING_FILES = ("README.md", "mmkd_core/losses/gram.py", "mmkd_core/losses/msd.py", "mmkd_core/losses/data2vec.py",
                "mmkd_core/models/vision.py", "notebooks/01_unimodal_vision_kd_data2vec.ipynb",
                "notebooks/03_modality_specific_distillation.ipynb")


def repository_files() -> list[str]:
    """Tracked files and new files git does not ignore (so a file not yet committed is checked too)."""
    try:
        listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                                capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the files of the repository cannot be told from generated ones")
    paths = [name for name in listed.decode("utf-8").split("\0") if name]
    return sorted(p for p in paths if not p.startswith(EXCLUDED_PREFIXES) and (ROOT / p).is_file())


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces turned into hyphens."""
    text = unicodedata.normalize("NFC", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def page_anchors(markdown: str) -> set[str]:
    """Anchors of every heading outside fenced code; a repeated heading gets -1, -2, ... as on GitHub."""
    anchors, in_fence = set(), False
    for line in markdown.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence
            continue
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading and not in_fence:
            anchor = base = github_anchor(heading.group(1))
            repeat = 0
            while anchor in anchors:
                repeat += 1
                anchor = f"{base}-{repeat}"
            anchors.add(anchor)
    return anchors


def test_no_file_cites_the_papers_outside_the_repository():
    offenders = []
    for path in repository_files():
        content = (ROOT / path).read_bytes()
        offenders += [f"{path}: {pattern!r}" for pattern in FORBIDDEN if pattern.encode() in content]
    assert not offenders, ("these files cite a location that is not part of a clone; cite a section of "
                           f"docs/references.md instead: {offenders}")


def test_every_link_to_the_references_names_one_of_its_headings():
    anchors = page_anchors(REFERENCES.read_text(encoding="utf-8"))
    broken = []
    for path in repository_files():
        text = (ROOT / path).read_bytes().decode("utf-8", errors="ignore")
        broken += [f"{path}: #{anchor}" for anchor in LINK.findall(text) if anchor not in anchors]
    internal = PAGE_INTERNAL_LINK.findall(REFERENCES.read_text(encoding="utf-8"))
    broken += [f"docs/references.md: #{anchor}" for anchor in internal if anchor not in anchors]
    assert not broken, f"links to sections that docs/references.md does not have: {broken}; headings: {sorted(anchors)}"


def test_every_file_that_cites_a_source_links_to_the_references():
    missing = [path for path in CITING_FILES if not LINK.search((ROOT / path).read_text(encoding="utf-8"))]
    assert not missing, f"these files cite a source text without a link to docs/references.md: {missing}"


def test_the_anchor_rule_matches_github():
    assert github_anchor("Modality-specific distillation (Jin et al. 2021)") == \
        "modality-specific-distillation-jin-et-al-2021"
    assert github_anchor("Gram paper: gaps and our readings") == "gram-paper-gaps-and-our-readings"
    assert page_anchors("# A\n## A\n```\n# not a heading\n```\n") == {"a", "a-1"}
