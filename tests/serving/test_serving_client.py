"""The shipped client (`serving_client.ReviewClassifierPredictor`) against the real serving code.

The tiny RoBERTa from tests/tiny_roberta.py is saved as a model artifact (weights, tokenizer,
metadata, code/inference.py) and served the way the SageMaker PyTorch container serves it:
sagemaker-pytorch-inference's HandlerService runs model_fn -> input_fn -> predict_fn -> output_fn.
A small HTTP server on 127.0.0.1 puts that handler behind the SageMaker runtime's InvokeEndpoint
route (POST /endpoints/<name>/invocations, container 4xx answered as ModelError like the real
runtime), so the SDK's Predictor goes through boto3 and HTTP exactly as against AWS - what the
SDK's local mode does with Docker, without Docker.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

import inference
import model_io
import reviews
from serving_client import ReviewClassifierPredictor, review_requests
from tiny_roberta import build_tiny_roberta

ENDPOINT_NAME = "review-classifier-test"
MAX_SEQ_LENGTH = 32
TEXTS = [
    "Great product, I love it and would recommend it.",
    "Terrible. It arrived broken and I want a refund.",
    "It is okay, about what I expected.",
    "Émoji and accents survive: très bien 👍",
    'Quotes "inside" and a backslash \\ too',
]
INVOCATION_PATH = re.compile(r"^/endpoints/(?P<name>[^/]+)/invocations$")


# --- A model artifact and the container's handler service -------------------------------------

@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    directory = build_tiny_roberta(tmp_path_factory.mktemp("tiny-roberta-artifact"))
    (directory / model_io.ARTIFACT_METADATA_FILE).write_text(
        json.dumps(model_io.ArtifactMetadata(max_seq_length=MAX_SEQ_LENGTH).to_json())
    )
    model_io.copy_serving_code(directory)  # code/inference.py, as training ships it
    return directory


class _RequestProcessor:
    def __init__(self, headers: dict[str, str]) -> None:
        self._headers = headers

    def get_request_properties(self) -> dict[str, str]:
        return self._headers


class InvocationContext:
    """The parts of the model server's context the SageMaker inference toolkit reads and sets."""

    def __init__(self, model_dir: Path, headers: dict[str, str]) -> None:
        self.system_properties = {"model_dir": str(model_dir), "gpu_id": None}
        self.request_processor = [_RequestProcessor(headers)]
        self.model_name = ENDPOINT_NAME
        self.content_type = None
        self.status = 200
        self.phrase = "OK"

    def set_response_content_type(self, index: int, content_type: str) -> None:
        self.content_type = content_type

    def set_response_status(self, code: int, phrase: str) -> None:
        self.status, self.phrase = code, phrase


@pytest.fixture(scope="module")
def handler_service(model_dir):
    from sagemaker_pytorch_serving_container.handler_service import HandlerService

    saved_pythonpath = os.environ.get("PYTHONPATH")
    code_dir = str(model_dir / model_io.SERVING_CODE_DIR)
    sys.path.insert(0, code_dir)  # the model server imports inference.py from model_dir/code
    service = HandlerService()
    service.initialize(InvocationContext(model_dir, {}))
    yield service
    sys.path.remove(code_dir)
    if saved_pythonpath is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = saved_pythonpath


class LocalRuntime:
    """InvokeEndpoint on 127.0.0.1, answered by the handler service; records each request."""

    def __init__(self, service, model_dir: Path) -> None:
        self.requests: list[dict] = []
        runtime = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                match = INVOCATION_PATH.match(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {"Content-Type": self.headers.get("Content-Type", ""), "Accept": self.headers.get("Accept", "")}
                runtime.requests.append({**headers, "body": body})
                if not match or match["name"] != ENDPOINT_NAME:
                    self._answer(400, {"x-amzn-ErrorType": "ValidationError"},
                                 json.dumps({"message": f"Endpoint {self.path} not found."}).encode())
                    return
                context = InvocationContext(model_dir, headers)
                (result,) = service.handle([{"body": body}], context)
                payload = result.encode() if isinstance(result, str) else bytes(result)
                if context.status == 200:
                    self._answer(200, {"Content-Type": context.content_type}, payload)
                else:  # the runtime wraps a container error into ModelError (HTTP 424)
                    error = {
                        "ErrorCode": "CLIENT_ERROR_FROM_MODEL",
                        "Message": f"Received client error ({context.status}) from primary",
                        "OriginalStatusCode": context.status,
                        "OriginalMessage": payload.decode(errors="replace").splitlines()[0],
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
def local_runtime(handler_service, model_dir, offline_aws_environment):
    runtime = LocalRuntime(handler_service, model_dir)
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


def test_deserializer_reads_what_output_fn_writes(offline_predictor, handler_service):
    classifier = handler_service._service._model  # what model_fn loaded
    predictions = inference.predict_fn(TEXTS, classifier)
    accept = ", ".join(offline_predictor.accept)
    assert accept == "application/jsonlines"
    # output_fn returns the body only; the serving toolkits answer with Content-Type = Accept.
    body = inference.output_fn(predictions, accept)
    assert body.count("\n") == len(predictions)
    assert offline_predictor.deserializer.deserialize(io.BytesIO(body.encode("utf-8")), accept) == predictions


# --- End to end: Predictor -> boto3 -> HTTP -> HandlerService -> inference.py --------------------

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
    assert error["OriginalStatusCode"] == 400
    assert "review_body" in error["OriginalMessage"]
