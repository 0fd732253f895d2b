"""Write prepared review records into a SageMaker Feature Group through the featurestore
runtime's PutRecord, with bounded parallelism, retries with backoff, and every failure reported.

Retries are ours, not botocore's: the client is built with botocore retries off, and each
record is retried here on throttling, 5xx and connection errors with capped, fully jittered
exponential backoff. botocore's standard mode would also retry those, but it shares one retry
quota across the client, so during a long, throttled ingestion it stops retrying and a record
fails after a single attempt; here every record gets the same explicit number of attempts, and
the count of retries is reported. A retry after an ambiguous failure (a timeout once the write
landed) is harmless: the online store keeps one record per id, and the offline store's extra,
identical row disappears in any latest-version query (see docs/data.md).
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from typing import Any

import reviews

LOG = logging.getLogger("feature_store_ingestion")

SERVICE_NAME = "sagemaker-featurestore-runtime"

# Error codes that mean "try again later". The runtime models InternalFailure (500) and
# ServiceUnavailable (503); throttling arrives as ThrottlingException (and its cousins).
RETRYABLE_ERROR_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestThrottled",
        "RequestLimitExceeded",
        "ProvisionedThroughputExceededException",
        "SlowDown",
        "InternalFailure",
        "InternalServerError",
        "ServiceUnavailable",
    }
)


@dataclass(frozen=True)
class IngestionSettings:
    feature_group_name: str
    max_workers: int = 8
    max_attempts: int = 5
    base_backoff_seconds: float = 0.2
    max_backoff_seconds: float = 10.0
    log_every_records: int = 1000
    errors_kept: int = 10

    def __post_init__(self) -> None:
        if not self.feature_group_name:
            raise ValueError("feature_group_name must not be empty")
        if self.max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, got {self.max_workers}")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.base_backoff_seconds < 0 or self.max_backoff_seconds < 0:
            raise ValueError("backoff seconds must not be negative")


@dataclass(frozen=True)
class RecordFailure:
    record_id: str
    error_code: str
    message: str
    attempts: int


@dataclass
class IngestionResult:
    feature_group_name: str
    attempted: int = 0
    succeeded: int = 0
    failed: int = 0
    retries: int = 0
    seconds: float = 0.0
    first_errors: list[RecordFailure] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class _Outcome:
    record_id: str
    attempts: int
    failure: RecordFailure | None


def to_feature_values(record: Mapping[str, Any]) -> list[dict[str, str]]:
    """A prepared record in PutRecord's FeatureValue format: every prepared column as a
    string (input_ids as a JSON list), in PREPARED_COLUMNS order."""
    missing = [name for name in reviews.PREPARED_COLUMNS if name not in record]
    if missing:
        raise ValueError(f"record {record.get(reviews.RECORD_ID_FEATURE)!r} lacks {missing}")
    values = []
    for name in reviews.PREPARED_COLUMNS:
        value = record[name]
        text = json.dumps(value, separators=(",", ":")) if isinstance(value, (list, tuple)) else str(value)
        values.append({"FeatureName": name, "ValueAsString": text})
    return values


def make_featurestore_client(*, endpoint_url: str | None = None, region_name: str | None = None, max_workers: int = 8):
    """A featurestore-runtime client for `ingest_records`: botocore's own retries off (see the
    module docstring) and a connection pool large enough for every worker thread.

    With endpoint_url None, boto3 resolves the endpoint itself, which includes the
    AWS_ENDPOINT_URL_SAGEMAKER_FEATURESTORE_RUNTIME environment variable.
    """
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"total_max_attempts": 1},
        max_pool_connections=max(10, max_workers),
        connect_timeout=10,
        read_timeout=30,
    )
    return boto3.client(SERVICE_NAME, endpoint_url=endpoint_url, region_name=region_name, config=config)


def is_retryable(error: Exception) -> bool:
    from botocore.exceptions import ClientError, ConnectionError as BotoConnectionError, HTTPClientError

    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return code in RETRYABLE_ERROR_CODES or status == 429 or status >= 500
    # Connection refused/reset, read/connect timeouts: transient by nature.
    return isinstance(error, (BotoConnectionError, HTTPClientError))


def _describe(error: Exception) -> tuple[str, str]:
    from botocore.exceptions import ClientError

    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        return details.get("Code", "ClientError"), details.get("Message", str(error))
    return type(error).__name__, str(error)


def _put_with_retries(
    client, record: Mapping[str, Any], settings: IngestionSettings, sleep: Callable[[float], None], jitter: random.Random
) -> _Outcome:
    record_id = str(record.get(reviews.RECORD_ID_FEATURE, "?"))
    try:
        feature_values = to_feature_values(record)
    except ValueError as error:
        return _Outcome(record_id, 0, RecordFailure(record_id, "InvalidRecord", str(error), 0))
    for attempt in range(1, settings.max_attempts + 1):
        try:
            client.put_record(FeatureGroupName=settings.feature_group_name, Record=feature_values)
            return _Outcome(record_id, attempt, None)
        except Exception as error:  # noqa: BLE001 - classified below, never swallowed
            code, message = _describe(error)
            if not is_retryable(error) or attempt == settings.max_attempts:
                return _Outcome(record_id, attempt, RecordFailure(record_id, code, message, attempt))
            ceiling = min(settings.max_backoff_seconds, settings.base_backoff_seconds * 2 ** (attempt - 1))
            sleep(jitter.uniform(0, ceiling))
    raise AssertionError("unreachable: the loop returns on its last attempt")


def ingest_records(
    client,
    records: Iterable[Mapping[str, Any]],
    settings: IngestionSettings,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> IngestionResult:
    """Put every record; returns counts and the first failures. At most max_workers requests
    are in flight and at most 4 x max_workers records are queued, so memory stays flat for any
    number of records. Never raises for a record that fails: it is counted and reported."""
    result = IngestionResult(feature_group_name=settings.feature_group_name)
    started = time.monotonic()
    jitter = random.Random()
    max_queued = settings.max_workers * 4
    pending: set[Future] = set()

    def collect(done: Iterable[Future]) -> None:
        for future in done:
            outcome: _Outcome = future.result()
            result.retries += max(outcome.attempts - 1, 0)
            if outcome.failure is None:
                result.succeeded += 1
            else:
                result.failed += 1
                if len(result.first_errors) < settings.errors_kept:
                    result.first_errors.append(outcome.failure)
            finished = result.succeeded + result.failed
            if finished % settings.log_every_records == 0:
                rate = finished / max(time.monotonic() - started, 1e-9)
                LOG.info(
                    "ingested %d records into %s (%d failed, %d retries, %.0f records/s)",
                    finished, settings.feature_group_name, result.failed, result.retries, rate,
                )

    with ThreadPoolExecutor(max_workers=settings.max_workers, thread_name_prefix="put-record") as executor:
        for record in records:
            if len(pending) >= max_queued:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                collect(done)
            pending.add(executor.submit(_put_with_retries, client, record, settings, sleep, jitter))
            result.attempted += 1
        done, _ = wait(pending)
        collect(done)

    result.seconds = round(time.monotonic() - started, 3)
    log = LOG.warning if result.failed else LOG.info
    log(
        "ingestion into %s finished: %d attempted, %d succeeded, %d failed, %d retries in %.1f s",
        settings.feature_group_name, result.attempted, result.succeeded, result.failed, result.retries, result.seconds,
    )
    for failure in result.first_errors:
        LOG.warning("record %s failed after %d attempt(s): %s: %s", failure.record_id, failure.attempts, failure.error_code, failure.message)
    return result
