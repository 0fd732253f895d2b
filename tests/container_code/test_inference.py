"""inference.py's handlers, served from the trained artifact's code/ folder by the HuggingFace
inference image's model server (sagemaker-huggingface-inference-toolkit over HTTP, in the
inference parity environment): the response contract, batching, and bad requests answered with
the toolkit's 400 and a message that says why, never a crash or a 5xx."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reviews
from support.local_endpoint import serve
from tiny_roberta import synthetic_reviews

JSON, JSON_LINES = "application/json", "application/jsonlines"
# The toolkit answers every handler exception with 400 (docs/serving.md); nothing else is a
# client error here.
BAD_REQUEST = 400
# The model's environment of the second endpoint: small limits, one review per forward pass.
TIGHT_LIMITS = {"REVIEW_CLASSIFIER_MAX_PAYLOAD_BYTES": "1000", "REVIEW_CLASSIFIER_MAX_REVIEWS": "3",
                "REVIEW_CLASSIFIER_BATCH_SIZE": "1"}


@pytest.fixture(scope="module")
def endpoint(trained_model_dir):
    with serve(trained_model_dir) as served:
        yield served


@pytest.fixture(scope="module")
def tightly_limited_endpoint(trained_model_dir):
    with serve(trained_model_dir, environment=TIGHT_LIMITS) as served:
        yield served


def assert_bad_request(response, message: str) -> None:
    assert response.status == BAD_REQUEST, response.body[:500]
    body = response.json()
    assert (body["code"], body["type"]) == (400, "InternalServerException")
    assert message in body["message"] == response.message
    assert "Traceback" not in response.body


def assert_valid_prediction(prediction: dict) -> None:
    assert set(prediction) == {"label", "label_id", "sentiment", "probability", "probabilities"}
    assert list(prediction["probabilities"]) == list(reviews.LABEL_NAMES)
    assert sum(prediction["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    best = max(prediction["probabilities"], key=prediction["probabilities"].get)
    assert prediction["label"] == best == reviews.ID2LABEL[prediction["label_id"]]
    assert prediction["sentiment"] == prediction["label_id"] - 1
    assert prediction["probability"] == prediction["probabilities"][best]


# ---------------------------------------------------------------------------- the contract


def test_one_object_gives_a_list_of_one_prediction(endpoint):
    response = endpoint.invoke(json.dumps({"review_body": "Great product, love it"}), JSON)
    assert (response.status, response.content_type) == (200, JSON)
    (prediction,) = response.json()
    assert_valid_prediction(prediction)


def test_a_list_is_answered_in_order_and_features_equal_review_body(endpoint):
    texts = ["Terrible, broken, refund please.", "It arrived, fine and average.", "Excellent, I love it!"]
    as_bodies = endpoint.invoke(json.dumps([{"review_body": t} for t in texts]), JSON).json()
    as_features = endpoint.invoke(json.dumps([{"features": [t]} for t in texts]), JSON).json()
    assert len(as_bodies) == 3
    for prediction in as_bodies:
        assert_valid_prediction(prediction)
    for by_features, by_body in zip(as_features, as_bodies):
        assert by_features["probabilities"] == pytest.approx(by_body["probabilities"], abs=1e-6)


def test_the_served_model_classifies_unseen_synthetic_reviews_well(endpoint):
    unseen = synthetic_reviews(60, seed=987)
    predictions = endpoint.invoke(json.dumps([{"review_body": text} for text, _ in unseen]), JSON).json()
    correct = sum(p["sentiment"] == sentiment for p, (_, sentiment) in zip(predictions, unseen))
    assert correct / len(unseen) > 0.55  # chance is 1/3


def test_json_lines_in_and_out(endpoint):
    body = '{"review_body": "awful waste"}\n\n{"features": ["perfect, wonderful"]}\r\n'
    response = endpoint.invoke(body, JSON_LINES, JSON_LINES)
    assert (response.status, response.content_type) == (200, JSON_LINES)
    lines = response.body.splitlines()
    assert len(lines) == 2
    for line in lines:
        assert_valid_prediction(json.loads(line))


@pytest.mark.parametrize(
    ("accept", "expected"),
    [(None, JSON), ("*/*", JSON), ("application/jsonlines;q=0.9, application/json", JSON_LINES),
     ("text/html, application/json", JSON), ("APPLICATION/JSONLINES", JSON_LINES)],
)
def test_the_first_supported_accept_type_wins(endpoint, accept, expected):
    response = endpoint.invoke('{"review_body": "fine"}\n{"review_body": "great"}', JSON_LINES, accept)
    assert response.status == 200
    if expected == JSON:
        assert len(response.json()) == 2
    else:
        assert [json.loads(line)["label"] for line in response.body.splitlines()] == [
            p["label"] for p in endpoint.invoke('[{"review_body": "fine"}, {"review_body": "great"}]', JSON).json()]
    # The toolkit sets Content-Type from Accept (the default, application/json, for none or */*).
    assert response.content_type == (JSON if accept in (None, "*/*") else accept)


def test_content_type_parameters_and_case_are_ignored(endpoint):
    response = endpoint.invoke(b'{"review_body": "okay"}', "Application/JSON; charset=utf-8")
    assert response.status == 200


def test_a_review_scores_the_same_alone_and_padded_in_a_batch(endpoint, tightly_limited_endpoint):
    short = "Great."
    batch = [short, "Terrible and awful, it arrived broken, the item was a waste and I hate it. " * 3, "okay"]
    alone = endpoint.invoke(json.dumps({"review_body": short}), JSON).json()[0]
    together = endpoint.invoke(json.dumps([{"review_body": t} for t in batch]), JSON).json()
    one_by_one = tightly_limited_endpoint.invoke(json.dumps([{"review_body": t} for t in batch]), JSON).json()
    assert together[0]["probabilities"] == pytest.approx(alone["probabilities"], abs=1e-5)
    for left, right in zip(together, one_by_one):
        assert left["probabilities"] == pytest.approx(right["probabilities"], abs=1e-5)


def test_long_reviews_are_truncated_not_refused(endpoint):
    response = endpoint.invoke(json.dumps({"review_body": "great " * 5000}), JSON)
    assert response.status == 200


# ---------------------------------------------------------------------------- bad requests


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        ("{bad json", JSON, "the body is not valid JSON"),
        ('{"review_body": 5}', JSON, "must be a string"),
        ('{"review_body": null}', JSON, "must be a string"),
        ('{"review_body": "   "}', JSON, "the review text is empty"),
        ('{"features": ["a", "b"]}', JSON, "exactly one string"),
        ('{"features": "text"}', JSON, "exactly one string"),
        ('{"review_body": "a", "features": ["a"]}', JSON, "exactly one of"),
        ('{"text": "a"}', JSON, "exactly one of"),
        ('"just a string"', JSON, "expected an object"),
        ("[]", JSON, "no reviews"),
        ("", JSON_LINES, "no reviews"),
        ('[{"review_body": "ok"}, 3]', JSON, "item 1"),
        ('{"review_body": "ok"}\n{oops', JSON_LINES, "line 2 is not valid JSON"),
        ('{"review_body": "\\ud800"}', JSON, "surrogate"),
        ("[" * 100_000, JSON, "not valid JSON"),
        ("1" * 5000, JSON, "not valid JSON"),
        (b"\xff\xfe{}", JSON_LINES, "the body is not valid UTF-8"),
        # Exactly application/json is decoded by the toolkit before input_fn: its own message.
        (b"\xff\xfe{}", JSON, "'utf-8' codec can't decode byte 0xff"),
        ('{"review_body": "ok"}', "text/csv", "Content-Type 'text/csv' is not supported"),
        ('{"review_body": "ok"}', None, "Content-Type None is not supported"),
    ],
)
def test_bad_requests_get_a_400_that_says_why(endpoint, body, content_type, message):
    assert_bad_request(endpoint.invoke(body, content_type), message)


def test_an_unsupported_accept_type_is_a_400_too(endpoint):
    assert_bad_request(endpoint.invoke('{"review_body": "ok"}', JSON, "text/csv"), "Accept 'text/csv' is not supported")


def test_payload_and_review_count_limits_are_400s_and_configurable(endpoint, tightly_limited_endpoint):
    assert_bad_request(tightly_limited_endpoint.invoke(json.dumps({"review_body": "x" * 1000}), JSON), "at most 1000")
    assert_bad_request(tightly_limited_endpoint.invoke(json.dumps([{"review_body": "ok"}] * 4), JSON),
                       "4 reviews in one request; at most 3 are allowed")
    assert_bad_request(endpoint.invoke(json.dumps({"review_body": "x" * (1024 * 1024)}), JSON), "at most 1048576 are allowed")
    assert_bad_request(endpoint.invoke(json.dumps([{"review_body": "ok"}] * 257), JSON), "at most 256 are allowed")


def test_the_endpoint_keeps_answering_after_bad_requests(endpoint):
    for body in ("{", "[]", '{"review_body": ""}'):
        assert endpoint.invoke(body, JSON).status == BAD_REQUEST
    assert endpoint.invoke('{"review_body": "still here"}', JSON).status == 200


# ---------------------------------------------------------------------------- any input
# The handlers themselves, in this process: every input gets predictions or a BadRequest whose
# message is what the client reads (the toolkit answers any exception with 400 and str(error),
# so what matters here is that the message says why). The requests above show the toolkit's
# side; thousands of requests through MMS would mostly measure its worker restarts (see
# docs/serving.md, "Worker died.").

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["review_body", "features", "other"]) | st.text(max_size=5), children, max_size=3),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def classifier(trained_model_dir):
    import inference

    return inference.model_fn(str(trained_model_dir))


def classify_or_refuse(classifier, body, content_type: str) -> list[dict] | None:
    """What the toolkit runs per request: input_fn -> predict_fn -> output_fn; None if refused."""
    import inference

    try:
        texts = inference.input_fn(body, content_type)
    except inference.BadRequest as refused:
        assert str(refused) and "Traceback" not in str(refused)
        return None
    return json.loads(inference.output_fn(inference.predict_fn(texts, classifier), JSON))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=json_values, content_type=st.sampled_from([JSON, JSON_LINES]))
def test_any_json_document_gets_predictions_or_a_bad_request(classifier, document, content_type):
    body = json.dumps(document) if content_type == JSON else "\n".join(
        json.dumps(item) for item in (document if isinstance(document, list) else [document]))
    predictions = classify_or_refuse(classifier, body.encode("utf-8"), content_type)
    if predictions is not None:
        assert len(predictions) == (len(document) if isinstance(document, list) else 1)
        for prediction in predictions:
            assert_valid_prediction(prediction)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=200) | st.text(max_size=200),
       content_type=st.sampled_from([JSON, JSON_LINES, "application/json; charset=utf-8", "text/plain"]))
def test_arbitrary_bodies_get_predictions_or_a_bad_request(classifier, body, content_type):
    # The toolkit hands input_fn a str for exactly application/json, bytes otherwise: both are here.
    classify_or_refuse(classifier, body, content_type)


def test_errors_read_well_where_the_toolkit_only_forwards_str_of_the_exception():
    # The toolkit answers str(error) with a 400: the message is all the client gets.
    import inference

    with pytest.raises(inference.BadRequest) as raised:
        inference.input_fn("[]", JSON)
    assert str(raised.value) == "the request holds no reviews"
    assert inference.output_fn([{"label": "neutral"}], JSON_LINES) == '{"label": "neutral"}\n'
