"""Where notebook outputs go: reports/ only inside make reproduce, scratch or _fast otherwise."""
from __future__ import annotations

import pandas as pd
import pytest

from mmkd_core import reporting


@pytest.mark.parametrize("fast,reproduce,expected", [
    ("0", "0", "reports/_scratch"),
    ("0", "1", "reports"),
    ("1", "0", "reports/_fast"),
    ("1", "1", "reports/_fast"),
])
def test_default_reports_dir(monkeypatch, fast, reproduce, expected):
    monkeypatch.setenv("MMKD_FAST", fast)
    monkeypatch.setenv(reporting.REPRODUCE_ENV, reproduce)
    assert reporting.default_reports_dir() == reporting.REPO_ROOT / expected


def test_ad_hoc_outputs_are_git_ignored():
    ignored = (reporting.REPO_ROOT / ".gitignore").read_text().splitlines()
    assert "reports/_scratch/*" in ignored and "reports/_fast/" in ignored


def test_first_output_says_where_outputs_go(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(reporting, "_announced", set())
    reporting.save_table(pd.DataFrame({"a": [1]}), "t", tmp_path)
    reporting.save_table(pd.DataFrame({"a": [2]}), "u", tmp_path)
    out = capsys.readouterr().out
    assert out.count("tables and figures of this run go to") == 1 and str(tmp_path) in out
    assert (tmp_path / "tables" / "u.md").is_file()


def test_reproduce_marks_only_its_own_kernels(monkeypatch):
    from mmkd_core import reproduce

    monkeypatch.delenv(reporting.REPRODUCE_ENV, raising=False)
    with reproduce.reproduction_environment():
        assert reporting.is_reproduction()
    assert not reporting.is_reproduction()


def test_figure_captions_reach_the_reports_index(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mmkd_core import reproduce

    fig, ax = plt.subplots()
    ax.set_title("label balance per split")
    reporting.save_figure(fig, "02_titled", tmp_path)
    reporting.save_figure(fig, "02_captioned", tmp_path, caption="what the bars show, in one line")
    plt.close(fig)
    assert reporting.figure_caption(tmp_path / "figures" / "02_titled.png") == "label balance per split"
    index = reproduce.write_index(tmp_path, ["notebooks/02_vanilla_multimodal_kd.ipynb"], {}).read_text()
    assert "(figures/02_captioned.png): what the bars show, in one line" in index
    assert "(figures/02_titled.png): label balance per split" in index
