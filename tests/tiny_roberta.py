"""Builds a tiny, randomly initialised RoBERTa sequence classifier and its byte-level BPE
tokenizer in a couple of seconds, saved with save_pretrained, so tests can exercise the real
loading code (Auto classes, from_pretrained) without downloading any weights."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import reviews

# Word lists that make sentiment learnable from the text alone, so a tiny model trained for a
# few steps does measurably better than chance.
_POSITIVE_WORDS = ("great", "excellent", "love", "perfect", "wonderful", "happy", "recommend")
_NEGATIVE_WORDS = ("terrible", "awful", "broken", "hate", "refund", "waste", "disappointed")
_NEUTRAL_WORDS = ("okay", "average", "fine", "arrived", "standard", "expected", "usual")
_FILLER_WORDS = ("the", "product", "this", "item", "was", "is", "it", "and", "very", "quite")

# The BPE trainer fills the vocabulary up to this size (the corpus has enough distinct pairs).
TINY_VOCAB_SIZE = 400

WORDS_BY_SENTIMENT: dict[int, tuple[str, ...]] = {
    -1: _NEGATIVE_WORDS,
    0: _NEUTRAL_WORDS,
    1: _POSITIVE_WORDS,
}


def synthetic_review(sentiment: int, rng: random.Random) -> str:
    """A short review whose words signal its sentiment."""
    words = [rng.choice(WORDS_BY_SENTIMENT[sentiment]) for _ in range(rng.randint(2, 4))]
    words += [rng.choice(_FILLER_WORDS) for _ in range(rng.randint(2, 6))]
    rng.shuffle(words)
    return " ".join(words).capitalize() + "."


def synthetic_reviews(count: int, *, seed: int = 0) -> list[tuple[str, int]]:
    """(review_body, sentiment) pairs with the three classes in turn."""
    rng = random.Random(seed)
    sentiments = itertools.cycle(reviews.SENTIMENTS)
    return [(synthetic_review(sentiment, rng), sentiment) for sentiment, _ in zip(sentiments, range(count))]


SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")


def _train_tokenizer(corpus: list[str], vocab_size: int, workdir: Path):
    from tokenizers import ByteLevelBPETokenizer, processors
    from transformers import RobertaTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        corpus, vocab_size=vocab_size, min_frequency=1, special_tokens=list(SPECIAL_TOKENS), show_progress=False
    )
    # transformers 4.x wraps a tokenizer.json's post-processor as it is and adds none of its own:
    # without this one, <s> and </s> would be missing around every review on 4.x only.
    bpe.post_processor = processors.RobertaProcessing(("</s>", bpe.token_to_id("</s>")), ("<s>", bpe.token_to_id("<s>")))
    # One loading path that every major accepts: 4.x has no vocab=/merges= arguments, and 5.x
    # builds a 5-token vocabulary from vocab_file=/merges_file= without a word of warning.
    tokenizer_file = workdir / "bpe-tokenizer.json"
    bpe.save(str(tokenizer_file))
    tokenizer = RobertaTokenizerFast(tokenizer_file=str(tokenizer_file), model_max_length=512)
    tokenizer_file.unlink()
    return tokenizer


def build_tiny_roberta(destination: Path, *, seed: int = 0) -> Path:
    """Save a tiny RobertaForSequenceClassification (3 labels) and its tokenizer into
    destination; returns destination."""
    import torch
    from transformers import RobertaConfig, RobertaForSequenceClassification

    destination = Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    corpus = [text for text, _ in synthetic_reviews(600, seed=seed)]
    corpus += [" ".join(WORDS_BY_SENTIMENT[s]) for s in reviews.SENTIMENTS] + [" ".join(_FILLER_WORDS)]
    tokenizer = _train_tokenizer(corpus, vocab_size=TINY_VOCAB_SIZE, workdir=destination)

    torch.manual_seed(seed)
    config = RobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=130,
        type_vocab_size=1,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        num_labels=len(reviews.LABEL_NAMES),
        id2label=dict(reviews.ID2LABEL),
        label2id=dict(reviews.LABEL2ID),
    )
    model = RobertaForSequenceClassification(config)
    model.save_pretrained(destination)
    tokenizer.save_pretrained(destination)
    return destination


def write_prepared_splits(
    tokenizer_dir: Path,
    destination: Path,
    *,
    rows_per_split: dict[str, int] | None = None,
    max_seq_length: int = 32,
    seed: int = 0,
) -> Path:
    """Synthetic reviews tokenized into destination/<split>/part-algo-1.jsonl in the prepared-split
    contract (reviews.PREPARED_COLUMNS, input_ids padded to max_seq_length)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    settings = reviews.TokenizationSettings(max_seq_length=max_seq_length)
    rows_per_split = rows_per_split or {"train": 96, "validation": 48, "test": 48}
    for split_index, (split, count) in enumerate(rows_per_split.items()):
        pairs = synthetic_reviews(count, seed=seed + 1000 * (split_index + 1))
        encoded = tokenizer([text for text, _ in pairs], **settings.tokenizer_kwargs(pad_to_max_length=True))
        records = [
            {
                "review_id": f"{split}-{index:05d}",
                "date": "2024-01-01T00:00:00Z",
                "sentiment": sentiment,
                "label_id": reviews.sentiment_to_label_id(sentiment),
                "input_ids": input_ids,
                "review_body": text,
                "split_type": split,
            }
            for index, ((text, sentiment), input_ids) in enumerate(zip(pairs, encoded["input_ids"]))
        ]
        reviews.write_jsonl(Path(destination) / split / "part-algo-1.jsonl", records)
    return Path(destination)


if __name__ == "__main__":  # pragma: no cover - convenience for benchmarks and manual runs
    import sys

    print(build_tiny_roberta(Path(sys.argv[1] if len(sys.argv) > 1 else "work/tiny-roberta")))
