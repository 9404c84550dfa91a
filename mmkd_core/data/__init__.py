"""Datasets behind the notebooks, all served with one schema.

``load(name, split, root=None, **options)`` returns a ``datasets.Dataset`` with at least the columns
``image`` (PIL), ``text`` (str) and ``label`` (``ClassLabel``), for ``split`` in
``train`` / ``validation`` / ``test``.

- ``"shapes"``: the embedded, procedurally generated benchmark (no download; see :mod:`.shapes`).
  ``root`` is the cache folder (default: the repository's ``data/``).
- Real datasets in their official layouts are registered in :data:`LOADERS` by :mod:`.real`.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import datasets

from . import shapes as _shapes
from .options import bool_option, path_option
from .registry import LOADERS, SPLITS, Loader, check_split, register  # noqa: F401  (public)

REPO_DATA_DIR = Path(__file__).resolve().parents[2] / "data"
def default_data_dir() -> Path:
    """The repository's ``data/`` folder, or ``$MMKD_DATA_DIR`` when set."""
    return Path(os.environ.get("MMKD_DATA_DIR", REPO_DATA_DIR))


def load(name: str, split: str, root: str | os.PathLike | None = None, **options: Any) -> datasets.Dataset:
    """Load one split of a dataset by name (see the module docstring for the schema)."""
    if not isinstance(name, str) or name not in LOADERS:
        raise ValueError(f"unknown dataset {name!r}; accepted: a str, one of {sorted(LOADERS)}")
    check_split(split)
    path_option("root", root)
    return LOADERS[name](split=split, root=root, **options)


def shapes_features(labels: tuple[str, ...], with_scene: bool = False, with_evidence: bool = False
                    ) -> datasets.Features:
    scene = {"scene": datasets.Value("string")} if with_scene else {}  # disjoint_splits: each row's scene
    # text_evidence / image_evidence: which modality settles the row ("text", "image", "none") and its tint's index
    evidence = {"evidence": datasets.Value("string"), "tint": datasets.Value("int32")} if with_evidence else {}
    return datasets.Features({**scene, **evidence,
        "image": datasets.Image(),
        "text": datasets.Value("string"),
        "label": datasets.ClassLabel(names=list(labels)),
        "statement": datasets.Value("string"),
        "statement_type": datasets.Value("string"),
        "true_label": datasets.ClassLabel(names=list(labels)),
        "text_cue_informative": datasets.Value("bool"),
        "image_cue_informative": datasets.Value("bool"),
        "n_objects": datasets.Value("int32"),
    })


@register("shapes")
def load_shapes(split: str, root=None, cache: bool = True, **options: Any) -> datasets.Dataset:
    """The embedded benchmark; ``options`` are the fields of :class:`.shapes.ShapesConfig`.

    Generated once per parameter set and cached under ``<root>/shapes/<hash>/<split>``.
    """
    known = set(_shapes.ShapesConfig.__dataclass_fields__)
    unknown = set(options) - known
    if unknown:
        raise ValueError(f"unknown shapes options {sorted(unknown)}; accepted: {sorted(known)}")
    config = _shapes.ShapesConfig(**options)
    check_split(split)
    bool_option("cache", cache)
    folder = Path(root if root is not None else default_data_dir()) / "shapes" / config.cache_key() / split
    if cache and (folder / "dataset_info.json").exists():
        return datasets.load_from_disk(str(folder))
    dataset = datasets.Dataset.from_dict(_shapes.generate_split(config, split),
                                         features=shapes_features(config.labels, config.disjoint_splits,
                                                                   config.text_evidence > 0 or config.image_evidence > 0))
    if cache:
        publish(dataset, folder)
        dataset = datasets.load_from_disk(str(folder))
    return dataset


def publish(dataset: datasets.Dataset, folder: Path) -> None:
    """Save ``dataset`` to ``folder`` atomically: written to a folder of this process's own, then renamed into place.

    Two processes that generate the same split at once (the teachers phase's workers) must not write into one folder:
    a process that memory-maps the Arrow file while the other rewrites it dies of SIGBUS, with no traceback. Both write
    the same rows; the first rename wins and the other's copy is dropped."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.with_name(f"{folder.name}.tmp{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    dataset.save_to_disk(str(staging))
    if folder.exists() and not (folder / "dataset_info.json").exists():
        shutil.rmtree(folder, ignore_errors=True)  # a partial folder from an interrupted older writer
    try:
        os.rename(staging, folder)
    except OSError:  # another process published it first: the same rows (generation is deterministic)
        shutil.rmtree(staging, ignore_errors=True)


from . import real  # noqa: E402,F401  (registers the official-layout loaders)
