"""The least-privilege IAM role that SageMaker Pipelines and its jobs (processing, training,
model creation and registration, Feature Store ingestion) run with in one environment."""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from pipeline_definition.image_registries import ImageRepository
from stacks.components.arns import sagemaker_arn_factory
from stacks.components.image_pulls import image_pull_statements
from stacks.nag_suppressions import suppress

# SageMaker Pipelines names every job and model it creates `pipelines-<execution id>-<step>-<hash>`.
PIPELINE_RESOURCE_NAME_PATTERN = "pipelines-*"
SAGEMAKER_SERVICE = "sagemaker.amazonaws.com"


@dataclass(frozen=True)
class PipelineExecutionRoleProps:
    role_name: str
    key: kms.IKey
    data_bucket: s3.IBucket
    artifacts_bucket: s3.IBucket
    feature_group_name: str
    model_package_group_name: str
    # The only approval status the role may register a model version with (the environment's
    # config; PendingManualApproval outside dev).
    model_approval_status: str
    code_assets_bucket_name: str
    # What the jobs, their Debugger/Profiler rule evaluators and the pipeline's model run from:
    # `image_registries.pipeline_repositories(region)`.
    image_repositories: tuple[ImageRepository, ...]


class PipelineExecutionRole(Construct):
    """`self.role` is assumed by sagemaker.amazonaws.com; every grant names its resources."""

    def __init__(self, scope: Construct, construct_id: str, *, props: PipelineExecutionRoleProps) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        region, account = stack.region, stack.account  # each read is a jsii round trip
        self._sagemaker_arn = sagemaker_arn_factory(stack.partition, region, account)
        self.role = iam.Role(
            self,
            "Role",
            # A fixed name lets the pipeline definition carry a literal role ARN (the SageMaker
            # SDK looks the role up when it is handed an unresolved token).
            role_name=props.role_name,
            assumed_by=iam.ServicePrincipal(SAGEMAKER_SERVICE),
            description="Runs the SageMaker training pipeline and its jobs",
        )

        wildcards: list[tuple[str, str]] = []  # (nag finding, why it is acceptable)

        def allow(sid: str, actions: list[str], resources: list[str], conditions: dict | None = None) -> None:
            self.role.add_to_policy(
                iam.PolicyStatement(sid=sid, actions=actions, resources=resources, conditions=conditions)
            )

        # --- S3: the environment's buckets, read/write (splits, models, Debugger/Profiler output).
        project_buckets = (props.data_bucket, props.artifacts_bucket)
        allow("ListProjectBuckets", ["s3:ListBucket", "s3:GetBucketLocation"], [b.bucket_arn for b in project_buckets])
        allow(
            "ReadWriteProjectObjects",
            ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
            [b.arn_for_objects("*") for b in project_buckets],
        )
        for bucket in project_buckets:
            # cdk-nag names a bucket-ARN wildcard after the bucket's logical id.
            wildcards.append((
                f"Resource::<{stack.get_logical_id(bucket.node.default_child)}.Arn>/*",
                "Jobs read and write objects anywhere in the environment's own buckets; object keys "
                "contain execution ids that are unknown at deploy time.",
            ))

        # --- S3: read the pipeline code bundle, a CDK file asset in the bootstrap assets bucket.
        assets_bucket_arn = f"arn:{stack.partition}:s3:::{props.code_assets_bucket_name}"
        allow("ListCodeAssetsBucket", ["s3:ListBucket", "s3:GetBucketLocation"], [assets_bucket_arn])
        allow("ReadCodeAssets", ["s3:GetObject"], [f"{assets_bucket_arn}/*"])
        wildcards.append((
            f"Resource::arn:<AWS::Partition>:s3:::{props.code_assets_bucket_name}/*",
            "Read-only access to the CDK bootstrap assets bucket: asset keys are content hashes, "
            "unknown until synth, and that bucket holds only this account's deployment assets.",
        ))

        # --- KMS: the environment key (S3 SSE-KMS, job volumes, Feature Store).
        allow(
            "UseDataKey",
            ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
            [props.key.key_arn],
        )
        allow(
            "GrantDataKeyToJobVolumes",
            ["kms:CreateGrant"],
            [props.key.key_arn],
            {"Bool": {"kms:GrantIsForAWSResource": "true"}},
        )

        # --- SageMaker: jobs and models created by pipeline executions only.
        job_arns = {kind: self._sagemaker_arn(kind, PIPELINE_RESOURCE_NAME_PATTERN)
                    for kind in ("processing-job", "training-job", "model")}
        allow(
            "RunPipelineProcessingJobs",
            ["sagemaker:CreateProcessingJob", "sagemaker:DescribeProcessingJob", "sagemaker:StopProcessingJob"],
            [job_arns["processing-job"]],
        )
        allow(
            "RunPipelineTrainingJobs",
            ["sagemaker:CreateTrainingJob", "sagemaker:DescribeTrainingJob", "sagemaker:StopTrainingJob"],
            [job_arns["training-job"]],
        )
        allow("CreatePipelineModels", ["sagemaker:CreateModel", "sagemaker:DescribeModel"], [job_arns["model"]])
        allow("TagPipelineResources", ["sagemaker:AddTags"], list(job_arns.values()))
        for kind in job_arns:
            wildcards.append((
                f"Resource::arn:<AWS::Partition>:sagemaker:{region}:{account}:{kind}/{PIPELINE_RESOURCE_NAME_PATTERN}",
                f"SageMaker Pipelines names each {kind} 'pipelines-<execution id>-<step>-<hash>'; "
                "the prefix is as narrow as the service allows.",
            ))

        # --- SageMaker: register model versions into this environment's model package group,
        # with the environment's approval status only: a run, or code in any of its jobs, cannot
        # register a version as Approved where a person must approve it. The condition key is
        # the status in the CreateModelPackage request; a request without one matches nothing.
        group_arn = self._sagemaker_arn("model-package-group", props.model_package_group_name)
        package_arns = self._sagemaker_arn("model-package", f"{props.model_package_group_name}/*")
        allow(
            "RegisterModelVersions",
            ["sagemaker:CreateModelPackage"],
            [group_arn, package_arns],
            {"StringEquals": {"sagemaker:ModelApprovalStatus": props.model_approval_status}},
        )
        allow(
            "ReadModelVersions",
            [
                "sagemaker:DescribeModelPackage",
                "sagemaker:DescribeModelPackageGroup",
                "sagemaker:ListModelPackages",
                "sagemaker:AddTags",
            ],
            [group_arn, package_arns],
        )
        # Approving is a person's decision: never this role's, whatever else it is granted later.
        self.role.add_to_policy(iam.PolicyStatement(
            sid="NeverApproveModelVersions",
            effect=iam.Effect.DENY,
            actions=["sagemaker:UpdateModelPackage"],
            resources=[group_arn, package_arns],
        ))
        wildcards.append((
            f"Resource::arn:<AWS::Partition>:sagemaker:{region}:{account}:model-package/{props.model_package_group_name}/*",
            "Model versions of the environment's own model package group; version numbers are "
            "assigned by SageMaker at registration.",
        ))

        # --- Feature Store: ingest prepared reviews into the environment's feature group.
        allow(
            "IngestIntoFeatureGroup",
            ["sagemaker:PutRecord", "sagemaker:GetRecord", "sagemaker:DescribeFeatureGroup"],
            [self._sagemaker_arn("feature-group", props.feature_group_name)],
        )

        # --- CloudWatch: job logs and metrics.
        log_group_arns = [
            stack.format_arn(
                service="logs",
                resource="log-group",
                resource_name=f"/aws/sagemaker/{group}:*",
                arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
            )
            for group in ("ProcessingJobs", "TrainingJobs")
        ]
        allow(
            "WriteJobLogs",
            ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
            log_group_arns,
        )
        for group in ("ProcessingJobs", "TrainingJobs"):
            wildcards.append((
                f"Resource::arn:<AWS::Partition>:logs:{region}:{account}:log-group:/aws/sagemaker/{group}:*",
                "Log streams of SageMaker jobs, named by SageMaker after each job, inside its fixed log group.",
            ))
        allow(
            "PublishJobMetrics",
            ["cloudwatch:PutMetricData"],
            ["*"],
            {"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}},
        )
        wildcards.append((
            "Resource::*",
            "cloudwatch:PutMetricData and ecr:GetAuthorizationToken support no resource-level "
            "permissions; metrics are limited to the /aws/sagemaker/ namespaces by a condition.",
        ))

        # --- ECR: pull the images the jobs, their rule evaluators and the pipeline's model run from.
        for statement in image_pull_statements(self, props.image_repositories):
            self.role.add_to_policy(statement)

        # --- Pass this role (and only this role) to the jobs the pipeline starts.
        allow(
            "PassRoleToSageMakerJobs",
            ["iam:PassRole"],
            [self.role.role_arn],
            {"StringEquals": {"iam:PassedToService": SAGEMAKER_SERVICE}},
        )

        for finding, reason in wildcards:
            suppress(self.role, "AwsSolutions-IAM5", reason, applies_to=[finding], apply_to_children=True)

