"""Feature Store ingestion against a real boto3 client and a fake featurestore runtime on
127.0.0.1 (moto does not serve this API): retries, exactly-once arrival, reported failures."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

import feature_store_ingestion as ingestion
import reviews
from data_support import FakeFeatureStore, PlannedError

GROUP = "review-classifier-dev-reviews"
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


@pytest.fixture
def fake_store():
    store = FakeFeatureStore().start()
    yield store
    store.stop()


@pytest.fixture
def sleeps() -> list[float]:
    return []


def ingest(store: FakeFeatureStore, records, sleeps: list[float], **settings):
    client = ingestion.make_featurestore_client(endpoint_url=store.endpoint_url, max_workers=settings.get("max_workers", 8))
    return ingestion.ingest_records(
        client, records, ingestion.IngestionSettings(feature_group_name=GROUP, **settings), sleep=sleeps.append
    )


def test_to_feature_values_has_every_prepared_column_as_a_string():
    record = make_records(2)[1]
    values = ingestion.to_feature_values(record)
    assert [item["FeatureName"] for item in values] == list(reviews.PREPARED_COLUMNS)
    as_dict = {item["FeatureName"]: item["ValueAsString"] for item in values}
    assert all(isinstance(value, str) for value in as_dict.values())
    assert json.loads(as_dict["input_ids"]) == record["input_ids"]
    assert as_dict["sentiment"] == "0" and as_dict["label_id"] == "1"


def test_to_feature_values_rejects_a_record_without_every_column():
    record = make_records(1)[0]
    del record["date"]
    with pytest.raises(ValueError, match="date"):
        ingestion.to_feature_values(record)


def test_every_record_arrives_exactly_once_with_its_feature_values(fake_store, sleeps):
    records = make_records(40)
    result = ingest(fake_store, records, sleeps, max_workers=4)

    assert (result.attempted, result.succeeded, result.failed, result.retries) == (40, 40, 0, 0)
    assert fake_store.stored_record_ids() == {record["review_id"]: 1 for record in records}
    assert {group for group, _ in fake_store.stored} == {GROUP}
    stored = fake_store.stored_records()
    for record in records:
        assert stored[record["review_id"]] == {item["FeatureName"]: item["ValueAsString"] for item in ingestion.to_feature_values(record)}
    assert sleeps == []


def test_throttling_and_5xx_are_retried_with_capped_backoff(fake_store, sleeps):
    fake_store.fail_first_calls = [THROTTLED, THROTTLED, INTERNAL, UNAVAILABLE, THROTTLED]
    records = make_records(12)
    # six attempts: even if one record drew all five planned errors, it would still succeed
    result = ingest(fake_store, records, sleeps, max_workers=3, max_attempts=6, base_backoff_seconds=0.1, max_backoff_seconds=0.3)

    assert (result.succeeded, result.failed, result.retries) == (12, 0, 5)
    assert fake_store.stored_record_ids() == {record["review_id"]: 1 for record in records}
    assert [status for _, _, status in fake_store.calls].count(200) == 12
    assert len(fake_store.calls) == 17
    assert len(sleeps) == 5 and all(0 <= seconds <= 0.3 for seconds in sleeps)


def test_permanent_errors_are_reported_and_not_retried(fake_store, sleeps):
    records = make_records(10)
    fake_store.errors_by_record_id = {"r0003": INVALID, "r0007": INVALID}
    result = ingest(fake_store, records, sleeps, max_workers=2)

    assert (result.attempted, result.succeeded, result.failed, result.retries) == (10, 8, 2, 0)
    assert sorted((f.record_id, f.error_code, f.attempts) for f in result.first_errors) == [
        ("r0003", "ValidationError", 1),
        ("r0007", "ValidationError", 1),
    ]
    assert "planned ValidationError" in result.first_errors[0].message
    assert sum(1 for _, record_id, _ in fake_store.calls if record_id in {"r0003", "r0007"}) == 2
    assert set(fake_store.stored_record_ids()) == {r["review_id"] for r in records} - {"r0003", "r0007"}
    assert sleeps == []


def test_a_record_that_keeps_failing_stops_after_max_attempts(fake_store, sleeps):
    fake_store.errors_by_record_id = {"r0001": UNAVAILABLE}
    result = ingest(fake_store, make_records(3), sleeps, max_attempts=4)

    assert (result.succeeded, result.failed, result.retries) == (2, 1, 3)
    assert [(f.record_id, f.error_code, f.attempts) for f in result.first_errors] == [("r0001", "ServiceUnavailable", 4)]
    assert sum(1 for _, record_id, _ in fake_store.calls if record_id == "r0001") == 4


def test_first_errors_are_capped_but_every_failure_is_counted(fake_store, sleeps):
    fake_store.errors_by_record_id = {f"r{index:04d}": INVALID for index in range(15)}
    result = ingest(fake_store, make_records(20), sleeps, errors_kept=5)
    assert (result.succeeded, result.failed, len(result.first_errors)) == (5, 15, 5)


def test_parallelism_is_bounded_by_max_workers(fake_store, sleeps):
    fake_store.delay_seconds = 0.02
    result = ingest(fake_store, make_records(30), sleeps, max_workers=3)
    assert result.succeeded == 30
    assert 2 <= fake_store.max_in_flight <= 3


def test_the_endpoint_comes_from_the_service_specific_environment_variable(fake_store, sleeps, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_FEATURESTORE_RUNTIME", fake_store.endpoint_url)
    client = ingestion.make_featurestore_client()
    result = ingestion.ingest_records(client, make_records(2), ingestion.IngestionSettings(feature_group_name=GROUP))
    assert result.succeeded == 2 and len(fake_store.stored) == 2


def test_retryable_errors_are_classified_by_code_status_and_connection():
    def client_error(code: str, status: int) -> ClientError:
        return ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "PutRecord")

    assert ingestion.is_retryable(client_error("ThrottlingException", 400))
    assert ingestion.is_retryable(client_error("SomethingNew", 502))
    assert ingestion.is_retryable(EndpointConnectionError(endpoint_url="http://127.0.0.1:1"))
    assert not ingestion.is_retryable(client_error("ValidationError", 400))
    assert not ingestion.is_retryable(client_error("AccessForbidden", 403))
    assert not ingestion.is_retryable(ValueError("not an AWS error"))


@pytest.mark.parametrize("bad", [{"feature_group_name": ""}, {"max_workers": 0}, {"max_attempts": 0}, {"base_backoff_seconds": -1}])
def test_settings_reject_bad_values(bad):
    with pytest.raises(ValueError):
        ingestion.IngestionSettings(**{"feature_group_name": GROUP, **bad})
