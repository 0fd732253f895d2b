"""What the foundation stack hands to the pipeline and serving stacks of one environment."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3


@dataclass(frozen=True)
class SharedResources:
    key: kms.IKey
    data_bucket: s3.IBucket
    artifacts_bucket: s3.IBucket
    access_logs_bucket: s3.IBucket
    pipeline_execution_role: iam.IRole
    feature_group_name: str
    model_package_group_name: str
    athena_workgroup_name: str
