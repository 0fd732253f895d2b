"""A local stand-in for one environment's AWS side: moto's server on 127.0.0.1 in the
environment's account with the resources the foundation stack would create (buckets, KMS key,
model package group), the code bundle uploaded as the CDK asset would be, the synthesized
templates' IAM roles with their own policies (and access control on), and the pipeline
definition upserted through the real pipeline-upserter handler, as its role, after its
`Fn::Sub` placeholders are resolved as CloudFormation would resolve them."""

from __future__ import annotations

import contextlib
import os
import re
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import boto3

from local_pipeline import iam
from local_pipeline.cloudformation import (
    Deployment,
    PhysicalResource,
    RolePolicies,
    default_physical_resource,
    find_role,
    role_policies,
)
from pipeline_definition import PipelineDefinitionSettings, definition_json
from pipeline_definition.code_bundle import build_code_bundle
from pipeline_definition.settings import PLACEHOLDER_NAMES
from stacks.config import EnvironmentConfig

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
    url = f"http://{host}:{port}"
    # moto keeps its state per process, not per server: start from nothing, leave nothing.
    _reset(url)
    try:
        yield url
    finally:
        # Access control is a process-wide moto setting too: leave it off for other servers.
        iam.relax_access_control(url)
        _reset(url)
        server.stop()


def _reset(endpoint_url: str) -> None:
    request = urllib.request.Request(f"{endpoint_url}/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=10).close()


@contextlib.contextmanager
def _environment(variables: Mapping[str, str], *, removed: tuple[str, ...] = ()) -> Iterator[None]:
    """Set `variables` (and unset `removed`) in os.environ for the block; boto3's default
    session, which keeps the credentials it first found, starts anew on both sides."""
    saved = {name: os.environ.get(name) for name in [*variables, *removed]}
    for name in removed:
        os.environ.pop(name, None)
    os.environ.update(variables)
    boto3.setup_default_session()
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        boto3.setup_default_session()


@contextlib.contextmanager
def aws_endpoint(endpoint_url: str, region: str, account: str) -> Iterator[None]:
    """This process's boto3 clients (and the handlers it calls) talk to `endpoint_url`, where
    every resource lives in `account` (the templates' own account ids stay as they are)."""
    variables = {"AWS_ENDPOINT_URL": endpoint_url, "AWS_DEFAULT_REGION": region, "AWS_REGION": region,
                 "MOTO_ACCOUNT_ID": account, **LOCAL_CREDENTIALS}
    with _environment(variables, removed=("AWS_PROFILE", "AWS_SESSION_TOKEN")):
        yield


def job_environment(region: str, credentials: iam.Credentials) -> dict[str, str]:
    """What each local job gets from its host besides the step's own Environment: the local AWS
    endpoint, the job role's credentials, and no model hub (nothing to download)."""
    return {
        "AWS_ENDPOINT_URL": os.environ["AWS_ENDPOINT_URL"],
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        **credentials.environment,
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
            "AWS::AccountId": self.config.account,
        }
        assert set(PLACEHOLDER_NAMES) <= set(values), "a new placeholder needs a local value"
        return values

    @property
    def pipeline_role_arn(self) -> str:
        return f"arn:aws:iam::{self.config.account}:role/{self.config.pipeline_execution_role_name}"

    def physical_resources(self) -> dict[str, PhysicalResource]:
        """The foundation's unnamed resources (CloudFormation names them at deploy), by the
        prefix of their stable logical ids."""
        key_id = self.kms_key_arn.rsplit("/", 1)[-1]
        return {
            "StorageDataBucket": default_physical_resource("AWS::S3::Bucket", self.data_bucket, account=self.config.account, region=self.config.region),
            "StorageArtifactsBucket": default_physical_resource("AWS::S3::Bucket", self.artifacts_bucket, account=self.config.account, region=self.config.region),
            "StorageDataKey": PhysicalResource(key_id, {"Arn": self.kms_key_arn, "KeyId": key_id}),
        }


def provision(config: EnvironmentConfig) -> LocalEnvironment:
    """What the foundation and pipeline stacks' deploy would leave behind, in moto."""
    s3 = boto3.client("s3")
    prefix = config.resource_prefix
    data_bucket, artifacts_bucket = f"{prefix}-data-{config.account}", f"{prefix}-artifacts-{config.account}"
    # The CDK bootstrap's default asset bucket, which the pipeline role may read.
    assets_bucket = f"cdk-hnb659fds-assets-{config.account}-{config.region}"
    for bucket in (data_bucket, artifacts_bucket, assets_bucket):
        kwargs: dict[str, Any] = {"Bucket": bucket}
        if config.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": config.region}
        s3.create_bucket(**kwargs)
    for bucket in (data_bucket, artifacts_bucket):  # versioned, as the foundation's buckets are
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
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


def upsert_pipeline(environment: LocalEnvironment, definition: str, credentials: "iam.Credentials") -> str:
    """A CloudFormation Create event through the real pipeline-upserter handler, with its
    Lambda role's credentials."""
    from stacks.lambdas.pipeline_upserter import handler

    config = environment.config
    with credentials_in_environment(credentials):
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


@contextlib.contextmanager
def credentials_in_environment(credentials: iam.Credentials) -> Iterator[None]:
    """Code that builds its own boto3 clients (the Lambda handlers) uses these credentials."""
    with _environment(credentials.environment, removed=("AWS_SESSION_TOKEN",)):
        yield


def synthesize(config: EnvironmentConfig, outdir: Path) -> dict[str, dict]:
    """The environment's stacks as `cdk synth -c env=<name>` builds them: stack name -> template."""
    import json

    import aws_cdk as cdk

    from stacks.app_builder import build_app
    from stacks.config import CDK_JSON

    context = {**json.loads(CDK_JSON.read_text())["context"], "env": config.name}
    app = cdk.App(context=context, outdir=str(outdir))
    stacks = build_app(app)[config.name]
    assembly = app.synth()
    return {
        stack.stack_name: json.loads(Path(assembly.get_stack_artifact(stack.artifact_id).template_full_path).read_text())
        for stack in stacks.values()
    }


@dataclass(frozen=True)
class RoleCredentials:
    """Who calls AWS in a local run, each with the credentials of the role that AWS would use."""

    admin: iam.Credentials
    pipeline: iam.Credentials
    pipeline_upserter: iam.Credentials
    # The roles as the templates declare them, by the keys above.
    policies: Mapping[str, RolePolicies]


# Roles that make calls in a run, located in the templates: (stack component, how to find it).
PIPELINE_UPSERTER_HANDLER = "handler.on_event"


def deploy_roles(environment: LocalEnvironment, templates: Mapping[str, dict], endpoint_url: str) -> RoleCredentials:
    """Create the templates' roles in moto, then switch access control on."""
    config = environment.config
    deployment = Deployment(account=config.account, region=config.region, overrides=environment.physical_resources())
    for stack_name, template in templates.items():
        deployment.add_stack(stack_name, template)
    foundation, pipeline = config.stack_name("foundation"), config.stack_name("pipeline")
    roles = {
        "pipeline": role_policies(deployment, foundation, find_role(templates[foundation], role_name=config.pipeline_execution_role_name)),
        "pipeline_upserter": role_policies(deployment, pipeline, find_role(templates[pipeline], function_handler=PIPELINE_UPSERTER_HANDLER)),
    }
    iam_client, sts = boto3.client("iam"), boto3.client("sts")
    admin = iam.create_admin(iam_client)
    arns = {}
    for key, role in roles.items():
        arns[key] = iam.create_role(iam_client, role, admin.arn)
    iam.enforce_access_control(endpoint_url)
    admin_sts = admin.session(config.region).client("sts")
    return RoleCredentials(
        admin=admin,
        pipeline=iam.assume(admin_sts, arns["pipeline"], "SageMaker-pipeline"),
        pipeline_upserter=iam.assume(admin_sts, arns["pipeline_upserter"], "pipeline-upserter"),
        policies=roles,
    )
