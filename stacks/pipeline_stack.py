"""The training pipeline of one environment: the container code as a content-addressed asset,
the SageMaker Pipeline definition generated at synth time, and the custom resource that
creates or updates the pipeline on every deploy."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from pipeline_definition.code_bundle import build_code_bundle
from pipeline_definition.settings import PLACEHOLDER_NAMES
from stacks.components.pipeline_upserter import PipelineUpserter
from stacks.config import EnvironmentConfig
from stacks.shared_resources import SharedResources


class PipelineStack(cdk.Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: EnvironmentConfig, shared: SharedResources,
        definition_template: str, **kwargs,
    ) -> None:
        """`definition_template`: the environment's definition JSON with its `${...}` placeholders
        (stacks/pipeline_definitions.definition_template)."""
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        self.shared = shared

        # The bundle's key is its content hash: a changed script changes the definition, so
        # the next deploy updates the pipeline, and unchanged code keeps step caches valid.
        bundle = build_code_bundle()
        self.code_bundle = s3_assets.Asset(self, "CodeBundle", path=str(bundle.path))

        self.definition_template = definition_template
        deploy_time_values = {
            "DataBucketName": shared.data_bucket.bucket_name,
            "ArtifactsBucketName": shared.artifacts_bucket.bucket_name,
            "CodeBundleBucket": self.code_bundle.s3_bucket_name,
            "CodeBundleKey": self.code_bundle.s3_object_key,
            "DataKeyArn": shared.key.key_arn,
            "FeatureGroupName": shared.feature_group_name,
            "ModelPackageGroupName": shared.model_package_group_name,
        }
        if set(deploy_time_values) != set(PLACEHOLDER_NAMES):
            raise ValueError(f"deploy-time values {sorted(deploy_time_values)} must match the placeholders {sorted(PLACEHOLDER_NAMES)}")
        definition = cdk.Fn.sub(self.definition_template, deploy_time_values)

        self.upserter = PipelineUpserter(
            self,
            "Pipeline",
            pipeline_name=config.pipeline_name,
            pipeline_definition=definition,
            pipeline_role=shared.pipeline_execution_role,
            description=f"Review classifier ({config.name}): prepare, train, evaluate, register",
            tags=config.tags,
            retain_on_delete=config.retain_on_delete,
            start_execution_after_upsert=config.pipeline.start_execution_after_upsert,
            log_retention_days=config.log_retention_days,
            encryption_key=shared.key,
        )

        cdk.CfnOutput(self, "PipelineName", value=config.pipeline_name, description="SageMaker pipeline name")
        cdk.CfnOutput(self, "PipelineArn", value=self.upserter.pipeline_arn, description="SageMaker pipeline ARN")
        cdk.CfnOutput(
            self,
            "StartPipelineExecutionCommand",
            value=start_execution_command(config),
            description="Starts a run with the environment's defaults; add Name=...,Value=... pairs to override",
        )


def start_execution_command(config: EnvironmentConfig) -> str:
    return (
        f"aws sagemaker start-pipeline-execution --region {config.region} "
        f"--pipeline-name {config.pipeline_name} "
        f"--pipeline-parameters Name=Epochs,Value={config.pipeline.epochs}"
    )
