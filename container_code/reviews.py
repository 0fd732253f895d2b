"""What every step script and the serving code share about reviews: labels, tokenization
settings, the prepared-split file format and the metric log format.

Keeping these in one module means training and serving cannot drift apart. It imports only
the standard library, so the pipeline generator and the tests can import it cheaply.
"""

from __future__ import annotations

import argparse
import json
import math
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

# Sentiment classes, in label_id order: label_id = sentiment + 1.
LABEL_NAMES: tuple[str, ...] = ("negative", "neutral", "positive")
SENTIMENTS: tuple[int, ...] = (-1, 0, 1)
ID2LABEL: dict[int, str] = dict(enumerate(LABEL_NAMES))
LABEL2ID: dict[str, int] = {name: label_id for label_id, name in ID2LABEL.items()}

SPLIT_NAMES: tuple[str, ...] = ("train", "validation", "test")

# Columns of a prepared split record, as written by prepare.py and ingested into the
# Feature Group (the feature definitions in stacks/ must list exactly these).
RECORD_ID_FEATURE = "review_id"
EVENT_TIME_FEATURE = "date"
PREPARED_COLUMNS: tuple[str, ...] = (
    "review_id",
    "date",
    "sentiment",
    "label_id",
    "input_ids",
    "review_body",
    "split_type",
)


def star_rating_to_sentiment(star_rating: int) -> int:
    """1-2 stars -> -1 (negative), 3 -> 0 (neutral), 4-5 -> 1 (positive)."""
    if isinstance(star_rating, bool) or not isinstance(star_rating, int):
        raise TypeError(f"star_rating must be an int, got {star_rating!r}")
    if not 1 <= star_rating <= 5:
        raise ValueError(f"star_rating must be between 1 and 5, got {star_rating}")
    if star_rating <= 2:
        return -1
    if star_rating == 3:
        return 0
    return 1


def sentiment_to_label_id(sentiment: int) -> int:
    if sentiment not in SENTIMENTS:
        raise ValueError(f"sentiment must be one of {SENTIMENTS}, got {sentiment!r}")
    return sentiment + 1


def label_id_to_sentiment(label_id: int) -> int:
    if label_id not in ID2LABEL:
        raise ValueError(f"label_id must be one of {sorted(ID2LABEL)}, got {label_id!r}")
    return label_id - 1


# ----------------------------------------------------------------------------------------------
# Review text: what counts as one, and how much of it the tokenizer reads. prepare and serving
# both go through these, so a text refused at serving is one that training never saw either.

# Characters that show nothing by themselves: whitespace, controls (NUL, ...), format characters
# (zero-width space, joiners, bidi marks, BOM, soft hyphen, tags, ...), separators, surrogates...
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zs", "Zl", "Zp"})
# ... and the code points of Unicode's Default_Ignorable_Code_Point property outside those
# categories (DerivedCoreProperties.txt: combining grapheme joiner, Hangul fillers, Khmer
# inherent vowels, Mongolian and other variation selectors), plus the blank braille pattern,
# a favourite "invisible letter".
_OTHER_INVISIBLE_RANGES: tuple[tuple[int, int], ...] = (
    (0x034F, 0x034F), (0x115F, 0x1160), (0x17B4, 0x17B5), (0x180B, 0x180F), (0x2800, 0x2800),
    (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFFA0, 0xFFA0), (0xE0100, 0xE01EF),
)


def _shows_something(char: str) -> bool:
    if unicodedata.category(char) in _INVISIBLE_CATEGORIES:
        return False
    code = ord(char)
    return not any(low <= code <= high for low, high in _OTHER_INVISIBLE_RANGES)


def clean_review_text(text: str) -> str:
    """The review text as training and serving use it: without surrounding whitespace, and ""
    when it holds nothing visible (only whitespace, control or format characters such as NUL
    or U+200B ZERO WIDTH SPACE), which both treat as a missing review."""
    text = text.strip()
    return text if any(map(_shows_something, text)) else ""


# The tokenizer reads at most this many characters of a text per token of max_seq_length. It
# bounds the work for any text: a 1 MB review of one word would otherwise be tokenized whole
# before truncation (seconds of CPU, hundreds of MB). Tokens of English reviews average about
# 4 characters (4.3 for MiniLM's WordPiece, 1.3 for the tests' tiny BPE, on the demo's 3,708
# snippets) and the first k tokens of any snippet at most 15 characters each, so the tokens
# that truncation keeps lie well within the cap, and capping changes no input_ids, unless a
# text is mostly whitespace or holds words hundreds of characters long.
MAX_CHARS_PER_TOKEN = 32


# How a text longer than max_seq_length tokens is cut. "head": its first tokens (what the
# tokenizer's truncation does). "head_tail": its first quarter and its last three quarters of
# the token budget, the best of the cuts Sun et al. compared ("How to Fine-Tune BERT for Text
# Classification?", 2019): reviews often say their verdict at the end ("... so I returned it").
TRUNCATIONS = ("head", "head_tail")
DEFAULT_TRUNCATION = "head_tail"
HEAD_SHARE = 0.25


@dataclass(frozen=True)
class TokenizationSettings:
    """How text becomes input_ids, identically in prepare (offline) and serving (online)."""

    max_seq_length: int = 128
    truncation: str = DEFAULT_TRUNCATION

    def __post_init__(self) -> None:
        if self.truncation not in TRUNCATIONS:
            raise ValueError(f"truncation must be one of {TRUNCATIONS}, got {self.truncation!r}")

    @property
    def max_text_chars(self) -> int:
        """How many characters of a text the tokenizer is given (MAX_CHARS_PER_TOKEN)."""
        return self.max_seq_length * MAX_CHARS_PER_TOKEN

    def capped(self, text: str) -> str:
        """The part of `text` that can reach the model: max_text_chars characters, from its
        start, or with head_tail from its start and its end in HEAD_SHARE's proportion."""
        if len(text) <= self.max_text_chars:
            return text
        if self.truncation == "head":
            return text[: self.max_text_chars]
        head_chars = int(self.max_text_chars * HEAD_SHARE)
        return text[:head_chars] + " " + text[len(text) - (self.max_text_chars - head_chars):]

    def cut(self, tokenizer: Any, texts: Sequence[str]) -> list[str]:
        """Each (capped) text, and with head_tail each one longer than the model reads cut to
        its head and tail tokens (joined by a space) so that the tokenizer's own truncation
        keeps both; the other texts unchanged. One more tokenizer pass, offsets only."""
        texts = [self.capped(text) for text in texts]
        if self.truncation == "head" or not texts:
            return texts
        budget = self.max_seq_length - len(tokenizer("")["input_ids"])  # less <s> and </s> (or [CLS] [SEP])
        offsets = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        head = max(1, round(budget * HEAD_SHARE))
        # Should the seam re-tokenize longer (a word cut inside), the tokenizer's truncation
        # drops the surplus from the end: a token of the tail, never the head.
        tail = budget - head
        cut = []
        for text, spans in zip(texts, offsets):
            if len(spans) <= budget or tail < 1:
                cut.append(text)
            else:
                cut.append(text[: spans[head - 1][1]] + " " + text[spans[len(spans) - tail][0]:])
        return cut

    def tokenizer_kwargs(self, *, pad_to_max_length: bool) -> dict:
        return {
            "add_special_tokens": True,
            "truncation": True,
            "max_length": self.max_seq_length,
            "padding": "max_length" if pad_to_max_length else "longest",
            "return_attention_mask": True,
        }


def encode_input_ids(tokenizer: Any, texts: Sequence[str], settings: TokenizationSettings) -> list[list[int]]:
    """input_ids of each text, padded/truncated to settings.max_seq_length (the seed's
    `encode_plus` semantics), in one batched call of a fast tokenizer; the tokenizer reads at
    most settings.max_text_chars characters of each, as serving does.

    Calls the tokenizer itself, which works in transformers 4.x and 5.x alike (5.x removed
    `encode_plus`/`batch_encode_plus`). Masks and token types are not asked for: a prepared
    record stores input_ids only, and the mask is derivable from the padding.
    """
    kwargs = {
        **settings.tokenizer_kwargs(pad_to_max_length=True),
        "return_attention_mask": False,
        "return_token_type_ids": False,
    }
    return tokenizer(settings.cut(tokenizer, texts), **kwargs)["input_ids"]


def parse_bool(value: str | bool) -> bool:
    """A job argument as a bool: SageMaker passes every argument as a string ("true"/"false")."""
    if isinstance(value, bool):
        return value
    normalized = str(value).strip().lower()
    if normalized in {"true", "1", "yes"}:
        return True
    if normalized in {"false", "0", "no"}:
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def bool_argument(value: str) -> bool:
    """`parse_bool` for argparse's `type=`: a bad value becomes a usage error that names it."""
    try:
        return parse_bool(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def format_event_time(moment: datetime) -> str:
    """The Feature Store event time format of the `date` feature: ISO-8601 UTC, to the second
    (e.g. 2015-08-31T00:00:00Z). A naive datetime is taken to be UTC already."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# A processing container's exit message: after the job ends, DescribeProcessingJob returns the
# first 1 KB of this file as ExitMessage (the reason a failed job gives); it must be UTF-8, or
# the job fails with a ClientError instead.
EXIT_MESSAGE_FILE = "/opt/ml/output/message"
EXIT_MESSAGE_MAX_BYTES = 1024


def write_exit_message(path: str | Path, message: str) -> None:
    """Write `message` as the job's one-line exit message: UTF-8, at most 1 KB, no newlines."""
    line = " ".join(str(message).split())
    data = line.encode("utf-8", errors="replace")[: EXIT_MESSAGE_MAX_BYTES - 1]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.decode("utf-8", errors="ignore").encode("utf-8") + b"\n")


def parse_event_time(text: str) -> str | None:
    """An ISO-8601 date or date-time (naive = UTC, `Z` accepted) as the Feature Store event
    time string, or None when it is not one."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        # Python 3.11+ (both images run 3.12) reads a trailing "Z" as UTC itself.
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return format_event_time(moment)


def prepared_record(
    *,
    review_id: str,
    date: str,
    sentiment: int,
    input_ids: Sequence[int],
    review_body: str,
    split_type: str,
) -> dict:
    """One prepared split record with exactly PREPARED_COLUMNS; label_id follows sentiment."""
    if split_type not in SPLIT_NAMES:
        raise ValueError(f"split_type must be one of {SPLIT_NAMES}, got {split_type!r}")
    return {
        "review_id": review_id,
        "date": date,
        "sentiment": sentiment,
        "label_id": sentiment_to_label_id(sentiment),
        "input_ids": list(input_ids),
        "review_body": review_body,
        "split_type": split_type,
    }


def write_jsonl(path: Path, records: Iterable[Mapping]) -> int:
    """Write records as JSON Lines; returns how many were written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
            count += 1
    return count


def read_jsonl(path: Path) -> Iterator[dict]:
    with path.open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as error:
                    raise ValueError(f"{path}:{line_number}: not valid JSON: {error.msg}") from None


def split_files(split_dir: Path) -> list[Path]:
    """The prepared files of one split directory (one per prepare host), in a stable order."""
    return sorted(p for p in Path(split_dir).rglob("*.jsonl") if p.is_file())


# One log line per metric; the pipeline's metric definitions parse these with regexes, and a
# test checks those regexes against this exact format.
METRIC_LINE_PREFIX = "[metric]"


def format_metric_line(name: str, value: float, *, epoch: int, step: int) -> str:
    if not math.isfinite(value):
        return f"{METRIC_LINE_PREFIX} {name}=nan epoch={epoch} step={step}"
    return f"{METRIC_LINE_PREFIX} {name}={value:.6f} epoch={epoch} step={step}"
