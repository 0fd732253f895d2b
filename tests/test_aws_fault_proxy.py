"""The fault proxy (tests/support/aws_fault_proxy.py) in front of moto's server: calls pass
through and are recorded, and injected errors reach botocore as the right ClientError for
JSON, query and REST protocols."""

from __future__ import annotations

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from support.aws_fault_proxy import AwsFaultProxy

NO_RETRIES = Config(retries={"mode": "standard", "total_max_attempts": 1})


@pytest.fixture
def proxy(moto_endpoint):
    with AwsFaultProxy(moto_endpoint) as started:
        yield started


def client(service: str, proxy: AwsFaultProxy, config: Config = NO_RETRIES):
    return boto3.client(service, endpoint_url=proxy.url, region_name="us-east-1", config=config)


def test_calls_pass_through_to_moto_and_are_recorded(proxy):
    sagemaker = client("sagemaker", proxy)
    sagemaker.create_model_package_group(ModelPackageGroupName="through-the-proxy")

    names = [group["ModelPackageGroupName"] for group in sagemaker.list_model_package_groups()["ModelPackageGroupSummaryList"]]

    assert names == ["through-the-proxy"]
    assert proxy.operations() == ["CreateModelPackageGroup", "ListModelPackageGroups"]
    assert [call.status for call in proxy.calls] == [200, 200]
    assert proxy.calls[0].json_body() == {"ModelPackageGroupName": "through-the-proxy"}


def test_json_protocol_fault_is_a_client_error_for_the_next_n_calls_only(proxy):
    sagemaker = client("sagemaker", proxy)
    proxy.inject("ListModelPackageGroups", error_code="ValidationException", message="nope", times=2)

    for _ in range(2):
        with pytest.raises(ClientError) as raised:
            sagemaker.list_model_package_groups()
        assert raised.value.response["Error"] == {"Code": "ValidationException", "Message": "nope"}
        assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    sagemaker.list_model_package_groups()

    assert proxy.count("ListModelPackageGroups") == 3
    assert proxy.count("ListModelPackageGroups", forwarded_only=True) == 1


def test_throttling_is_retried_by_botocore(proxy):
    sagemaker = client("sagemaker", proxy, Config(retries={"mode": "standard", "total_max_attempts": 3}))
    proxy.inject("ListModelPackageGroups", times=2)

    sagemaker.list_model_package_groups()

    assert [(call.injected, call.status) for call in proxy.calls] == [(True, 400), (True, 400), (False, 200)]


def test_query_protocol_fault(proxy):
    sts = client("sts", proxy)
    proxy.inject("GetCallerIdentity", error_code="Throttling", message="Rate exceeded", status=400)

    with pytest.raises(ClientError) as raised:
        sts.get_caller_identity()
    assert raised.value.response["Error"]["Code"] == "Throttling"
    assert raised.value.response["Error"]["Message"] == "Rate exceeded"
    assert sts.get_caller_identity()["Account"]


def test_rest_protocol_fault_matched_by_glob(proxy):
    s3 = client("s3", proxy, Config(retries={"mode": "standard", "total_max_attempts": 1}, s3={"addressing_style": "path"}))
    s3.create_bucket(Bucket="proxied-bucket")
    proxy.inject("PUT /proxied-bucket/*", error_code="SlowDown", message="Please reduce your request rate.", status=503)

    with pytest.raises(ClientError) as raised:
        s3.put_object(Bucket="proxied-bucket", Key="a.json", Body=b"{}")
    assert raised.value.response["Error"]["Code"] == "SlowDown"
    s3.put_object(Bucket="proxied-bucket", Key="a.json", Body=b"{}")
    assert s3.get_object(Bucket="proxied-bucket", Key="a.json")["Body"].read() == b"{}"
    assert proxy.count("PUT /proxied-bucket/a.json") == 2


def test_clear_forgets_faults_and_calls(proxy):
    sagemaker = client("sagemaker", proxy)
    proxy.inject("ListModelPackageGroups")
    proxy.clear()

    sagemaker.list_model_package_groups()

    assert [(call.operation, call.injected) for call in proxy.calls] == [("ListModelPackageGroups", False)]


def test_bad_arguments_are_rejected(moto_endpoint):
    with pytest.raises(ValueError, match="upstream_url"):
        AwsFaultProxy("127.0.0.1:5000")
    proxy = AwsFaultProxy(moto_endpoint)
    with pytest.raises(ValueError, match="times"):
        proxy.inject("X", times=0)
    with pytest.raises(ValueError, match="status"):
        proxy.inject("X", status=200)
    with pytest.raises(RuntimeError, match="not started"):
        proxy.url
