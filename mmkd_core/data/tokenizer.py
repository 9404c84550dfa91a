"""A real Hugging Face tokenizer for the embedded benchmark and for small closed-vocabulary datasets.

The generator's vocabulary is small and closed, so a word-level tokenizer with BERT-style special
tokens is exact (no [UNK] on benchmark text). A dataset with a small vocabulary of its own (easy-VQA's
questions use a few dozen words) gets the same kind of tokenizer over the words of its training split
(:func:`build_word_tokenizer` of :func:`words_of`): a word seen only outside the training split is [UNK].
It is a ``PreTrainedTokenizerFast``, so any hub tokenizer (``AutoTokenizer.from_pretrained(...)``) can be
dropped in instead: the rest of the code only uses the standard ``__call__`` interface and ``pad_token_id`` /
``vocab_size``.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Iterable

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from .shapes import vocabulary

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def _normalizer():
    return normalizers.Sequence([normalizers.NFD(), normalizers.Lowercase(), normalizers.StripAccents()])


def words_of(texts: Iterable[str]) -> list[str]:
    """The distinct words of ``texts`` as the word-level tokenizer splits them (lower-cased, accents stripped,
    punctuation apart), sorted: a vocabulary that does not depend on the texts' order."""
    normalizer, splitter = _normalizer(), pre_tokenizers.BertPreTokenizer()
    return sorted({word for text in texts for word, _ in splitter.pre_tokenize_str(normalizer.normalize_str(text))})


def build_shapes_tokenizer(save_dir: str | Path | None = None) -> PreTrainedTokenizerFast:
    """Word-level tokenizer over :func:`mmkd_core.data.shapes.vocabulary`, ``[CLS] text [SEP]`` template."""
    return build_word_tokenizer(vocabulary(), save_dir)


def build_word_tokenizer(words: Iterable[str], save_dir: str | Path | None = None) -> PreTrainedTokenizerFast:
    """Word-level tokenizer over ``words`` (ids after the special tokens, in the given order; a repeated word
    or a special token among them is an error), ``[CLS] text [SEP]`` template, [UNK] for any other word."""
    words = list(words)
    clashes = sorted({w for w, n in Counter(words).items() if n > 1} | set(words) & set(SPECIAL_TOKENS))
    if clashes:
        raise ValueError(f"build_word_tokenizer: the words must be distinct and not special tokens "
                         f"{SPECIAL_TOKENS}; repeated or special: {clashes[:10]}")
    vocab = {token: i for i, token in enumerate([*SPECIAL_TOKENS, *words])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    backend.normalizer = _normalizer()
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
