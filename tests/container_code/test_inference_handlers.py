"""inference.py's request and response handling, called as the serving toolkits call it, without
a model: what a client sends, which texts reach the model, what comes back or which status and
message refuse it. The served model is tested in test_inference.py."""

from __future__ import annotations

import json
from http import HTTPStatus

import pytest

import inference

JSON, JSON_LINES = inference.JSON, inference.JSON_LINES


def refusal(call) -> tuple[int, str]:
    with pytest.raises(inference.BadRequest) as raised:
        call()
    return raised.value.status_code, str(raised.value)


# ---------------------------------------------------------------------------- limits


def test_exactly_the_review_limit_is_accepted_and_one_more_refused(monkeypatch):
    monkeypatch.setenv(inference.MAX_REVIEWS_ENV, "3")
    assert inference.input_fn(json.dumps([{"review_body": "ok"}] * 3), JSON) == ["ok"] * 3
    assert inference.input_fn('{"review_body": "a"}\n' * 3, JSON_LINES) == ["a"] * 3
    assert refusal(lambda: inference.input_fn(json.dumps([{"review_body": "ok"}] * 4), JSON)) == (
        413, "4 reviews in one request; at most 3 are allowed")
    assert refusal(lambda: inference.input_fn('{"review_body": "a"}\n' * 4, JSON_LINES))[0] == 413


@pytest.mark.parametrize("as_bytes", [True, False], ids=["bytes", "text"])
def test_exactly_the_payload_limit_is_accepted_and_one_byte_more_refused(monkeypatch, as_bytes):
    body = json.dumps({"review_body": "é" * 10})  # 20 bytes of text in UTF-8, 10 characters
    size = len(body.encode("utf-8"))
    monkeypatch.setenv(inference.MAX_PAYLOAD_BYTES_ENV, str(size))
    payload = body.encode("utf-8") if as_bytes else body
    assert inference.input_fn(payload, JSON) == ["é" * 10]
    monkeypatch.setenv(inference.MAX_PAYLOAD_BYTES_ENV, str(size - 1))
    assert refusal(lambda: inference.input_fn(payload, JSON)) == (
        413, f"the body has {size} bytes; at most {size - 1} are allowed")


def test_unset_limits_are_the_documented_defaults(monkeypatch):
    for name in (inference.MAX_PAYLOAD_BYTES_ENV, inference.MAX_REVIEWS_ENV, inference.BATCH_SIZE_ENV):
        monkeypatch.delenv(name, raising=False)
    assert inference.ServingLimits.from_environment() == inference.ServingLimits(1024 * 1024, 256, 32)
    monkeypatch.setenv(inference.BATCH_SIZE_ENV, "1")
    monkeypatch.setenv(inference.MAX_REVIEWS_ENV, " 7 ")
    assert inference.ServingLimits.from_environment() == inference.ServingLimits(1024 * 1024, 7, 1)


@pytest.mark.parametrize("value", ["0", "-3", "many", "2.5", ""])
def test_a_limit_that_is_not_a_positive_integer_is_refused_by_name(monkeypatch, value):
    monkeypatch.setenv(inference.MAX_REVIEWS_ENV, value)
    with pytest.raises(ValueError, match=f"^{inference.MAX_REVIEWS_ENV} must be a positive integer, got {value!r}$"):
        inference.ServingLimits.from_environment()


# ---------------------------------------------------------------------------- requests


def test_content_type_parameters_are_ignored_however_many():
    assert inference.input_fn('{"review_body": "ok"}', "application/json; charset=utf-8; profile=x") == ["ok"]


def test_an_invisible_review_is_refused_with_the_whole_explanation():
    assert refusal(lambda: inference.input_fn('[{"review_body": "ok"}, {"review_body": "\\u200b"}]', JSON)) == (
        400, "item 1: the review text is empty: nothing in it is visible (only whitespace, control "
             "or format characters such as NUL or U+200B ZERO WIDTH SPACE)")


def test_what_reaches_the_model_is_each_text_in_order_without_surrounding_whitespace():
    body = json.dumps([{"review_body": "  fine \n"}, {"features": ["great"], "extra": 1}])
    assert inference.input_fn(body, "Application/JSON; charset=utf-8") == ["fine", "great"]
    assert inference.input_fn(b'{"review_body": "one"}', JSON) == ["one"]
    assert inference.input_fn('{"review_body": "a"}\r\n\n  \n{"features": ["b"]}\n', JSON_LINES) == ["a", "b"]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "message"),
    [
        ('{"review_body": "ok"}', "text/csv", 415,
         "Content-Type 'text/csv' is not supported; use one of application/json, application/jsonlines"),
        ('{"review_body": "ok"}', None, 415, "Content-Type None is not supported"),
        ("[]", JSON, 400, "the request holds no reviews"),
        ("\n \n", JSON_LINES, 400, "the request holds no reviews"),
        ('{"review_body": "ok"}\n{oops', JSON_LINES, 400, "line 2 is not valid JSON: Expecting property name enclosed in double quotes (line 1, column 2)"),
        ('[{"review_body": "ok"}, 3]', JSON, 400, 'item 1: expected an object like {"review_body": "text"}, got int'),
        ('{"review_body": 5}', JSON, 400, "the body: the review text must be a string, got int"),
        ('{"features": ["a", "b"]}', JSON, 400, 'the body: "features" must be a list of exactly one string'),
        ('{"features": []}', JSON, 400, 'the body: "features" must be a list of exactly one string'),
        ('{"features": "text"}', JSON, 400, 'the body: "features" must be a list of exactly one string'),
        ('{"text": "a"}', JSON, 400, 'the body: give exactly one of "review_body" (a string) or "features" (a list of one string)'),
        ('{"review_body": "\\ud800"}', JSON, 400, "the body: the review text holds an unpaired surrogate escape"),
        ('{"review_body": "\\u200b"}', JSON, 400, "the body: the review text is empty"),
        (b"\xff{}", JSON, 400, "the body is not valid UTF-8 (invalid start byte at byte 0)"),
        (3, JSON, 400, "the body must be bytes or text, got int"),
        ("1" * 5000, JSON, 400, "the body is not valid JSON: Exceeds the limit"),
    ],
)
def test_a_refused_request_gets_its_status_and_a_message_that_says_why(body, content_type, status, message):
    got_status, got_message = refusal(lambda: inference.input_fn(body, content_type))
    assert got_status == status
    assert got_message.startswith(message)


def test_each_refusal_carries_the_status_the_pytorch_toolkit_answers():
    for error, status in ((inference.BadRequest, 400), (inference.NotAcceptable, 406),
                          (inference.ContentTooLarge, 413), (inference.UnsupportedMediaType, 415)):
        raised = error("why")
        assert (raised.status_code, raised.message, raised.phrase, str(raised)) == (status, "why", HTTPStatus(status).phrase, "why")


# ---------------------------------------------------------------------------- responses

PREDICTIONS = [{"label": "positive", "label_id": 2}, {"label": "negative", "label_id": 0}]


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, JSON), ("", JSON), ("  ", JSON), ("*/*", JSON), ("application/*", JSON),
        ("application/jsonlines", JSON_LINES), ("text/html, Application/JSONLines", JSON_LINES),
        ("application/jsonlines;q=0.5, application/json;q=0.4", JSON_LINES),
        ("application/json;q=0.4, application/jsonlines;q=0.5", JSON_LINES),
        ("application/jsonlines;q=0.5, application/json;q=0.5", JSON_LINES),  # a tie: the range listed first
        ("application/json;q=0.5, application/jsonlines;q=0.5", JSON),
        ("application/json;q=0, */*", JSON_LINES),  # the more specific range decides, even at q=0
        ("application/jsonlines;q=0, application/*", JSON),
        ("application/*;q=0.2, application/jsonlines;q=0.1", JSON),  # type/subtype beats type/* for jsonlines
        ("*/*;q=0.3, application/jsonlines;q=0.4", JSON_LINES),
        ("application/jsonlines;q=abc, application/json;q=0.9", JSON_LINES),  # a weight that is no number counts as 1
        ("application/jsonlines;q=2, application/json;q=0.9", JSON_LINES),  # so does one above 1
        ("application/jsonlines;q=-1, application/json;q=0.9", JSON_LINES),  # and one below 0
        ("application/jsonlines; Q=0.1, application/json;q=0.9", JSON),  # the parameter name is case-insensitive
        ("application/jsonlines;level=1;q=0.1, application/json", JSON),
        ("application/jsonlines;q=x;q=0.1, application/json;q=0.5", JSON),  # a bad weight does not hide a later one
        ("application/jsonlines, application/json;q=1.5", JSON_LINES),  # 1.5 counts as 1: a tie, the first listed wins
        ("application/jsonlines;q=1, application/json", JSON_LINES),  # no q is q=1, not more
        ("application/*;q=0.1, application/json;q=0", JSON_LINES),  # the exact range decides for json, even listed later
        ("*/*, application/*;q=0, application/jsonlines", JSON_LINES),  # type/* decides before */*
    ],
)
def test_the_response_is_in_the_type_accept_prefers(accept, expected):
    body = inference.output_fn(PREDICTIONS, accept)
    if expected == JSON:
        assert json.loads(body) == PREDICTIONS
    else:
        assert body == "".join(json.dumps(p) + "\n" for p in PREDICTIONS)


@pytest.mark.parametrize("accept", ["text/csv", "application/json;q=0", "application/jsonlines;q=0, */*;q=0", "application/*;q=0"])
def test_an_accept_that_takes_no_supported_type_is_a_406_naming_it(accept):
    assert refusal(lambda: inference.output_fn(PREDICTIONS, accept)) == (
        406, f"Accept {accept!r} accepts none of application/json, application/jsonlines (q=0 means not acceptable)")


def test_a_prediction_names_the_most_probable_class():
    assert inference._prediction([0.1, 0.7, 0.2]) == {
        "label": "neutral", "label_id": 1, "sentiment": 0, "probability": 0.7,
        "probabilities": {"negative": 0.1, "neutral": 0.7, "positive": 0.2}}
    assert inference._prediction([0.5, 0.2, 0.3])["label"] == "negative"
    assert inference._prediction([0.1, 0.2, 0.7])["sentiment"] == 1


# ---------------------------------------------------------------------------- a model (random tiny RoBERTa)


@pytest.fixture(scope="module")
def tiny_artifact(tmp_path_factory):
    from support.local_endpoint import build_tiny_artifact

    return build_tiny_artifact(tmp_path_factory.mktemp("tiny-artifact"), max_seq_length=16)


def test_the_model_loads_with_its_artifacts_sequence_length_and_the_environments_limits(tiny_artifact, monkeypatch):
    monkeypatch.setenv(inference.BATCH_SIZE_ENV, "2")
    classifier = inference.model_fn(str(tiny_artifact))
    assert classifier.settings.max_seq_length == 16
    assert classifier.limits == inference.ServingLimits(batch_size=2)


def test_a_bad_limit_fails_the_model_loading_with_the_variable_named(tiny_artifact, monkeypatch):
    monkeypatch.setenv(inference.MAX_PAYLOAD_BYTES_ENV, "big")
    with pytest.raises(ValueError, match=f"^the model is not loaded: {inference.MAX_PAYLOAD_BYTES_ENV} must be a positive integer, got 'big'$"):
        inference.model_fn(str(tiny_artifact))


def test_predictions_come_back_in_request_order_whatever_the_batching(tiny_artifact, monkeypatch):
    texts = ["great", "a much longer review about a product that broke after two days", "ok", "bad bad bad", "fine"]
    monkeypatch.setenv(inference.BATCH_SIZE_ENV, "32")
    together = inference.predict_fn(texts, inference.model_fn(str(tiny_artifact)))
    monkeypatch.setenv(inference.BATCH_SIZE_ENV, "2")
    in_pairs = inference.predict_fn(texts, inference.model_fn(str(tiny_artifact)))
    alone = [inference.predict_fn([text], inference.model_fn(str(tiny_artifact)))[0] for text in texts]

    assert len(together) == len(in_pairs) == len(texts)
    for batched, paired, single in zip(together, in_pairs, alone):
        assert list(batched["probabilities"]) == ["negative", "neutral", "positive"]
        assert sum(batched["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        for other in (paired, single):
            assert batched["label"] == other["label"]
            assert list(batched["probabilities"].values()) == pytest.approx(list(other["probabilities"].values()), abs=1e-5)
    # A text longer than max_seq_length tokens is truncated, not refused, and scores as its prefix.
    long_text = " ".join(["great"] * 200)
    assert inference.predict_fn([long_text], inference.model_fn(str(tiny_artifact)))[0]["probabilities"] == pytest.approx(
        inference.predict_fn([" ".join(["great"] * 60)], inference.model_fn(str(tiny_artifact)))[0]["probabilities"], abs=1e-5)


@pytest.mark.parametrize(
    ("body", "content_type", "accept", "status", "type_", "message"),
    [
        ('{"review_body": "ok"}', "text/csv", None, 415, "UnsupportedMediaType", "Content-Type 'text/csv' is not supported"),
        ('{"review_body": "ok"}', JSON, "text/html", 406, "NotAcceptable", "Accept 'text/html' accepts none of"),
        (b"\xff{}", JSON, None, 400, "BadRequest", "the body is not valid UTF-8 (invalid start byte at byte 0)"),
        ("[]", JSON, None, 400, "BadRequest", "the request holds no reviews"),
    ],
)
def test_under_the_pytorch_toolkit_a_refusal_keeps_its_status_and_says_why_without_traceback(
    tiny_artifact, body, content_type, accept, status, type_, message
):
    from support.pytorch_toolkit import PyTorchToolkitEndpoint

    response = PyTorchToolkitEndpoint(tiny_artifact).invoke(body, content_type, accept)
    assert (response.status, response.content_type) == (status, JSON)
    answer = response.json()
    assert (answer["code"], answer["type"]) == (status, type_)
    assert answer["message"].startswith(message)
    assert "Traceback" not in response.body and ".py" not in response.body


def test_under_the_pytorch_toolkit_a_good_request_is_answered_in_the_accepted_type(tiny_artifact):
    from support.pytorch_toolkit import PyTorchToolkitEndpoint

    response = PyTorchToolkitEndpoint(tiny_artifact).invoke('{"review_body": "fine"}\n{"review_body": "bad"}', JSON_LINES, JSON_LINES)
    assert (response.status, response.content_type) == (200, JSON_LINES)
    assert [set(json.loads(line)) for line in response.body.splitlines()] == [
        {"label", "label_id", "sentiment", "probability", "probabilities"}] * 2
