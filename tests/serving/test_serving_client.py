"""The shipped client (`serving_client.ReviewClassifierPredictor`) against the model server of
the HuggingFace inference image.

The tiny RoBERTa from tests/tiny_roberta.py is saved as a model artifact (weights, tokenizer,
metadata, code/inference.py) and served by sagemaker-huggingface-inference-toolkit's own model
server in the inference parity environment (`local_pipeline.serving.LocalEndpoint`). A small
HTTP front on 127.0.0.1 stands in for the SageMaker runtime's InvokeEndpoint route (POST
/endpoints/<name>/invocations): it forwards the body, Content-Type and Accept to the container's
/invocations and, like the runtime, answers a container error as ModelError (HTTP 424) with
OriginalStatusCode and OriginalMessage. So the SDK's Predictor goes through boto3 and HTTP
exactly as against AWS - what the SDK's local mode does with Docker, without Docker.
"""

from __future__ import annotations

import http.client
import io
import json
import math
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.exceptions import ClientError

import inference
import reviews
from serving_client import ReviewClassifierPredictor, review_requests
from support.local_endpoint import build_tiny_artifact, lost_by_mms, serve

ENDPOINT_NAME = "review-classifier-test"
TEXTS = [
    "Great product, I love it and would recommend it.",
    "Terrible. It arrived broken and I want a refund.",
    "It is okay, about what I expected.",
    "Émoji and accents survive: très bien 👍",
    'Quotes "inside" and a backslash \\ too',
]
INVOCATION_PATH = re.compile(r"^/endpoints/(?P<name>[^/]+)/invocations$")


# --- A model artifact, its model server, and the runtime in front of it --------------------------

@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return build_tiny_artifact(tmp_path_factory.mktemp("tiny-roberta-artifact"))


@pytest.fixture(scope="module")
def endpoint(model_dir):
    with serve(model_dir, retry_when_the_worker_dies=False) as served:
        yield served


class LocalRuntime:
    """InvokeEndpoint on 127.0.0.1, forwarded to the container's /invocations; records each request."""

    def __init__(self, container_url: str) -> None:
        self.requests: list[dict] = []
        runtime, container = self, urlsplit(container_url)

        def forward(body: bytes, headers: dict[str, str]) -> tuple[int, str | None, bytes]:
            connection = http.client.HTTPConnection(container.hostname, container.port, timeout=60)
            try:
                connection.request("POST", "/invocations", body=body, headers=headers)
                answer = connection.getresponse()
                return answer.status, answer.getheader("Content-Type"), answer.read()
            finally:
                connection.close()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                match = INVOCATION_PATH.match(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {name: self.headers[name] for name in ("Content-Type", "Accept") if self.headers[name]}
                runtime.requests.append({**headers, "body": body})
                if not match or match["name"] != ENDPOINT_NAME:
                    self._answer(400, {"x-amzn-ErrorType": "ValidationError"},
                                 json.dumps({"message": f"Endpoint {self.path} not found."}).encode())
                    return
                status, content_type, payload = forward(body, headers)
                if lost_by_mms(status, payload.decode(errors="replace")):
                    # Not the runtime's doing: a retry so that MMS's defect (docs/serving.md) does not flake the test.
                    status, content_type, payload = forward(body, headers)
                if status == 200:
                    self._answer(200, {"Content-Type": content_type}, payload)
                    return
                # The runtime's ModelError: the container's status and body, as botocore shows them.
                text = payload.decode(errors="replace")
                kind = "client" if status < 500 else "server"
                error = {
                    "ErrorCode": f"{kind.upper()}_ERROR_FROM_MODEL",
                    "Message": f'Received {kind} error ({status}) from primary with message "{text}". See the '
                               f"endpoint's CloudWatch log group /aws/sagemaker/Endpoints/{ENDPOINT_NAME} for more information.",
                    "OriginalStatusCode": status,
                    "OriginalMessage": text,
                }
                self._answer(424, {"x-amzn-ErrorType": "ModelError"}, json.dumps(error).encode())

            def _answer(self, status: int, headers: dict[str, str], payload: bytes) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="module")
def local_runtime(endpoint, offline_aws_environment):
    runtime = LocalRuntime(endpoint.url)
    yield runtime
    runtime.stop()


@pytest.fixture
def predictor(local_runtime) -> ReviewClassifierPredictor:
    import sagemaker

    local_runtime.requests.clear()
    boto_session = boto3.Session(region_name="us-east-1")
    session = sagemaker.Session(
        boto_session=boto_session,
        sagemaker_runtime_client=boto_session.client("sagemaker-runtime", endpoint_url=local_runtime.url),
    )
    return ReviewClassifierPredictor(ENDPOINT_NAME, sagemaker_session=session)


@pytest.fixture(scope="module")
def offline_predictor(offline_aws_environment) -> ReviewClassifierPredictor:
    """For serializer/deserializer checks that send nothing."""
    import sagemaker

    return ReviewClassifierPredictor(ENDPOINT_NAME, sagemaker_session=sagemaker.Session(boto3.Session(region_name="us-east-1")))


# --- Payloads, piece by piece -------------------------------------------------------------------

def test_client_speaks_json_lines(offline_predictor):
    assert offline_predictor.content_type == "application/jsonlines"
    assert offline_predictor.accept == ("application/jsonlines",)
    assert offline_predictor.content_type in inference.SUPPORTED_CONTENT_TYPES


def test_serialized_request_is_what_input_fn_reads(offline_predictor):
    payload = offline_predictor.serializer.serialize(review_requests(TEXTS))
    assert len(payload.splitlines()) == len(TEXTS)
    assert inference.input_fn(payload.encode("utf-8"), offline_predictor.content_type) == TEXTS


def test_deserializer_reads_what_output_fn_writes(offline_predictor):
    predictions = [{"label": "neutral", "label_id": 1, "sentiment": 0, "probability": 0.5,
                    "probabilities": {"negative": 0.25, "neutral": 0.5, "positive": 0.25}}] * 2
    accept = ", ".join(offline_predictor.accept)
    assert accept == "application/jsonlines"
    # output_fn returns the body only; the toolkit answers with Content-Type = Accept.
    body = inference.output_fn(predictions, accept)
    assert body.count("\n") == len(predictions)
    assert offline_predictor.deserializer.deserialize(io.BytesIO(body.encode("utf-8")), accept) == predictions


# --- End to end: Predictor -> boto3 -> HTTP -> the toolkit's model server -> inference.py ---------

def assert_is_prediction(prediction: dict) -> None:
    assert set(prediction) == {"label", "label_id", "sentiment", "probability", "probabilities"}
    assert prediction["label"] == reviews.ID2LABEL[prediction["label_id"]]
    assert prediction["sentiment"] == reviews.label_id_to_sentiment(prediction["label_id"])
    assert list(prediction["probabilities"]) == list(reviews.LABEL_NAMES)
    assert math.isclose(sum(prediction["probabilities"].values()), 1.0, rel_tol=1e-5)
    assert prediction["probability"] == max(prediction["probabilities"].values())
    assert prediction["probability"] == prediction["probabilities"][prediction["label"]]


def test_classify_round_trip(predictor, local_runtime):
    predictions = predictor.classify(TEXTS)

    assert len(predictions) == len(TEXTS)
    for prediction in predictions:
        assert_is_prediction(prediction)
    (request,) = local_runtime.requests
    assert request["Content-Type"] == "application/jsonlines"
    assert request["Accept"] == "application/jsonlines"
    assert [json.loads(line) for line in request["body"].decode().splitlines()] == [{"review_body": t} for t in TEXTS]


def test_predictions_keep_request_order(predictor):
    together = predictor.classify(TEXTS)
    one_by_one = [predictor.classify([text])[0] for text in TEXTS]
    for batched, single in zip(together, one_by_one):
        assert batched["label"] == single["label"]
        for label in reviews.LABEL_NAMES:
            assert math.isclose(batched["probabilities"][label], single["probabilities"][label], abs_tol=1e-5)


def test_long_lists_are_split_into_several_requests(predictor, local_runtime):
    predictions = predictor.classify(TEXTS, max_reviews_per_request=2)

    assert [len(r["body"].decode().splitlines()) for r in local_runtime.requests] == [2, 2, 1]
    assert [p["label"] for p in predictions] == [p["label"] for p in predictor.classify(TEXTS)]


def test_predict_accepts_the_features_form(predictor):
    (prediction,) = predictor.predict([{"features": [TEXTS[0]]}])
    assert_is_prediction(prediction)


def test_bad_reviews_are_refused_before_any_request(predictor, local_runtime):
    with pytest.raises(ValueError, match="review 1 is empty"):
        predictor.classify(["fine", "  "])
    with pytest.raises(TypeError, match="review 0 must be a string"):
        predictor.classify([42])
    assert predictor.classify([]) == []
    assert local_runtime.requests == []


def test_endpoint_error_reaches_the_caller(predictor):
    with pytest.raises(ClientError) as raised:
        predictor.predict([{"text": "the wrong key"}])
    error = raised.value.response
    assert error["Error"]["Code"] == "ModelError"
    # Every handler error comes back as 400 from the HuggingFace toolkit, its message in the body.
    assert error["OriginalStatusCode"] == 400
    body = json.loads(error["OriginalMessage"])
    assert body["code"] == 400 and body["type"] == "InternalServerException"
    assert body["message"] == 'line 1: give exactly one of "review_body" (a string) or "features" (a list of one string)'
    assert "Traceback" not in error["OriginalMessage"]
