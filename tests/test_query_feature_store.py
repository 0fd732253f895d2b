"""The offline store query helper through the SageMaker SDK's FeatureGroup.athena_query(),
against moto's server on 127.0.0.1 (feature group, workgroup, query lifecycle, and the result
CSV that moto writes to S3 at the query's output location), plus botocore's Stubber for the
answers moto cannot give.

Gap: moto writes every result value between double quotes without doubling the quotes inside
it (Athena doubles them), so the rows used here hold no double quote."""

from __future__ import annotations

import io
import json
import types
import urllib.request

import boto3
import pytest
from botocore.stub import Stubber

import reviews
from stacks.config import load_environment
from support.aws_fault_proxy import AwsFaultProxy
from tools import query_feature_store as helper

ENVIRONMENT = "dev"
CONFIG = load_environment(ENVIRONMENT)
HEADER = list(reviews.PREPARED_COLUMNS)
TRAIN_ROWS = [
    ["r1", "2024-01-02T00:00:00Z", "1", "2", "[0, 713, 2]", "Great kettle", "train"],
    ["r2", "2024-01-03T00:00:00Z", "-1", "0", "[0, 1099, 2]", "Broke in a week", "train"],
]
RESULTS_LOCATION = "s3://data-bucket/athena-query-results/"


def moto_api(endpoint: str, path: str, body: dict) -> None:
    request = urllib.request.Request(
        f"{endpoint}/moto-api/{path}", data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=10).close()


def queue_athena_result(endpoint: str, rows: list[list[str | None]]) -> None:
    """The next query's result; moto also writes it as CSV to the query's output location."""
    moto_api(endpoint, "static/athena/query-results", {
        "region": CONFIG.region,
        "results": [{
            "rows": [{"Data": [{} if value is None else {"VarCharValue": value} for value in row]} for row in rows],
            "column_info": [{"Name": name, "Type": "varchar"} for name in rows[0]],
        }],
    })


@pytest.fixture
def aws(moto_endpoint, monkeypatch):
    """Every client the SDK builds goes to moto (the SDK takes no endpoint, the environment does)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    session = boto3.Session(region_name=CONFIG.region)
    return {name: session.client(name) for name in ("sagemaker", "athena", "s3")}


@pytest.fixture
def deployed_foundation(aws):
    """What the foundation stack creates that the helper reads: the feature group and workgroup."""
    aws["s3"].create_bucket(Bucket="data-bucket")
    aws["sagemaker"].create_feature_group(
        FeatureGroupName=CONFIG.feature_group_name,
        RecordIdentifierFeatureName=reviews.RECORD_ID_FEATURE,
        EventTimeFeatureName=reviews.EVENT_TIME_FEATURE,
        FeatureDefinitions=[{"FeatureName": name, "FeatureType": "String"} for name in reviews.PREPARED_COLUMNS],
        OfflineStoreConfig={"S3StorageConfig": {"S3Uri": "s3://data-bucket/feature-store"}},
        RoleArn="arn:aws:iam::123456789012:role/offline-store",
    )
    aws["athena"].create_work_group(
        Name=CONFIG.athena_workgroup_name,
        Configuration={"ResultConfiguration": {"OutputLocation": RESULTS_LOCATION}, "EnforceWorkGroupConfiguration": True},
    )
    return aws


def feature_group(session, name: str = CONFIG.feature_group_name):
    from sagemaker.feature_store.feature_group import FeatureGroup

    return FeatureGroup(name=name, sagemaker_session=session)


def test_split_names_match_the_shared_module():
    assert helper.SPLIT_NAMES == reviews.SPLIT_NAMES


def test_reads_table_and_features_from_the_feature_group(deployed_foundation):
    group = feature_group(helper.make_session(CONFIG.region))
    description = helper.describe_offline_store(group)
    query = group.athena_query()
    assert (query.catalog, query.database) == ("AwsDataCatalog", "sagemaker_featurestore")
    assert query.table_name.startswith(CONFIG.feature_group_name.replace("-", "_"))
    assert tuple(d["FeatureName"] for d in description["FeatureDefinitions"]) == reviews.PREPARED_COLUMNS


DESCRIPTION = {
    "FeatureDefinitions": [{"FeatureName": name, "FeatureType": "String"} for name in reviews.PREPARED_COLUMNS],
    "RecordIdentifierFeatureName": "review_id", "EventTimeFeatureName": "date",
}


def test_query_keeps_newest_undeleted_record_of_one_split():
    table = types.SimpleNamespace(database="sagemaker_featurestore", table_name="reviews_123")
    query = helper.split_query(table, DESCRIPTION, "validation", limit=5)
    assert '"sagemaker_featurestore"."reviews_123"' in query
    assert "\"split_type\" = 'validation'" in query
    assert 'PARTITION BY "review_id" ORDER BY "date" DESC' in query
    assert 'NOT "is_deleted"' in query and "version_rank = 1" in query
    assert query.endswith("LIMIT 5")
    assert query.startswith("SELECT " + ", ".join(f'"{c}"' for c in reviews.PREPARED_COLUMNS))


@pytest.mark.parametrize(("split", "limit", "message"), [("holdout", None, "unknown split"), ("train", 0, "positive")])
def test_query_rejects_bad_split_and_limit(split, limit, message):
    table = types.SimpleNamespace(database="d", table_name="t")
    with pytest.raises(helper.FeatureStoreQueryError, match=message):
        helper.split_query(table, DESCRIPTION, split, limit)


def test_queries_one_split_into_csv(deployed_foundation, moto_endpoint):
    queue_athena_result(moto_endpoint, [HEADER, *TRAIN_ROWS])
    output, progress = io.StringIO(), []
    written = helper.query_split(
        session=helper.make_session(CONFIG.region), feature_group_name=CONFIG.feature_group_name,
        workgroup=CONFIG.athena_workgroup_name, split="train", output=output, limit=10,
        poll_interval_s=0.01, progress=progress.append,
    )
    assert written == 2
    assert output.getvalue().splitlines() == [",".join(HEADER), *(
        ",".join(f'"{v}"' if "," in v else v for v in row) for row in TRAIN_ROWS)]
    assert any("SUCCEEDED" in line for line in progress)

    athena = deployed_foundation["athena"]
    [execution_id] = athena.list_query_executions(WorkGroup=CONFIG.athena_workgroup_name)["QueryExecutionIds"]
    execution = athena.get_query_execution(QueryExecutionId=execution_id)["QueryExecution"]
    assert "'train'" in execution["Query"] and execution["Query"].endswith("LIMIT 10")
    assert execution["QueryExecutionContext"] == {"Catalog": "AwsDataCatalog", "Database": "sagemaker_featurestore"}
    # The SDK downloaded the CSV from the workgroup's result location, where Athena writes it.
    assert execution["ResultConfiguration"]["OutputLocation"] == f"{RESULTS_LOCATION}{execution_id}.csv"


def test_null_cells_stay_empty(deployed_foundation, moto_endpoint):
    queue_athena_result(moto_endpoint, [["review_id", "review_body"], ["r1", None], ["r2", "NA"]])
    output = io.StringIO()
    helper.query_split(
        session=helper.make_session(CONFIG.region), feature_group_name=CONFIG.feature_group_name,
        workgroup=CONFIG.athena_workgroup_name, split="test", output=output, poll_interval_s=0.01,
        progress=lambda _: None,
    )
    assert output.getvalue().splitlines() == ["review_id,review_body", "r1,", "r2,NA"]


def test_throttled_athena_calls_are_retried_by_the_sdks_clients(deployed_foundation, moto_endpoint, monkeypatch):
    queue_athena_result(moto_endpoint, [HEADER, *TRAIN_ROWS])
    with AwsFaultProxy(moto_endpoint) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        proxy.inject("StartQueryExecution", times=1)
        proxy.inject("GetQueryExecution", error_code="InternalServerException", status=500, times=1)
        output = io.StringIO()
        written = helper.query_split(
            session=helper.make_session(CONFIG.region), feature_group_name=CONFIG.feature_group_name,
            workgroup=CONFIG.athena_workgroup_name, split="train", output=output, poll_interval_s=0.01,
            progress=lambda _: None,
        )
    assert written == 2 and len(output.getvalue().splitlines()) == 3
    assert proxy.count("StartQueryExecution") == 2 and proxy.count("StartQueryExecution", forwarded_only=True) == 1
    assert proxy.count("GetQueryExecution", forwarded_only=True) >= 1 and proxy.count("GET /data-bucket/*") >= 1


def test_command_line_writes_the_csv_file(deployed_foundation, moto_endpoint, tmp_path, capsys):
    queue_athena_result(moto_endpoint, [HEADER, *TRAIN_ROWS])
    output = tmp_path / "train.csv"
    code = helper.main(["--env", ENVIRONMENT, "--split", "train", "--output", str(output)])
    assert code == 0
    assert output.read_text().splitlines()[0] == ",".join(HEADER)
    assert len(output.read_text().splitlines()) == 1 + len(TRAIN_ROWS)
    assert "wrote 2 train rows" in capsys.readouterr().err


def stubbed_session(service_name: str):
    """An SDK session whose `service_name` client answers from botocore's Stubber (validated
    against the API model)."""
    from sagemaker.session import Session

    client = boto3.client(service_name, region_name=CONFIG.region)
    session = Session(boto_session=boto3.Session(region_name=CONFIG.region), sagemaker_client=client,
                      sagemaker_config=helper.TELEMETRY_OFF)
    return session, Stubber(client)


def test_missing_feature_group_is_a_clear_error():
    # AWS answers ResourceNotFound; moto 5.2.5 answers a missing feature group with a 500.
    session, stubber = stubbed_session("sagemaker")
    with stubber:
        stubber.add_client_error("describe_feature_group", service_error_code="ResourceNotFound",
                                 http_status_code=400, expected_params={"FeatureGroupName": "missing-group"})
        with pytest.raises(helper.FeatureStoreQueryError, match=r"feature group 'missing-group' not found: is the foundation"):
            helper.describe_offline_store(feature_group(session, "missing-group"))


def test_missing_workgroup_fails_without_leaving_a_file(deployed_foundation, tmp_path, capsys):
    deployed_foundation["athena"].delete_work_group(WorkGroup=CONFIG.athena_workgroup_name)
    output = tmp_path / "test.csv"
    code = helper.main(["--env", ENVIRONMENT, "--split", "test", "--output", str(output)])
    assert code == 1
    assert f"Athena workgroup '{CONFIG.athena_workgroup_name}' not found" in capsys.readouterr().err
    assert not output.exists()


def test_feature_group_without_offline_table_is_reported():
    session, stubber = stubbed_session("sagemaker")
    with stubber:
        stubber.add_response("describe_feature_group", {
            "FeatureGroupArn": "arn:aws:sagemaker:us-east-1:111111111111:feature-group/g",
            "FeatureGroupName": "g", "RecordIdentifierFeatureName": "review_id", "EventTimeFeatureName": "date",
            "FeatureDefinitions": [{"FeatureName": "review_id", "FeatureType": "String"}],
            "CreationTime": "2024-01-01T00:00:00Z", "NextToken": "", "FeatureGroupStatus": "Creating",
        }, {"FeatureGroupName": "g"})
        with pytest.raises(helper.FeatureStoreQueryError, match=r"no offline store Glue table \(status: Creating\)"):
            helper.describe_offline_store(feature_group(session, "g"))


@pytest.fixture
def athena_queries_stay_queued(moto_endpoint):
    moto_api(moto_endpoint, "state-manager/set-transition",
             {"model_name": "athena::execution", "transition": {"progression": "manual", "times": 10_000}})
    yield
    moto_api(moto_endpoint, "state-manager/unset-transition", {"model_name": "athena::execution"})


def test_slow_query_times_out_and_is_stopped(deployed_foundation, athena_queries_stay_queued):
    query = feature_group(helper.make_session(CONFIG.region)).athena_query()
    execution_id = query.run("SELECT 1", output_location=RESULTS_LOCATION, workgroup=CONFIG.athena_workgroup_name)
    progress = []
    with pytest.raises(helper.FeatureStoreQueryError, match=r"still QUEUED after 0.2s; stopped it"):
        helper.wait_for_query(query, deployed_foundation["athena"], timeout_s=0.2, poll_interval_s=0.02,
                              progress=progress.append)
    assert progress == [progress[0]] and "QUEUED" in progress[0]  # one line per state change
    state = deployed_foundation["athena"].get_query_execution(QueryExecutionId=execution_id)["QueryExecution"]["Status"]["State"]
    assert state == "CANCELLED"


def test_failed_query_reports_athena_reason():
    # moto's queries always succeed, so the FAILED answer comes from botocore's Stubber, which
    # still validates the request and the response against the Athena API model.
    athena = boto3.client("athena", region_name=CONFIG.region)
    query = types.SimpleNamespace(get_query_execution=lambda: athena.get_query_execution(QueryExecutionId="q-1"))
    with Stubber(athena) as stubber:
        stubber.add_response("get_query_execution", {"QueryExecution": {
            "QueryExecutionId": "q-1",
            "Status": {"State": "FAILED", "StateChangeReason": "TABLE_NOT_FOUND: line 3:8: Table does not exist"},
        }}, {"QueryExecutionId": "q-1"})
        with pytest.raises(helper.FeatureStoreQueryError, match=r"q-1 FAILED: TABLE_NOT_FOUND"):
            helper.wait_for_query(query, athena, timeout_s=5, progress=lambda _: None)


def test_unknown_environment_is_reported(capsys):
    assert helper.main(["--env", "qa", "--split", "train"]) == 2
    assert "unknown environment 'qa'" in capsys.readouterr().err
