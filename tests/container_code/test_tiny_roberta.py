"""The tiny model builder, on every transformers major it runs under (the images' 4.51 and 4.56,
the local 5.x): the saved tokenizer keeps its whole trained vocabulary and frames each review
with <s> ... </s>, as RoBERTa's does."""

from __future__ import annotations

from transformers import AutoConfig, AutoTokenizer

from tiny_roberta import TINY_VOCAB_SIZE


def test_the_saved_tokenizer_has_the_full_trained_vocabulary(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    # transformers 5 quietly built 5 tokens (the special ones) from vocab_file=/merges_file=.
    assert len(tokenizer) == TINY_VOCAB_SIZE
    assert AutoConfig.from_pretrained(str(tiny_model_dir)).vocab_size == TINY_VOCAB_SIZE
    assert {"great", "terrible", "Ġgreat"} & set(tokenizer.get_vocab())


def test_reviews_are_framed_with_bos_and_eos(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    ids = tokenizer("Great product")["input_ids"]
    assert (ids[0], ids[-1]) == (tokenizer.bos_token_id, tokenizer.eos_token_id)
    assert len(ids) > 2 and tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == "Great product"
