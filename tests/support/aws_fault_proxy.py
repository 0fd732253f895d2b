"""An HTTP proxy on 127.0.0.1 that forwards AWS API calls to moto's server, records them and
can answer chosen calls with AWS-style errors instead (throttling, validation errors, 5xx).

Import it as `from support.aws_fault_proxy import AwsFaultProxy` (pytest puts tests/ on the
path through tests/conftest.py; `tests.support` would find an unrelated site-packages `tests`).
Point a boto3 client at `proxy.url` instead of moto's URL; every request still reaches moto
unless a fault matches it, so the code under test meets real responses *and* real failures::

    with AwsFaultProxy(moto_endpoint) as proxy:
        proxy.inject("CreatePipeline", times=2)                     # ThrottlingException x2
        proxy.inject("UpdatePipeline", error_code="ValidationException",
                     message="Role is not valid", times=1)
        client = boto3.client("sagemaker", endpoint_url=proxy.url)
        ...
        assert proxy.count("CreatePipeline") == 3                     # 2 throttled + 1 forwarded
        assert proxy.operations(forwarded_only=True) == ["CreatePipeline"]

How a call is named (what `inject` patterns and `calls` refer to):
- JSON protocols (SageMaker, DynamoDB, ...): the operation after the dot of `X-Amz-Target`
  (`SageMaker.CreatePipeline` -> `CreatePipeline`).
- Query protocols (STS, SQS classic, ...): the `Action` parameter.
- REST protocols (S3, ...), which carry no operation name: `"<METHOD> <path>"`, e.g.
  `"PUT /my-bucket/key.json"`; match those with a glob pattern (`"PUT /my-bucket/*"`).

Injected errors use the body format botocore parses for the request's protocol, so the
client raises `botocore.exceptions.ClientError` with the given code and message, and
botocore's retry logic treats them exactly as it treats the real ones.
"""

from __future__ import annotations

import fnmatch
import http.client
import json
import threading
import urllib.parse
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape

__all__ = ["AwsFaultProxy", "Fault", "RecordedCall"]

# Headers that describe one hop of a connection, never forwarded (RFC 9110, section 7.6.1).
_HOP_BY_HOP_HEADERS = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
     "transfer-encoding", "upgrade"}
)
_UPSTREAM_TIMEOUT_SECONDS = 60


@dataclass
class Fault:
    """An error answered instead of forwarding, for the next `remaining` matching calls."""

    operation: str
    error_code: str
    message: str
    status: int
    remaining: int

    def matches(self, operation: str) -> bool:
        return self.remaining > 0 and fnmatch.fnmatchcase(operation, self.operation)


@dataclass(frozen=True)
class RecordedCall:
    """One request the proxy received, and what became of it."""

    operation: str
    method: str
    path: str
    status: int
    injected: bool
    body: bytes = field(repr=False)

    def json_body(self) -> dict:
        """The request's JSON parameters (JSON protocols); {} when the body is empty."""
        return json.loads(self.body) if self.body else {}


class AwsFaultProxy:
    """Forwarding proxy with fault injection; use as a context manager or start()/stop()."""

    def __init__(self, upstream_url: str) -> None:
        parsed = urllib.parse.urlsplit(upstream_url)
        if parsed.scheme != "http" or not parsed.hostname or not parsed.port:
            raise ValueError(f"upstream_url must look like http://127.0.0.1:<port>, got {upstream_url!r}")
        self._upstream = (parsed.hostname, parsed.port)
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._calls: list[RecordedCall] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> str:
        """Listen on an ephemeral port of 127.0.0.1; returns the proxy's URL."""
        if self._server is not None:
            raise RuntimeError("proxy already started")
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_class(self))
        self._server.daemon_threads = True
        # A short poll interval keeps stop() quick (shutdown waits for the loop to notice).
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="aws-fault-proxy", daemon=True
        )
        self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None

    def __enter__(self) -> "AwsFaultProxy":
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("proxy not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- faults ------------------------------------------------------------------------------

    def inject(
        self,
        operation: str,
        *,
        error_code: str = "ThrottlingException",
        message: str = "Rate exceeded",
        status: int = 400,
        times: int = 1,
    ) -> Fault:
        """Answer the next `times` calls whose name matches `operation` (exact or glob) with an
        AWS error; later calls are forwarded again. Faults are tried in the order injected."""
        if times < 1:
            raise ValueError("times must be at least 1")
        if not 400 <= status <= 599:
            raise ValueError(f"status must be an HTTP error status (400-599), got {status}")
        fault = Fault(operation=operation, error_code=error_code, message=message, status=status, remaining=times)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        """Forget every pending fault and every recorded call."""
        with self._lock:
            self._faults.clear()
            self._calls.clear()

    # -- what happened -----------------------------------------------------------------------

    @property
    def calls(self) -> list[RecordedCall]:
        """Every request received so far, in arrival order (a copy)."""
        with self._lock:
            return list(self._calls)

    def operations(self, *, forwarded_only: bool = False) -> list[str]:
        """Names of the calls received, in order; `forwarded_only` drops the injected errors."""
        return [call.operation for call in self.calls if not (forwarded_only and call.injected)]

    def count(self, operation: str, *, forwarded_only: bool = False) -> int:
        """How many received calls match `operation` (exact or glob)."""
        return sum(1 for name in self.operations(forwarded_only=forwarded_only) if fnmatch.fnmatchcase(name, operation))

    # -- used by the request handler ---------------------------------------------------------

    def _take_fault(self, operation: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(operation):
                    fault.remaining -= 1
                    return fault
        return None

    def _record(self, call: RecordedCall) -> None:
        with self._lock:
            self._calls.append(call)


def operation_name(method: str, path: str, headers: dict[str, str], body: bytes) -> str:
    """The name a call is recorded and matched under (see the module docstring)."""
    target = headers.get("x-amz-target")
    if target:
        return target.rsplit(".", 1)[-1]
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
    if "Action" in query:
        return query["Action"][0]
    if headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        form = urllib.parse.parse_qs(body.decode("utf-8", errors="replace"))
        if "Action" in form:
            return form["Action"][0]
    return f"{method} {urllib.parse.urlsplit(path).path}"


def error_response(fault: Fault, headers: dict[str, str], body: bytes) -> tuple[dict[str, str], bytes]:
    """Headers and body of an AWS error in the wire format of the request's protocol."""
    request_id = str(uuid.uuid4())
    content_type = headers.get("content-type", "")
    if "x-amz-target" in headers or "json" in content_type:
        payload = json.dumps({"__type": fault.error_code, "message": fault.message}).encode()
        return (
            {"Content-Type": content_type or "application/x-amz-json-1.1",
             "x-amzn-ErrorType": fault.error_code, "x-amzn-RequestId": request_id},
            payload,
        )
    code, message = escape(fault.error_code), escape(fault.message)
    is_query = content_type.startswith("application/x-www-form-urlencoded") and b"Action=" in body
    if is_query:
        xml = (f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message>"
               f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>")
    else:
        xml = f"<Error><Code>{code}</Code><Message>{message}</Message><RequestId>{request_id}</RequestId></Error>"
    return {"Content-Type": "text/xml", "x-amzn-RequestId": request_id}, xml.encode()


def _handler_class(proxy: AwsFaultProxy) -> type[BaseHTTPRequestHandler]:
    class _ProxyRequestHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as botocore's connection pool expects

        def _handle(self) -> None:
            headers = {name.lower(): value for name, value in self.headers.items()}
            body = self._read_body(headers)
            operation = operation_name(self.command, self.path, headers, body)
            fault = proxy._take_fault(operation)
            if fault is not None:
                response_headers, response_body = error_response(fault, headers, body)
                status = fault.status
            else:
                status, response_headers, response_body = self._forward(body)
            proxy._record(RecordedCall(operation=operation, method=self.command, path=self.path,
                                       status=status, injected=fault is not None, body=body))
            self.send_response(status)
            for name, value in response_headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(response_body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response_body)

        def _read_body(self, headers: dict[str, str]) -> bytes:
            if headers.get("transfer-encoding", "").lower() == "chunked":
                chunks = []
                while (size := int(self.rfile.readline().split(b";")[0].strip(), 16)) > 0:
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            return self.rfile.read(int(headers.get("content-length", "0") or 0))

        def _forward(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
            connection = http.client.HTTPConnection(*proxy._upstream, timeout=_UPSTREAM_TIMEOUT_SECONDS)
            try:
                forwarded_headers = {
                    name: value for name, value in self.headers.items() if name.lower() not in _HOP_BY_HOP_HEADERS
                }
                forwarded_headers["Content-Length"] = str(len(body))
                connection.request(self.command, self.path, body=body, headers=forwarded_headers)
                response = connection.getresponse()
                response_body = response.read()
                response_headers = {
                    name: value for name, value in response.getheaders()
                    if name.lower() not in _HOP_BY_HOP_HEADERS and name.lower() != "content-length"
                }
                return response.status, response_headers, response_body
            finally:
                connection.close()

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _handle

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
            pass  # the recorded calls are the log; stderr noise would bury test output

    return _ProxyRequestHandler
