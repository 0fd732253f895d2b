"""A local stand-in for one environment's AWS side: moto's server on 127.0.0.1 with the
resources the foundation stack would create (buckets, KMS key, model package group), the code
bundle uploaded as the CDK asset would be, and the pipeline definition upserted through the
real pipeline-upserter handler, after its `Fn::Sub` placeholders are resolved as
CloudFormation would resolve them."""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import boto3

from pipeline_definition import PipelineDefinitionSettings, definition_json
from pipeline_definition.code_bundle import build_code_bundle
from pipeline_definition.settings import PLACEHOLDER_NAMES
from stacks.config import EnvironmentConfig

MOTO_ACCOUNT_ID = "123456789012"  # moto's default account
_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
# Fake credentials: moto accepts any, and nothing here may reach a real account.
LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


class PlaceholderError(Exception):
    """A `${Name}` in the definition that no deploy-time value resolves."""


def substitute(template: str, values: Mapping[str, str]) -> str:
    """CloudFormation's `Fn::Sub` on a string: `${Name}` becomes its value, `${!Text}` the
    literal `${Text}`; an unknown name is an error, as it is for CloudFormation."""

    def replace(match: re.Match) -> str:
        name = match.group(1)
        if name.startswith("!"):
            return "${" + name[1:] + "}"
        if name not in values:
            raise PlaceholderError(f"the definition names ${{{name}}}, which no deploy-time value resolves")
        return values[name]

    return _PLACEHOLDER.sub(replace, template)


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """moto's server on a free port of 127.0.0.1; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@contextlib.contextmanager
def aws_endpoint(endpoint_url: str, region: str) -> Iterator[dict[str, str]]:
    """This process's boto3 clients (and the handlers it calls) talk to `endpoint_url`."""
    variables = {"AWS_ENDPOINT_URL": endpoint_url, "AWS_DEFAULT_REGION": region, "AWS_REGION": region, **LOCAL_CREDENTIALS}
    saved = {name: os.environ.get(name) for name in [*variables, "AWS_PROFILE", "AWS_SESSION_TOKEN"]}
    os.environ.pop("AWS_PROFILE", None)
    os.environ.pop("AWS_SESSION_TOKEN", None)
    os.environ.update(variables)
    try:
        yield variables
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def job_environment(region: str) -> dict[str, str]:
    """What each local job gets from its host besides the step's own Environment: the local AWS
    endpoint and credentials (on AWS: the job role's), and no model hub (nothing to download)."""
    return {
        "AWS_ENDPOINT_URL": os.environ["AWS_ENDPOINT_URL"],
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        **LOCAL_CREDENTIALS,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }


@dataclass(frozen=True)
class LocalEnvironment:
    """The resources of one environment in moto, named as the stacks name them."""

    config: EnvironmentConfig
    data_bucket: str
    artifacts_bucket: str
    assets_bucket: str
    code_bundle_key: str
    kms_key_arn: str

    @property
    def deploy_time_values(self) -> dict[str, str]:
        values = {
            "DataBucketName": self.data_bucket,
            "ArtifactsBucketName": self.artifacts_bucket,
            "CodeBundleBucket": self.assets_bucket,
            "CodeBundleKey": self.code_bundle_key,
            "DataKeyArn": self.kms_key_arn,
            "FeatureGroupName": self.config.feature_group_name,
            "ModelPackageGroupName": self.config.model_package_group_name,
            "AWS::Partition": "aws",
            "AWS::AccountId": MOTO_ACCOUNT_ID,
        }
        assert set(PLACEHOLDER_NAMES) <= set(values), "a new placeholder needs a local value"
        return values

    @property
    def pipeline_role_arn(self) -> str:
        return f"arn:aws:iam::{MOTO_ACCOUNT_ID}:role/{self.config.pipeline_execution_role_name}"


def provision(config: EnvironmentConfig) -> LocalEnvironment:
    """What the foundation and pipeline stacks' deploy would leave behind, in moto."""
    s3 = boto3.client("s3")
    prefix = config.resource_prefix
    data_bucket, artifacts_bucket = f"{prefix}-data-{MOTO_ACCOUNT_ID}", f"{prefix}-artifacts-{MOTO_ACCOUNT_ID}"
    assets_bucket = f"cdk-hnb659fds-assets-{MOTO_ACCOUNT_ID}-{config.region}"
    for bucket in (data_bucket, artifacts_bucket, assets_bucket):
        kwargs: dict[str, Any] = {"Bucket": bucket}
        if config.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": config.region}
        s3.create_bucket(**kwargs)
    bundle = build_code_bundle()
    # The CDK names a file asset by its content hash, as here.
    code_bundle_key = f"{bundle.sha256}.tar.gz"
    s3.upload_file(str(bundle.path), assets_bucket, code_bundle_key)
    kms_key_arn = boto3.client("kms").create_key(Description=f"{prefix} data key")["KeyMetadata"]["Arn"]
    boto3.client("sagemaker").create_model_package_group(ModelPackageGroupName=config.model_package_group_name)
    return LocalEnvironment(config, data_bucket, artifacts_bucket, assets_bucket, code_bundle_key, kms_key_arn)


def resolved_definition(environment: LocalEnvironment) -> str:
    """The definition the pipeline stack hands to its custom resource, resolved."""
    settings = PipelineDefinitionSettings.from_environment(environment.config)
    return substitute(definition_json(settings, compact=True), environment.deploy_time_values)


def upsert_pipeline(environment: LocalEnvironment, definition: str) -> str:
    """A CloudFormation Create event through the real pipeline-upserter handler."""
    from stacks.lambdas.pipeline_upserter import handler

    config = environment.config
    response = handler.on_event({
        "RequestType": "Create",
        "RequestId": f"local-demo-{config.name}",
        "LogicalResourceId": "Pipeline",
        "ResourceProperties": {
            "PipelineName": config.pipeline_name,
            "PipelineDefinition": definition,
            "RoleArn": environment.pipeline_role_arn,
            "Description": f"Review classifier ({config.name}), local run",
            "Tags": [{"Key": key, "Value": value} for key, value in sorted(config.tags.items())],
            "RetainOnDelete": "false",
            "StartExecution": "false",
        },
    })
    return response["Data"]["PipelineArn"]


def upload_reviews(environment: LocalEnvironment, files: list[Path], prefix: str) -> str:
    s3 = boto3.client("s3")
    for path in files:
        s3.upload_file(str(path), environment.data_bucket, f"{prefix}{path.name}")
    return f"s3://{environment.data_bucket}/{prefix}"
