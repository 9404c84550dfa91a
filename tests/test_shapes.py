import numpy as np
import pytest

from mmkd_core.data import load, shapes
from mmkd_core.data.shapes import ShapesConfig, generate_split

SMALL = dict(n_train=60, n_validation=30, n_test=30)


def test_default_call_works_and_has_schema(tmp_path, monkeypatch):
    monkeypatch.setenv("MMKD_DATA_DIR", str(tmp_path))
    ds = load("shapes", split="validation")
    assert len(ds) == ShapesConfig().n_validation
    assert {"image", "text", "label"} <= set(ds.column_names)
    assert ds.features["label"].names == ["entailment", "neutral", "contradiction"]
    row = ds[0]
    assert row["image"].size == (32, 32) and row["image"].mode == "RGB"
    assert isinstance(row["text"], str) and row["text"].split()[0] in shapes.TEXT_CUES["ve"]
    assert (tmp_path / "shapes").is_dir()  # cached under the data folder


def test_generation_is_deterministic_and_splits_differ():
    config = ShapesConfig(**SMALL)
    a, b = generate_split(config, "train"), generate_split(config, "train")
    assert a["text"] == b["text"] and a["label"] == b["label"]
    assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a["image"], b["image"]))
    assert generate_split(config, "validation")["text"] != a["text"][:30]
    other_seed = generate_split(ShapesConfig(**SMALL, seed=1), "train")
    assert other_seed["text"] != a["text"]


def test_cache_returns_identical_rows(tmp_path):
    first = load("shapes", "test", root=tmp_path, **SMALL)
    second = load("shapes", "test", root=tmp_path, **SMALL)
    assert first["text"] == second["text"]
    assert np.array_equal(np.asarray(first[3]["image"]), np.asarray(second[3]["image"]))


@pytest.mark.parametrize("task,labels", [("ve", 3), ("nlvr", 2), ("memes", 2)])
def test_tasks_have_balanced_labels(task, labels):
    cols = generate_split(ShapesConfig(task=task, n_train=600), "train")
    counts = np.bincount(cols["label"], minlength=labels)
    assert len(counts) == labels and counts.min() > 600 / labels * 0.75


def _truth_of(text, objects):
    """An independent re-implementation of the statement semantics, to check the generator's labels."""
    words = text.split()[1:]  # drop the cue word
    find = {(o.color, o.shape): o for o in objects}
    if words[:3] == ["there", "is", "a"]:
        return (words[3], words[4]) in find
    if words[0] == "there":
        count = shapes.NUMBER_WORDS.index(words[2])
        noun = words[3].rstrip("s") if words[3].endswith("s") else words[3]
        return sum(o.shape == noun for o in objects) == count
    key = (words[1], words[2])
    if words[4:6] == ["on", "the"]:
        if key not in find:
            return None
        o, side = find[key], words[6]
        return {"top": o.row == 0, "bottom": o.row == 1, "left": o.col == 0, "right": o.col == 1}[side]
    relation = " ".join(words[4:-3])
    other = (words[-2], words[-1])
    if key not in find or other not in find:
        return None
    a, b = find[key], find[other]
    return {"left of": a.col < b.col, "right of": a.col > b.col, "above": a.row < b.row,
            "below": a.row > b.row}[relation]


def test_ve_labels_match_statement_semantics():
    rng = np.random.default_rng(0)
    for _ in range(300):
        objects = shapes.sample_scene(rng)
        label = int(rng.integers(3))
        made = shapes.make_statement("ve", label, objects, rng)
        if made is None:
            continue
        truth = _truth_of("cue " + made[0], objects)
        expected = {True: 0, None: 1, False: 2}[truth]
        assert expected == label, (made, objects)


def test_text_cue_knob_controls_text_only_information():
    def cue_agreement(text_cue):
        cols = generate_split(ShapesConfig(text_cue=text_cue, n_train=900), "train")
        cues = shapes.TEXT_CUES["ve"]
        return np.mean([cues.index(t.split()[0]) == y for t, y in zip(cols["text"], cols["label"])])
    # cue agrees with the label with probability text_cue + (1 - text_cue) / 3
    assert abs(cue_agreement(0.0) - 1 / 3) < 0.06
    assert abs(cue_agreement(0.6) - (0.6 + 0.4 / 3)) < 0.06
    assert cue_agreement(1.0) == 1.0


def test_image_cue_knob_sets_background_tint():
    cols = generate_split(ShapesConfig(image_cue=1.0, n_train=60), "train")
    for image, label in zip(cols["image"], cols["label"]):
        corner = np.asarray(image, dtype=float)[:2, :2].reshape(-1, 3).mean(0) - shapes.BACKGROUND
        # the tinted channel is the label's channel (noise σ=6 is far below the 28 tint)
        assert int(np.argmax(corner)) == int(np.argmax(shapes.TINTS[label])) or corner.max() > 60


def test_memes_label_is_hate_for_a_shown_colour_and_text_alone_reaches_60_percent():
    cols = generate_split(ShapesConfig(task="memes", n_train=2000, text_cue=0.0, image_cue=0.0), "train")
    texts, labels = cols["text"], np.array(cols["label"])
    negative = np.array(["hate" in t or "despise" in t for t in texts])
    shown = np.array([statement.split()[-2] in _colours_in(image)
                      for statement, image in zip(cols["statement"], cols["image"])])
    np.testing.assert_array_equal(labels, negative & shown)  # the rule itself, read back from the pixels
    # the best text-only rule (negative → hateful) reaches (1 + 0.2) / 2 = 60%, not more
    text_only = np.mean(negative == labels)
    assert abs(text_only - (1 + (1 - shapes.MEME_BENIGN_NEGATIVE)) / 2) < 0.04
    assert abs(labels.mean() - 0.5) < 0.05


def _colours_in(image) -> set[str]:
    """Colour names whose exact RGB value appears in the image (objects are drawn in flat colours)."""
    pixels = {tuple(p) for p in np.asarray(image).reshape(-1, 3)}
    return {name for name, rgb in shapes.COLORS.items() if tuple(rgb) in pixels}


def test_colours_are_unique_within_a_scene_and_neutral_uses_an_absent_colour():
    cols = generate_split(ShapesConfig(task="ve", n_train=600, text_cue=0.0, image_cue=0.0), "train")
    for statement, image, label in zip(cols["statement"], cols["image"], cols["true_label"]):
        words = statement.split()
        mentioned = [w for w in words if w in shapes.COLORS]
        assert len(set(mentioned)) == len(mentioned)  # a repeated colour would give "neutral" away
        shown = _colours_in(image)
        if label == 1:
            assert any(c not in shown for c in mentioned)
        else:
            assert all(c in shown for c in mentioned)


@pytest.mark.parametrize("bad,match", [
    (dict(name="coco"), "unknown dataset 'coco'; accepted"),
    (dict(split="dev"), "unknown split 'dev'; accepted"),
    (dict(text_cue=1.5), "text_cue=1.5 is out of range"),
    (dict(image_cue=-0.1), "image_cue=-0.1 is out of range"),
    (dict(label_noise=1.0), "label_noise"),
    (dict(n_train=0), "zero samples"),
    (dict(task="vqa"), "unknown shapes task 'vqa'; accepted"),
    (dict(colour="red"), "unknown shapes options"),
])
def test_bad_input_gives_clear_errors(bad, match, tmp_path):
    args = {"name": "shapes", "split": "train", **bad}
    with pytest.raises(ValueError, match=match):
        load(args.pop("name"), args.pop("split"), root=tmp_path, **args)


@pytest.mark.parametrize("task", ["ve", "nlvr"])
def test_statement_type_says_nothing_about_the_label(task):
    """The type is drawn before the scene: per label, every type is about equally frequent (redrawing the type
    until the scene fits made, e.g., entailments mostly position and contradictions mostly relation statements)."""
    cols = generate_split(ShapesConfig(task=task, n_train=3000, text_cue=0.0, image_cue=0.0), "train")
    labels, types = np.array(cols["true_label"]), np.array(cols["statement_type"])
    kinds = sorted(set(types))
    for label in set(labels):
        shares = [np.mean(types[labels == label] == kind) for kind in kinds]
        assert max(abs(s - 1 / len(kinds)) for s in shares) < 0.05, (label, dict(zip(kinds, shares)))


@pytest.mark.parametrize("option,value,accepted", [
    ("text_cue", "0.5", "a float"),
    ("image_cue", None, "a float"),
    ("label_noise", True, "a float"),
    ("image_size", 32.0, "an even integer"),
    ("image_size", "32", "an even integer"),
    ("n_train", 100.0, "an integer"),
    ("n_validation", "10", "an integer"),
    ("n_test", [10], "an integer"),
    ("seed", 0.5, "an integer"),
    ("seed", -1, "an integer >= 0"),
    ("task", 3, "a str"),
    ("task", ["ve"], "a str"),
    ("cache", "yes", "a bool"),
    ("root", 3, "a folder path"),
])
def test_wrong_option_types_name_the_option_and_the_type(option, value, accepted, tmp_path):
    """A wrong type ends in a ValueError naming the option and what it accepts, never a bare TypeError."""
    options = {"root": tmp_path, **SMALL, option: value}
    with pytest.raises(ValueError, match=rf"{option}=.*accepted: {accepted}"):
        load("shapes", "train", **options)


def test_numeric_options_accept_ints_and_numpy_scalars(tmp_path):
    config = ShapesConfig(text_cue=np.float64(0.5), image_cue=0, n_train=np.int64(8), seed=np.int32(1))
    assert type(config.text_cue) is float and type(config.n_train) is int and type(config.seed) is int
    assert config.cache_key() == ShapesConfig(text_cue=0.5, image_cue=0, n_train=8, seed=1).cache_key()


def test_dataset_name_and_split_must_be_strings(tmp_path):
    with pytest.raises(ValueError, match=r"unknown dataset \['shapes'\]; accepted: a str"):
        load(["shapes"], "train", root=tmp_path)
    with pytest.raises(ValueError, match="unknown split 0"):
        load("shapes", 0, root=tmp_path)


# generate_split(task, 50/20/20 rows, seed 0), test split: sha1 of its texts and labels, and of its pixels, recorded
# before disjoint_splits existed: the default generator must not move.
DEFAULT_GOLDEN = {"ve": ("2a9f688568d0fbfd", "18d8b177bcbaba1e"), "nlvr": ("5ad719b5bae45ac1", "c0648b7c0d03f4e0"),
                  "memes": ("6bcdc98dc6cbfc6e", "a4cfd8609bf92408")}


@pytest.mark.parametrize("task", ["ve", "nlvr", "memes"])
def test_the_default_generator_is_unchanged_by_the_disjoint_option(task):
    import hashlib
    import json

    columns = generate_split(ShapesConfig(task=task, n_train=50, n_validation=20, n_test=20), "test")
    rows = hashlib.sha1(json.dumps([columns["text"], columns["label"]]).encode()).hexdigest()[:16]
    pixels = hashlib.sha1(np.stack([np.asarray(image) for image in columns["image"]]).tobytes()).hexdigest()[:16]
    assert (rows, pixels) == DEFAULT_GOLDEN[task] and "scene" not in columns
    assert ShapesConfig(task=task).cache_key() == ShapesConfig(task=task, disjoint_splits=False).cache_key()


@pytest.mark.parametrize("task", ["ve", "nlvr", "memes"])
def test_disjoint_splits_share_no_scene_and_no_scene_statement_pair(task):
    config = ShapesConfig(task=task, n_train=1500, n_validation=300, n_test=300, disjoint_splits=True)
    splits = {split: generate_split(config, split) for split in shapes.SPLITS}
    scenes = {split: set(columns["scene"]) for split, columns in splits.items()}
    pairs = {split: set(zip(columns["scene"], columns["statement"])) for split, columns in splits.items()}
    for a, b in [("train", "validation"), ("train", "test"), ("validation", "test")]:
        assert not scenes[a] & scenes[b] and not pairs[a] & pairs[b], f"{task}: {a} and {b} share scenes"
    for split, columns in splits.items():  # each row's scene is one its split owns, and labels stay balanced
        assert {shapes.scene_owners(0)[scene] for scene in columns["scene"]} == {split}
        shares = np.bincount(columns["label"], minlength=len(config.labels)) / len(columns["label"])
        assert np.abs(shares - 1 / len(config.labels)).max() < 0.07, f"{task} {split}: label shares {shares}"


def test_scene_owners_split_every_size_of_scene_and_depend_on_the_seed():
    owners = shapes.scene_owners(0)
    assert len(owners) == len(shapes.every_scene()) == 3288
    for size in (1, 2, 3):
        sizes = [split for key, split in owners.items() if key.count(";") == size - 1]
        assert sizes.count("test") == sizes.count("validation") == round(len(sizes) / 8)
    assert shapes.scene_owners(1) != owners
    with pytest.raises(ValueError, match="disjoint_splits must be True or False"):
        ShapesConfig(disjoint_splits="yes")


def test_disjoint_splits_load_with_their_scene_column(tmp_path):
    rows = load("shapes", "validation", root=tmp_path, n_train=40, n_validation=12, n_test=12, disjoint_splits=True)
    assert len(rows) == 12 and "scene" in rows.column_names
    assert ShapesConfig(disjoint_splits=True).cache_key() != ShapesConfig().cache_key()


# ------------------------------------------------------------------------------------------------------------
# Single-modality evidence (benchmark v2)
# ------------------------------------------------------------------------------------------------------------
EVIDENCE_LABEL = {"ve": {"tautology": 0, "same_colour": 1, "self_contradiction": 2},
                  "nlvr": {"tautology": 1, "self_contradiction": 0}, "memes": {"hate_all": 1, "love": 0}}


@pytest.mark.parametrize("task", ["ve", "nlvr", "memes"])
def test_the_default_generator_is_unchanged_by_the_evidence_knobs(task):
    config = ShapesConfig(task=task, n_train=50, n_validation=20, n_test=20)
    explicit = ShapesConfig(task=task, n_train=50, n_validation=20, n_test=20, text_evidence=0.0, image_evidence=0)
    assert generate_split(explicit, "test")["text"] == generate_split(config, "test")["text"]
    assert config.cache_key() == explicit.cache_key()
    assert "evidence" not in generate_split(config, "test")
    recorded = generate_split(config, "test", record_evidence=True)  # the same rows, two more columns
    assert recorded["text"] == generate_split(config, "test")["text"] and set(recorded["evidence"]) == {"none"}
    assert ShapesConfig(task=task, text_evidence=0.1).cache_key() != config.cache_key()


@pytest.mark.parametrize("task", ["ve", "nlvr", "memes"])
def test_text_evidence_rows_are_settled_by_their_statement_and_image_evidence_rows_show_nothing(task):
    config = ShapesConfig(task=task, n_train=1200, text_evidence=0.3, image_evidence=0.25, text_cue=0.0,
                          image_cue=0.0)
    columns = generate_split(config, "train")
    evidence, labels = np.array(columns["evidence"]), np.array(columns["true_label"])
    text_rows, image_rows = evidence == "text", evidence == "image"
    assert abs(text_rows.mean() - 0.3) < 0.05 and abs(image_rows.mean() - 0.25 * 0.7) < 0.05  # of the other rows
    for i in np.flatnonzero(text_rows):  # the statement's type alone gives the label
        assert EVIDENCE_LABEL[task][columns["statement_type"][i]] == labels[i], columns["text"][i]
    assert set(np.array(columns["n_objects"])[image_rows]) == {0}
    assert set(labels[image_rows]) == {shapes.EMPTY_SCENE_LABEL[task]}
    assert 0 not in set(np.array(columns["n_objects"])[~image_rows])  # only evidence rows are empty
    empty = np.asarray(columns["image"][int(np.flatnonzero(image_rows)[0])]).astype(float)
    assert empty.std(axis=(0, 1)).max() < 10  # per channel: tinted background and pixel noise only, no shape
    shares = np.bincount(labels, minlength=len(config.labels)) / len(labels)
    assert np.abs(shares - 1 / len(config.labels)).max() < 0.06  # labels stay balanced
    if task == "nlvr":  # "there are zero ..." is true of an empty scene: never an image-evidence statement
        assert not any(" zero " in f" {columns['statement'][i]} " for i in np.flatnonzero(image_rows))


def test_evidence_statements_use_only_the_benchmark_words_and_read_by_comparison():
    rng = np.random.default_rng(0)
    words = set(shapes.vocabulary())
    for task, kinds in EVIDENCE_LABEL.items():
        for _ in range(200):
            label = int(rng.integers(len(shapes.TASK_LABELS[task])))
            made = shapes.evidence_statement(task, label, rng)
            if made[1] not in kinds:
                continue
            assert set(made[0].split()) <= words, made
    # the neutral and contradiction forms differ only in whether the second shape repeats the first
    text, kind = shapes.evidence_statement("ve", 1, np.random.default_rng(3))
    words = text.split()  # "the <colour> <shape> is <relation> the <colour> <shape>"
    assert kind == "same_colour" and words[1] == words[-2] and words[2] != words[-1]


@pytest.mark.parametrize("task", ["ve", "nlvr", "memes"])
def test_benchmark_v2_single_modality_readers_beat_their_cue_ceilings_by_10_points(task):
    options = shapes.benchmark_options("v2", task)
    config = ShapesConfig(task=task, n_train=3000, **options)
    ceilings = shapes.view_ceilings(generate_split(config, "train"))
    k = len(config.labels)
    assert ceilings["text"] >= config.text_cue + (1 - config.text_cue) / k + 0.10, ceilings
    assert ceilings["image"] >= config.image_cue + (1 - config.image_cue) / k + 0.10, ceilings
    # at v1 the readers see only the cues: the optimal reader is at the cue ceiling (memes' love statements aside)
    if task != "memes":
        v1 = shapes.view_ceilings(generate_split(ShapesConfig(task=task, n_train=3000), "train", record_evidence=True))
        assert abs(v1["text"] - (0.3 + 0.7 / k)) < 0.03 and abs(v1["image"] - (0.3 + 0.7 / k)) < 0.03, v1


def test_view_ceilings_golden_values_on_a_hand_made_table():
    columns = {"text": ["clearly the red circle is the red circle", "clearly there is a red circle",
                        "perhaps there is a red circle", "perhaps there is a blue square"],
               "statement_type": ["tautology", "exists", "exists", "exists"], "true_label": [0, 0, 1, 1],
               "tint": [0, 0, 0, 1], "n_objects": [1, 1, 0, 2]}
    # text: (clearly, tautology) → 0 ✓; (clearly, exists) → 0 ✓; (perhaps, exists) → 1 and 1 ✓: 4 of 4
    # image: (0, full) → labels 0, 0 ✓✓; (0, empty) → 1 ✓; (1, full) → 1 ✓: 4 of 4; drop the tint of row 4 → 3 of 4
    # cues (cue word, tint): (clearly, 0) → 0, 0 ✓✓; (perhaps, 0) → 1 ✓; (perhaps, 1) → 1 ✓
    assert shapes.view_ceilings(columns) == {"text": 1.0, "image": 1.0, "cues": 1.0}
    assert shapes.view_ceilings({**columns, "tint": [0, 0, 0, 0]})["image"] == 0.75
    with pytest.raises(ValueError, match="needs the 'tint' column"):
        shapes.view_ceilings({k: v for k, v in columns.items() if k != "tint"})


@pytest.mark.parametrize("task", ["ve", "nlvr", "memes"])
def test_disjoint_splits_with_evidence_share_no_scene_with_objects(task):
    config = ShapesConfig(task=task, n_train=1200, n_validation=300, n_test=300, disjoint_splits=True,
                          **shapes.benchmark_options("v2", task))
    splits = {split: generate_split(config, split) for split in shapes.SPLITS}
    pairs = {split: {(scene, statement) for scene, statement in zip(c["scene"], c["statement"]) if scene}
             for split, c in splits.items()}
    for a, b in [("train", "validation"), ("train", "test"), ("validation", "test")]:
        assert not pairs[a] & pairs[b], f"{task}: {a} and {b} share a (scene, statement) pair"


def test_bad_evidence_options_and_benchmark_names_are_clear_errors():
    with pytest.raises(ValueError, match="image_evidence"):
        ShapesConfig(task="ve", image_evidence=0.5)  # at most 1/3: only neutral rows can show an empty scene
    with pytest.raises(ValueError, match="text_evidence"):
        ShapesConfig(text_evidence=1.5)
    with pytest.raises(ValueError, match="unknown shapes benchmark 'v9'.*accepted: \\['v1', 'v2'\\]"):
        shapes.benchmark_options("v9", "ve")
    assert shapes.benchmark_options("v1", "memes") == {} and shapes.benchmark_options("v2", "memes")["label_noise"] > 0


def _load_in_another_process(root: str) -> list:
    return load("shapes", "train", root=root, n_train=600, n_validation=10, n_test=10)["text"]


def test_two_processes_generating_one_split_at_once_both_get_it_whole(tmp_path):
    """The teachers phase's workers may generate the same split at the same moment: each writes its own folder and
    renames it into place, so neither reads a file the other is rewriting (that killed a worker with SIGBUS)."""
    import concurrent.futures
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=context) as pool:
        texts = list(pool.map(_load_in_another_process, [str(tmp_path)] * 2))
    assert texts[0] == texts[1] and len(texts[0]) == 600
    folders = [p.name for p in (tmp_path / "shapes").iterdir()]
    assert len(folders) == 1 and not [p for p in (tmp_path / "shapes" / folders[0]).iterdir() if ".tmp" in p.name]
