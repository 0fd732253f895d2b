"""SCAFFOLD (to be replaced by the foundation work): minimal shared resources of one environment."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.config import EnvironmentConfig
from stacks.shared_resources import SharedResources


class FoundationStack(cdk.Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: EnvironmentConfig, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        key = kms.Key(self, "DataKey", enable_key_rotation=True)
        logs = s3.Bucket(self, "AccessLogsBucket", encryption=s3.BucketEncryption.S3_MANAGED)
        data = s3.Bucket(self, "DataBucket", encryption_key=key)
        artifacts = s3.Bucket(self, "ArtifactsBucket", encryption_key=key)
        role = iam.Role(self, "PipelineExecutionRole", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"))
        self.shared = SharedResources(
            key=key, data_bucket=data, artifacts_bucket=artifacts, access_logs_bucket=logs,
            pipeline_execution_role=role, feature_group_name=config.feature_group_name,
            model_package_group_name=config.model_package_group_name,
            athena_workgroup_name=config.athena_workgroup_name,
        )
