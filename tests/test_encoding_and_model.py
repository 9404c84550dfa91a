import pytest
import torch
from transformers import AutoTokenizer

from mmkd_core.data import load
from mmkd_core.data.encoding import EncodedDataset, ImageTextProcessor, LazyDataset
from mmkd_core.data.shapes import vocabulary
from mmkd_core.evaluation.probes import count_parameters
from mmkd_core.models.multimodal import MultimodalClassifier, build_multimodal_model, student_from_teacher


def test_tokenizer_round_trip_and_reload(tokenizer, tmp_path):
    text = "clearly the red circle is left of the blue square"
    ids = tokenizer(text)["input_ids"]
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == text
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)  # the hub-style drop-in path
    assert reloaded(text)["input_ids"] == ids
    assert len(tokenizer) == 5 + len(vocabulary())


def test_benchmark_text_never_hits_unknown_token(tokenizer, tiny_data):
    ids = tiny_data["train"].tensors["input_ids"]
    assert not (ids == tokenizer.unk_token_id).any()


def test_encoded_and_lazy_datasets_agree(processor, tmp_path):
    ds = load("shapes", "validation", root=tmp_path, n_validation=20)
    encoded, lazy = EncodedDataset(ds, processor), LazyDataset(ds, processor)
    batch = lazy.collate_fn([lazy[i] for i in range(5)])
    for key in ("input_ids", "attention_mask", "pixel_values", "labels", "index"):
        assert torch.equal(batch[key], torch.stack([encoded[i][key] for i in range(5)])), key
    assert batch["pixel_values"].shape == (5, 3, 32, 32)
    assert -1.0 <= float(batch["pixel_values"].min()) and float(batch["pixel_values"].max()) <= 1.0


def test_encoding_rejects_empty_or_wrong_datasets(processor, tmp_path):
    ds = load("shapes", "validation", root=tmp_path, n_validation=10)
    with pytest.raises(ValueError, match="zero rows"):
        EncodedDataset(ds.select([]), processor)
    with pytest.raises(ValueError, match="lacks columns"):
        EncodedDataset(ds.remove_columns(["text"]), processor)


@pytest.fixture
def model(tokenizer):
    return build_multimodal_model(num_labels=3, vocab_size=len(tokenizer), preset="student", seed=0).eval()


def _batch(data, n=6):
    return {k: v[:n] for k, v in data.tensors.items()}


def test_views_shapes_and_batched_equals_separate(model, tiny_data):
    b = _batch(tiny_data["train"])
    together = model(b["input_ids"], b["attention_mask"], b["pixel_values"], views=("joint", "text", "image"))
    for view in ("joint", "text", "image"):
        alone = model(b["input_ids"], b["attention_mask"], b["pixel_values"], views=(view,))
        assert together.logits[view].shape == (6, 3)
        torch.testing.assert_close(together.logits[view], alone.logits[view], atol=1e-5, rtol=1e-4)


def test_text_view_ignores_image_and_image_view_ignores_text(model, tiny_data):
    b = _batch(tiny_data["train"])
    views = ("joint", "text", "image")
    base = model(b["input_ids"], b["attention_mask"], b["pixel_values"], views=views)
    other_image = model(b["input_ids"], b["attention_mask"], torch.randn_like(b["pixel_values"]), views=views)
    torch.testing.assert_close(base.logits["text"], other_image.logits["text"])
    assert not torch.allclose(base.logits["joint"], other_image.logits["joint"])
    ids = b["input_ids"].clone()
    ids[:, 1:] = torch.randint(5, 40, ids[:, 1:].shape)  # keep [CLS], change every content token
    other_text = model(ids, torch.ones_like(b["attention_mask"]), b["pixel_values"], views=views)
    torch.testing.assert_close(base.logits["image"], other_text.logits["image"])
    assert not torch.allclose(base.logits["joint"], other_text.logits["joint"])


def test_text_view_equals_dropping_the_image_tokens(model, tiny_data):
    """Masking the image equals running the encoder on the text tokens alone (masking == dropping)."""
    b = _batch(tiny_data["train"], 3)
    masked = model(b["input_ids"], b["attention_mask"], b["pixel_values"], views=("text",)).pooled["text"]
    text = model.vilt.embeddings.text_embeddings(input_ids=b["input_ids"])
    text = text + model.vilt.embeddings.token_type_embeddings(torch.zeros_like(b["input_ids"]))
    mask = (1.0 - b["attention_mask"][:, None, None, :].float()) * torch.finfo(torch.float32).min
    seq = model.vilt.encoder(text, attention_mask=mask).last_hidden_state
    dropped = model.vilt.pooler(model.vilt.layernorm(seq))
    torch.testing.assert_close(masked, dropped, atol=1e-5, rtol=1e-4)


def test_presets_depths_and_sizes(tokenizer):
    teacher = build_multimodal_model(3, len(tokenizer), "teacher")
    student = build_multimodal_model(3, len(tokenizer), "student")
    assert len(teacher.vilt.encoder.layer) > len(student.vilt.encoder.layer) == 2
    assert count_parameters(teacher) > 2 * count_parameters(student)
    paper = build_multimodal_model(3, len(tokenizer), "paper-student", image_size=64, patch_size=32)
    assert paper.config.hidden_size == 768 and paper.config.num_hidden_layers == 2


def test_other_image_resolution_interpolates_positions(model):
    out = model(torch.tensor([[2, 5, 3]]), torch.ones(1, 3, dtype=torch.long), torch.randn(1, 3, 48, 48))
    assert out.logits["joint"].shape == (1, 3)


def test_checkpoint_round_trip_is_safetensors_plus_json(model, tiny_data, tmp_path):
    folder = model.save(tmp_path / "ckpt")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    again = MultimodalClassifier.load(folder).eval()
    b = _batch(tiny_data["train"])
    torch.testing.assert_close(model(**{k: b[k] for k in ("input_ids", "attention_mask", "pixel_values")}).logits,
                               again(**{k: b[k] for k in ("input_ids", "attention_mask", "pixel_values")}).logits)
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        MultimodalClassifier.load(tmp_path)


def test_student_from_teacher_copies_selected_layers(tokenizer):
    teacher = build_multimodal_model(3, len(tokenizer), "teacher", seed=1)
    student = student_from_teacher(teacher, [0, 3])
    assert student.config.num_hidden_layers == 2
    torch.testing.assert_close(student.vilt.encoder.layer[1].state_dict()["output.dense.weight"],
                               teacher.vilt.encoder.layer[3].state_dict()["output.dense.weight"])
    with pytest.raises(ValueError, match="indices in"):
        student_from_teacher(teacher, [7])


def test_model_bad_input(model):
    with pytest.raises(ValueError, match="accepted|expected a non-empty"):
        model(torch.tensor([[2, 3]]), torch.ones(1, 2, dtype=torch.long), torch.randn(1, 3, 32, 32), views=("audio",))
    with pytest.raises(ValueError, match="pixel_values"):
        model(torch.tensor([[2, 3]]), torch.ones(1, 2, dtype=torch.long), torch.randn(1, 32, 32))
    with pytest.raises(ValueError, match="batch"):
        model(torch.tensor([[2, 3]]), torch.ones(1, 2, dtype=torch.long), torch.randn(2, 3, 32, 32))


def test_per_sample_views_match_the_batched_views(model, tiny_data):
    b = _batch(tiny_data["train"])
    views = ("joint", "text", "image")
    full = model(b["input_ids"], b["attention_mask"], b["pixel_values"], views=views).logits
    view_index = torch.tensor([0, 1, 2, 2, 1, 0])
    mixed = model.forward_per_sample_view(b["input_ids"], b["attention_mask"], b["pixel_values"], view_index)
    expected = torch.stack([full[views[v]][i] for i, v in enumerate(view_index.tolist())])
    torch.testing.assert_close(mixed, expected, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="view_index"):
        model.forward_per_sample_view(b["input_ids"], b["attention_mask"], b["pixel_values"], view_index[:2])


def test_pretrained_vilt_path_loads_a_saved_backbone(tmp_path, tokenizer):
    """The hub path (from_pretrained_vilt) on a tiny ViltModel saved as safetensors: no download."""
    from transformers import ViltConfig, ViltModel

    from mmkd_core.models.multimodal import from_pretrained_vilt

    config = ViltConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, image_size=32, patch_size=16, max_position_embeddings=16)
    ViltModel(config).save_pretrained(tmp_path / "vilt")
    assert (tmp_path / "vilt" / "model.safetensors").exists()
    model = from_pretrained_vilt(str(tmp_path / "vilt"), num_labels=2).eval()
    out = model(torch.tensor([[2, 10, 3]]), torch.ones(1, 3, dtype=torch.long), torch.randn(1, 3, 32, 32),
                views=("joint", "text", "image"))
    assert out.logits["image"].shape == (1, 2)


def test_packed_unimodal_views_equal_the_masked_three_pass_views(model, tiny_data):
    """The packed pass (text | [CLS] copy | image, block-diagonal attention) computes what one masked pass per
    view computes (the path output_hidden_states takes), for every subset of views."""
    b = _batch(tiny_data["train"])
    args = (b["input_ids"], b["attention_mask"], b["pixel_values"])
    reference = model(*args, views=("joint", "text", "image"), output_hidden_states=True)
    for views in [("joint", "text", "image"), ("text",), ("image",), ("image", "joint"), ("text", "image")]:
        packed = model(*args, views=views)
        for view in views:
            torch.testing.assert_close(packed.logits[view], reference.logits[view], atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(packed.pooled[view], reference.pooled[view], atol=1e-5, rtol=1e-4)


def test_labelled_subset_and_transfer_set_share_rows_and_hide_labels(tiny_data):
    from mmkd_core.losses.ce import UNLABELLED
    from mmkd_core.training.cache import data_key

    pool = tiny_data["train"]
    labelled, transfer = pool.first(10), pool.hide_labels_after(10)
    assert len(labelled) == 10 and len(transfer) == len(pool)
    assert torch.equal(labelled.tensors["index"], pool.tensors["index"][:10])
    assert torch.equal(transfer.tensors["labels"][:10], pool.tensors["labels"][:10])
    assert (transfer.tensors["labels"][10:] == UNLABELLED).all()
    assert (pool.tensors["labels"] != UNLABELLED).all()  # the pool keeps its labels (the teacher's data)
    assert data_key(labelled) == data_key(transfer) == data_key(pool)  # one teacher cache serves all three
    assert labelled.fingerprint != transfer.fingerprint != pool.fingerprint
    with pytest.raises(ValueError, match="n_labelled"):
        pool.first(0)
