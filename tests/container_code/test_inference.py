"""inference.py's handlers, served from the trained artifact's code/ folder by the HuggingFace
inference image's model server (sagemaker-huggingface-inference-toolkit over HTTP, in the
inference parity environment): the response contract, batching, and bad requests answered with
the toolkit's 400 and a message that says why, never a crash or a 5xx. The same bad requests
also go through sagemaker-pytorch-inference's HandlerService (what the PyTorch inference images
serve with; in this process), which answers each with its own 4xx. No response of either holds a
traceback."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from typing import NamedTuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reviews
from support.local_endpoint import serve
from support.pytorch_toolkit import PyTorchToolkitEndpoint
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


@pytest.fixture(scope="module")
def pytorch_endpoint(trained_model_dir):
    return PyTorchToolkitEndpoint(trained_model_dir)


# What a Python traceback leaves in a text: its header, a frame line, a path to a source file.
TRACEBACK_TRACES = re.compile(r'Traceback|File "|[\w.-]*/[\w./-]+\.py\b')


def assert_no_traceback(body: str) -> None:
    assert not TRACEBACK_TRACES.search(body), body[:2000]


def assert_bad_request(response, message: str) -> None:
    assert response.status == BAD_REQUEST, response.body[:500]
    body = response.json()
    assert (body["code"], body["type"]) == (400, "InternalServerException")
    assert message in body["message"] == response.message
    assert_no_traceback(response.body)


def assert_refused_under_pytorch_toolkit(response, status: int, message: str) -> None:
    assert response.status == status, response.body[:500]
    assert response.json()["code"] == status
    assert message in response.message
    assert_no_traceback(response.body)


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
    [(None, JSON), ("*/*", JSON), ("text/html, application/json", JSON), ("APPLICATION/JSONLINES", JSON_LINES),
     ("application/*", JSON), ("application/jsonlines, application/json", JSON_LINES),
     # RFC 9110 weights: the higher wins, then the range listed first; q=0 is "not acceptable",
     # also where a less specific range would accept the type.
     ("application/jsonlines;q=0.9, application/json", JSON), ("application/json;q=0.5, application/jsonlines", JSON_LINES),
     # A tie of weights goes to the range listed first: jsonlines here, so the test cannot pass on
     # application/json's own precedence.
     ("application/jsonlines;q=0.5, application/json;q=0.5", JSON_LINES), ("application/json;q=0, */*", JSON_LINES),
     ("application/json; charset=utf-8; q=0, application/*;q=0.1", JSON_LINES), ("application/json;q=0.0, application/jsonlines;q=0.001", JSON_LINES)],
)
def test_the_most_preferred_supported_accept_type_wins(endpoint, accept, expected):
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


@pytest.mark.parametrize("text", ["great " * 5000, "great" * 200_000], ids=["5000 words", "a 1 MB word"])
def test_long_reviews_are_truncated_not_refused(endpoint, text):
    response = endpoint.invoke(json.dumps({"review_body": text}), JSON)
    assert response.status == 200


def test_the_tokenizer_reads_no_more_of_a_review_than_can_reach_the_model(classifier):
    import inference

    handed_over: list[str] = []

    def tokenizer(texts, **kwargs):
        handed_over.extend(texts)
        return classifier.tokenizer(texts, **kwargs)

    one_word = "great" * 200_000  # 1 MB: tokenized whole, it took 0.4 s of CPU and 100 MB more
    (prediction,) = inference.predict_fn([one_word], dataclasses.replace(classifier, tokenizer=tokenizer))
    assert_valid_prediction(prediction)
    # The capped text (head and tail, max_text_chars of them and a space at the seam) once to find
    # the cut, then the cut text: never more.
    capped = classifier.settings.capped(one_word)
    assert handed_over[0] == capped and len(capped) == classifier.settings.max_text_chars + 1
    assert all(len(text) <= len(capped) for text in handed_over) and len(handed_over) == 2
    assert classifier.settings.max_text_chars == classifier.settings.max_seq_length * reviews.MAX_CHARS_PER_TOKEN


# ---------------------------------------------------------------------------- bad requests


class Refusal(NamedTuple):
    """A bad request; the HuggingFace toolkit answers it 400, sagemaker-pytorch-inference `pytorch_status`."""

    body: str | bytes
    content_type: str | None
    message: str
    pytorch_status: int = 400
    accept: str | None = None
    # Where the toolkits' messages differ: sagemaker-pytorch-inference's.
    pytorch_message: str | None = None


INVISIBLE_ONLY = "the review text is empty: nothing in it is visible"
REFUSALS = [
    Refusal("{bad json", JSON, "the body is not valid JSON"),
    Refusal('{"review_body": 5}', JSON, "must be a string"),
    Refusal('{"review_body": null}', JSON, "must be a string"),
    Refusal('{"review_body": "   "}', JSON, "the review text is empty"),
    Refusal('{"review_body": "\\u200b"}', JSON, INVISIBLE_ONLY),
    Refusal('{"review_body": "\\u0000"}', JSON, INVISIBLE_ONLY),
    Refusal('{"features": [" \\u2060\\ufeff\\u00ad\\u3164\\n"]}', JSON, INVISIBLE_ONLY),
    Refusal('{"review_body": "\u200b\u200d"}', JSON, INVISIBLE_ONLY),  # unescaped, as UTF-8
    Refusal('{"review_body": "\\u0000"}\n{"review_body": "\\u200b"}', JSON_LINES, f"line 1: {INVISIBLE_ONLY}"),
    Refusal('{"features": ["a", "b"]}', JSON, "exactly one string"),
    Refusal('{"features": "text"}', JSON, "exactly one string"),
    Refusal('{"review_body": "a", "features": ["a"]}', JSON, "exactly one of"),
    Refusal('{"text": "a"}', JSON, "exactly one of"),
    Refusal('"just a string"', JSON, "expected an object"),
    Refusal("[]", JSON, "no reviews"),
    Refusal("", JSON_LINES, "no reviews"),
    Refusal('[{"review_body": "ok"}, 3]', JSON, "item 1"),
    Refusal('{"review_body": "ok"}\n{oops', JSON_LINES, "line 2 is not valid JSON"),
    Refusal('{"review_body": "\\ud800"}', JSON, "surrogate"),
    Refusal("[" * 100_000, JSON, "not valid JSON"),
    Refusal("1" * 5000, JSON, "not valid JSON"),
    Refusal(b"\xff\xfe{}", JSON_LINES, "the body is not valid UTF-8 (invalid start byte at byte 0)"),
    # Exactly application/json (and text/csv) the HuggingFace toolkit decodes before input_fn:
    # its own message. sagemaker-pytorch-inference did too, and answered 500 with a traceback.
    Refusal(b"\xff\xfe{}", JSON, "'utf-8' codec can't decode byte 0xff",
            pytorch_message="the body is not valid UTF-8 (invalid start byte at byte 0)"),
    Refusal(b'{"review_body": "caf\xe9"}', "text/csv", "'utf-8' codec can't decode byte 0xe9", 415,
            pytorch_message="Content-Type 'text/csv' is not supported"),
    Refusal('{"review_body": "ok"}', "text/csv", "Content-Type 'text/csv' is not supported", 415),
    Refusal('{"review_body": "ok"}', None, "Content-Type None is not supported", 415),
    Refusal('{"review_body": "ok"}', JSON, "Accept 'text/csv' accepts none of", 406, accept="text/csv"),
    Refusal('{"review_body": "ok"}', JSON, "Accept 'application/json;q=0' accepts none of", 406, accept="application/json;q=0"),
    Refusal('{"review_body": "ok"}', JSON, "accepts none of application/json, application/jsonlines (q=0 means not acceptable)",
            406, accept="application/jsonlines;q=0, */*;q=0"),
]


@pytest.mark.parametrize("refusal", REFUSALS, ids=[refusal.message[:40] for refusal in REFUSALS])
def test_bad_requests_get_a_400_that_says_why(endpoint, refusal):
    assert_bad_request(endpoint.invoke(refusal.body, refusal.content_type, refusal.accept), refusal.message)


@pytest.mark.parametrize("refusal", REFUSALS, ids=[refusal.message[:40] for refusal in REFUSALS])
def test_under_the_pytorch_toolkit_bad_requests_get_their_own_4xx_that_says_why(pytorch_endpoint, refusal):
    response = pytorch_endpoint.invoke(refusal.body, refusal.content_type, refusal.accept)
    assert_refused_under_pytorch_toolkit(response, refusal.pytorch_status, refusal.pytorch_message or refusal.message)


def test_payload_and_review_count_limits_are_400s_and_configurable(endpoint, tightly_limited_endpoint):
    assert_bad_request(tightly_limited_endpoint.invoke(json.dumps({"review_body": "x" * 1000}), JSON), "at most 1000")
    assert_bad_request(tightly_limited_endpoint.invoke(json.dumps([{"review_body": "ok"}] * 4), JSON),
                       "4 reviews in one request; at most 3 are allowed")
    assert_bad_request(endpoint.invoke(json.dumps({"review_body": "x" * (1024 * 1024)}), JSON), "at most 1048576 are allowed")
    assert_bad_request(endpoint.invoke(json.dumps([{"review_body": "ok"}] * 257), JSON), "at most 256 are allowed")


def test_under_the_pytorch_toolkit_limits_are_413s(pytorch_endpoint, monkeypatch):
    too_large = pytorch_endpoint.invoke(json.dumps({"review_body": "x" * (1024 * 1024)}), JSON)
    assert_refused_under_pytorch_toolkit(too_large, 413, "at most 1048576 are allowed")
    monkeypatch.setenv("REVIEW_CLASSIFIER_MAX_REVIEWS", "3")
    too_many = pytorch_endpoint.invoke(json.dumps([{"review_body": "ok"}] * 4), JSON)
    assert_refused_under_pytorch_toolkit(too_many, 413, "4 reviews in one request; at most 3 are allowed")


def test_under_the_pytorch_toolkit_a_failing_model_is_a_500_without_traceback(trained_model_dir, tmp_path):
    model_dir = shutil.copytree(trained_model_dir, tmp_path / "model")
    with (model_dir / "code" / "inference.py").open("a") as code:
        code.write('\n\ndef predict_fn(texts, classifier):\n    raise RuntimeError("the weights are corrupt")\n')
    response = PyTorchToolkitEndpoint(model_dir).invoke('{"review_body": "fine"}', JSON)
    assert (response.status, response.json()) == (500, {"code": 500, "type": "InternalServerError", "message": "the weights are corrupt"})
    assert_no_traceback(response.body)


def test_under_the_pytorch_toolkit_good_requests_are_answered_as_under_the_image(endpoint, pytorch_endpoint):
    body = '{"review_body": "fine"}\n{"features": ["great, love it"]}'
    for accept, as_lines in ((None, False), (JSON_LINES, True), ("application/json;q=0, */*", True)):
        served, in_process = endpoint.invoke(body, JSON_LINES, accept), pytorch_endpoint.invoke(body, JSON_LINES, accept)
        assert (in_process.status, in_process.content_type) == (served.status, served.content_type) == (200, accept or JSON)
        assert in_process.body.startswith("[") == served.body.startswith("[") == (not as_lines)
        labels = [[p["label"] for p in (map(json.loads, r.body.splitlines()) if as_lines else r.json())] for r in (served, in_process)]
        assert labels[0] == labels[1] and len(labels[0]) == 2


# ---------------------------------------------------------------------------- bad settings


BAD_SETTINGS = [("REVIEW_CLASSIFIER_BATCH_SIZE", "0"), ("REVIEW_CLASSIFIER_MAX_REVIEWS", "many"),
                ("REVIEW_CLASSIFIER_MAX_PAYLOAD_BYTES", "-1"), ("REVIEW_CLASSIFIER_MAX_REVIEWS", "2.5"),
                ("REVIEW_CLASSIFIER_BATCH_SIZE", "")]


@pytest.mark.parametrize(("variable", "value"), BAD_SETTINGS)
def test_a_bad_setting_fails_the_model_loading_naming_the_variable(trained_model_dir, monkeypatch, variable, value):
    import inference

    monkeypatch.setenv(variable, value)
    message = f"the model is not loaded: {variable} must be a positive integer, got {value!r}"
    with pytest.raises(ValueError, match=re.escape(message)):
        inference.model_fn(str(trained_model_dir))
    # sagemaker-pytorch-inference loads the model as it starts: that fails, nothing is served.
    with pytest.raises(ValueError, match=re.escape(message)):
        PyTorchToolkitEndpoint(trained_model_dir)


@pytest.fixture(scope="module")
def badly_configured_endpoint(trained_model_dir):
    with serve(trained_model_dir, environment={"REVIEW_CLASSIFIER_BATCH_SIZE": "0"}) as served:
        yield served


def test_under_the_image_a_bad_setting_is_named_at_load_and_in_every_answer(badly_configured_endpoint):
    # MMS answers /ping 200 whatever the model's state (so the endpoint starts), and the toolkit
    # runs model_fn again for each request: every request, good or bad, is answered 400 with
    # the reason. A deployment's 4XX-share alarm rolls such a model back.
    message = "the model is not loaded: REVIEW_CLASSIFIER_BATCH_SIZE must be a positive integer, got '0'"
    for body in ('{"review_body": "fine"}', "{bad json"):
        assert_bad_request(badly_configured_endpoint.invoke(body, JSON), message)
    assert message in badly_configured_endpoint.log_path.read_text()


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
