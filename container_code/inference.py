"""Serving handlers: model_fn, input_fn, predict_fn and output_fn classify reviews as negative /
neutral / positive.

Requests (Content-Type):
  application/json       one object, or a list of objects
  application/jsonlines  one object per line
An object is {"review_body": "text"} or {"features": ["text"]}; other keys are ignored. A text
with nothing visible in it (only whitespace, control characters such as NUL, format characters
such as U+200B ZERO WIDTH SPACE) is refused, as prepare rejects such rows. Of a long text the
model reads what it was trained on: its first quarter and last three quarters of
max_seq_length tokens (head_tail), or for artifacts that record no truncation its first
max_seq_length tokens; the tokenizer reads at most max_seq_length x 32 characters
(reviews.TokenizationSettings).
Responses (Accept, with q-values; q=0 means "not acceptable"): application/json (a JSON list,
one prediction per review, in order) or application/jsonlines (one prediction per line). A
prediction is
  {"label": "positive", "label_id": 2, "sentiment": 1, "probability": 0.93,
   "probabilities": {"negative": 0.02, "neutral": 0.05, "positive": 0.93}}

Refused requests raise BadRequest (400) or one of its kinds, NotAcceptable (406),
ContentTooLarge (413) and UnsupportedMediaType (415), with a message that says what is wrong.
What a client gets depends on the toolkit that serves this file (docs/serving.md):
- sagemaker-huggingface-inference-toolkit, in the HuggingFace inference image this project
  deploys: 400 for every exception a handler raises, a refused request or a failing model
  alike, with {"code": 400, "type": "InternalServerException", "message": str(error)}. It sets
  the response's Content-Type to the request's Accept (application/json when absent or */*).
- sagemaker-pytorch-inference (sagemaker-inference's Transformer), in the PyTorch inference
  images: the error's own status, 500 for any other exception, after the two changes
  _fit_the_pytorch_toolkit makes to it (no traceback in the body; invalid UTF-8 is a 400).

Limits (environment variables of the model), checked by model_fn: a bad value fails the model's
loading with a message that names the variable (docs/serving.md says what each server then
answers). REVIEW_CLASSIFIER_MAX_PAYLOAD_BYTES (default 1048576), REVIEW_CLASSIFIER_MAX_REVIEWS per
request (default 256), REVIEW_CLASSIFIER_BATCH_SIZE reviews per forward pass (default 32).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path

import torch

import model_io
import reviews

try:
    # sagemaker-inference (the PyTorch images' toolkit) answers an error of this type with the
    # error's status_code; the HuggingFace toolkit reads str(error) only.
    from sagemaker_inference.errors import BaseInferenceToolkitError as _ErrorWithStatus
except ImportError:  # the training environments
    _ErrorWithStatus = Exception

LOG = logging.getLogger(__name__)

JSON = "application/json"
JSON_LINES = "application/jsonlines"
SUPPORTED_CONTENT_TYPES = (JSON, JSON_LINES)

MAX_PAYLOAD_BYTES_ENV = "REVIEW_CLASSIFIER_MAX_PAYLOAD_BYTES"
MAX_REVIEWS_ENV = "REVIEW_CLASSIFIER_MAX_REVIEWS"
BATCH_SIZE_ENV = "REVIEW_CLASSIFIER_BATCH_SIZE"
DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024
DEFAULT_MAX_REVIEWS = 256
DEFAULT_BATCH_SIZE = 32


class BadRequest(_ErrorWithStatus):
    """The client sent something this endpoint cannot classify; str(error) is what it reads."""

    status = HTTPStatus.BAD_REQUEST

    def __init__(self, message: str) -> None:
        Exception.__init__(self, message)
        # The attributes sagemaker-inference reads (those of its BaseInferenceToolkitError).
        self.status_code, self.message, self.phrase = self.status.value, message, self.status.phrase


class NotAcceptable(BadRequest):
    status = HTTPStatus.NOT_ACCEPTABLE


class ContentTooLarge(BadRequest):
    status = HTTPStatus(413)  # "Content Too Large" (RFC 9110); Python < 3.13 names it REQUEST_ENTITY_TOO_LARGE


class UnsupportedMediaType(BadRequest):
    status = HTTPStatus.UNSUPPORTED_MEDIA_TYPE


@dataclass(frozen=True)
class ServingLimits:
    """The limits of the model's environment (REVIEW_CLASSIFIER_*)."""

    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    max_reviews: int = DEFAULT_MAX_REVIEWS
    batch_size: int = DEFAULT_BATCH_SIZE

    @classmethod
    def from_environment(cls) -> "ServingLimits":
        """Raises ValueError, naming the variable, when one is set to anything but a positive integer."""
        return cls(
            max_payload_bytes=_positive_int_setting(MAX_PAYLOAD_BYTES_ENV, DEFAULT_MAX_PAYLOAD_BYTES),
            max_reviews=_positive_int_setting(MAX_REVIEWS_ENV, DEFAULT_MAX_REVIEWS),
            batch_size=_positive_int_setting(BATCH_SIZE_ENV, DEFAULT_BATCH_SIZE),
        )


@dataclass(frozen=True)
class LoadedClassifier:
    """What model_fn hands to predict_fn."""

    model: torch.nn.Module
    tokenizer: object
    device: torch.device
    settings: reviews.TokenizationSettings
    limits: ServingLimits


def _positive_int_setting(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {raw!r}")
    return value


# ---------------------------------------------------------------------------- handlers


def model_fn(model_dir: str) -> LoadedClassifier:
    try:
        limits = ServingLimits.from_environment()
    except ValueError as error:
        # The HuggingFace image's server (MMS) still answers /ping 200, whatever the model's
        # state; its toolkit runs model_fn again for each request and answers this message, 400.
        raise ValueError(f"the model is not loaded: {error}") from None
    device = model_io.pick_device()
    model, tokenizer, metadata = model_io.load_for_inference(Path(model_dir), device)
    return LoadedClassifier(model, tokenizer, device, reviews.TokenizationSettings(metadata.max_seq_length, metadata.truncation), limits)


def input_fn(input_data, content_type: str | None) -> list[str]:
    """The review texts of a request, in order, without surrounding whitespace."""
    limits = ServingLimits.from_environment()  # valid: model_fn checked it
    media_type = _media_type(content_type)
    if media_type not in SUPPORTED_CONTENT_TYPES:
        raise UnsupportedMediaType(
            f"Content-Type {content_type!r} is not supported; use one of {', '.join(SUPPORTED_CONTENT_TYPES)}"
        )
    text = _payload_text(input_data, limits.max_payload_bytes)
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
    if len(located) > limits.max_reviews:
        raise ContentTooLarge(f"{len(located)} reviews in one request; at most {limits.max_reviews} are allowed")
    return [_review_text(item, where) for where, item in located]


def predict_fn(texts: list[str], classifier: LoadedClassifier) -> list[dict]:
    """Class probabilities for every text, in batches padded only to their longest review."""
    tokenizer_kwargs = classifier.settings.tokenizer_kwargs(pad_to_max_length=False)
    # Only what can reach the model is tokenized: truncation comes after the tokenizer has read
    # the whole text, and reading a 1 MB word took 0.3-0.4 s of CPU and 90-100 MB (docs/model.md).
    capped = classifier.settings.cut(classifier.tokenizer, texts)
    # Similar lengths batch together, so short reviews do not pay for a long neighbour's padding.
    order = sorted(range(len(capped)), key=lambda i: len(capped[i]))
    predictions: list[dict | None] = [None] * len(capped)
    for start in range(0, len(order), classifier.limits.batch_size):
        indices = order[start : start + classifier.limits.batch_size]
        encoded = classifier.tokenizer([capped[i] for i in indices], return_tensors="pt", **tokenizer_kwargs)
        probabilities = model_io.class_probabilities(
            classifier.model, encoded["input_ids"], encoded["attention_mask"]
        )
        for index, row in zip(indices, probabilities.tolist()):
            predictions[index] = _prediction(row)
    return predictions  # type: ignore[return-value]


def output_fn(predictions: list[dict], accept: str | None) -> str:
    """The predictions in the type the client's Accept prefers. Only the body is returned: the
    HuggingFace toolkit would send a (body, type) tuple as a JSON list, and it sets the response
    Content-Type from the Accept header itself."""
    if _preferred_response_type(accept) == JSON_LINES:
        return "".join(json.dumps(prediction) + "\n" for prediction in predictions)
    return json.dumps(predictions)


# ---------------------------------------------------------------------------- helpers


def _media_type(header: str | None) -> str:
    """'Application/JSON; charset=utf-8' -> 'application/json'."""
    return (header or "").split(";", 1)[0].strip().lower()


def _preferred_response_type(accept: str | None) -> str:
    """The supported type that Accept prefers (RFC 9110, section 12.5.1): for each type, the most
    specific matching range (type/subtype, then type/*, then */*) gives its weight, and q=0
    means not acceptable; the highest weight wins, then the range listed first, then
    application/json. A missing or empty Accept accepts anything; a weight that is not a number
    from 0 to 1 counts as 1."""
    if not (accept or "").strip():
        return JSON
    ranges = [_media_range(part) for part in accept.split(",") if part.strip()]
    best: tuple[tuple, str] | None = None
    for candidate in SUPPORTED_CONTENT_TYPES:
        main_type = candidate.split("/", 1)[0]
        matches = [
            (specificity, position, weight)
            for position, (media_range, weight) in enumerate(ranges)
            for specificity, pattern in ((2, candidate), (1, f"{main_type}/*"), (0, "*/*"))
            if media_range == pattern
        ]
        if not matches:
            continue
        specificity = max(match[0] for match in matches)
        _, position, weight = min(match for match in matches if match[0] == specificity)
        rank = (weight, -position, candidate == JSON)
        if weight > 0 and (best is None or rank > best[0]):
            best = (rank, candidate)
    if best is None:
        raise NotAcceptable(
            f"Accept {accept!r} accepts none of {', '.join(SUPPORTED_CONTENT_TYPES)} (q=0 means not acceptable)"
        )
    return best[1]


def _media_range(part: str) -> tuple[str, float]:
    """'Application/JSON; charset=utf-8; q=0.5' -> ('application/json', 0.5)."""
    media_range, *parameters = part.split(";")
    weight = 1.0
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "q":
            try:
                parsed = float(value.strip())
            except ValueError:
                continue
            if 0.0 <= parsed <= 1.0:
                weight = parsed
    return media_range.strip().lower(), weight


def _payload_text(input_data, max_bytes: int) -> str:
    if isinstance(input_data, (bytes, bytearray)):
        if len(input_data) > max_bytes:
            raise ContentTooLarge(f"the body has {len(input_data)} bytes; at most {max_bytes} are allowed")
        try:
            return bytes(input_data).decode("utf-8")
        except UnicodeDecodeError as error:
            raise BadRequest(f"the body is not valid UTF-8 ({error.reason} at byte {error.start})") from None
    if isinstance(input_data, str):
        size = len(input_data.encode("utf-8", errors="surrogatepass"))
        if size > max_bytes:
            raise ContentTooLarge(f"the body has {size} bytes; at most {max_bytes} are allowed")
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
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(f"{where}: the review text holds an unpaired surrogate escape (\\ud800-\\udfff)") from None
    cleaned = reviews.clean_review_text(text)
    if not cleaned:
        raise BadRequest(
            f"{where}: the review text is empty: nothing in it is visible (only whitespace, control "
            "or format characters such as NUL or U+200B ZERO WIDTH SPACE)"
        )
    return cleaned


def _prediction(probabilities: list[float]) -> dict:
    label_id = max(range(len(probabilities)), key=probabilities.__getitem__)
    return {
        "label": reviews.ID2LABEL[label_id],
        "label_id": label_id,
        "sentiment": reviews.label_id_to_sentiment(label_id),
        "probability": probabilities[label_id],
        "probabilities": {reviews.ID2LABEL[i]: p for i, p in enumerate(probabilities)},
    }


# ---------------------------------------------------------------------------- sagemaker-inference


def _fit_the_pytorch_toolkit() -> None:
    """Changes two habits of sagemaker-inference's Transformer (what sagemaker-pytorch-inference
    serves with) that no handler can reach, when that toolkit is the one importing this module:

    - It decodes exactly application/json and text/csv bodies itself, before input_fn, and
      answers invalid UTF-8 with a 500. It now hands every body over as bytes, so input_fn
      refuses invalid UTF-8 with a 400 that says where, and text/csv with a 415.
    - Its handle_error appends the Python traceback to every error body. Errors now answer
      {"code", "type", "message"} as JSON (the HuggingFace toolkit's shape) with the message
      alone; the traceback still goes to the log.

    The HuggingFace toolkit does not use the Transformer: nothing changes under it."""
    transformer = sys.modules.get("sagemaker_inference.transformer")
    if transformer is None:
        return
    from sagemaker_inference import content_types

    content_types.UTF8_TYPES = []
    transformer.Transformer.handle_error = staticmethod(_error_response)


def _error_response(context, error, trace: str) -> list[str]:
    """Transformer.handle_error, without the traceback in the body. `error` is a
    BaseInferenceToolkitError: a BadRequest, or the toolkit's 500 wrapping any other error."""
    LOG.error("request failed (%s %s); traceback:\n%s", error.status_code, error.message, trace)
    try:
        phrase = HTTPStatus(error.status_code).phrase
    except ValueError:
        phrase = "Error"
    context.set_response_status(code=error.status_code, phrase=phrase)
    context.set_response_content_type(0, JSON)
    return [json.dumps({"code": error.status_code, "type": phrase.replace(" ", ""), "message": str(error.message)})]


_fit_the_pytorch_toolkit()
