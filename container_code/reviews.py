"""What every step script and the serving code share about reviews: labels, tokenization
settings, the prepared-split file format and the metric log format.

Keeping these in one module means training and serving cannot drift apart. It imports only
the standard library, so the pipeline generator and the tests can import it cheaply.
"""

from __future__ import annotations

import argparse
import json
import math
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


@dataclass(frozen=True)
class TokenizationSettings:
    """How text becomes input_ids, identically in prepare (offline) and serving (online)."""

    max_seq_length: int = 128

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
    `encode_plus` semantics), in one batched call of a fast tokenizer.

    Calls the tokenizer itself, which works in transformers 4.x and 5.x alike (5.x removed
    `encode_plus`/`batch_encode_plus`). Masks and token types are not asked for: a prepared
    record stores input_ids only, and the mask is derivable from the padding.
    """
    kwargs = {
        **settings.tokenizer_kwargs(pad_to_max_length=True),
        "return_attention_mask": False,
        "return_token_type_ids": False,
    }
    return tokenizer(list(texts), **kwargs)["input_ids"]


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
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
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
