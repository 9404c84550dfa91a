"""The easy-VQA loader: on a tiny fixture in the official layout, and on the installed easy-vqa==1.0 package."""
from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import datasets
import PIL.Image
import pytest

from mmkd_core.data import LOADERS, load
from mmkd_core.data import real

# answers.txt of easy-vqa==1.0, in its order (the label order)
ANSWERS = ["circle", "green", "red", "gray", "yes", "teal", "black", "rectangle", "yellow", "triangle", "brown",
           "blue", "no"]
SHAPES = ("circle", "rectangle", "triangle")
COLOURS = ("red", "green", "blue", "black", "gray", "yellow", "teal", "brown")
TRAIN_IMAGES = 8
TEST_IMAGES = 2


# ----------------------------------------------------------------------------------------------
# Fixture: the official layout, a few 8x8 images with three questions each (one of every type)
# ----------------------------------------------------------------------------------------------
def image_questions(image_id: int) -> list[list]:
    shape, colour = SHAPES[image_id % 3], COLOURS[image_id % len(COLOURS)]
    return [[f"what color is the {shape}?", colour, image_id],
            [f"is there a {shape} in the image?", "yes" if image_id % 2 else "no", image_id],
            [f"what is the {colour} shape?", shape, image_id]]


def write_split(root: Path, split: str, n_images: int) -> None:
    folder = root / split
    (folder / "images").mkdir(parents=True, exist_ok=True)
    questions = []
    for image_id in range(n_images):  # train and test both number their images from 0, as in the release
        PIL.Image.new("RGB", (8, 8), (20 * image_id, 100, 0 if split == "train" else 255)).save(
            folder / "images" / f"{image_id}.png")
        questions += image_questions(image_id)
    (folder / "questions.json").write_text(json.dumps(questions), encoding="utf-8")


def make_easy_vqa(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "answers.txt").write_text("".join(f"{answer}\n" for answer in ANSWERS), encoding="utf-8")
    write_split(root, "train", TRAIN_IMAGES)
    write_split(root, "test", TEST_IMAGES)
    return root


def questions(root: Path, split: str) -> list[list]:
    return json.loads((root / split / "questions.json").read_text(encoding="utf-8"))


def image_path(dataset: datasets.Dataset, row: int) -> Path:
    stored = dataset.with_format(None).cast_column("image", datasets.Image(decode=False))
    return Path(stored[row]["image"]["path"])


# ----------------------------------------------------------------------------------------------
# Schema and content
# ----------------------------------------------------------------------------------------------
def test_registered():
    assert "easy_vqa" in LOADERS and LOADERS["easy_vqa"] is real.load_easy_vqa


@pytest.mark.parametrize("split", ["train", "validation", "test"])
def test_schema_and_labels(tmp_path, split):
    root = make_easy_vqa(tmp_path)
    dataset = load("easy_vqa", split, root=root)
    features = dataset.features
    assert isinstance(features["image"], datasets.Image)
    assert features["label"].names == ANSWERS
    assert {name: features[name] for name in ("text", "id", "image_id", "answer_type")} == {
        name: datasets.Value("string") for name in ("text", "id", "image_id", "answer_type")}
    row = dataset[0]
    assert isinstance(row["image"], PIL.Image.Image) and row["image"].size == (8, 8)
    assert len(set(dataset["id"])) == len(dataset)
    # every row is its file's triple: id "<official split>-<position>", label = answers.txt index of the answer
    official = "test" if split == "test" else "train"
    triples = questions(root, official)
    for row in dataset.with_format(None).cast_column("image", datasets.Image(decode=False)):
        prefix, position = row["id"].split("-")
        question, answer, image_id = triples[int(position)]
        assert prefix == official
        assert (row["text"], ANSWERS[row["label"]], row["image_id"]) == (question, answer, str(image_id))
        assert Path(row["image"]["path"]) == (root / official / "images" / f"{image_id}.png").resolve()
        expected_type = "yes/no" if answer in ("yes", "no") else "shape" if answer in SHAPES else "colour"
        assert row["answer_type"] == expected_type


def test_construction_opens_no_image(tmp_path, monkeypatch):
    root = make_easy_vqa(tmp_path)
    opened = []
    original_open = PIL.Image.open
    monkeypatch.setattr(PIL.Image, "open", lambda *a, **k: opened.append(a) or original_open(*a, **k))
    dataset = load("easy_vqa", "train", root=root)
    assert opened == [] and dataset.data.column("image")[0].as_py()["bytes"] is None
    dataset[0]
    assert opened


# ----------------------------------------------------------------------------------------------
# The validation split: carved from the official train split by image, with a seed
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("share,held_out", [(real.EASY_VQA_VALIDATION_IMAGES, 1), (0.25, 2), (0.5, 4)])
def test_validation_and_train_share_no_image_and_cover_the_train_split(tmp_path, share, held_out):
    root = make_easy_vqa(tmp_path)
    train = load("easy_vqa", "train", root=root, validation_images=share)
    validation = load("easy_vqa", "validation", root=root, validation_images=share)
    assert len(set(validation["image_id"])) == held_out
    assert len(set(train["image_id"])) == TRAIN_IMAGES - held_out
    assert not set(train["image_id"]) & set(validation["image_id"])
    # the stored image files are disjoint too, not only the ids
    assert not {image_path(train, k) for k in range(len(train))} & {image_path(validation, k)
                                                                    for k in range(len(validation))}
    every = {f"train-{k}" for k in range(len(questions(root, "train")))}
    assert set(train["id"]) | set(validation["id"]) == every and len(train) + len(validation) == len(every)


def test_the_split_is_deterministic_per_seed_and_changes_with_it(tmp_path):
    root = make_easy_vqa(tmp_path)

    def held_out(seed: int, share: float = 0.25) -> set[str]:
        return set(load("easy_vqa", "validation", root=root, validation_images=share, seed=seed)["image_id"])

    assert held_out(0) == held_out(0)
    assert load("easy_vqa", "train", root=root, seed=3)["id"] == load("easy_vqa", "train", root=root, seed=3)["id"]
    assert any(held_out(seed) != held_out(0) for seed in range(1, 6))
    # the carve permutes the *sorted* image ids: reordering the file changes nothing
    before = {seed: held_out(seed) for seed in range(4)}
    path = root / "train" / "questions.json"
    path.write_text(json.dumps(questions(root, "train")[::-1]), encoding="utf-8")
    assert {seed: held_out(seed) for seed in range(4)} == before


def test_no_validation_share_gives_train_everything(tmp_path):
    root = make_easy_vqa(tmp_path)
    train = load("easy_vqa", "train", root=root, validation_images=0)
    assert len(train) == len(questions(root, "train"))
    with pytest.raises(ValueError, match=r"validation_images=0 .*'validation' is empty"):
        load("easy_vqa", "validation", root=root, validation_images=0)
    with pytest.raises(ValueError, match=r"validation_images=0.99 holds out 8 of the 8 train images"):
        load("easy_vqa", "train", root=root, validation_images=0.99)


# ----------------------------------------------------------------------------------------------
# max_questions: a seeded subsample
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("split", ["train", "validation", "test"])
def test_max_questions(tmp_path, split):
    root = make_easy_vqa(tmp_path)
    everything = load("easy_vqa", split, root=root, validation_images=0.5)["id"]
    small = load("easy_vqa", split, root=root, validation_images=0.5, max_questions=3)["id"]
    larger = load("easy_vqa", split, root=root, validation_images=0.5, max_questions=5)["id"]
    assert len(small) == 3 and len(larger) == 5
    assert set(small) <= set(larger) <= set(everything)  # nested: the first n of one seeded permutation
    assert small == [row for row in everything if row in small]  # kept in file order
    assert small == load("easy_vqa", split, root=root, validation_images=0.5, max_questions=3)["id"]
    assert load("easy_vqa", split, root=root, validation_images=0.5, max_questions=10_000)["id"] == everything
    others = [load("easy_vqa", "test", root=root, max_questions=3, seed=seed)["id"] for seed in range(1, 6)]
    assert any(other != load("easy_vqa", "test", root=root, max_questions=3)["id"] for other in others)


def test_max_questions_per_split_and_shuffle(tmp_path):
    root = make_easy_vqa(tmp_path)
    sizes = {"train": 4, "test": 2}  # validation not named: every question
    for split in ("train", "validation", "test"):
        per_split = load("easy_vqa", split, root=root, validation_images=0.5, max_questions=sizes)["id"]
        expected = load("easy_vqa", split, root=root, validation_images=0.5, max_questions=sizes.get(split))["id"]
        assert per_split == expected
    plain = load("easy_vqa", "train", root=root, validation_images=0.5, max_questions=6)
    shuffled = load("easy_vqa", "train", root=root, validation_images=0.5, max_questions=6, shuffle=True)
    assert sorted(shuffled["id"]) == sorted(plain["id"]) and shuffled["id"] != plain["id"]  # same rows, new order
    assert shuffled["id"] == load("easy_vqa", "train", root=root, validation_images=0.5, max_questions=6,
                                  shuffle=True)["id"]  # seeded
    by_id = dict(zip(plain["id"], zip(plain["text"], plain["label"], plain["image_id"])))
    assert all(by_id[i] == row for i, row in zip(shuffled["id"], zip(shuffled["text"], shuffled["label"],
                                                                       shuffled["image_id"])))
    with pytest.raises(ValueError, match=r"max_questions names unknown splits \['dev'\]"):
        load("easy_vqa", "train", root=root, max_questions={"dev": 3})
    with pytest.raises(ValueError, match=r"shuffle='yes'.*accepted: a bool \(True or False\)"):
        load("easy_vqa", "train", root=root, shuffle="yes")


# ----------------------------------------------------------------------------------------------
# The experiment on easy-VQA: its own word-level vocabulary, splits from the installed package
# ----------------------------------------------------------------------------------------------
def test_word_tokenizer_of_the_training_words(tmp_path):
    from mmkd_core.data.tokenizer import SPECIAL_TOKENS, build_word_tokenizer, words_of

    root = make_easy_vqa(tmp_path)
    texts = list(load("easy_vqa", "train", root=root)["text"])
    words = words_of(texts)
    assert words == sorted(set(words)) and "?" in words and "color" in words and "What" not in words
    tokenizer = build_word_tokenizer(words)
    assert len(tokenizer) == len(SPECIAL_TOKENS) + len(words)
    ids = tokenizer(texts)["input_ids"]
    assert all(tokenizer.unk_token_id not in row for row in ids)  # every training word is known
    assert tokenizer("what colour is the hexagon?")["input_ids"].count(tokenizer.unk_token_id) == 2
    with pytest.raises(ValueError, match=r"repeated or special: \['\[CLS\]', 'red'\]"):
        build_word_tokenizer(["red", "red", "[CLS]"])


def test_experiment_on_the_installed_package_uses_its_own_words_and_train_images_only():
    pytest.importorskip("easy_vqa")
    from mmkd_core.experiments import Protocol
    from mmkd_core.experiments.multimodal import prepare_data

    config = Protocol.fast().experiment_config("easy_vqa", dataset="easy_vqa")
    assert config.dataset_options == {"max_questions": {"train": 256, "validation": 128, "test": 128},
                                      "shuffle": True}
    data = prepare_data(config)
    assert data.num_labels == 13 and (len(data.pool), len(data.validation), len(data.test)) == (256, 128, 128)
    assert len(data.train) == config.n_labelled
    raw = {split: load("easy_vqa", split, **config.dataset_options) for split in ("train", "validation")}
    assert not set(raw["train"]["image_id"]) & set(raw["validation"]["image_id"])  # no validation image trains
    assert len(set(raw["train"]["image_id"][:config.n_labelled])) > config.n_labelled // 2  # shuffled: many images
    assert "circle" in data.tokenizer.get_vocab() and len(data.tokenizer) < 40
    for rows in (data.pool, data.validation, data.test):  # no question word is [UNK], and none is cut short
        ids = rows.tensors["input_ids"]
        assert not (ids == data.tokenizer.unk_token_id).any()
        assert (ids == data.tokenizer.sep_token_id).sum() == len(rows)


# ----------------------------------------------------------------------------------------------
# Bad inputs: each error names what was expected
# ----------------------------------------------------------------------------------------------
def test_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"easy_vqa: root folder .*does-not-exist.*expected layout:\n<root>/"):
        load("easy_vqa", "train", root=tmp_path / "does-not-exist")


def test_package_not_installed_and_no_root(monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "easy_vqa" else find_spec(name, *args))
    with pytest.raises(ValueError, match=r"pip install easy-vqa==1\.0.*make venv.*root="):
        load("easy_vqa", "train")


@pytest.mark.parametrize("split,missing", [("train", "train/questions.json"), ("validation", "train/questions.json"),
                                           ("test", "test/questions.json"), ("test", "answers.txt")])
def test_missing_file_names_it_and_draws_the_layout(tmp_path, split, missing):
    root = make_easy_vqa(tmp_path)
    (root / missing).unlink()
    with pytest.raises(FileNotFoundError, match=rf"annotation file .*{re.escape(missing)}'.*expected layout:\n"
                                                 rf"{re.escape(real.EASY_VQA_LAYOUT)}"):
        load("easy_vqa", split, root=root)


@pytest.mark.parametrize("split", ["train", "validation"])
def test_missing_image_names_it(tmp_path, split):
    root = make_easy_vqa(tmp_path)
    (root / "train" / "images" / "5.png").unlink()  # whichever side of the carve image 5 falls on
    with pytest.raises(FileNotFoundError, match=r"image .*train/images/5\.png' \(referenced by .*questions\.json, "
                                                r"item 15 counting from 0\) does not exist; expected layout"):
        load("easy_vqa", split, root=root)


def test_unknown_answer_names_it(tmp_path):
    root = make_easy_vqa(tmp_path)
    triples = questions(root, "test")
    triples[4][1] = "purple"
    (root / "test" / "questions.json").write_text(json.dumps(triples), encoding="utf-8")
    with pytest.raises(ValueError, match=r"test/questions\.json, item 4 \(counting from 0\): unknown answer "
                                         r"'purple'; accepted \(answers\.txt\): \['circle', 'green'"):
        load("easy_vqa", "test", root=root)


@pytest.mark.parametrize("content,expected", [
    ('[["what shape is present?", "circle", 0], ["is there a circle?", "yes"]]',
     r"item 1 \(counting from 0\) is not a \[question, answer, image_id\] triple"),
    ('[["what shape is present?", "circle", "0"]]', r"item 0 .*\(str, str, int >= 0\)"),
    ('{"questions": []}', r"holds a JSON dict, not a list of \[question, answer, image_id\] triples"),
    ('[["what shape is present?", "circle", 0]', r"is not valid JSON"),
    ("[]", r"holds no examples"),
])
def test_malformed_questions_file(tmp_path, content, expected):
    root = make_easy_vqa(tmp_path)
    (root / "test" / "questions.json").write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=expected):
        load("easy_vqa", "test", root=root)


@pytest.mark.parametrize("answers,expected", [(ANSWERS + ["square"], r"\['square'\] that are neither yes/no"),
                                              (ANSWERS + ["red"], r"lists \['red'\] more than once"),
                                              ([], r"holds no answers")])
def test_bad_answers_file(tmp_path, answers, expected):
    root = make_easy_vqa(tmp_path)
    (root / "answers.txt").write_text("".join(f"{answer}\n" for answer in answers), encoding="utf-8")
    with pytest.raises(ValueError, match=expected):
        load("easy_vqa", "test", root=root)


def test_unknown_split_and_options(tmp_path):
    root = make_easy_vqa(tmp_path)
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        load("easy_vqa", "dev", root=root)
    with pytest.raises(ValueError, match=r"easy_vqa: unknown options \['phase'\]; accepted: "
                                         r"\['validation_images', 'seed', 'max_questions', 'shuffle'\]"):
        load("easy_vqa", "train", root=root, phase="seen")


@pytest.mark.parametrize("option,value,accepted", [
    ("validation_images", "0.1", "a float in [0, 1)"), ("validation_images", 1.0, "a float in [0, 1)"),
    ("validation_images", -0.1, "a float in [0, 1)"), ("seed", -1, "an integer >= 0"),
    ("seed", 1.0, "an integer >= 0"), ("max_questions", 0, "an integer >= 1"),
    ("max_questions", 2.5, "an integer >= 1"), ("max_questions", True, "an integer >= 1"),
    ("root", 7, "a folder path"),
])
def test_wrong_option_values_name_the_option(tmp_path, option, value, accepted):
    with pytest.raises(ValueError, match=rf"{option}=.*accepted: {re.escape(accepted)}"):
        load("easy_vqa", "train", **{"root": tmp_path, option: value})


# ----------------------------------------------------------------------------------------------
# The installed package (easy-vqa==1.0, the `pretrained` extra): counts and answer types
# ----------------------------------------------------------------------------------------------
def question_type(question: str) -> str:
    """The type a question asks for, read from its wording alone (the release's templates)."""
    if not question.startswith("what "):
        return "yes/no"  # "is there ...", "does the image ...", "is no ..."
    return "colour" if "color" in question else "shape"  # "what is the blue shape?" asks for a shape


def test_installed_package():
    pytest.importorskip("easy_vqa")
    train, validation, test = (load("easy_vqa", split) for split in ("train", "validation", "test"))
    assert len(train) + len(validation) == 38_575 and len(test) == 9_673
    assert len(set(validation["image_id"])) == 500 and len(set(train["image_id"])) == 3_500
    assert not set(train["image_id"]) & set(validation["image_id"])
    assert len(set(test["image_id"])) == 1_000
    names = train.features["label"].names
    assert len(names) == 13 and names == validation.features["label"].names == test.features["label"].names
    answers_txt = Path(importlib.util.find_spec("easy_vqa").submodule_search_locations[0]) / "data" / "answers.txt"
    assert names == answers_txt.read_text().split()
    allowed = {"yes/no": {"yes", "no"}, "shape": set(SHAPES), "colour": set(COLOURS)}
    for dataset in (train, validation, test):
        for text, label, answer_type in zip(dataset["text"], dataset["label"], dataset["answer_type"]):
            assert answer_type == question_type(text), text
            assert names[label] in allowed[answer_type], (text, names[label])
    assert test[0]["image"].size == (64, 64)


def test_text_majority_reader_golden_values():
    from mmkd_core.analysis import text_majority_accuracy

    train_texts = ["what color?", "what color?", "what color?", "is there?", "is there?"]
    train_labels = [2, 2, 5, 0, 1]  # "is there?" ties between 0 and 1: the smaller label, 0
    test_texts = ["what color?", "what color?", "is there?", "never seen"]
    test_labels = [2, 5, 0, 2]  # "never seen": the most frequent label overall, 2
    assert text_majority_accuracy(train_texts, train_labels, test_texts, test_labels) == 0.75
    with pytest.raises(ValueError, match="expected non-empty texts with one label each"):
        text_majority_accuracy(train_texts, train_labels[:2], test_texts, test_labels)


def test_question_majority_on_the_installed_package():
    """The issue's measurement: each of easy-VQA's question strings answered by its majority train answer."""
    pytest.importorskip("easy_vqa")
    from mmkd_core.analysis import text_majority_accuracy

    train, test = load("easy_vqa", "train", validation_images=0), load("easy_vqa", "test")
    assert len(set(train["text"])) < 150
    accuracy = text_majority_accuracy(list(train["text"]), list(train["label"]), list(test["text"]), list(test["label"]))
    assert accuracy == pytest.approx(0.670, abs=0.005)
