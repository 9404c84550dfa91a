"""mmkd_core.figure_checks: a figure whose texts overlap, or whose labels are code names, is caught; a clean one
(rotated tick labels included) passes."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from mmkd_core import figure_checks, plots  # noqa: E402  (plots also sets the collection's style)

NAMES = ["contradiction", "entailment", "neutral"]


def test_tick_labels_that_run_together_are_caught_and_rotated_ones_that_do_not_pass():
    fig, ax = plt.subplots(figsize=(1.0, 2))
    ax.set_xticks(range(3), NAMES, fontsize=10)
    assert figure_checks.overlapping_texts(fig) == [("contradiction", "entailment"), ("entailment", "neutral")]
    ax.set_xticks(range(3), NAMES, rotation=30, ha="right", fontsize=8)
    fig.set_size_inches(3, 2)
    assert figure_checks.overlapping_texts(fig) == []  # their axis-aligned envelopes overlap, their boxes do not
    plt.close(fig)


def test_a_title_over_another_panels_labels_is_caught_and_tight_layout_clears_it():
    fig, axes = plt.subplots(2, 1, figsize=(4, 2.2))
    axes[0].set_xlabel("a long x label for the first panel", fontsize=12)
    axes[1].set_title("the second panel's title, right under it", fontsize=14)
    assert any("the second panel's title, right under it" in pair for pair in figure_checks.overlapping_texts(fig))
    fig.set_size_inches(4, 4)
    fig.tight_layout()
    assert figure_checks.overlapping_texts(fig) == []
    plt.close(fig)


def test_two_texts_at_one_place_are_caught():
    fig = plt.figure(figsize=(3, 2))
    fig.text(0.5, 0.5, "first note")
    fig.text(0.52, 0.5, "second note")
    assert figure_checks.overlapping_texts(fig) == [("first note", "second note")]
    plt.close(fig)


@pytest.mark.parametrize("label,bad", [("test/accuracy", True), ("text_cue", True), ("test accuracy (%)", False),
                                       ("MSD text 0.5 / image 2.0", False), ("teacher − KD (points)", False),
                                       ("$|G_t - G_s|$ at step 40", False), ("G_t at step 40", True)])
def test_code_names_in_labels_are_caught(label, bad):
    fig, ax = plt.subplots()
    ax.set_ylabel(label)
    assert bool(figure_checks.code_names(fig)) is bad
    plt.close(fig)


def test_save_figure_refuses_an_unreadable_figure_in_the_ci_setting_and_warns_otherwise(tmp_path, monkeypatch):
    fig, ax = plt.subplots()
    ax.set_title("differences of test/accuracy")
    monkeypatch.setenv("MMKD_FAST", "1")
    with pytest.raises(ValueError, match="'test/accuracy'"):
        plots.save_figure(fig, "bad", tmp_path)
    monkeypatch.setenv("MMKD_FAST", "0")
    with pytest.warns(UserWarning, match="write it in words"):
        plots.save_figure(fig, "bad", tmp_path)
    assert (tmp_path / "figures" / "bad.png").exists()
    plt.close(fig)


def test_hidden_axes_of_image_panels_are_not_read():
    fig, axes = plt.subplots(1, 2, figsize=(2, 1))
    for ax in axes:
        ax.imshow([[0, 1], [1, 0]])
        ax.axis("off")
    assert figure_checks.figure_texts(fig) == []
    plt.close(fig)


def test_every_notebook_saves_its_figures_through_the_checked_writer():
    """Notebooks import save_figure from plots (which checks), never the bare writer in reporting."""
    import json
    from pathlib import Path

    for path in sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb")):
        code = "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code")
        if "save_figure" in code:
            assert "from mmkd_core.plots import save_figure" in code, path.name
            assert "reporting import" not in code or "save_figure" not in code.split("reporting import")[1].split("\n")[0], \
                path.name
