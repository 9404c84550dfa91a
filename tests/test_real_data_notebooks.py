"""Notebooks 02-04 on the real-data path: papermill runs in the fast setting on official-layout Hateful Memes
fixtures written here (the layout the loader tests use), so every multimodal notebook's real-data branch runs in
CI, not only the loaders."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from test_real_datasets import write_image, write_lines

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = ["02_vanilla_multimodal_kd", "03_modality_specific_distillation", "04_gram_relation_kd"]


@pytest.fixture(scope="module")
def memes_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("hateful_memes")
    sizes = {"train.jsonl": 48, "dev_seen.jsonl": 16, "test_seen.jsonl": 16}
    words = ["love", "hate", "red", "blue", "things", "people", "today"]
    next_id = 10000
    for name, n in sizes.items():
        records = []
        for i in range(n):
            label = i % 2
            records.append({"id": next_id, "img": f"img/{next_id}.png", "label": label,
                            "text": " ".join(words[(i + k) % len(words)] for k in range(4))})
            write_image(root / "img" / f"{next_id}.png", color=(200, 30, 30) if label else (30, 30, 200))
            next_id += 1
        write_lines(root / name, records)
    return root


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_notebook_runs_on_official_layout_fixtures(notebook, memes_root, tmp_path):
    env = {**os.environ, "MMKD_FAST": "1", "MMKD_DATA_DIR": str(tmp_path / "data"), "OMP_NUM_THREADS": "1"}
    papermill = Path(sys.executable).parent / "papermill"
    command = [str(papermill), str(REPO / "notebooks" / f"{notebook}.ipynb"), str(tmp_path / "out.ipynb"),
               "--cwd", str(REPO / "notebooks"), "-p", "dataset", "hateful_memes", "-p", "data_root", str(memes_root),
               "-p", "workers", "1", "-p", "reports_dir", str(tmp_path / "reports")]
    if notebook.startswith("04"):
        command += ["-y", "tasks: [hateful_memes]"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    prefix = notebook[:2]
    tables = {p.name for p in (tmp_path / "reports" / "tables").glob(f"{prefix}_*_runs.csv")}
    assert tables, f"notebook {notebook} wrote no runs table"
