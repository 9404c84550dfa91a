"""Loaders of the real benchmarks, on tiny fixtures written in each official layout (nothing downloaded)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import datasets
import PIL.Image
import pytest

from mmkd_core.labels import MISSING_LABEL, UNLABELLED

from mmkd_core.data import LOADERS, load
from mmkd_core.data import real


# ----------------------------------------------------------------------------------------------
# Fixture writers: the smallest trees that follow each release's layout
# ----------------------------------------------------------------------------------------------
def write_image(path: Path, color=(200, 30, 30), size=(8, 6), fmt=None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    PIL.Image.new("RGB", size, color).save(path, format=fmt)


def write_lines(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def make_hateful_memes(root: Path) -> Path:
    files = {
        "train.jsonl": [(42953, 0, "its their character not their color that matters"),
                        (23058, 1, "a mean one"), (1765, 0, "a kind one")],
        "dev_seen.jsonl": [(8291, 1, "dev seen text")],
        "test_seen.jsonl": [(16395, 0, "test seen text"), (37405, 1, "another")],
        "dev_unseen.jsonl": [(11111, 0, "dev unseen text")],
        "test_unseen.jsonl": [(22222, 1, "test unseen text")],
    }
    for name, rows in files.items():
        records = [{"id": i, "img": f"img/{i:05d}.png", "label": lab, "text": t} for i, lab, t in rows]
        write_lines(root / name, records)
        for i, _, _ in rows:
            write_image(root / "img" / f"{i:05d}.png")
    return root


def make_snli_ve(root: Path, image_folder: str = "flickr30k_images") -> Path:
    splits = {"train": [("1000092795", "entailment"), ("10002456", "neutral"),
                        ("1000268201", "contradiction")],
              "dev": [("1000092795", "neutral")], "test": [("10002456", "entailment")]}
    for split, rows in splits.items():
        records = [{"Flickr30K_ID": image_id, "sentence1": "Two men are outside.",
                    "sentence2": f"hypothesis {k}", "gold_label": label,
                    "pairID": f"{image_id}.jpg#{k}r1e", "captionID": f"{image_id}.jpg#{k}"}
                   for k, (image_id, label) in enumerate(rows)]
        write_lines(root / f"snli_ve_{split}.jsonl", records)
        for image_id, _ in rows:
            write_image(root / image_folder / f"{image_id}.jpg", fmt="JPEG")
    return root


def make_nlvr(root: Path, with_directory: bool = True) -> Path:
    """``root`` plays the repository's ``nlvr/`` folder."""
    splits = {"train": [("0-0", "true", "There is a yellow block."), ("0-1", "false", "There is a tower.")],
              "dev": [("1572-0", "true", "Each grey box contains a yellow object")],
              "test": [("3-2", "false", "There is a black circle.")]}
    for split, rows in splits.items():
        records = []
        for n, (identifier, label, sentence) in enumerate(rows):
            record = {"sentence": sentence, "label": label, "identifier": identifier, "evals": {"r0": label},
                      "structured_rep": [[], [], []]}
            if with_directory:
                record["directory"] = str(n % 2)
            records.append(record)
            for k in range(real.NLVR_PERMUTATIONS):
                write_image(root / split / "images" / str(n % 2) / f"{split}-{identifier}-{k}.png",
                            color=(10 * k, 0, 0))
        write_lines(root / split / f"{split}.json", records)
    return root


def make_nlvr2(root: Path) -> Path:
    splits = {"train": [("train-10171-0-0", "True", 7), ("train-10171-0-1", "False", 7)],
              "dev": [("dev-850-0-0", "False", None)], "test1": [("test1-0-1-0", "True", None)]}
    for stem, rows in splits.items():
        records = []
        for identifier, label, directory in rows:
            record = {"sentence": f"sentence about {identifier}", "label": label, "identifier": identifier,
                      "synset": "n02084071", "left_url": "http://x/l.jpg", "right_url": "http://x/r.jpg"}
            if directory is not None:
                record["directory"] = directory
            records.append(record)
            pair = identifier.rsplit("-", 1)[0]
            folder = root / "images" / stem / (str(directory) if directory is not None else "")
            write_image(folder / f"{pair}-img0.png", color=(255, 0, 0), size=(8, 6))
            # a JPEG behind a .png name, as in the real release, and a different height
            write_image(folder / f"{pair}-img1.png", color=(0, 0, 255), size=(6, 12), fmt="JPEG")
        write_lines(root / "data" / f"{stem}.json", records)
    return root


MAKERS = {"hateful_memes": make_hateful_memes, "snli_ve": make_snli_ve, "nlvr": make_nlvr,
          "nlvr2": make_nlvr2}
def first_image_path(dataset: datasets.Dataset, name: str) -> Path:
    """The stored path of row 0's (left) image, read without decoding it."""
    column = "image_left" if name == "nlvr2" else "image"
    stored = dataset.with_format(None).cast_column(column, datasets.Image(decode=False))
    return Path(stored[0][column]["path"])


LABELS = {"hateful_memes": ["not_hateful", "hateful"], "snli_ve": ["entailment", "neutral", "contradiction"],
          "nlvr": ["false", "true"], "nlvr2": ["false", "true"]}


# ----------------------------------------------------------------------------------------------
# Schema and content
# ----------------------------------------------------------------------------------------------
def test_loaders_are_registered():
    assert {"hateful_memes", "snli_ve", "nlvr", "nlvr2"} <= set(LOADERS)


@pytest.mark.parametrize("name", sorted(MAKERS))
@pytest.mark.parametrize("split", ["train", "validation", "test"])
def test_schema_matches_shapes(tmp_path, name, split):
    root = MAKERS[name](tmp_path)
    dataset = load(name, split, root=root)
    assert isinstance(dataset, datasets.Dataset) and len(dataset) >= 1
    assert dataset.features["label"].names == LABELS[name]
    assert isinstance(dataset.features["text"], datasets.Value)
    row = dataset[0]
    assert isinstance(row["image"], PIL.Image.Image)
    assert isinstance(row["text"], str) and row["text"]
    assert isinstance(row["id"], str) and row["id"]
    assert 0 <= row["label"] < len(LABELS[name])


def test_hateful_memes_content_and_phases(tmp_path):
    root = make_hateful_memes(tmp_path)
    train = load("hateful_memes", "train", root=root)
    assert train["id"] == ["42953", "23058", "1765"]
    assert train["label"] == [0, 1, 0]
    assert train[0]["text"] == "its their character not their color that matters"
    assert load("hateful_memes", "validation", root=root)["text"] == ["dev seen text"]
    assert load("hateful_memes", "validation", root=root, phase="unseen")["text"] == ["dev unseen text"]
    assert load("hateful_memes", "test", root=root, phase="unseen")["text"] == ["test unseen text"]
    with pytest.raises(ValueError, match="phase"):
        load("hateful_memes", "test", root=root, phase="hidden")


def test_hateful_memes_unlabelled_test(tmp_path):
    root = make_hateful_memes(tmp_path)
    write_lines(root / "test_seen.jsonl", [{"id": 16395, "img": "img/16395.png", "text": "no label here"}])
    with pytest.raises(ValueError, match=r"test_seen\.jsonl, line 1 .*allow_unlabelled=True"):
        load("hateful_memes", "test", root=root)
    dataset = load("hateful_memes", "test", root=root, allow_unlabelled=True)
    assert dataset["label"] == [MISSING_LABEL]
    # once encoded, the row is one the losses skip, never class -1 (mmkd_core.labels)
    from mmkd_core.data.encoding import ImageTextProcessor, LazyDataset
    from mmkd_core.data.tokenizer import build_shapes_tokenizer

    lazy = LazyDataset(dataset, ImageTextProcessor(build_shapes_tokenizer(), image_size=32, max_length=8))
    assert lazy.collate_fn([lazy[0]])["labels"].tolist() == [UNLABELLED]


def test_snli_ve_content_and_image_dir(tmp_path):
    root = make_snli_ve(tmp_path / "default")
    train = load("snli_ve", "train", root=root)
    assert train["label"] == [0, 1, 2]
    assert train["image_id"] == ["1000092795", "10002456", "1000268201"]
    assert train["text"][0] == "hypothesis 0" and train["premise"][0] == "Two men are outside."
    assert train["id"][0] == "1000092795.jpg#0r1e"
    # the official tarball's folder name is found without options
    assert len(load("snli_ve", "train", root=make_snli_ve(tmp_path / "dash", "flickr30k-images"))) == 3
    # image_dir: relative to root, or absolute
    other = make_snli_ve(tmp_path / "other", "photos")
    assert len(load("snli_ve", "validation", root=other, image_dir="photos")) == 1
    assert len(load("snli_ve", "validation", root=other, image_dir=other / "photos")) == 1
    with pytest.raises(FileNotFoundError, match="flickr30k_images"):
        load("snli_ve", "validation", root=other)


def test_nlvr_content_and_image_index(tmp_path):
    root = make_nlvr(tmp_path)
    train = load("nlvr", "train", root=root)
    assert train["id"] == ["0-0", "0-1"] and train["label"] == [1, 0]
    assert train["image_index"] == [0, 0]
    stored = train.cast_column("image", datasets.Image(decode=False))
    assert stored[1]["image"]["path"].endswith("train/images/1/train-0-1-0.png")
    third = load("nlvr", "train", root=root, image_index=3)
    assert third[0]["image"].getpixel((0, 0)) == (30, 0, 0)
    every = load("nlvr", "validation", root=root, image_index="all")
    assert len(every) == 6 and every["image_index"] == list(range(6)) and set(every["id"]) == {"1572-0"}
    for bad in (6, -1, "first", True):
        with pytest.raises(ValueError, match="image_index"):
            load("nlvr", "train", root=root, image_index=bad)


def test_nlvr_accepts_repository_root_and_missing_directory_field(tmp_path):
    make_nlvr(tmp_path / "repo" / "nlvr", with_directory=False)
    dataset = load("nlvr", "train", root=tmp_path / "repo")
    assert dataset["directory"] == ["0", "1"]
    assert dataset[1]["image"].size == (8, 6)


def test_nlvr2_pairs(tmp_path):
    root = make_nlvr2(tmp_path)
    train = load("nlvr2", "train", root=root)
    assert train["label"] == [1, 0] and train["id"] == ["train-10171-0-0", "train-10171-0-1"]
    row = train[0]
    assert row["image_left"].size == (8, 6) and row["image_right"].size == (6, 12)
    # concatenation: both scaled to the smaller height (6), right one halves to width 3
    assert row["image"].size == (8 + 3, 6)
    assert row["image"].getpixel((0, 0)) == (255, 0, 0)
    assert row["image"].getpixel((10, 3))[2] > 200
    # dev / test1 images sit directly under images/<split>/
    assert len(load("nlvr2", "validation", root=root)) == 1
    assert load("nlvr2", "test", root=root)[0]["image"].size == (11, 6)
    left = load("nlvr2", "train", root=root, pair_mode="left")
    assert left.features["image"] == datasets.Image() and left[0]["image"].size == (8, 6)
    assert load("nlvr2", "train", root=root, pair_mode="right")[0]["image"].size == (6, 12)
    with pytest.raises(ValueError, match="pair_mode"):
        load("nlvr2", "train", root=root, pair_mode="stack")


# ----------------------------------------------------------------------------------------------
# Lazy images: construction stores paths and opens no file
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(MAKERS))
def test_construction_opens_no_image(tmp_path, monkeypatch, name):
    root = MAKERS[name](tmp_path)
    opened = []
    original_open = PIL.Image.open
    monkeypatch.setattr(PIL.Image, "open", lambda *a, **k: opened.append(a) or original_open(*a, **k))
    dataset = load(name, "train", root=root)
    assert opened == []
    column = "image_left" if name == "nlvr2" else "image"
    stored = dataset.data.column(column)[0].as_py()  # the raw Arrow cell: a path, no pixels
    assert stored["bytes"] is None and Path(stored["path"]).is_file()
    dataset[0]  # access decodes
    assert opened


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_image_corrupted_after_construction_fails_only_on_access(tmp_path, name):
    root = MAKERS[name](tmp_path)
    dataset = load(name, "train", root=root)
    first_image_path(dataset, name).write_bytes(b"not an image")
    assert len(dataset) >= 1 and dataset["text"]  # non-image columns still readable
    with pytest.raises(PIL.UnidentifiedImageError):
        dataset[0]


# ----------------------------------------------------------------------------------------------
# Bad inputs: each error names the path and the expected layout
# ----------------------------------------------------------------------------------------------
ANNOTATION = {"hateful_memes": "train.jsonl", "snli_ve": "snli_ve_train.jsonl", "nlvr": "train/train.json",
              "nlvr2": "data/train.json"}


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_missing_root(tmp_path, name):
    with pytest.raises(FileNotFoundError, match=r"does-not-exist.*expected layout"):
        load(name, "train", root=tmp_path / "does-not-exist")


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_root_required(name):
    with pytest.raises(ValueError, match="root="):
        load(name, "train")


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_missing_annotation_file(tmp_path, name):
    root = MAKERS[name](tmp_path)
    (root / ANNOTATION[name]).unlink()
    with pytest.raises(FileNotFoundError, match=r"annotation file .*" + ANNOTATION[name].split("/")[-1]
                       + r".*expected layout"):
        load(name, "train", root=root)


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_unparsable_line_names_file_and_line(tmp_path, name):
    root = MAKERS[name](tmp_path)
    path = root / ANNOTATION[name]
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], '{"truncated": ', *lines[1:]]) + "\n")
    with pytest.raises(ValueError, match=r"train\.jsonl?, line 2 is not valid JSON"):
        load(name, "train", root=root)


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_missing_image_names_it(tmp_path, name):
    root = MAKERS[name](tmp_path)
    dataset = load(name, "train", root=root)
    path = first_image_path(dataset, name)
    path.unlink()
    expected = rf"{re.escape(path.name)}.*line 1\) does not exist.*expected layout"
    with pytest.raises(FileNotFoundError, match=expected):
        load(name, "train", root=root)


@pytest.mark.parametrize("name,field,value", [
    ("hateful_memes", "label", 2), ("snli_ve", "gold_label", "-"), ("nlvr", "label", "maybe"),
    ("nlvr2", "label", "Yes")])
def test_unknown_label(tmp_path, name, field, value):
    root = MAKERS[name](tmp_path)
    path = root / ANNOTATION[name]
    records = [json.loads(line) for line in path.read_text().splitlines()]
    records[1][field] = value
    write_lines(path, records)
    with pytest.raises(ValueError, match=rf"line 2: unknown label {value!r}"):
        load(name, "train", root=root)


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_missing_field_names_it(tmp_path, name):
    root = MAKERS[name](tmp_path)
    path = root / ANNOTATION[name]
    records = [json.loads(line) for line in path.read_text().splitlines()]
    text_field = {"hateful_memes": "text", "snli_ve": "sentence2"}.get(name, "sentence")
    del records[0][text_field]
    write_lines(path, records)
    with pytest.raises(ValueError, match=rf"line 1 has no field '{text_field}'"):
        load(name, "train", root=root)


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_unknown_split_and_option(tmp_path, name):
    root = MAKERS[name](tmp_path)
    with pytest.raises(ValueError, match="unknown split"):
        load(name, "dev", root=root)
    with pytest.raises(ValueError, match="unknown options"):
        load(name, "train", root=root, colour="red")


def test_empty_file(tmp_path):
    root = make_hateful_memes(tmp_path)
    (root / "train.jsonl").write_text("\n")
    with pytest.raises(ValueError, match="no examples"):
        load("hateful_memes", "train", root=root)


@pytest.mark.parametrize("name,option,value,accepted", [
    ("hateful_memes", "phase", 1, "a str, one of"),
    ("hateful_memes", "allow_unlabelled", "true", "a bool"),
    ("hateful_memes", "allow_unlabelled", 1, "a bool"),
    ("snli_ve", "image_dir", 5, "a folder path"),
    ("nlvr", "image_index", "0", "an int in 0..5 or the str 'all'"),
    ("nlvr", "image_index", 1.0, "an int in 0..5 or the str 'all'"),
    ("nlvr2", "pair_mode", None, "a str, one of"),
    ("nlvr2", "image_dir", ["images"], "a folder path"),
    ("nlvr2", "root", 7, "a folder path"),
])
def test_wrong_option_types_name_the_option_and_the_type(tmp_path, name, option, value, accepted):
    with pytest.raises(ValueError, match=rf"{option}=.*accepted: {re.escape(accepted)}"):
        load(name, "train", **{"root": tmp_path, option: value})


def test_the_dataset_registry_refuses_a_second_loader_under_a_taken_name():
    from mmkd_core.data.registry import LOADERS, register

    def another_shapes(split, root=None):
        raise AssertionError("never called")

    with pytest.raises(ValueError, match="'shapes' is already registered"):
        register("shapes")(another_shapes)
    assert LOADERS["shapes"] is not another_shapes
