"""inference.py's handlers, served from the trained artifact's code/ folder through
sagemaker-pytorch-inference's HandlerService (as in the serving container): the response
contract, batching, and bad requests answered with a 4xx instead of a crash or a 500."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reviews
from local_pipeline.serving import LocalEndpoint
from parity_env import skip_where_the_image_lacks
from tiny_roberta import synthetic_reviews

JSON, JSON_LINES = "application/json", "application/jsonlines"
CLIENT_ERRORS = {400, 406, 413, 415}


@pytest.fixture(scope="module")
def endpoint(trained_model_dir) -> LocalEndpoint:
    try:
        return LocalEndpoint(trained_model_dir)
    except ModuleNotFoundError as missing:
        skip_where_the_image_lacks(missing, "LocalEndpoint")


def assert_valid_prediction(prediction: dict) -> None:
    assert set(prediction) == {"label", "label_id", "sentiment", "probability", "probabilities"}
    assert list(prediction["probabilities"]) == list(reviews.LABEL_NAMES)
    assert sum(prediction["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    best = max(prediction["probabilities"], key=prediction["probabilities"].get)
    assert prediction["label"] == best == reviews.ID2LABEL[prediction["label_id"]]
    assert prediction["sentiment"] == prediction["label_id"] - 1
    assert prediction["probability"] == prediction["probabilities"][best]


# ---------------------------------------------------------------------------- the contract


def test_the_artifact_code_is_what_is_served(endpoint, trained_model_dir):
    assert endpoint.model_dir == trained_model_dir.resolve()
    loaded = endpoint._service._service._model_fn.__globals__["__file__"]
    assert loaded == str(trained_model_dir.resolve() / "code" / "inference.py")


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


def test_a_review_scores_the_same_alone_and_padded_in_a_batch(endpoint, monkeypatch):
    short = "Great."
    batch = [short, "Terrible and awful, it arrived broken, the item was a waste and I hate it. " * 3, "okay"]
    alone = endpoint.invoke(json.dumps({"review_body": short}), JSON).json()[0]
    together = endpoint.invoke(json.dumps([{"review_body": t} for t in batch]), JSON).json()
    monkeypatch.setenv("REVIEW_CLASSIFIER_BATCH_SIZE", "1")
    one_by_one = endpoint.invoke(json.dumps([{"review_body": t} for t in batch]), JSON).json()
    assert together[0]["probabilities"] == pytest.approx(alone["probabilities"], abs=1e-5)
    for left, right in zip(together, one_by_one):
        assert left["probabilities"] == pytest.approx(right["probabilities"], abs=1e-5)


def test_long_reviews_are_truncated_not_refused(endpoint):
    response = endpoint.invoke(json.dumps({"review_body": "great " * 5000}), JSON)
    assert response.status == 200


# ---------------------------------------------------------------------------- bad requests


@pytest.mark.parametrize(
    ("body", "content_type", "status", "message"),
    [
        ("{bad json", JSON, 400, "not valid JSON"),
        ('{"review_body": 5}', JSON, 400, "must be a string"),
        ('{"review_body": null}', JSON, 400, "must be a string"),
        ('{"review_body": "   "}', JSON, 400, "empty"),
        ('{"features": ["a", "b"]}', JSON, 400, "exactly one string"),
        ('{"features": "text"}', JSON, 400, "exactly one string"),
        ('{"review_body": "a", "features": ["a"]}', JSON, 400, "exactly one of"),
        ('{"text": "a"}', JSON, 400, "exactly one of"),
        ('"just a string"', JSON, 400, "expected an object"),
        ("[]", JSON, 400, "no reviews"),
        ("", JSON_LINES, 400, "no reviews"),
        ('[{"review_body": "ok"}, 3]', JSON, 400, "item 1"),
        ('{"review_body": "ok"}\n{oops', JSON_LINES, 400, "line 2 is not valid JSON"),
        ('{"review_body": "\\ud800"}', JSON, 400, "surrogate"),
        ("[" * 100_000, JSON, 400, "not valid JSON"),
        ("1" * 5000, JSON, 400, "not valid JSON"),
        (b"\xff\xfe{}", JSON_LINES, 400, "not valid UTF-8"),
        ('{"review_body": "ok"}', "text/csv", 415, "text/csv"),
        ('{"review_body": "ok"}', None, 415, "not supported"),
    ],
)
def test_bad_requests_get_a_client_error_that_says_why(endpoint, body, content_type, status, message):
    response = endpoint.invoke(body, content_type)
    assert response.status == status
    assert message in response.phrase


def test_an_unsupported_accept_type_is_406(endpoint):
    response = endpoint.invoke('{"review_body": "ok"}', JSON, "text/csv")
    assert response.status == 406 and "text/csv" in response.phrase


def test_payload_and_review_count_limits_are_413_and_configurable(endpoint, monkeypatch):
    monkeypatch.setenv("REVIEW_CLASSIFIER_MAX_PAYLOAD_BYTES", "100")
    big = endpoint.invoke(json.dumps({"review_body": "x" * 200}), JSON)
    assert big.status == 413 and "at most 100" in big.phrase
    monkeypatch.delenv("REVIEW_CLASSIFIER_MAX_PAYLOAD_BYTES")
    too_big_by_default = endpoint.invoke(json.dumps({"review_body": "x" * (1024 * 1024)}), JSON)
    assert too_big_by_default.status == 413
    monkeypatch.setenv("REVIEW_CLASSIFIER_MAX_REVIEWS", "2")
    many = endpoint.invoke(json.dumps([{"review_body": "ok"}] * 3), JSON)
    assert many.status == 413 and "at most 2" in many.phrase


def test_the_endpoint_keeps_answering_after_bad_requests(endpoint):
    for body in ("{", "[]", '{"review_body": ""}'):
        assert endpoint.invoke(body, JSON).status == 400
    assert endpoint.invoke('{"review_body": "still here"}', JSON).status == 200


# Any JSON document: valid ones get predictions, all others a 4xx; never a 500.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["review_body", "features", "other"]) | st.text(max_size=5), children, max_size=3),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=json_values, content_type=st.sampled_from([JSON, JSON_LINES]))
def test_any_json_document_gets_predictions_or_a_client_error(endpoint, document, content_type):
    body = json.dumps(document) if content_type == JSON else "\n".join(
        json.dumps(item) for item in (document if isinstance(document, list) else [document]))
    response = endpoint.invoke(body, content_type)
    assert response.status in {200} | CLIENT_ERRORS, response.body[:500]
    if response.status == 200:
        predictions = response.json()
        expected = len(document) if isinstance(document, list) else 1
        assert len(predictions) == expected
        for prediction in predictions:
            assert_valid_prediction(prediction)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=200) | st.text(max_size=200).map(str.encode),
       content_type=st.sampled_from([JSON_LINES, "application/json; charset=utf-8", "text/plain"]))
def test_arbitrary_bytes_never_crash_the_handlers(endpoint, body, content_type):
    # Plain application/json is left out: the toolkit decodes it as UTF-8 before input_fn runs
    # and answers invalid UTF-8 with a 500 of its own (see docs/model.md).
    response = endpoint.invoke(body, content_type)
    assert response.status in {200} | CLIENT_ERRORS, response.body[:500]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=300))
def test_any_text_as_application_json_never_crashes(endpoint, text):
    response = endpoint.invoke(text, JSON)
    assert response.status in {200} | CLIENT_ERRORS, response.body[:500]


def test_errors_read_well_where_the_toolkit_only_forwards_str_of_the_exception():
    # The Hugging Face inference toolkit answers str(error) with a 400.
    import inference

    with pytest.raises(inference.BadRequest) as raised:
        inference.input_fn("[]", JSON)
    assert str(raised.value) == "the request holds no reviews"
    assert raised.value.status_code == 400
    assert inference.output_fn([{"label": "neutral"}], JSON_LINES) == '{"label": "neutral"}\n'
