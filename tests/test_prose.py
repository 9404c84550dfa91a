"""No result number typed into prose (issue 27): notebooks' markdown cells, the README and reports/README.md."""

import json
from pathlib import Path

import pytest

from mmkd_core.prose_checks import strip_generated, typed_result_numbers

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))

# Numbers in prose that are settings or the papers' own reports, not this collection's results; each with its reason.
SETTINGS_AND_CITATIONS = {
    "README.md": (
        "a rise of at least 0.2 points",          # the early-stopping rule's threshold (a setting)
        "memes with 30% label noise",             # benchmark v2's setting
    ),
    "01_unimodal_vision_kd_data2vec.ipynb": (
        "of the rest 20% **validation**",         # the split's size (a setting)
    ),
    "02_vanilla_multimodal_kd.ipynb": (
        "a rise of at least 0.2 points",          # the early-stopping rule's threshold
    ),
    "04_gram_relation_kd.ipynb": (
        "the paper reports +1.2 to +1.7 points",  # the Gram paper's Table 1, cited
    ),
    "05_results_summary.ipynb": (
        "The Gram paper reports +1.2 to +1.7 points",
    ),
    "07_regime_map.ipynb": (
        "30% of the statements",                  # benchmark v2's setting
        "10 points or more above it",             # the plateau check's threshold (issue 24)
    ),
}


def markdown_of(notebook: Path) -> str:
    cells = json.loads(notebook.read_text())["cells"]
    return "\n\n".join("".join(cell["source"]) for cell in cells if cell["cell_type"] == "markdown")


@pytest.mark.parametrize("path", [REPO / "README.md", REPO / "reports" / "README.md", *NOTEBOOKS],
                         ids=lambda path: str(path.relative_to(REPO)))
def test_no_result_number_is_typed_into_prose(path):
    text = markdown_of(path) if path.suffix == ".ipynb" else path.read_text()
    typed = typed_result_numbers(text, SETTINGS_AND_CITATIONS.get(path.name, ()))
    assert not typed, (f"{path.relative_to(REPO)}: result numbers typed into prose (render them from the tables: a "
                       f"computed reading, or a block make reproduce writes):\n  " + "\n  ".join(typed))


def test_the_check_finds_typed_results_and_lets_conventions_through():
    text = ("KD reaches 74.6 ± 3.6 and 73.3% on test, +2.1 points over CE, in 404 s (about 7 minutes). "
            "Every interval is a 95% CI; `lr = 5%` is code.\n<!-- results:start -->\n99.9%\n<!-- results:end -->\n"
            "The benchmark adds 30%\nlabel noise.")
    hits = typed_result_numbers(text, allowed=("adds 30% label noise",))
    assert [hit.split(" ")[0] for hit in hits] != []
    joined = " | ".join(hits)
    for typed in ("73.3%", "+2.1 points", "404 s", "7 minutes"):
        assert typed in joined
    assert len(hits) == 4, hits
    assert "99.9%" not in strip_generated(text) and "lr = 5%" not in strip_generated(text)


def test_a_listed_phrase_lets_only_its_own_number_through():
    assert typed_result_numbers("30% noise and 40% noise", allowed=("30% noise",)) == ["30% noise and 40% noise"]
