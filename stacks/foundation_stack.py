"""The per-environment foundation: encrypted storage, the pipeline's execution role, the reviews
Feature Group with its Athena workgroup, the model registry the other stacks build on, and the SSM
parameter that records which model package serves (it must exist before the serving stack)."""

from __future__ import annotations

import aws_cdk as cdk
from constructs import Construct

from pipeline_definition import image_registries
from pipeline_definition.locations import IMMUTABLE_MODELS_PREFIX
from stacks.components.approved_model_package_parameter import (
    ApprovedModelPackageParameter,
    ApprovedModelPackageParameterProps,
)
from stacks.components.cdk_bootstrap import bootstrap_name
from stacks.components.encrypted_buckets import (
    ATHENA_RESULTS_PREFIX,
    FEATURE_STORE_OFFLINE_PREFIX,
    EncryptedBuckets,
    EncryptedBucketsProps,
)
from stacks.components.feature_store_query_workgroup import FeatureStoreQueryWorkgroup
from stacks.components.immutable_model_artifacts import ImmutableModelArtifacts
from stacks.components.model_registry import ModelRegistry
from stacks.components.promotion_access import PromotionSourceGrants, PromotionTarget
from stacks.components.pipeline_execution_role import PipelineExecutionRole, PipelineExecutionRoleProps
from stacks.components.reviews_feature_store import ReviewsFeatureStore, ReviewsFeatureStoreProps
from stacks.config import EnvironmentConfig
from stacks.shared_resources import SharedResources


class FoundationStack(cdk.Stack):
    # Construct ids below name stateful resources: they are frozen (renaming replaces the resource).
    def __init__(
        self, scope: Construct, construct_id: str, *, config: EnvironmentConfig,
        promotion_targets: tuple[PromotionTarget, ...] = (), **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        storage = EncryptedBuckets(
            self,
            "Storage",
            props=EncryptedBucketsProps(
                resource_prefix=config.resource_prefix,
                # Another environment serves the sealed artifacts in place (never copied): deleting
                # this environment must not take them, or their key, away from that endpoint.
                retain_on_delete=config.retain_on_delete or bool(promotion_targets),
                access_log_retention_days=config.log_retention_days,
                data_capture_retention_days=config.serving.data_capture_retention_days,
            ),
        )
        feature_store = ReviewsFeatureStore(
            self,
            "ReviewsFeatureStore",
            props=ReviewsFeatureStoreProps(
                feature_group_name=config.feature_group_name,
                key=storage.key,
                data_bucket=storage.data_bucket,
                offline_store_prefix=FEATURE_STORE_OFFLINE_PREFIX,
                online_store_enabled=config.feature_store.online_store_enabled,
                retain_on_delete=config.retain_on_delete,
            ),
        )
        registry = ModelRegistry(
            self,
            "ModelRegistry",
            model_package_group_name=config.model_package_group_name,
            retain_on_delete=config.retain_on_delete,
        )
        execution_role = PipelineExecutionRole(
            self,
            "PipelineExecution",
            props=PipelineExecutionRoleProps(
                role_name=config.pipeline_execution_role_name,
                key=storage.key,
                data_bucket=storage.data_bucket,
                artifacts_bucket=storage.artifacts_bucket,
                feature_group_name=config.feature_group_name,
                model_package_group_name=config.model_package_group_name,
                model_approval_status=config.pipeline.model_approval_status,
                code_assets_bucket_name=_file_assets_bucket_name(self),
                image_repositories=image_registries.pipeline_repositories(config.region),
            ),
        )
        self.approved_model_package = ApprovedModelPackageParameter(
            self,
            "ApprovedModelPackage",
            props=ApprovedModelPackageParameterProps(
                parameter_name=config.approved_model_package_parameter_name,
                model_package_group_name=config.model_package_group_name,
                retain_on_delete=config.retain_on_delete,
                log_retention_days=config.log_retention_days,
                key=storage.key,
            ),
        )
        ImmutableModelArtifacts(
            self,
            "ImmutableModelArtifacts",
            bucket=storage.artifacts_bucket,
            prefix=IMMUTABLE_MODELS_PREFIX,
            writer_role=execution_role.role,
        )
        if promotion_targets:
            PromotionSourceGrants(
                self, "PromotionSourceGrants", group=registry.model_package_group,
                bucket=storage.artifacts_bucket, key=storage.key, targets=promotion_targets,
            )
        workgroup = FeatureStoreQueryWorkgroup(
            self,
            "FeatureStoreQueries",
            workgroup_name=config.athena_workgroup_name,
            key=storage.key,
            results_bucket=storage.data_bucket,
            results_prefix=ATHENA_RESULTS_PREFIX,
        )

        self.shared = SharedResources(
            key=storage.key,
            data_bucket=storage.data_bucket,
            artifacts_bucket=storage.artifacts_bucket,
            access_logs_bucket=storage.access_logs_bucket,
            pipeline_execution_role=execution_role.role,
            feature_group_name=config.feature_group_name,
            model_package_group_name=config.model_package_group_name,
            athena_workgroup_name=config.athena_workgroup_name,
        )

        for output_id, value, description in (
            ("DataBucketName", storage.data_bucket.bucket_name, "Raw reviews, splits, offline store, data capture"),
            ("ArtifactsBucketName", storage.artifacts_bucket.bucket_name, "Pipeline code, models, Debugger/Profiler output"),
            ("AccessLogsBucketName", storage.access_logs_bucket.bucket_name, "S3 server access logs"),
            ("DataKeyArn", storage.key.key_arn, "KMS key that encrypts this environment's data"),
            ("PipelineExecutionRoleArn", execution_role.role.role_arn, "Role of the pipeline and its jobs"),
            ("FeatureGroupName", feature_store.feature_group.ref, "Reviews feature group"),
            ("OfflineStoreS3Uri", feature_store.offline_store_s3_uri, "Where the offline store writes"),
            ("ModelPackageGroupName", registry.model_package_group.model_package_group_name, "Model registry group"),
            ("AthenaWorkgroupName", workgroup.workgroup.ref, "Athena workgroup for offline store queries"),
            ("ApprovedModelPackageParameterName", self.approved_model_package.parameter_name,
             "SSM parameter: the model package the endpoint serves (written by the approval deployer)"),
        ):
            cdk.CfnOutput(self, output_id, value=value, description=description)


def _file_assets_bucket_name(stack: cdk.Stack) -> str:
    """The CDK bootstrap assets bucket that holds this stack's file assets (the pipeline code)."""
    return bootstrap_name(stack, cdk.DefaultStackSynthesizer.DEFAULT_FILE_ASSETS_BUCKET_NAME)
