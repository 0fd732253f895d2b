"""The approval deployer's publish_serving_baselines on moto's server: a promoted package's
DriftCheckBaselines are copied to where the monitoring schedules read them, so monitoring
follows the package that serves; a package without baselines, or an environment without
monitoring, changes nothing."""

from __future__ import annotations

import dataclasses
import json

import boto3
import pytest

from stacks.components.model_monitoring import serving_baseline_key
from stacks.lambdas.approval_deployer import handler as deployer
from support.approval_deployer_world import ENDPOINT_NAME, GROUP, INFERENCE_SPECIFICATION, REGION, SETTINGS

BUCKET = "artifacts"
SERVING_URI = f"s3://{BUCKET}/serving-baselines/{ENDPOINT_NAME}"
KINDS = {"ModelDataQuality": "data-quality", "ModelQuality": "model-quality"}


@pytest.fixture
def clients(moto_endpoint) -> deployer.Clients:
    def client(name):
        return boto3.client(name, region_name=REGION, endpoint_url=moto_endpoint)

    made = deployer.Clients(**{name: client(name) for name in ("sagemaker", "cloudformation", "cloudwatch", "ssm", "sqs", "s3")})
    made.s3.create_bucket(Bucket=BUCKET)
    made.sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
    return made


def register(clients: deployer.Clients, execution: str, *, with_baselines: bool = True) -> str:
    """A package as the pipeline registers it, its baseline files written by execution `execution`."""
    drift = {}
    for kind, folder in KINDS.items():
        drift[kind] = {}
        for document in ("Statistics", "Constraints"):
            key = f"monitoring-baselines/{execution}/{folder}/{document.lower()}.json"
            clients.s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps({"execution": execution, "document": document}))
            drift[kind][document] = {"ContentType": "application/json", "S3Uri": f"s3://{BUCKET}/{key}"}
    extra = {"DriftCheckBaselines": drift} if with_baselines else {}
    return clients.sagemaker.create_model_package(
        ModelPackageGroupName=GROUP, ModelApprovalStatus="PendingManualApproval",
        InferenceSpecification=INFERENCE_SPECIFICATION, **extra)["ModelPackageArn"]


def served_baselines(clients: deployer.Clients) -> dict[str, dict]:
    found = {}
    for folder in KINDS.values():
        for name in ("statistics", "constraints"):
            key = serving_baseline_key(ENDPOINT_NAME, folder, f"{name}.json")
            try:
                found[f"{folder}/{name}"] = json.loads(clients.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
            except clients.s3.exceptions.NoSuchKey:
                pass
    return found


def test_the_promoted_packages_baselines_become_the_served_ones(clients):
    settings = dataclasses.replace(SETTINGS, serving_baselines_uri=SERVING_URI)
    first, second = register(clients, "exec1"), register(clients, "exec2")
    assert deployer.publish_serving_baselines(clients, settings, first) == 4
    assert {value["execution"] for value in served_baselines(clients).values()} == {"exec1"}
    assert deployer.publish_serving_baselines(clients, settings, second) == 4
    served = served_baselines(clients)
    assert len(served) == 4 and {value["execution"] for value in served.values()} == {"exec2"}
    assert served["model-quality/constraints"]["document"] == "Constraints"


def test_a_package_without_baselines_leaves_the_served_ones(clients):
    settings = dataclasses.replace(SETTINGS, serving_baselines_uri=SERVING_URI)
    deployer.publish_serving_baselines(clients, settings, register(clients, "exec1"))
    assert deployer.publish_serving_baselines(clients, settings, register(clients, "exec2", with_baselines=False)) == 0
    assert {value["execution"] for value in served_baselines(clients).values()} == {"exec1"}


def test_without_monitoring_nothing_is_read_or_copied(clients):
    assert SETTINGS.serving_baselines_uri == ""
    assert deployer.publish_serving_baselines(clients, SETTINGS, "arn:aws:sagemaker:us-east-1:1:model-package/x/1") == 0
    assert served_baselines(clients) == {}


def test_the_setting_is_read_from_the_environment_and_optional():
    base = {"STACK_NAME": "s", "PARAMETER_NAME": "p", "APPROVED_PACKAGE_PARAMETER_NAME": "a", "CLOUDFORMATION_ROLE_ARN": "r",
            "DEAD_LETTER_QUEUE_URL": "q", "MODEL_PACKAGE_GROUP_NAME": "g", "ENVIRONMENT_NAME": "e", "METRIC_NAMESPACE": "m"}
    assert deployer.Settings.from_environment(base).serving_baselines_uri == ""
    assert deployer.Settings.from_environment({**base, "SERVING_BASELINES_URI": SERVING_URI}).serving_baselines_uri == SERVING_URI


def test_served_baselines_take_the_buckets_key_and_a_trailing_slash_changes_no_key(clients):
    # The copy names no key: it is encrypted with the bucket's default (the environment key), not
    # with the AWS-managed aws/s3 key that ServerSideEncryption=aws:kms alone would pick.
    key_id = "arn:aws:kms:us-east-1:111111111111:key/00000000-0000-0000-0000-000000000001"
    clients.s3.put_bucket_encryption(Bucket=BUCKET, ServerSideEncryptionConfiguration={"Rules": [
        {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_id}}]})
    # moto applies the bucket's default even to a copy that asks for aws:kms without a key, so the
    # request itself is checked too: no encryption header that would pick another key.
    copies = []
    clients.s3.meta.events.register("provide-client-params.s3.CopyObject", lambda params, **_: copies.append(params))
    settings = dataclasses.replace(SETTINGS, serving_baselines_uri=SERVING_URI + "/")
    assert deployer.publish_serving_baselines(clients, settings, register(clients, "exec1")) == 4
    assert len(copies) == 4 and not any("ServerSideEncryption" in params for params in copies)
    for folder in KINDS.values():
        for name in ("statistics", "constraints"):
            head = clients.s3.head_object(Bucket=BUCKET, Key=serving_baseline_key(ENDPOINT_NAME, folder, f"{name}.json"))
            assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", key_id)
    assert len(served_baselines(clients)) == 4


@pytest.mark.parametrize("missing", [("ModelQuality", "Constraints"), ("ModelDataQuality", "Statistics")])
def test_a_package_with_only_some_baselines_publishes_none_of_them(clients, missing):
    # Half a pair would have monitoring compare one package's statistics with another's constraints.
    settings = dataclasses.replace(SETTINGS, serving_baselines_uri=SERVING_URI)
    drift = {kind: {document: {"ContentType": "application/json", "S3Uri": f"s3://{BUCKET}/exec2/{kind}/{document}.json"}
                    for document in ("Statistics", "Constraints") if (kind, document) != missing}
             for kind in KINDS}
    arn = clients.sagemaker.create_model_package(
        ModelPackageGroupName=GROUP, ModelApprovalStatus="PendingManualApproval",
        InferenceSpecification=INFERENCE_SPECIFICATION, DriftCheckBaselines=drift)["ModelPackageArn"]
    assert deployer.publish_serving_baselines(clients, settings, arn) == 0
    assert served_baselines(clients) == {}
