"""Serving handlers for the HuggingFace inference image: model_fn, input_fn, predict_fn and
output_fn classify reviews as negative / neutral / positive.

Requests (Content-Type):
  application/json       one object, or a list of objects
  application/jsonlines  one object per line
An object is {"review_body": "text"} or {"features": ["text"]}; other keys are ignored.
Responses (Accept): application/json (a JSON list, one prediction per review, in order) or
application/jsonlines (one prediction per line). A prediction is
  {"label": "positive", "label_id": 2, "sentiment": 1, "probability": 0.93,
   "probabilities": {"negative": 0.02, "neutral": 0.05, "positive": 0.93}}

Bad requests raise BadRequest with a message that says what is wrong. The image's toolkit
(sagemaker-huggingface-inference-toolkit) answers every exception a handler raises, a bad
request or a failing model alike, with HTTP 400 and str(exception) as the message, so no other
status can come from here (docs/serving.md). The toolkit sets the response's Content-Type to
the request's Accept (application/json when absent or */*).

Limits (environment variables of the model): REVIEW_CLASSIFIER_MAX_PAYLOAD_BYTES (default
1048576), REVIEW_CLASSIFIER_MAX_REVIEWS per request (default 256), REVIEW_CLASSIFIER_BATCH_SIZE
reviews per forward pass (default 32).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

import model_io
import reviews

JSON = "application/json"
JSON_LINES = "application/jsonlines"
SUPPORTED_CONTENT_TYPES = (JSON, JSON_LINES)

MAX_PAYLOAD_BYTES_ENV = "REVIEW_CLASSIFIER_MAX_PAYLOAD_BYTES"
MAX_REVIEWS_ENV = "REVIEW_CLASSIFIER_MAX_REVIEWS"
BATCH_SIZE_ENV = "REVIEW_CLASSIFIER_BATCH_SIZE"
DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024
DEFAULT_MAX_REVIEWS = 256
DEFAULT_BATCH_SIZE = 32


class BadRequest(ValueError):
    """The client sent something this endpoint cannot classify. Only the message reaches the
    client: the toolkit answers str(error) with a 400, whatever the error."""


@dataclass(frozen=True)
class LoadedClassifier:
    """What model_fn hands to predict_fn."""

    model: torch.nn.Module
    tokenizer: object
    device: torch.device
    settings: reviews.TokenizationSettings


def _limit(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a positive integer, got {raw!r}") from None
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {raw!r}")
    return value


def _media_type(header: str | None) -> str:
    """'Application/JSON; charset=utf-8' -> 'application/json'."""
    return (header or "").split(";", 1)[0].strip().lower()


# ---------------------------------------------------------------------------- handlers


def model_fn(model_dir: str) -> LoadedClassifier:
    device = model_io.pick_device()
    model, tokenizer, metadata = model_io.load_for_inference(Path(model_dir), device)
    return LoadedClassifier(model, tokenizer, device, reviews.TokenizationSettings(metadata.max_seq_length))


def input_fn(input_data, content_type: str | None) -> list[str]:
    """The review texts of a request, in order."""
    media_type = _media_type(content_type)
    if media_type not in SUPPORTED_CONTENT_TYPES:
        raise BadRequest(
            f"Content-Type {content_type!r} is not supported; use one of {', '.join(SUPPORTED_CONTENT_TYPES)}"
        )
    text = _payload_text(input_data)
    if media_type == JSON:
        document = _parse_json(text, where="the body")
        if isinstance(document, list):
            located = [(f"item {index}", item) for index, item in enumerate(document)]
        else:
            located = [("the body", document)]
    else:
        located = [
            (f"line {number}", _parse_json(line, where=f"line {number}"))
            for number, line in enumerate(text.split("\n"), start=1)
            if line.strip()
        ]
    if not located:
        raise BadRequest("the request holds no reviews")
    max_reviews = _limit(MAX_REVIEWS_ENV, DEFAULT_MAX_REVIEWS)
    if len(located) > max_reviews:
        raise BadRequest(f"{len(located)} reviews in one request; at most {max_reviews} are allowed")
    return [_review_text(item, where) for where, item in located]


def predict_fn(texts: list[str], classifier: LoadedClassifier) -> list[dict]:
    """Class probabilities for every text, in batches padded only to their longest review."""
    batch_size = _limit(BATCH_SIZE_ENV, DEFAULT_BATCH_SIZE)
    tokenizer_kwargs = classifier.settings.tokenizer_kwargs(pad_to_max_length=False)
    # Similar lengths batch together, so short reviews do not pay for a long neighbour's padding.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    predictions: list[dict | None] = [None] * len(texts)
    for start in range(0, len(order), batch_size):
        indices = order[start : start + batch_size]
        encoded = classifier.tokenizer([texts[i] for i in indices], return_tensors="pt", **tokenizer_kwargs)
        probabilities = model_io.class_probabilities(
            classifier.model, encoded["input_ids"], encoded["attention_mask"]
        )
        for index, row in zip(indices, probabilities.tolist()):
            predictions[index] = _prediction(row)
    return predictions  # type: ignore[return-value]


def output_fn(predictions: list[dict], accept: str | None) -> str:
    """The predictions in the first supported type the client accepts. Only the body is
    returned: the toolkit would send a (body, type) tuple as a JSON list, and it sets the
    response Content-Type from the Accept header itself."""
    for candidate in (accept or JSON).split(","):
        media_type = _media_type(candidate)
        if media_type in ("", "*/*", "application/*", JSON):
            return json.dumps(predictions)
        if media_type == JSON_LINES:
            return "".join(json.dumps(prediction) + "\n" for prediction in predictions)
    raise BadRequest(f"Accept {accept!r} is not supported; use one of {', '.join(SUPPORTED_CONTENT_TYPES)}")


# ---------------------------------------------------------------------------- helpers


def _payload_text(input_data) -> str:
    max_bytes = _limit(MAX_PAYLOAD_BYTES_ENV, DEFAULT_MAX_PAYLOAD_BYTES)
    if isinstance(input_data, (bytes, bytearray)):
        if len(input_data) > max_bytes:
            raise BadRequest(f"the body has {len(input_data)} bytes; at most {max_bytes} are allowed")
        try:
            return bytes(input_data).decode("utf-8")
        except UnicodeDecodeError as error:
            raise BadRequest(f"the body is not valid UTF-8 ({error.reason} at byte {error.start})") from None
    if isinstance(input_data, str):
        size = len(input_data.encode("utf-8", errors="surrogatepass"))
        if size > max_bytes:
            raise BadRequest(f"the body has {size} bytes; at most {max_bytes} are allowed")
        return input_data
    raise BadRequest(f"the body must be bytes or text, got {type(input_data).__name__}")


def _parse_json(text: str, *, where: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise BadRequest(f"{where} is not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})") from None
    except (ValueError, RecursionError) as error:  # e.g. a 5000-digit number, nesting too deep
        raise BadRequest(f"{where} is not valid JSON: {error}") from None


def _review_text(item, where: str) -> str:
    if not isinstance(item, dict):
        raise BadRequest(f'{where}: expected an object like {{"review_body": "text"}}, got {type(item).__name__}')
    has_body, has_features = "review_body" in item, "features" in item
    if has_body == has_features:
        raise BadRequest(f'{where}: give exactly one of "review_body" (a string) or "features" (a list of one string)')
    if has_body:
        text = item["review_body"]
    else:
        features = item["features"]
        if not isinstance(features, list) or len(features) != 1:
            raise BadRequest(f'{where}: "features" must be a list of exactly one string')
        text = features[0]
    if not isinstance(text, str):
        raise BadRequest(f"{where}: the review text must be a string, got {type(text).__name__}")
    if not text.strip():
        raise BadRequest(f"{where}: the review text is empty")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(f"{where}: the review text holds an unpaired surrogate escape (\\ud800-\\udfff)") from None
    return text


def _prediction(probabilities: list[float]) -> dict:
    label_id = max(range(len(probabilities)), key=probabilities.__getitem__)
    return {
        "label": reviews.ID2LABEL[label_id],
        "label_id": label_id,
        "sentiment": reviews.label_id_to_sentiment(label_id),
        "probability": probabilities[label_id],
        "probabilities": {reviews.ID2LABEL[i]: p for i, p in enumerate(probabilities)},
    }
