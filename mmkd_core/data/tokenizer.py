"""A real Hugging Face tokenizer for the embedded benchmark.

The generator's vocabulary is small and closed, so a word-level tokenizer with BERT-style special
tokens is exact (no [UNK] on benchmark text). It is a ``PreTrainedTokenizerFast``, so any hub tokenizer
(``AutoTokenizer.from_pretrained(...)``) can be dropped in instead: the rest of the code only uses the
standard ``__call__`` interface and ``pad_token_id`` / ``vocab_size``.
"""
from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from .shapes import vocabulary

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def build_shapes_tokenizer(save_dir: str | Path | None = None) -> PreTrainedTokenizerFast:
    """Word-level tokenizer over :func:`mmkd_core.data.shapes.vocabulary`, ``[CLS] text [SEP]`` template."""
    vocab = {token: i for i, token in enumerate([*SPECIAL_TOKENS, *vocabulary()])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    backend.normalizer = normalizers.Sequence([normalizers.NFD(), normalizers.Lowercase(),
                                               normalizers.StripAccents()])
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]", model_max_length=40)
    if save_dir is not None:
        tokenizer.save_pretrained(str(save_dir))
    return tokenizer
