"""The served artifact needs no network, so real-time endpoints run its container network-isolated
(`EnableNetworkIsolation`, stacks/components/approved_model_endpoint.py): the HuggingFace
inference toolkit loads and answers from the artifact alone, with no route out and every
attempt at a connection or a name lookup recorded, and nothing in the artifact or the registered
environment asks the toolkit to install or download anything at start-up."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import model_io
from local_pipeline.containers import PARITY_ROOT
from pipeline_definition.steps import register

INFERENCE_PARITY_PYTHON = PARITY_ROOT / "inference" / "bin" / "python"

# Serves one request through the toolkit's HuggingFaceHandlerService (what the image's MMS worker
# runs), after making every IP connection and name lookup fail as they do in an isolated container,
# and records each attempt.
ISOLATED_SERVE = r'''
import json, socket, sys

attempts = []

def _refuse(kind):
    def refuse(*args, **kwargs):
        attempts.append(f"{kind} {args[1:] if kind == 'connect' else args[:1]}")
        raise OSError(101, "Network is unreachable (network isolation)")
    return refuse

_connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex
def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        return _refuse("connect")(self, address)
    return _connect(self, address)
socket.socket.connect = connect
socket.socket.connect_ex = lambda self, address: connect(self, address) or 0
socket.getaddrinfo = _refuse("getaddrinfo")
socket.gethostbyname = _refuse("gethostbyname")

from sagemaker_huggingface_inference_toolkit.handler_service import HuggingFaceHandlerService

class Context:
    def __init__(self, model_dir, headers):
        self.system_properties = {"model_dir": model_dir, "gpu_id": None, "batch_size": 1}
        self.request_processor = [type("R", (), {"get_request_properties": lambda _self: headers})()]
        self.metrics = type("M", (), {"add_time": lambda *args, **kwargs: None})()
        self.content_type = None
    def set_response_content_type(self, index, value):
        self.content_type = value

model_dir = sys.argv[1]
headers = {"Content-Type": "application/json", "Accept": "application/json"}
service = HuggingFaceHandlerService()
service.initialize(Context(model_dir, headers))
body = json.dumps([{"review_body": "I love it, works great"}]).encode()
[answer] = service.handle([{"body": bytearray(body)}], Context(model_dir, headers))
print(json.dumps({"answer": json.loads(answer), "attempts": attempts}))
'''


def test_the_artifact_installs_nothing_at_start_up(trained_model_dir):
    # The toolkit pip-installs code/requirements.txt when present: that needs the network.
    code_dir = trained_model_dir / model_io.SERVING_CODE_DIR
    assert sorted(path.name for path in code_dir.iterdir() if path.is_file()) == sorted(model_io.SERVING_CODE_FILES)


def test_the_registered_environment_downloads_no_model():
    # HF_MODEL_ID makes the toolkit fetch a model from the Hub instead of serving the artifact.
    assert not {"HF_MODEL_ID", "HF_TASK", "HF_API_TOKEN"} & set(register.INFERENCE_ENVIRONMENT)


def test_the_huggingface_toolkit_serves_the_artifact_without_a_network(trained_model_dir, tmp_path):
    if not INFERENCE_PARITY_PYTHON.exists():
        pytest.skip("the inference image's parity env is missing: `make setup-parity` builds it (make test does)")
    script = tmp_path / "isolated_serve.py"
    script.write_text(ISOLATED_SERVE)
    command = [str(INFERENCE_PARITY_PYTHON), str(script), str(trained_model_dir)]
    if sys.platform == "linux" and os.geteuid() == 0 and shutil.which("unshare"):
        command = ["unshare", "--net", *command]  # and no network interface either, where we may
    # A container's environment: the registered variables, no Hub offline switch, an empty cache.
    environment = {
        "PATH": f"{INFERENCE_PARITY_PYTHON.parent}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        **register.INFERENCE_ENVIRONMENT,
        "SAGEMAKER_SUBMIT_DIRECTORY": str(Path(trained_model_dir) / model_io.SERVING_CODE_DIR),
    }
    completed = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-4000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["attempts"] == []
    [prediction] = result["answer"]
    assert prediction["label"] in ("negative", "neutral", "positive")
