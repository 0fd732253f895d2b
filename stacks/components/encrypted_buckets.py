"""The environment's customer-managed KMS key and its three buckets (data, artifacts, access
logs), all private, TLS-only, versioned, with lifecycle rules and a per-environment removal policy."""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.components.lifecycle import removal_policy
from stacks.nag_suppressions import suppress

# Prefixes with a lifecycle of their own. Other prefixes (raw reviews, processed splits,
# Feature Store offline store, endpoint data capture) are chosen by the stacks that write them.
ATHENA_RESULTS_PREFIX = "athena-query-results/"
FEATURE_STORE_OFFLINE_PREFIX = "feature-store/"

# Overwritten or deleted objects stay recoverable this long (versioning), then cost nothing.
NONCURRENT_VERSION_RETENTION = cdk.Duration.days(90)
# Query results are reproducible from the offline store: keep them a month.
ATHENA_RESULTS_RETENTION = cdk.Duration.days(30)
ABORT_INCOMPLETE_UPLOADS_AFTER = cdk.Duration.days(7)


@dataclass(frozen=True)
class EncryptedBucketsProps:
    resource_prefix: str
    retain_on_delete: bool
    access_log_retention_days: int


class EncryptedBuckets(Construct):
    """Key + buckets. Construct ids are frozen: renaming one replaces a stateful resource."""

    def __init__(self, scope: Construct, construct_id: str, *, props: EncryptedBucketsProps) -> None:
        super().__init__(scope, construct_id)
        removal = removal_policy(props.retain_on_delete)
        # A destroyable environment must really be destroyable: CloudFormation cannot delete a
        # non-empty (versioned) bucket, so such buckets get CDK's auto-delete custom resource.
        auto_delete_objects = not props.retain_on_delete

        self.key = kms.Key(
            self,
            "DataKey",
            description=f"{props.resource_prefix}: data, artifacts, Feature Store and query results",
            alias=f"alias/{props.resource_prefix}",
            enable_key_rotation=True,
            removal_policy=removal,
            pending_window=cdk.Duration.days(30 if props.retain_on_delete else 7),
        )

        # Server access logs cannot be delivered to an SSE-KMS bucket, hence S3-managed keys here.
        self.access_logs_bucket = s3.Bucket(
            self,
            "AccessLogsBucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-access-logs",
                    expiration=cdk.Duration.days(props.access_log_retention_days),
                    noncurrent_version_expiration=cdk.Duration.days(1),
                    abort_incomplete_multipart_upload_after=ABORT_INCOMPLETE_UPLOADS_AFTER,
                )
            ],
            **_private_bucket_settings(removal, auto_delete_objects),
        )
        suppress(
            self.access_logs_bucket,
            "AwsSolutions-S1",
            "This is the server access log destination; logging it into itself would loop.",
        )

        self.data_bucket = s3.Bucket(
            self,
            "DataBucket",
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            bucket_key_enabled=True,  # far fewer KMS calls for Feature Store's many small files
            server_access_logs_bucket=self.access_logs_bucket,
            server_access_logs_prefix="data-bucket/",
            lifecycle_rules=[
                *_versioned_bucket_rules(),
                s3.LifecycleRule(
                    id="expire-athena-query-results",
                    prefix=ATHENA_RESULTS_PREFIX,
                    expiration=ATHENA_RESULTS_RETENTION,
                ),
            ],
            **_private_bucket_settings(removal, auto_delete_objects),
        )

        self.artifacts_bucket = s3.Bucket(
            self,
            "ArtifactsBucket",
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            bucket_key_enabled=True,
            server_access_logs_bucket=self.access_logs_bucket,
            server_access_logs_prefix="artifacts-bucket/",
            lifecycle_rules=_versioned_bucket_rules(),
            **_private_bucket_settings(removal, auto_delete_objects),
        )


def _private_bucket_settings(removal_policy: cdk.RemovalPolicy, auto_delete_objects: bool) -> dict:
    return {
        "block_public_access": s3.BlockPublicAccess.BLOCK_ALL,
        "enforce_ssl": True,
        "minimum_tls_version": 1.2,
        "versioned": True,
        "removal_policy": removal_policy,
        "auto_delete_objects": auto_delete_objects,
    }


def _versioned_bucket_rules() -> list[s3.LifecycleRule]:
    return [
        s3.LifecycleRule(
            id="expire-noncurrent-versions",
            noncurrent_version_expiration=NONCURRENT_VERSION_RETENTION,
            abort_incomplete_multipart_upload_after=ABORT_INCOMPLETE_UPLOADS_AFTER,
        )
    ]
