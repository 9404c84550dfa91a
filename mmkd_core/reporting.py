"""Where notebooks put their tables and figures.

Every table is written twice (CSV for machines, Markdown for people) under ``<reports>/tables/`` and
every figure as PNG under ``<reports>/figures/``. Notebooks pass their ``reports_dir`` parameter; when it
is None they use :func:`default_reports_dir`:

- ``reports/`` only in a ``make reproduce`` run (:mod:`mmkd_core.reproduce` sets ``MMKD_REPRODUCE=1``
  for its kernels), so an ad-hoc run never replaces the reproduction's results;
- ``reports/_fast/`` in the small CI setting (``MMKD_FAST=1``);
- ``reports/_scratch/`` otherwise (any run by hand: papermill with other parameters, JupyterLab).

Both underscore folders are git-ignored. The first table or figure written to a folder prints where
the outputs go.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

REPO_ROOT = Path(__file__).resolve().parents[1]


REPRODUCE_ENV = "MMKD_REPRODUCE"  # set to 1 by mmkd_core.reproduce for the notebooks it runs
_announced: set[Path] = set()


def is_fast() -> bool:
    """True in the small CI setting (environment variable ``MMKD_FAST=1``)."""
    return os.environ.get("MMKD_FAST", "0") == "1"


def is_reproduction() -> bool:
    """True inside ``make reproduce`` (environment variable ``MMKD_REPRODUCE=1``)."""
    return os.environ.get(REPRODUCE_ENV, "0") == "1"


def default_reports_dir() -> Path:
    """``reports/`` in a reproduction run, ``reports/_fast/`` in the CI setting, else ``reports/_scratch/``."""
    if is_fast():  # first: make test under make reproduce's environment must still not touch reports/
        return REPO_ROOT / "reports" / "_fast"
    if is_reproduction():
        return REPO_ROOT / "reports"
    return REPO_ROOT / "reports" / "_scratch"


def _shown(path: Path) -> str:
    """Relative to the repository when inside it: executed notebooks then hold no machine's paths."""
    path = path.resolve()
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def _target(reports_dir: str | os.PathLike | None, kind: str, name: str, suffix: str) -> Path:
    base = Path(reports_dir) if reports_dir is not None else default_reports_dir()
    if base.resolve() not in _announced:
        _announced.add(base.resolve())
        note = "" if is_reproduction() or reports_dir is not None else \
            " (not reports/: only make reproduce writes there; pass reports_dir to choose)"
        print(f"tables and figures of this run go to {_shown(base)}/{note}")
    path = base / kind / f"{name}{suffix}"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def save_table(df: pd.DataFrame, name: str, reports_dir=None, index: bool = False) -> Path:
    """Write ``df`` to ``tables/<name>.csv`` and ``tables/<name>.md``; returns the Markdown path."""
    csv_path = _target(reports_dir, "tables", name, ".csv")
    df.to_csv(csv_path, index=index)
    md_path = csv_path.with_suffix(".md")
    md_path.write_text(df.to_markdown(index=index) + "\n")
    return md_path


CAPTION_KEY = "Description"  # the PNG text field that holds a figure's one-line caption


def save_figure(fig, name: str, reports_dir=None, dpi: int = 120, caption: str | None = None) -> Path:
    """Write a matplotlib figure to ``figures/<name>.png``.

    ``caption`` (default: the figure's suptitle, else its first panel title) is stored inside the PNG,
    where ``make reproduce`` reads it to say in one line what each figure of reports/README.md shows.
    """
    path = _target(reports_dir, "figures", name, ".png")
    caption = caption if caption is not None else _title_of(fig)
    fig.savefig(path, dpi=dpi, bbox_inches="tight", metadata={CAPTION_KEY: caption} if caption else None)
    return path


def _title_of(fig) -> str:
    suptitle = getattr(fig, "_suptitle", None)
    titles = [suptitle.get_text()] if suptitle is not None else []
    titles += [ax.get_title() for ax in fig.axes]
    return next((" ".join(t.split()) for t in titles if t and t.strip()), "")


def figure_caption(path: str | os.PathLike) -> str:
    """The one-line caption :func:`save_figure` stored in a PNG ("" when it has none or is no PNG)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return str(getattr(image, "text", {}).get(CAPTION_KEY, ""))
    except OSError:  # not an image (PIL's UnidentifiedImageError is an OSError): the index still lists it
        return ""
