"""Typed settings of one environment's pipeline definition: the environment's defaults from
`stacks.config.EnvironmentConfig` plus the deploy-time values, which enter as placeholders.

A placeholder is a `${Name}` that PipelineStack substitutes with CloudFormation `Fn::Sub`
(bucket names, KMS key, code bundle location...). Nothing here knows an account's real values,
so generation needs no credentials and gives the same JSON on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass

from stacks.config import EnvironmentConfig, PipelineConfig


@dataclass(frozen=True)
class DeployTimeValues:
    """Values known only at deploy time. The defaults are `Fn::Sub` placeholders; the CLI's
    `--resolve` and the tests swap in readable examples."""

    # The SDK calls iam:GetRole on anything that does not look like a role ARN; the role's
    # name is fixed by the config (EnvironmentConfig.pipeline_execution_role_name).
    pipeline_role_arn: str
    data_bucket_name: str = "${DataBucketName}"
    artifacts_bucket_name: str = "${ArtifactsBucketName}"
    # Must look like an S3 URI: the SDK uploads anything else as local code.
    code_bundle_s3_uri: str = "s3://${CodeBundleBucket}/${CodeBundleKey}"
    kms_key_arn: str = "${DataKeyArn}"
    feature_group_name: str = "${FeatureGroupName}"
    model_package_group_name: str = "${ModelPackageGroupName}"


# The names PipelineStack must give `Fn::Sub` (pseudo parameters such as AWS::Partition are
# resolved by CloudFormation itself).
PLACEHOLDER_NAMES: tuple[str, ...] = (
    "DataBucketName",
    "ArtifactsBucketName",
    "CodeBundleBucket",
    "CodeBundleKey",
    "DataKeyArn",
    "FeatureGroupName",
    "ModelPackageGroupName",
)
PSEUDO_PARAMETER_NAMES: tuple[str, ...] = ("AWS::Partition", "AWS::AccountId")


def role_arn_placeholder(role_name: str) -> str:
    return f"arn:${{AWS::Partition}}:iam::${{AWS::AccountId}}:role/{role_name}"


def example_deploy_time_values(config: EnvironmentConfig) -> DeployTimeValues:
    """Readable stand-ins for `python -m pipeline_definition --resolve` (not real resources)."""
    prefix = config.resource_prefix
    return DeployTimeValues(
        data_bucket_name=f"{prefix}-data-{config.account}",
        artifacts_bucket_name=f"{prefix}-artifacts-{config.account}",
        pipeline_role_arn=f"arn:aws:iam::{config.account}:role/{config.pipeline_execution_role_name}",
        code_bundle_s3_uri=f"s3://cdk-assets-{config.account}-{config.region}/code-bundle.tar.gz",
        kms_key_arn=f"arn:aws:kms:{config.region}:{config.account}:key/00000000-0000-0000-0000-000000000000",
        feature_group_name=config.feature_group_name,
        model_package_group_name=config.model_package_group_name,
    )


@dataclass(frozen=True)
class PipelineDefinitionSettings:
    """Everything the generator needs for one environment."""

    environment: str
    pipeline_name: str
    region: str
    defaults: PipelineConfig
    # Instance types the registered model declares it can be served on (real-time and batch).
    inference_instance_types: tuple[str, ...]
    deploy_time: DeployTimeValues
    # How long a cached step result may be reused (ISO 8601 duration).
    cache_expire_after: str = "P30D"
    training_max_runtime_seconds: int = 6 * 60 * 60
    processing_max_runtime_seconds: int = 2 * 60 * 60
    processing_volume_size_gb: int = 30
    training_volume_size_gb: int = 50

    @classmethod
    def from_environment(
        cls, config: EnvironmentConfig, deploy_time: DeployTimeValues | None = None
    ) -> "PipelineDefinitionSettings":
        return cls(
            environment=config.name,
            pipeline_name=config.pipeline_name,
            region=config.region,
            defaults=config.pipeline,
            inference_instance_types=_inference_instance_types(config),
            deploy_time=deploy_time
            or DeployTimeValues(pipeline_role_arn=role_arn_placeholder(config.pipeline_execution_role_name)),
        )


# Offered to the model registry besides the environment's own serving instance type (a
# serverless environment has none), so that a package can also go to a real-time endpoint.
# CPU types only: the registered image is the CPU build (chosen for the first type).
DEFAULT_INFERENCE_INSTANCE_TYPES: tuple[str, ...] = ("ml.m5.large", "ml.m5.xlarge", "ml.c5.large", "ml.c5.xlarge")


def _inference_instance_types(config: EnvironmentConfig) -> tuple[str, ...]:
    serving_type = config.serving.instance_type
    if serving_type is None:
        return DEFAULT_INFERENCE_INSTANCE_TYPES
    return tuple(dict.fromkeys((serving_type, *DEFAULT_INFERENCE_INSTANCE_TYPES)))
