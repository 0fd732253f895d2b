"""A model artifact served over HTTP on 127.0.0.1 the way the HuggingFace inference image serves
it: sagemaker-huggingface-inference-toolkit's own model server (MMS, through its
`serving.main()`), in the inference parity environment (`make setup-parity`), importing
<model dir>/code/inference.py. `local_pipeline/hf_model_server.py` is what that interpreter runs.

    with LocalEndpoint(model_dir) as endpoint:
        response = endpoint.invoke('{"review_body": "great"}', "application/json")

Under that toolkit every handler error (a bad request, a model that fails) is answered 400
with `{"code": 400, "type": "InternalServerException", "message": str(error)}` (docs/serving.md).
"""

from __future__ import annotations

import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SERVER_SCRIPT = Path(__file__).resolve().parent / "hf_model_server.py"
# Built by `make setup-parity` with the inference image's versions (pipeline_definition/images.py).
INFERENCE_ENV = Path(".parity") / "inference"
INFERENCE_SCRIPT = "inference.py"  # SAGEMAKER_PROGRAM, the toolkit's default too
HOST = "127.0.0.1"
LOG_TAIL_LINES = 40
MMS_PORT_RANGE = (20000, 32767)


def inference_python(project_root: Path = PROJECT_ROOT) -> Path:
    """The inference parity environment's interpreter (it may not exist yet)."""
    return project_root / INFERENCE_ENV / "bin" / "python"


class EndpointError(RuntimeError):
    """The local endpoint could not start or stopped answering; the message ends with its log."""


@dataclass(frozen=True)
class Response:
    status: int
    content_type: str | None
    body: str

    def json(self):
        return json.loads(self.body)

    @property
    def message(self) -> str | None:
        """The toolkit's error message (str of the handler's exception) of an error response."""
        if self.status == 200:
            return None
        try:
            return self.json().get("message")
        except (ValueError, AttributeError):
            return None


class LocalEndpoint:
    """One model server for an unpacked artifact (model files plus code/inference.py), started
    on entering the `with` block and stopped, with every process it started, on leaving it."""

    def __init__(
        self,
        model_dir: Path,
        *,
        python: Path | None = None,
        environment: dict[str, str] | None = None,
        workers: int = 1,
        startup_timeout: float = 120.0,
    ) -> None:
        self.model_dir = Path(model_dir).resolve()
        self.python = Path(python) if python is not None else inference_python()
        self.environment = dict(environment or {})  # the model's environment (e.g. REVIEW_CLASSIFIER_*)
        self.workers = workers
        self.startup_timeout = startup_timeout
        self.port: int | None = None
        self._process: subprocess.Popen | None = None
        self._stop_on_exit: weakref.finalize | None = None
        self._work_dir: tempfile.TemporaryDirectory | None = None

    # --- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> "LocalEndpoint":
        self.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    @property
    def url(self) -> str:
        if self.port is None:
            raise EndpointError("the endpoint is not running: use `with LocalEndpoint(...) as endpoint`")
        return f"http://{HOST}:{self.port}"

    @property
    def log_path(self) -> Path:
        return Path(self._work_dir.name) / "server.log"

    def start(self) -> None:
        if not (self.model_dir / "code" / INFERENCE_SCRIPT).is_file():
            raise FileNotFoundError(f"{self.model_dir}/code/{INFERENCE_SCRIPT} is missing: the artifact cannot be served")
        if not self.python.exists():
            raise FileNotFoundError(
                f"{self.python} does not exist: `make setup-parity` builds the inference parity environment")
        if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
            raise EndpointError("the model server (MMS) needs Java on PATH or JAVA_HOME (Java 17 works)")
        self._work_dir = tempfile.TemporaryDirectory(prefix="local-endpoint-")
        work = Path(self._work_dir.name)
        # The toolkit serves SAGEMAKER_BASE_DIR/model; link the artifact there rather than copy it.
        (work / "base").mkdir()
        (work / "base" / "model").symlink_to(self.model_dir, target_is_directory=True)
        # A private temporary folder holds MMS's worker socket (.mms.sock.9000) and pid file,
        # which otherwise live in /tmp and allow one server per host.
        (work / "tmp").mkdir()
        self.port = _free_port()
        environment = {
            **{key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")},
            **self.environment,
            "PATH": f"{self.python.parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "SAGEMAKER_BASE_DIR": str(work / "base"),
            "SAGEMAKER_BIND_TO_PORT": str(self.port),
            "SAGEMAKER_PROGRAM": INFERENCE_SCRIPT,
            "SAGEMAKER_MODEL_SERVER_WORKERS": str(self.workers),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "TEMP": str(work / "tmp"),
            "TMPDIR": str(work / "tmp"),
            "LOG_LOCATION": str(work / "logs"),
            "METRICS_LOCATION": str(work / "logs"),
        }
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [str(self.python), str(SERVER_SCRIPT), str(work / "sagemaker-mms.properties")],
                cwd=work, env=environment, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: MMS's Java and workers stop with it
            )
        # Stops the server even if the caller never leaves the `with` block (an interpreter exit).
        self._stop_on_exit = weakref.finalize(self, _stop_process_group, self._process)
        try:
            self._wait_until_healthy()
        except BaseException:
            self.close()
            raise

    def _wait_until_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise EndpointError(f"the model server exited with {self._process.returncode} before it was healthy"
                                    f"{self._log_tail()}")
            if self.ping() == 200:
                return
            time.sleep(0.25)
        raise EndpointError(f"GET {self.url}/ping did not answer 200 within {self.startup_timeout:.0f} s{self._log_tail()}")

    def close(self) -> None:
        if self._stop_on_exit is not None:
            self._stop_on_exit()  # runs _stop_process_group once
            self._stop_on_exit = self._process = None
        if self._work_dir is not None:
            self._work_dir.cleanup()
            self._work_dir = None
        self.port = None

    # --- requests ------------------------------------------------------------------------------
    def ping(self) -> int | None:
        """The status of GET /ping, or None while nothing answers."""
        try:
            return self._request("GET", "/ping", b"", {}, timeout=5).status
        except OSError:
            return None

    def invoke(self, body: bytes | str, content_type: str | None = None, accept: str | None = None,
               *, timeout: float = 60) -> Response:
        """POST /invocations, as SageMaker forwards an InvokeEndpoint call to the container."""
        payload = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        headers = {"Content-Type": content_type, "Accept": accept}
        try:
            answer = self._request("POST", "/invocations", payload,
                                   {k: v for k, v in headers.items() if v is not None}, timeout=timeout)
        except OSError as error:
            raise EndpointError(f"POST {self.url}/invocations failed: {error}{self._log_tail()}") from None
        return answer

    def _request(self, method: str, path: str, payload: bytes, headers: dict[str, str], *, timeout: float) -> Response:
        connection = http.client.HTTPConnection(HOST, self.port, timeout=timeout)
        try:
            connection.request(method, path, body=payload, headers=headers)
            answer = connection.getresponse()
            text = answer.read().decode("utf-8", errors="replace")
            return Response(answer.status, answer.getheader("Content-Type"), text)
        finally:
            connection.close()

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        except (OSError, AttributeError):
            return ""
        return "\n--- model server log (last lines) ---\n" + "\n".join(lines)


def _free_port() -> int:
    # MMS refuses ports from 32767 up ("Invalid port number"), where Linux's ephemeral range
    # starts, so asking the kernel for any free port would not do.
    for port in random.sample(range(*MMS_PORT_RANGE), 200):
        with socket.socket() as probe:
            try:
                probe.bind((HOST, port))
            except OSError:
                continue
            return port
    raise EndpointError(f"no free port in {MMS_PORT_RANGE} on {HOST}")


def _stop_process_group(process: subprocess.Popen, grace_seconds: float = 10.0) -> None:
    """SIGTERM to the whole group (a SIGTERM to the parent alone leaves the Python worker), then
    SIGKILL to what is left."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()
