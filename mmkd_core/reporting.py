"""Where notebooks put their tables and figures.

Every table is written twice (CSV for machines, Markdown for people) under ``<reports>/tables/`` and
every figure as PNG under ``<reports>/figures/``. Notebooks pass their ``reports_dir`` parameter; in the
small CI setting (``MMKD_FAST=1``) they pass ``reports/_fast`` so tests never overwrite real results.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

REPO_ROOT = Path(__file__).resolve().parents[1]


def is_fast() -> bool:
    """True in the small CI setting (environment variable ``MMKD_FAST=1``)."""
    return os.environ.get("MMKD_FAST", "0") == "1"


def default_reports_dir() -> Path:
    return REPO_ROOT / "reports" / ("_fast" if is_fast() else "")


def _target(reports_dir: str | os.PathLike | None, kind: str, name: str, suffix: str) -> Path:
    base = Path(reports_dir) if reports_dir is not None else default_reports_dir()
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


def save_figure(fig, name: str, reports_dir=None, dpi: int = 120) -> Path:
    """Write a matplotlib figure to ``figures/<name>.png``."""
    path = _target(reports_dir, "figures", name, ".png")
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path
