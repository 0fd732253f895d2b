"""The monitored features of one review: what Model Monitor's data-quality analyzer compares
with the baseline, from a review text or from one SageMaker data-capture record.

Model Monitor's analyzer only reads flat, tabular records ("The Amazon SageMaker Model Monitor
container works only with tabular or flattened json structures", AWS, Model Monitor
"Preprocessing and Postprocessing"), so free text has to become numbers first. This file is
that step, and it is also the record preprocessor itself: Model Monitor downloads the one file
named by `RecordPreprocessorSourceUri` and calls its `preprocess_handler(inference_record)`, so
it imports nothing but the standard library (the analyzer image has no tokenizer, no torch).

Features of one review (FEATURE_NAMES, in this order):
  review_characters    characters of the cleaned text (reviews.clean_review_text's rule)
  review_tokens        pre-tokens: runs of letters/digits and single punctuation characters,
                       BERT's basic tokenization; a lower bound of the model's subword tokens
  truncated_share      share of those pre-tokens past max_seq_length - 2 (the model's special
                       tokens take two places): 0 for a review the model reads whole
  unknown_token_share  share of whitespace-separated words that are not plain words of the
                       training text's kind: mentions (@x), hashtags (#x), URLs, HTML entities
                       (&amp;), and words with a character outside Latin letters, digits and
                       ASCII punctuation (emoji, other scripts). These are what a review model's
                       vocabulary splits into pieces or unknown tokens, tokenizer or not.
  predicted_label      the served label (negative / neutral / positive), "" without a response
  confidence           the probability of that label, -1.0 without a response

max_seq_length comes from REVIEW_CLASSIFIER_MAX_SEQ_LENGTH (the monitoring job's environment),
128 when unset: the same value the pipeline trains with.
"""

from __future__ import annotations

import base64
import json
import os
import re
import unicodedata
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Iterator

FEATURE_NAMES: tuple[str, ...] = (
    "review_characters",
    "review_tokens",
    "truncated_share",
    "unknown_token_share",
    "predicted_label",
    "confidence",
)
MAX_SEQ_LENGTH_ENV = "REVIEW_CLASSIFIER_MAX_SEQ_LENGTH"
DEFAULT_MAX_SEQ_LENGTH = 128
SPECIAL_TOKENS = 2  # <s> ... </s> (RoBERTa), [CLS] ... [SEP] (BERT/MiniLM)
NO_LABEL = ""
NO_CONFIDENCE = -1.0

# The request keys inference.py reads a review from, in its order of preference.
_TEXT_KEYS = ("review_body", "features")
_PRE_TOKEN = re.compile(r"[^\W_]+|[^\w\s]|_", re.UNICODE)
_MARKUP_WORD = re.compile(r"^(?:[@#]\w|https?://|www\.)|&(?:[a-z]+|#\d+);", re.IGNORECASE)


@dataclass(frozen=True)
class ReviewFeatures:
    review_characters: int
    review_tokens: int
    truncated_share: float
    unknown_token_share: float
    predicted_label: str = NO_LABEL
    confidence: float = NO_CONFIDENCE

    def as_record(self) -> dict[str, Any]:
        """The flat record Model Monitor's analyzer reads (one column per feature)."""
        return asdict(self)


def max_seq_length_from_environment() -> int:
    raw = os.environ.get(MAX_SEQ_LENGTH_ENV)
    if raw is None:
        return DEFAULT_MAX_SEQ_LENGTH
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= SPECIAL_TOKENS:
        raise ValueError(f"{MAX_SEQ_LENGTH_ENV} must be an integer above {SPECIAL_TOKENS}, got {raw!r}")
    return value


def _is_plain_character(char: str) -> bool:
    if char.isascii():
        return True
    # Accented Latin letters (é, ñ, ß...) are ordinary in reviews; other scripts and symbols are not.
    return unicodedata.category(char).startswith("L") and "LATIN" in unicodedata.name(char, "")


def _is_unknown_word(word: str) -> bool:
    return bool(_MARKUP_WORD.search(word)) or not all(map(_is_plain_character, word))


def text_features(text: str, max_seq_length: int | None = None) -> ReviewFeatures:
    """The features of one review text (no prediction)."""
    max_seq_length = max_seq_length or max_seq_length_from_environment()
    text = text.strip()
    tokens = len(_PRE_TOKEN.findall(text))
    words = text.split()
    readable = max_seq_length - SPECIAL_TOKENS
    return ReviewFeatures(
        review_characters=len(text),
        review_tokens=tokens,
        truncated_share=round(max(0, tokens - readable) / tokens, 6) if tokens else 0.0,
        unknown_token_share=round(sum(map(_is_unknown_word, words)) / len(words), 6) if words else 0.0,
    )


def with_prediction(features: ReviewFeatures, prediction: dict | None) -> ReviewFeatures:
    """`features` with the served label and its probability (inference.py's prediction format)."""
    if not prediction:
        return features
    return ReviewFeatures(
        **{**asdict(features), "predicted_label": str(prediction["label"]),
           "confidence": round(float(prediction["probability"]), 6)}
    )


# --- data capture --------------------------------------------------------------------------------
# A capture line (AWS, "Capture data from real-time endpoint"; the record layout the Model Monitor
# preprocessing docs give): {"captureData": {"endpointInput": {"observedContentType", "mode",
# "data", "encoding"}, "endpointOutput": {...}}, "eventMetadata": {...}, "eventVersion": "0"}.
# encoding is JSON (data holds the text), CSV, or BASE64 (data holds base64 of the body).

def _decoded(data: str | None, encoding: str | None) -> str:
    if data is None:
        return ""
    if (encoding or "").upper() == "BASE64":
        return base64.b64decode(data).decode("utf-8", errors="replace")
    return data


def _documents(body: str, content_type: str | None) -> list[Any]:
    """The JSON documents of a body: one (application/json) or one per line (JSON Lines)."""
    if "jsonlines" in (content_type or "").lower():
        return [json.loads(line) for line in body.splitlines() if line.strip()]
    document = json.loads(body)
    return document if isinstance(document, list) else [document]


def _review_text(request_object: Any) -> str:
    if isinstance(request_object, dict):
        for key in _TEXT_KEYS:
            value = request_object.get(key)
            if isinstance(value, list) and value:
                value = value[0]
            if isinstance(value, str):
                return value
    return ""


def capture_features(
    request_body: str,
    request_content_type: str | None,
    response_body: str | None = None,
    response_content_type: str | None = None,
    max_seq_length: int | None = None,
) -> list[ReviewFeatures]:
    """One ReviewFeatures per review of a captured request, with the response's prediction for
    it when the response holds one prediction per review (a refused request holds none)."""
    texts = [_review_text(item) for item in _documents(request_body, request_content_type)]
    predictions: list[dict | None] = [None] * len(texts)
    if response_body:
        try:
            answered = _documents(response_body, response_content_type)
        except ValueError:
            answered = []
        if len(answered) == len(texts) and all(isinstance(p, dict) and "label" in p for p in answered):
            predictions = answered
    return [with_prediction(text_features(text, max_seq_length), prediction)
            for text, prediction in zip(texts, predictions)]


def capture_line_features(line: str | dict, max_seq_length: int | None = None) -> list[ReviewFeatures]:
    """The features of one line of a data-capture file."""
    event = json.loads(line) if isinstance(line, str) else line
    capture = event["captureData"]
    request, response = capture["endpointInput"], capture.get("endpointOutput") or {}
    return capture_features(
        _decoded(request.get("data"), request.get("encoding")), request.get("observedContentType"),
        _decoded(response.get("data"), response.get("encoding")) or None, response.get("observedContentType"),
        max_seq_length,
    )


def capture_file_features(lines: Iterable[str], max_seq_length: int | None = None) -> Iterator[ReviewFeatures]:
    for line in lines:
        if line.strip():
            yield from capture_line_features(line, max_seq_length)


# --- Model Monitor's record preprocessor contract -----------------------------------------------

def preprocess_handler(inference_record, logger=None):
    """Called by Model Monitor once per captured record (`inference_record.endpoint_input` and
    `.endpoint_output` carry `data`, `encoding` and `observedContentType`). Returns one flat
    record per review; a list when the request held several (the analyzer accepts a dict or a
    list of dicts). A record it cannot read becomes no row, with the reason logged."""
    request, response = inference_record.endpoint_input, inference_record.endpoint_output
    try:
        features = capture_features(
            _decoded(request.data, request.encoding), request.observedContentType,
            _decoded(response.data, response.encoding) if response is not None else None,
            response.observedContentType if response is not None else None,
        )
    except (ValueError, KeyError, TypeError) as error:
        if logger is not None:
            logger.warning(f"record skipped, not a review request: {error}")
        return []
    records = [item.as_record() for item in features]
    return records[0] if len(records) == 1 else records
