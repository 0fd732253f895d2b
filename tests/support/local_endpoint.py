"""What the serving tests share: `serve`, a `LocalEndpoint` that skips the test when the inference
parity environment is missing, and a tiny deployable artifact (tests/tiny_roberta.py's model,
the artifact metadata and code/ as train.py ships it)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import model_io
from local_pipeline.serving import LocalEndpoint, inference_python
from tiny_roberta import build_tiny_roberta


# MMS 1.1.11 now and then fails to decode a worker's reply, answers 500 with this message and
# restarts the worker, whatever the request was (docs/serving.md).
MMS_WORKER_DIED = "Worker died."


def lost_by_mms(status: int, body: str) -> bool:
    try:
        return status == 500 and json.loads(body).get("message") == MMS_WORKER_DIED
    except (ValueError, AttributeError):
        return False


class RetriedWhenTheWorkerDies:
    """A LocalEndpoint whose invoke repeats a request once when MMS lost the worker's reply, for
    tests that check a request's own answer rather than what the server as a whole reports."""

    def __init__(self, endpoint: LocalEndpoint) -> None:
        self.endpoint = endpoint

    def invoke(self, *args, **kwargs):
        response = self.endpoint.invoke(*args, **kwargs)
        if lost_by_mms(response.status, response.body):
            response = self.endpoint.invoke(*args, **kwargs)
        return response

    def __getattr__(self, name: str):
        return getattr(self.endpoint, name)


@contextmanager
def serve(model_dir: Path, *, retry_when_the_worker_dies: bool = True, **options) -> Iterator[LocalEndpoint]:
    """The artifact served as the inference image serves it, for a fixture to yield; skips the
    test when the inference parity environment is missing."""
    if not inference_python().exists():
        pytest.skip(f"{inference_python()} is missing: `make setup-parity` builds the inference parity environment")
    if "MUTANT_UNDER_TEST" in os.environ:
        pytest.skip("under mutmut (make mutation): the endpoint runs inference.py in the image's Python, "
                    "which cannot import mutmut's trampolines; the in-process toolkit tests stand in")
    with LocalEndpoint(model_dir, **options) as endpoint:
        yield RetriedWhenTheWorkerDies(endpoint) if retry_when_the_worker_dies else endpoint


def build_tiny_artifact(destination: Path, *, max_seq_length: int = 32) -> Path:
    """A random tiny RoBERTa saved as train.py saves a model: the Hugging Face files, the
    artifact metadata and the serving code under code/."""
    directory = build_tiny_roberta(destination)
    (directory / model_io.ARTIFACT_METADATA_FILE).write_text(
        json.dumps(model_io.ArtifactMetadata(max_seq_length=max_seq_length).to_json())
    )
    model_io.copy_serving_code(directory)
    return directory
