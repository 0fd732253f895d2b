"""Put prepared review records into the reviews Feature Group with the SageMaker SDK's own
ingestion: `FeatureGroup(name, session).ingest(data_frame, max_workers=..., wait=True)`.

The processing image carries the SDK (sagemaker 2.254.1, docs/decisions.md "Feature Store
ingestion"). Its IngestionManagerPandas splits the frame between `max_workers` threads, each
with its own featurestore-runtime client built from our client's botocore Config, so retries
are botocore's (`standard` or `adaptive` mode, `total_max_attempts` per record) and the SDK
reports the rows that still failed (IngestionError.failed_rows), which are counted here.

The SDK builds those clients from the environment, not from our client: the endpoint comes
from AWS_ENDPOINT_URL_SAGEMAKER_FEATURESTORE_RUNTIME (and AWS_ENDPOINT_URL_SAGEMAKER for the
DescribeFeatureGroup that ingest makes first) when set, else from the region.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import reviews

LOG = logging.getLogger("feature_store_ingestion")

SERVICE_NAME = "sagemaker-featurestore-runtime"
RETRY_MODES = ("standard", "adaptive")
# Newer SDKs emit telemetry from FeatureGroup calls (an STS call and an HTTPS request to an
# AWS bucket); a processing job has no business doing either.
TELEMETRY_OFF = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}}


class FeatureGroupUnavailable(RuntimeError):
    """The feature group could not be described, so nothing was ingested."""


@dataclass(frozen=True)
class IngestionSettings:
    feature_group_name: str
    max_workers: int = 8
    max_attempts: int = 5  # per record, the first one included
    retry_mode: str = "standard"
    failed_ids_kept: int = 10

    def __post_init__(self) -> None:
        if not self.feature_group_name:
            raise ValueError("feature_group_name must not be empty")
        if self.max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, got {self.max_workers}")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.retry_mode not in RETRY_MODES:
            raise ValueError(f"retry_mode must be one of {RETRY_MODES}, got {self.retry_mode!r}")


@dataclass
class IngestionResult:
    feature_group_name: str
    attempted: int = 0
    succeeded: int = 0
    failed: int = 0
    seconds: float = 0.0
    retry_mode: str = "standard"
    max_attempts: int = 0
    first_failed_record_ids: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def records_frame(records: Iterable[Mapping[str, Any]]):
    """Prepared records as ingest's DataFrame: one column per prepared column, in order, every
    value a string (input_ids as a compact JSON list), as the feature group stores them."""
    import pandas as pd

    rows = []
    for record in records:
        missing = [name for name in reviews.PREPARED_COLUMNS if name not in record]
        if missing:
            raise ValueError(f"record {record.get(reviews.RECORD_ID_FEATURE)!r} lacks {missing}")
        rows.append([_as_string(record[name]) for name in reviews.PREPARED_COLUMNS])
    return pd.DataFrame(rows, columns=list(reviews.PREPARED_COLUMNS), dtype=object)


def _as_string(value: Any) -> str:
    return json.dumps(value, separators=(",", ":")) if isinstance(value, (list, tuple)) else str(value)


def make_session(settings: IngestionSettings, *, region_name: str | None = None):
    """A SageMaker SDK session whose featurestore-runtime client carries the retry settings
    (ingest hands its Config to every worker's client) and whose telemetry is off."""
    import boto3
    from botocore.config import Config
    from sagemaker.session import Session

    boto_session = boto3.Session(region_name=region_name)
    config = Config(
        retries={"mode": settings.retry_mode, "total_max_attempts": settings.max_attempts},
        connect_timeout=10,
        read_timeout=30,
    )
    return Session(
        boto_session=boto_session,
        sagemaker_featurestore_runtime_client=boto_session.client(SERVICE_NAME, config=config),
        sagemaker_config=TELEMETRY_OFF,
    )


def ingest_records(records: Iterable[Mapping[str, Any]], settings: IngestionSettings) -> IngestionResult:
    """Put every record; never raises for records that fail: they are counted and the first
    ids kept (the SDK logs each failure's error). Raises FeatureGroupUnavailable when the
    group cannot be described."""
    from botocore.exceptions import BotoCoreError, ClientError
    from sagemaker.feature_store.feature_group import FeatureGroup, IngestionError

    frame = records_frame(records)
    result = IngestionResult(
        feature_group_name=settings.feature_group_name, attempted=len(frame),
        retry_mode=settings.retry_mode, max_attempts=settings.max_attempts,
    )
    if frame.empty:
        return result
    group = FeatureGroup(name=settings.feature_group_name, sagemaker_session=make_session(settings))
    started = time.monotonic()
    LOG.info(
        "ingesting %d records into %s with %d workers (%s retries, %d attempts per record)",
        len(frame), settings.feature_group_name, settings.max_workers, settings.retry_mode, settings.max_attempts,
    )
    failed_rows: list[int] = []
    try:
        group.ingest(data_frame=frame, max_workers=min(settings.max_workers, len(frame)), max_processes=1, wait=True)
    except IngestionError as error:
        failed_rows = sorted(error.failed_rows)
    except (ClientError, BotoCoreError) as error:
        # ingest describes the group before it puts anything.
        raise FeatureGroupUnavailable(f"cannot ingest into feature group {settings.feature_group_name}: {error}") from error
    result.seconds = round(time.monotonic() - started, 3)
    result.failed = len(failed_rows)
    result.succeeded = result.attempted - result.failed
    result.first_failed_record_ids = [str(frame.at[row, reviews.RECORD_ID_FEATURE]) for row in failed_rows[: settings.failed_ids_kept]]
    log = LOG.warning if result.failed else LOG.info
    log(
        "ingestion into %s finished: %d attempted, %d succeeded, %d failed in %.1f s%s",
        settings.feature_group_name, result.attempted, result.succeeded, result.failed, result.seconds,
        f"; first failed: {', '.join(result.first_failed_record_ids)}" if result.failed else "",
    )
    return result
