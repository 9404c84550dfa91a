"""Real benchmarks read from their official on-disk layouts, served in the schema of :mod:`.shapes`.

Every loader returns a ``datasets.Dataset`` with the columns

- ``image``: a ``datasets.Image()`` column holding the *path* of the image file. Nothing is read at
  construction; the file is opened and decoded only when a row is accessed, so a 100k-example split
  costs a few megabytes of paths, not gigabytes of pixels.
- ``text``: the statement / hypothesis / meme text (``str``).
- ``label``: a ``datasets.ClassLabel`` (``-1`` marks an unlabelled row, only where allowed).
- ``id``: the example's identifier in the original files (``str``), plus per-dataset metadata.

Nothing is downloaded: the files must already be where the layouts below say. Every loader checks,
cheaply, that each referenced image file exists (``os.path.isfile``, no open) so that a wrong root
fails at load time with the path and the expected layout, not in the middle of an epoch.

Splits: ``train`` / ``validation`` / ``test`` map to each release's own train / dev / public-test files
(easy-VQA has no dev file: its ``validation`` is carved from the official train split, by image).

Registered names: ``hateful_memes``, ``snli_ve``, ``nlvr``, ``nlvr2``, ``easy_vqa``.
"""
from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any, Iterator

import datasets
import numpy as np
from PIL import Image as PILImage

from .registry import check_split, register
from .options import bool_option, choice_option, float_option, int_option, path_option

from ..labels import MISSING_LABEL

# ----------------------------------------------------------------------------------------------
# Layout drawings, reused in docstrings and in every error message so a wrong root is easy to fix.
# ----------------------------------------------------------------------------------------------
HATEFUL_MEMES_LAYOUT = """\
<root>/
├── img/01235.png ...          (every image named by the "img" field)
├── train.jsonl                (split "train")
├── dev_seen.jsonl             (split "validation", phase="seen")
├── test_seen.jsonl            (split "test", phase="seen")
├── dev_unseen.jsonl           (split "validation", phase="unseen")
└── test_unseen.jsonl          (split "test", phase="unseen")
each line: {"id": 1235, "img": "img/01235.png", "label": 0, "text": "..."}"""

SNLI_VE_LAYOUT = """\
<root>/
├── snli_ve_train.jsonl        (split "train")
├── snli_ve_dev.jsonl          (split "validation")
├── snli_ve_test.jsonl         (split "test")
└── flickr30k_images/          (or image_dir=...; "flickr30k-images/" is also accepted)
    └── <Flickr30K_ID>.jpg
each line: {"Flickr30K_ID": "...", "sentence2": "...", "gold_label": "entailment", "pairID": "...", ...}"""

NLVR_LAYOUT = """\
<root>/                        (the "nlvr" folder of github.com/lil-lab/nlvr; its parent works too)
├── train/
│   ├── train.json             (split "train")
│   └── images/<directory>/train-<identifier>-<k>.png   (k = 0..5, six box permutations)
├── dev/
│   ├── dev.json               (split "validation")
│   └── images/<directory>/dev-<identifier>-<k>.png
└── test/
    ├── test.json              (split "test")
    └── images/<directory>/test-<identifier>-<k>.png
each line: {"sentence": "...", "label": "true", "identifier": "1572-0", "directory": "5", ...}"""

NLVR2_LAYOUT = """\
<root>/
├── data/                      (the "nlvr2/data" folder of github.com/lil-lab/nlvr)
│   ├── train.json             (split "train")
│   ├── dev.json               (split "validation")
│   └── test1.json             (split "test")
└── images/                    (or image_dir=...; the photos, obtained from the NLVR2 authors)
    ├── train/<directory>/train-<set>-<pair>-img0.png, ...-img1.png
    ├── dev/dev-<set>-<pair>-img0.png, ...-img1.png
    └── test1/test1-<set>-<pair>-img0.png, ...-img1.png
each line: {"sentence": "...", "label": "True", "identifier": "dev-850-0-0", "directory": 23, ...}"""

EASY_VQA_LAYOUT = """\
<root>/                        (default: easy_vqa/data/ of the installed easy-vqa==1.0 package)
├── answers.txt                (the 13 answers, one per line, in label order)
├── train/
│   ├── questions.json         (splits "train" and "validation", carved by image)
│   └── images/<image_id>.png
└── test/
    ├── questions.json         (split "test")
    └── images/<image_id>.png
questions.json: one JSON list of [question, answer, image_id] triples, e.g. ["what color is the shape?", "blue", 0]"""


# ----------------------------------------------------------------------------------------------
# Shared helpers
# ----------------------------------------------------------------------------------------------
def _require_root(root: str | os.PathLike | None, dataset: str, layout: str) -> Path:
    """The dataset folder, or a FileNotFoundError that draws the layout expected there."""
    if root is None:
        raise ValueError(f"{dataset}: pass root=<folder with the official files>; expected layout:\n{layout}")
    folder = Path(root).expanduser().resolve()
    if not folder.is_dir():
        raise FileNotFoundError(f"{dataset}: root folder {str(folder)!r} does not exist; "
                                f"expected layout:\n{layout}")
    return folder


def _require_file(path: Path, dataset: str, layout: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{dataset}: annotation file {str(path)!r} not found; "
                                f"expected layout:\n{layout}")
    return path


def _read_json_lines(path: Path, dataset: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number starting at 1, object) for every non-blank line; a bad line names file and line."""
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue  # a trailing newline at the end of the file is not an example
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{dataset}: {path}, line {number} is not valid JSON ({err.msg}): "
                                 f"{line.strip()[:120]!r}") from None
            if not isinstance(record, dict):
                raise ValueError(f"{dataset}: {path}, line {number} is not a JSON object: "
                                 f"{line.strip()[:120]!r}")
            yield number, record


def _field(record: dict[str, Any], key: str, path: Path, number: int, dataset: str) -> Any:
    if key not in record:
        raise ValueError(f"{dataset}: {path}, line {number} has no field {key!r}; "
                         f"fields present: {sorted(record)}")
    return record[key]


def _label_index(value: Any, names: tuple[str, ...], path: Path, number: int, dataset: str,
                 aliases: dict[Any, str] | None = None) -> int:
    """Index of ``value`` in ``names`` (after ``aliases``); an unknown value names file and line."""
    key = aliases.get(value, value) if aliases else value
    if isinstance(key, str):
        key = key.strip().lower()  # NLVR writes "true", NLVR2 "True": same class
    if key in names:
        return names.index(key)
    raise ValueError(f"{dataset}: {path}, line {number}: unknown label {value!r}; accepted: {list(names)}")


def _require_image(image: Path, path: Path, number: int, dataset: str, layout: str) -> str:
    # isfile is one stat() call: cheap enough for 500k rows, and it catches a wrong root up front.
    if not image.is_file():
        raise FileNotFoundError(f"{dataset}: image {str(image)!r} (referenced by {path}, line {number}) "
                                f"does not exist; expected layout:\n{layout}")
    return str(image)


def _features(labels: tuple[str, ...], extra: dict[str, Any], image_columns=("image",)) -> datasets.Features:
    spec: dict[str, Any] = {name: datasets.Image() for name in image_columns}
    spec.update({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=list(labels)),
                 "id": datasets.Value("string")})
    spec.update(extra)
    return datasets.Features(spec)


def _build(columns: dict[str, list[Any]], features: datasets.Features, dataset: str,
           path: Path) -> datasets.Dataset:
    if not columns["id"]:
        raise ValueError(f"{dataset}: {path} holds no examples")
    # Image columns hold path strings: datasets.Image() encodes them as {"path": ..., "bytes": None}
    # and decodes on access, so no image file is opened here.
    return datasets.Dataset.from_dict(columns, features=features)


# ----------------------------------------------------------------------------------------------
# Hateful Memes
# ----------------------------------------------------------------------------------------------
HATEFUL_MEMES_LABELS = ("not_hateful", "hateful")
HATEFUL_MEMES_FILES = {
    "seen": {"train": "train.jsonl", "validation": "dev_seen.jsonl", "test": "test_seen.jsonl"},
    "unseen": {"train": "train.jsonl", "validation": "dev_unseen.jsonl", "test": "test_unseen.jsonl"},
}


@register("hateful_memes")
def load_hateful_memes(split: str, root=None, phase: str = "seen", allow_unlabelled: bool = False,
                       **options: Any) -> datasets.Dataset:
    """Facebook's Hateful Memes, as distributed (phase-2 release with seen / unseen dev and test).

    ::

        <root>/
        ├── img/01235.png ...
        ├── train.jsonl        train
        ├── dev_seen.jsonl     validation (phase="seen", default)
        ├── test_seen.jsonl    test       (phase="seen", default)
        ├── dev_unseen.jsonl   validation (phase="unseen")
        └── test_unseen.jsonl  test       (phase="unseen")

    Each line is ``{"id", "img", "label", "text"}``; ``img`` is relative to ``root``. Labels:
    ``0 = not_hateful``, ``1 = hateful``. The first release's test files carry no ``label``: such a
    line raises a ``ValueError`` unless ``allow_unlabelled=True``, which gives it label ``-1``
    (usable for prediction, not for accuracy). Extra column: ``id``.
    """
    _no_unknown_options("hateful_memes", options, ("phase", "allow_unlabelled"))
    check_split(split)
    choice_option("phase", phase, HATEFUL_MEMES_FILES, what="hateful_memes phase")
    bool_option("allow_unlabelled", allow_unlabelled)
    folder = _require_root(root, "hateful_memes", HATEFUL_MEMES_LAYOUT)
    path = _require_file(folder / HATEFUL_MEMES_FILES[phase][split], "hateful_memes", HATEFUL_MEMES_LAYOUT)
    columns: dict[str, list[Any]] = {"image": [], "text": [], "label": [], "id": []}
    for number, record in _read_json_lines(path, "hateful_memes"):
        image = folder / _field(record, "img", path, number, "hateful_memes")
        if "label" in record:
            label = _label_index(record["label"], HATEFUL_MEMES_LABELS, path, number, "hateful_memes",
                                 aliases={0: "not_hateful", 1: "hateful"})
        elif allow_unlabelled:
            label = MISSING_LABEL
        else:
            raise ValueError(f"hateful_memes: {path}, line {number} has no 'label' (an unlabelled test "
                             "release); pass allow_unlabelled=True to load it with label -1")
        columns["image"].append(_require_image(image, path, number, "hateful_memes", HATEFUL_MEMES_LAYOUT))
        columns["text"].append(str(_field(record, "text", path, number, "hateful_memes")))
        columns["label"].append(label)
        columns["id"].append(str(_field(record, "id", path, number, "hateful_memes")))
    return _build(columns, _features(HATEFUL_MEMES_LABELS, {}), "hateful_memes", path)


# ----------------------------------------------------------------------------------------------
# SNLI-VE
# ----------------------------------------------------------------------------------------------
SNLI_VE_LABELS = ("entailment", "neutral", "contradiction")
SNLI_VE_FILES = {"train": "snli_ve_train.jsonl", "validation": "snli_ve_dev.jsonl",
                 "test": "snli_ve_test.jsonl"}
FLICKR30K_DIRS = ("flickr30k_images", "flickr30k-images")  # Kaggle-style and official-tarball names


@register("snli_ve")
def load_snli_ve(split: str, root=None, image_dir: str | os.PathLike | None = None,
                 **options: Any) -> datasets.Dataset:
    """SNLI-VE (visual entailment on Flickr30k): image premise, text hypothesis, 3 classes.

    ::

        <root>/
        ├── snli_ve_train.jsonl   train
        ├── snli_ve_dev.jsonl     validation
        ├── snli_ve_test.jsonl    test
        └── flickr30k_images/<Flickr30K_ID>.jpg

    ``image_dir`` overrides the image folder (absolute, or relative to ``root``); by default the
    first of ``flickr30k_images/`` and ``flickr30k-images/`` (the official tarball's name) that exists.
    ``text`` is ``sentence2`` (the hypothesis); ``label`` is ``gold_label`` over
    entailment / neutral / contradiction. Extra columns: ``id`` (``pairID``, else the line number),
    ``image_id`` (``Flickr30K_ID``) and ``premise`` (``sentence1``, the caption the hypothesis was
    written against; empty when absent).
    """
    _no_unknown_options("snli_ve", options, ("image_dir",))
    check_split(split)
    path_option("image_dir", image_dir)
    folder = _require_root(root, "snli_ve", SNLI_VE_LAYOUT)
    path = _require_file(folder / SNLI_VE_FILES[split], "snli_ve", SNLI_VE_LAYOUT)
    if image_dir is not None:
        images = folder / Path(image_dir).expanduser()  # an absolute image_dir wins over folder
    else:
        images = next((folder / name for name in FLICKR30K_DIRS if (folder / name).is_dir()),
                      folder / FLICKR30K_DIRS[0])
    if not images.is_dir():
        raise FileNotFoundError(f"snli_ve: image folder {str(images)!r} does not exist; pass image_dir= "
                                f"or use the expected layout:\n{SNLI_VE_LAYOUT}")
    columns: dict[str, list[Any]] = {"image": [], "text": [], "label": [], "id": [], "image_id": [],
                                     "premise": []}
    for number, record in _read_json_lines(path, "snli_ve"):
        image_id = str(_field(record, "Flickr30K_ID", path, number, "snli_ve"))
        label = _label_index(_field(record, "gold_label", path, number, "snli_ve"), SNLI_VE_LABELS,
                             path, number, "snli_ve")
        image = images / f"{image_id}.jpg"
        columns["image"].append(_require_image(image, path, number, "snli_ve", SNLI_VE_LAYOUT))
        columns["text"].append(str(_field(record, "sentence2", path, number, "snli_ve")))
        columns["label"].append(label)
        columns["id"].append(str(record.get("pairID", number)))
        columns["image_id"].append(image_id)
        columns["premise"].append(str(record.get("sentence1", "")))
    extra = {"image_id": datasets.Value("string"), "premise": datasets.Value("string")}
    return _build(columns, _features(SNLI_VE_LABELS, extra), "snli_ve", path)


# ----------------------------------------------------------------------------------------------
# NLVR (synthetic images)
# ----------------------------------------------------------------------------------------------
NLVR_LABELS = ("false", "true")
NLVR_SPLIT_DIRS = {"train": "train", "validation": "dev", "test": "test"}
NLVR_PERMUTATIONS = 6  # each sentence has six renderings: the three boxes in every order


def _nlvr_root(folder: Path) -> Path:
    """Accept the ``nlvr`` folder itself or the repository root that contains it."""
    if not (folder / "train").is_dir() and not (folder / "dev").is_dir() and (folder / "nlvr").is_dir():
        return folder / "nlvr"
    return folder


def _nlvr_image_index(images: Path) -> dict[str, str]:
    """file name -> sub-folder, for old releases whose json lines lack ``directory`` (one listing)."""
    index: dict[str, str] = {}
    if images.is_dir():
        for sub in os.scandir(images):
            if sub.is_dir():
                for entry in os.scandir(sub.path):
                    index[entry.name] = sub.name
    return index


@register("nlvr")
def load_nlvr(split: str, root=None, image_index: int | str = 0, **options: Any) -> datasets.Dataset:
    """NLVR (Suhr et al. 2017): a sentence, true or false of a rendered 3-box image.

    ::

        <root>/                      the repository's nlvr/ folder (or the repository root)
        ├── train/
        │   ├── train.json           train
        │   └── images/<directory>/train-<identifier>-<k>.png
        ├── dev/
        │   ├── dev.json             validation
        │   └── images/<directory>/dev-<identifier>-<k>.png
        └── test/
            ├── test.json            test
            └── images/<directory>/test-<identifier>-<k>.png

    Each sentence comes with six PNGs, ``k = 0..5``, the same three boxes in the six orders.
    ``image_index=k`` (default 0) keeps one row per sentence with permutation ``k``; ``"all"`` gives
    six rows per sentence (one per PNG, which is how the official image metric scores). Lines without
    ``directory`` (early releases) are matched by listing ``images/`` once. Labels: ``"false"`` /
    ``"true"`` (any case). Extra columns: ``id`` (``identifier``), ``image_index``, ``directory``.
    """
    _no_unknown_options("nlvr", options, ("image_index",))
    check_split(split)
    if image_index == "all":
        permutations = list(range(NLVR_PERMUTATIONS))
    elif type(image_index) is int and 0 <= image_index < NLVR_PERMUTATIONS:  # type(): bool is not an index
        permutations = [image_index]
    else:
        raise ValueError(f"nlvr: image_index={image_index!r} (of type {type(image_index).__name__}); "
                         f"accepted: an int in 0..5 or the str 'all'")
    folder = _nlvr_root(_require_root(root, "nlvr", NLVR_LAYOUT))
    prefix = NLVR_SPLIT_DIRS[split]
    path = _require_file(folder / prefix / f"{prefix}.json", "nlvr", NLVR_LAYOUT)
    images = folder / prefix / "images"
    listing: dict[str, str] | None = None
    columns: dict[str, list[Any]] = {"image": [], "text": [], "label": [], "id": [], "image_index": [],
                                     "directory": []}
    for number, record in _read_json_lines(path, "nlvr"):
        identifier = str(_field(record, "identifier", path, number, "nlvr"))
        label = _label_index(_field(record, "label", path, number, "nlvr"), NLVR_LABELS, path, number, "nlvr")
        text = str(_field(record, "sentence", path, number, "nlvr"))
        for k in permutations:
            name = f"{prefix}-{identifier}-{k}.png"
            if "directory" in record:
                directory = str(record["directory"])
            else:
                listing = _nlvr_image_index(images) if listing is None else listing
                directory = listing.get(name, "<directory>")
            image = images / directory / name
            columns["image"].append(_require_image(image, path, number, "nlvr", NLVR_LAYOUT))
            columns["text"].append(text)
            columns["label"].append(label)
            columns["id"].append(identifier)
            columns["image_index"].append(k)
            columns["directory"].append(directory)
    extra = {"image_index": datasets.Value("int32"), "directory": datasets.Value("string")}
    return _build(columns, _features(NLVR_LABELS, extra), "nlvr", path)


# ----------------------------------------------------------------------------------------------
# NLVR2 (pairs of photographs)
# ----------------------------------------------------------------------------------------------
NLVR2_LABELS = ("false", "true")
NLVR2_FILES = {"train": "train", "validation": "dev", "test": "test1"}
PAIR_MODES = ("concat", "left", "right")


def concat_horizontally(left: PILImage.Image, right: PILImage.Image) -> PILImage.Image:
    """Left and right photo side by side, both scaled to the smaller height (keeps aspect ratios).

    Why: single-image students and teachers (ViLT, a ViT + text encoder) take one image; putting the
    pair side by side keeps the "left" / "right" wording of NLVR2 sentences meaningful.
    """
    left, right = left.convert("RGB"), right.convert("RGB")
    height = min(left.height, right.height)
    scaled = [im if im.height == height else im.resize((max(1, round(im.width * height / im.height)), height))
              for im in (left, right)]
    canvas = PILImage.new("RGB", (scaled[0].width + scaled[1].width, height))
    canvas.paste(scaled[0], (0, 0))
    canvas.paste(scaled[1], (scaled[0].width, 0))
    return canvas


def _add_concatenated_image(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """On-access transform: decoded ``image_left`` / ``image_right`` -> ``image`` (side by side)."""
    if "image_left" in batch and "image_right" in batch:
        pairs = zip(batch["image_left"], batch["image_right"])
        batch["image"] = [concat_horizontally(left, right) for left, right in pairs]
    return batch


@register("nlvr2")
def load_nlvr2(split: str, root=None, image_dir: str | os.PathLike | None = None, pair_mode: str = "concat",
               **options: Any) -> datasets.Dataset:
    """NLVR2 (Suhr et al. 2019): a sentence, true or false of a *pair* of photographs.

    ::

        <root>/
        ├── data/train.json | dev.json | test1.json     train | validation | test
        └── images/
            ├── train/<directory>/train-<set>-<pair>-img0.png (and -img1.png)
            ├── dev/dev-<set>-<pair>-img0.png ...
            └── test1/test1-<set>-<pair>-img0.png ...

    Image names follow the official rule: identifier ``split-set-pair-sentence`` -> left
    ``split-set-pair-img0.png``, right ``...-img1.png`` (some are JPEG inside; PIL reads the header).
    An image directly in ``images/<split>/`` is accepted when ``images/<split>/<directory>/`` lacks it.
    ``image_dir`` overrides ``<root>/images``.

    The rows always hold both photos, lazily, as ``image_left`` / ``image_right``. For models with one
    image input, ``pair_mode`` says what ``image`` is:

    - ``"concat"`` (default): left and right side by side (:func:`concat_horizontally`), built on
      access by a ``with_transform`` hook. ``image`` is then not in ``dataset.features``, and calling
      ``set_format`` / ``with_transform`` on the result replaces the hook (redo it with
      ``dataset.with_transform(mmkd_core.data.real._add_concatenated_image)``).
    - ``"left"`` / ``"right"``: a plain ``image`` column with that photo only (no hook).

    Labels ``"False"`` / ``"True"`` (any case). Extra columns: ``id`` (``identifier``), ``synset``.
    """
    _no_unknown_options("nlvr2", options, ("image_dir", "pair_mode"))
    check_split(split)
    choice_option("pair_mode", pair_mode, PAIR_MODES, what="nlvr2 pair_mode")
    path_option("image_dir", image_dir)
    folder = _require_root(root, "nlvr2", NLVR2_LAYOUT)
    stem = NLVR2_FILES[split]
    path = _require_file(folder / "data" / f"{stem}.json", "nlvr2", NLVR2_LAYOUT)
    images = (folder / Path(image_dir).expanduser() if image_dir is not None else folder / "images") / stem
    if not images.is_dir():
        raise FileNotFoundError(f"nlvr2: image folder {str(images)!r} does not exist; pass image_dir= "
                                f"or use the expected layout:\n{NLVR2_LAYOUT}")
    columns: dict[str, list[Any]] = {"image_left": [], "image_right": [], "text": [], "label": [], "id": [],
                                     "synset": []}
    for number, record in _read_json_lines(path, "nlvr2"):
        identifier = str(_field(record, "identifier", path, number, "nlvr2"))
        label = _label_index(_field(record, "label", path, number, "nlvr2"), NLVR2_LABELS,
                             path, number, "nlvr2")
        pair_stem = identifier.rsplit("-", 1)[0]  # drop the sentence index
        for side, column in ((0, "image_left"), (1, "image_right")):
            name = f"{pair_stem}-img{side}.png"
            image = images / name
            if "directory" in record and (images / str(record["directory"]) / name).is_file():
                image = images / str(record["directory"]) / name
            columns[column].append(_require_image(image, path, number, "nlvr2", NLVR2_LAYOUT))
        columns["text"].append(str(_field(record, "sentence", path, number, "nlvr2")))
        columns["label"].append(label)
        columns["id"].append(identifier)
        columns["synset"].append(str(record.get("synset", "")))
    extra = {"synset": datasets.Value("string")}
    if pair_mode in ("left", "right"):
        columns["image"] = list(columns[f"image_{pair_mode}"])
        features = _features(NLVR2_LABELS, extra, image_columns=("image", "image_left", "image_right"))
        return _build(columns, features, "nlvr2", path)
    features = _features(NLVR2_LABELS, extra, image_columns=("image_left", "image_right"))
    return _build(columns, features, "nlvr2", path).with_transform(_add_concatenated_image)


# ----------------------------------------------------------------------------------------------
# easy-VQA (synthetic shapes; PyPI easy-vqa==1.0, MIT)
# ----------------------------------------------------------------------------------------------
# Every answer of the release, by question type (answers.txt spells the colour "gray").
EASY_VQA_ANSWER_TYPES = {"yes/no": ("yes", "no"), "shape": ("circle", "rectangle", "triangle"),
                         "colour": ("black", "blue", "brown", "gray", "green", "red", "teal", "yellow")}
EASY_VQA_SPLIT_DIRS = {"train": "train", "validation": "train", "test": "test"}  # no official dev split
EASY_VQA_VALIDATION_IMAGES = 1 / 8  # default share of the official train images held out as "validation"
EASY_VQA_STREAMS = {"validation": 0, "max_questions": 1, "shuffle": 2}  # independent random streams drawn from one seed


def _easy_vqa_root(root: str | os.PathLike | None) -> Path:
    """``root``, or the ``data/`` folder of the installed easy-vqa package (located without importing it)."""
    if root is not None:
        return _require_root(root, "easy_vqa", EASY_VQA_LAYOUT)
    spec = importlib.util.find_spec("easy_vqa")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("easy_vqa: no root= given and the easy-vqa package is not installed; run "
                         "`pip install easy-vqa==1.0` (or `make venv`, which installs the project's extras) or pass "
                         f"root=<folder with the official files>; expected layout:\n{EASY_VQA_LAYOUT}")
    return _require_root(Path(list(spec.submodule_search_locations)[0]) / "data", "easy_vqa", EASY_VQA_LAYOUT)


def _easy_vqa_answers(folder: Path) -> dict[str, str]:
    """answer -> its type (``yes/no``, ``shape`` or ``colour``), in the order of ``answers.txt`` (the label order)."""
    path = _require_file(folder / "answers.txt", "easy_vqa", EASY_VQA_LAYOUT)
    answers = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not answers:
        raise ValueError(f"easy_vqa: {path} holds no answers; expected one answer per line; "
                         f"expected layout:\n{EASY_VQA_LAYOUT}")
    repeated = sorted({answer for answer in answers if answers.count(answer) > 1})
    if repeated:
        raise ValueError(f"easy_vqa: {path} lists {repeated} more than once; each answer is one class")
    types = {answer: kind for kind, words in EASY_VQA_ANSWER_TYPES.items() for answer in words}
    untyped = [answer for answer in answers if answer not in types]
    if untyped:
        raise ValueError(f"easy_vqa: {path} holds answers {untyped} that are neither yes/no, a shape nor a colour; "
                         f"accepted: {EASY_VQA_ANSWER_TYPES}")
    return {answer: types[answer] for answer in answers}


def _easy_vqa_questions(path: Path, answers: dict[str, str]) -> list[tuple[int, str, str, int]]:
    """(position in the file, question, answer, image id) of every triple; a bad triple names file and position."""
    with open(path, encoding="utf-8") as handle:
        try:
            entries = json.load(handle)
        except json.JSONDecodeError as err:
            raise ValueError(f"easy_vqa: {path} is not valid JSON ({err.msg}, line {err.lineno}, "
                             f"column {err.colno})") from None
    if not isinstance(entries, list):
        raise ValueError(f"easy_vqa: {path} holds a JSON {type(entries).__name__}, not a list of "
                         f"[question, answer, image_id] triples; expected layout:\n{EASY_VQA_LAYOUT}")
    rows = []
    for position, entry in enumerate(entries):
        # type(...) is int: a bool is not an image id, nor is 3.0 or "3"
        if not (isinstance(entry, list) and len(entry) == 3 and isinstance(entry[0], str)
                and isinstance(entry[1], str) and type(entry[2]) is int and entry[2] >= 0):
            raise ValueError(f"easy_vqa: {path}, item {position} (counting from 0) is not a "
                             f"[question, answer, image_id] triple of (str, str, int >= 0): {json.dumps(entry)[:120]}")
        question, answer, image_id = entry
        if answer not in answers:
            raise ValueError(f"easy_vqa: {path}, item {position} (counting from 0): unknown answer {answer!r}; "
                             f"accepted (answers.txt): {list(answers)}")
        rows.append((position, question, answer, image_id))
    if not rows:
        raise ValueError(f"easy_vqa: {path} holds no examples")
    return rows


def _easy_vqa_validation_images(image_ids: list[int], share: float, seed: int) -> set[int]:
    """The train images held out as validation: the first ``round(share * n)`` (at least one when ``share > 0``)
    of a seeded permutation of the ``n`` distinct image ids, sorted first so the file's order does not matter."""
    distinct = sorted(set(image_ids))
    count = max(1, round(share * len(distinct))) if share > 0 else 0
    if count >= len(distinct):
        raise ValueError(f"easy_vqa: validation_images={share!r} holds out {count} of the {len(distinct)} train "
                         "images and leaves none for split 'train'; accepted: a smaller share")
    order = np.random.default_rng([seed, EASY_VQA_STREAMS["validation"]]).permutation(len(distinct))
    return {distinct[k] for k in order[:count]}


@register("easy_vqa")
def load_easy_vqa(split: str, root=None, validation_images: float = EASY_VQA_VALIDATION_IMAGES, seed: int = 0,
                  max_questions: int | dict | None = None, shuffle: bool = False,
                  **options: Any) -> datasets.Dataset:
    """easy-VQA (Victor Zhou, PyPI ``easy-vqa==1.0``, MIT): questions about one shape in a 64x64 image.

    ::

        <root>/                      default: easy_vqa/data/ of the installed package
        ├── answers.txt              the 13 answers, one per line (the label order)
        ├── train/questions.json     train and validation (4,000 images, 38,575 questions)
        ├── train/images/<image_id>.png
        ├── test/questions.json      test (1,000 other images, 9,673 questions)
        └── test/images/<image_id>.png

    ``root=None`` reads the installed package's files (``pip install easy-vqa==1.0``; the ``pretrained``
    extra installs it). Each ``questions.json`` is one JSON list of ``[question, answer, image_id]``.

    The release has no dev split, so ``validation`` is carved from the official train split **by image**:
    the distinct train image ids, sorted, are permuted with ``seed`` and the first
    ``round(validation_images * n)`` (default 1/8: 500 of 4,000) go to ``validation`` with all their questions;
    ``train`` keeps the other images' questions. No image is in both, and together they are the official train
    split. ``validation_images=0`` gives ``train`` the whole official train split (``validation`` then refuses).
    ``test`` is the official test split.

    ``max_questions=n`` keeps ``n`` questions of the split (all when it has fewer): the first ``n`` of a
    permutation seeded by ``seed``, kept in file order, so a smaller ``n`` keeps a subset of a larger one's rows.

    ``text`` is the question; ``label`` is the answer, a ``ClassLabel`` over ``answers.txt`` in file order.
    Extra columns: ``id`` (``"<official split>-<position in its questions.json>"``, e.g. ``"train-17"`` also for
    a validation row: unique and stable across ``seed`` and ``max_questions``), ``image_id`` (as in the file;
    train and test both number their images from 0, so an id names an image only within its official split)
    and ``answer_type`` (``"yes/no"``, ``"shape"`` or ``"colour"``, from the answer).
    """
    _no_unknown_options("easy_vqa", options, ("validation_images", "seed", "max_questions", "shuffle"))
    check_split(split)
    path_option("root", root)
    share = float_option("validation_images", validation_images, 0, 1, high_open=True)
    seed = int_option("seed", seed, 0)
    shuffle = bool_option("shuffle", shuffle)
    if isinstance(max_questions, dict):
        unknown = sorted(set(max_questions) - set(EASY_VQA_SPLIT_DIRS))
        if unknown:
            raise ValueError(f"easy_vqa: max_questions names unknown splits {unknown}; accepted keys: "
                             f"{list(EASY_VQA_SPLIT_DIRS)}")
        max_questions = max_questions.get(split)
    if max_questions is not None:
        max_questions = int_option("max_questions", max_questions, 1)
    folder = _easy_vqa_root(root)
    answers = _easy_vqa_answers(folder)
    official = EASY_VQA_SPLIT_DIRS[split]
    path = _require_file(folder / official / "questions.json", "easy_vqa", EASY_VQA_LAYOUT)
    rows = _easy_vqa_questions(path, answers)
    # Every image of the file is checked, not only the rows kept: the same files pass or fail whatever the split,
    # seed or max_questions. One stat() per distinct image (4,000 for train), not per question.
    images: dict[int, str] = {}
    for position, _, _, image_id in rows:
        if image_id not in images:
            image = folder / official / "images" / f"{image_id}.png"
            if not image.is_file():
                raise FileNotFoundError(f"easy_vqa: image {str(image)!r} (referenced by {path}, item {position} "
                                        f"counting from 0) does not exist; expected layout:\n{EASY_VQA_LAYOUT}")
            images[image_id] = str(image)
    if split != "test":
        held_out = _easy_vqa_validation_images([row[3] for row in rows], share, seed)
        if split == "validation" and not held_out:
            raise ValueError("easy_vqa: validation_images=0 holds out no train image, so split 'validation' is "
                             "empty; accepted for 'validation': a share in (0, 1), e.g. 1/8 (the default)")
        rows = [row for row in rows if (row[3] in held_out) == (split == "validation")]
    if max_questions is not None and max_questions < len(rows):
        order = np.random.default_rng([seed, EASY_VQA_STREAMS["max_questions"]]).permutation(len(rows))
        rows = [rows[k] for k in sorted(order[:max_questions])]
    if shuffle:
        rows = [rows[k] for k in np.random.default_rng([seed, EASY_VQA_STREAMS["shuffle"]]).permutation(len(rows))]
    labels = tuple(answers)
    label_of = {answer: k for k, answer in enumerate(labels)}
    columns: dict[str, list[Any]] = {"image": [], "text": [], "label": [], "id": [], "image_id": [],
                                     "answer_type": []}
    for position, question, answer, image_id in rows:
        columns["image"].append(images[image_id])
        columns["text"].append(question)
        columns["label"].append(label_of[answer])
        columns["id"].append(f"{official}-{position}")
        columns["image_id"].append(str(image_id))
        columns["answer_type"].append(answers[answer])
    extra = {"image_id": datasets.Value("string"), "answer_type": datasets.Value("string")}
    return _build(columns, _features(labels, extra), "easy_vqa", path)


def _no_unknown_options(dataset: str, options: dict[str, Any], accepted: tuple[str, ...]) -> None:
    if options:
        raise ValueError(f"{dataset}: unknown options {sorted(options)}; accepted: {list(accepted)}")
