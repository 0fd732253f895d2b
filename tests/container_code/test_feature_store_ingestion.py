"""Feature Store ingestion through the SageMaker SDK's FeatureGroup.ingest, against a fake
featurestore runtime on 127.0.0.1 that real boto3 clients talk to (moto does not serve this
API): botocore's retries on throttling and 5xx, exactly-once arrival, failures counted."""

from __future__ import annotations

import json

import pytest

import feature_store_ingestion as ingestion
import reviews
from data_support import DEV_FEATURE_GROUP, FakeFeatureStore, PlannedError

GROUP = DEV_FEATURE_GROUP
THROTTLED = PlannedError(400, "ThrottlingException")
INTERNAL = PlannedError(500, "InternalFailure")
UNAVAILABLE = PlannedError(503, "ServiceUnavailable")
INVALID = PlannedError(400, "ValidationError")


def make_records(count: int) -> list[dict]:
    return [
        reviews.prepared_record(
            review_id=f"r{index:04d}",
            date="2015-08-31T00:00:00Z",
            sentiment=(index % 3) - 1,
            input_ids=[101, index, 102, 0],
            review_body=f"review number {index}, with \"quotes\" and ünïcode",
            split_type=reviews.SPLIT_NAMES[index % 3],
        )
        for index in range(count)
    ]


def feature_values(record: dict) -> dict[str, str]:
    """What the feature group must store for a record: every prepared column as a string."""
    return {
        name: json.dumps(record[name], separators=(",", ":")) if name == "input_ids" else str(record[name])
        for name in reviews.PREPARED_COLUMNS
    }


@pytest.fixture
def fake_store(monkeypatch):
    """The fake serves both calls ingest makes; the SDK builds its clients from these variables."""
    store = FakeFeatureStore().start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_FEATURESTORE_RUNTIME", store.endpoint_url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", store.endpoint_url)
    yield store
    store.stop()


def ingest(records, **settings) -> ingestion.IngestionResult:
    return ingestion.ingest_records(records, ingestion.IngestionSettings(feature_group_name=GROUP, **settings))


def test_records_frame_has_every_prepared_column_as_a_string():
    records = make_records(3)
    frame = ingestion.records_frame(records)
    assert list(frame.columns) == list(reviews.PREPARED_COLUMNS)
    assert [dict(row) for _, row in frame.iterrows()] == [feature_values(record) for record in records]
    assert frame.at[1, "input_ids"] == "[101,1,102,0]" and frame.at[1, "label_id"] == "1"


def test_records_frame_rejects_a_record_without_every_column():
    record = make_records(1)[0]
    del record["date"]
    with pytest.raises(ValueError, match="date"):
        ingestion.records_frame([record])


def test_every_record_arrives_exactly_once_with_its_feature_values(fake_store):
    records = make_records(40)
    fake_store.delay_seconds = 0.01
    result = ingest(records, max_workers=4)

    assert (result.attempted, result.succeeded, result.failed) == (40, 40, 0)
    assert fake_store.described == [GROUP]
    assert fake_store.stored_record_ids() == {record["review_id"]: 1 for record in records}
    assert {group for group, _ in fake_store.stored} == {GROUP}
    stored = fake_store.stored_records()
    assert all(stored[record["review_id"]] == feature_values(record) for record in records)
    assert 2 <= fake_store.max_in_flight <= 4  # the SDK's worker threads, at most max_workers


@pytest.mark.parametrize("retry_mode", ingestion.RETRY_MODES)
def test_throttling_and_5xx_are_retried_by_botocore(fake_store, retry_mode):
    fake_store.fail_first_calls = [THROTTLED, THROTTLED, INTERNAL, UNAVAILABLE, THROTTLED]
    records = make_records(12)
    # six attempts: even if one record drew all five planned errors, it would still succeed
    result = ingest(records, max_workers=3, max_attempts=6, retry_mode=retry_mode)

    assert (result.succeeded, result.failed, result.first_failed_record_ids) == (12, 0, [])
    assert fake_store.stored_record_ids() == {record["review_id"]: 1 for record in records}
    statuses = [status for _, _, status in fake_store.calls]
    assert (len(statuses), statuses.count(200)) == (17, 12)


def test_permanent_errors_are_counted_and_not_retried(fake_store):
    records = make_records(10)
    fake_store.errors_by_record_id = {"r0003": INVALID, "r0007": INVALID}
    result = ingest(records, max_workers=2)

    assert (result.attempted, result.succeeded, result.failed) == (10, 8, 2)
    assert result.first_failed_record_ids == ["r0003", "r0007"]
    assert sum(1 for _, record_id, _ in fake_store.calls if record_id in {"r0003", "r0007"}) == 2
    assert set(fake_store.stored_record_ids()) == {r["review_id"] for r in records} - {"r0003", "r0007"}


def test_a_record_that_keeps_failing_stops_after_max_attempts(fake_store):
    fake_store.errors_by_record_id = {"r0001": UNAVAILABLE}
    result = ingest(make_records(3), max_workers=1, max_attempts=3)

    assert (result.succeeded, result.failed, result.first_failed_record_ids) == (2, 1, ["r0001"])
    assert sum(1 for _, record_id, _ in fake_store.calls if record_id == "r0001") == 3


def test_failed_ids_are_capped_but_every_failure_is_counted(fake_store):
    fake_store.errors_by_record_id = {f"r{index:04d}": INVALID for index in range(15)}
    result = ingest(make_records(20), failed_ids_kept=5)
    assert (result.succeeded, result.failed) == (5, 15)
    assert result.first_failed_record_ids == [f"r{index:04d}" for index in range(5)]


def test_a_missing_feature_group_stops_before_any_record_is_put(fake_store):
    with pytest.raises(ingestion.FeatureGroupUnavailable, match="ResourceNotFound"):
        ingestion.ingest_records(make_records(3), ingestion.IngestionSettings(feature_group_name="no-such-group"))
    assert fake_store.described == ["no-such-group"] and fake_store.calls == []


def test_the_session_carries_the_retry_settings_and_no_telemetry():
    from sagemaker.config.config_schema import TELEMETRY_OPT_OUT_PATH
    from sagemaker.utils import resolve_value_from_config

    settings = ingestion.IngestionSettings(feature_group_name=GROUP, max_attempts=7, retry_mode="adaptive")
    session = ingestion.make_session(settings, region_name="us-east-1")
    assert session.sagemaker_featurestore_runtime_client.meta.config.retries == {"mode": "adaptive", "total_max_attempts": 7}
    assert resolve_value_from_config(config_path=TELEMETRY_OPT_OUT_PATH, sagemaker_session=session) is True


def test_no_records_means_no_call(fake_store):
    result = ingest([])
    assert (result.attempted, result.failed) == (0, 0) and fake_store.described == []


@pytest.mark.parametrize("bad", [{"feature_group_name": ""}, {"max_workers": 0}, {"max_attempts": 0}, {"retry_mode": "legacy"}])
def test_settings_reject_bad_values(bad):
    with pytest.raises(ValueError):
        ingestion.IngestionSettings(**{"feature_group_name": GROUP, **bad})
