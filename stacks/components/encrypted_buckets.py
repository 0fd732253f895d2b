"""The environment's customer-managed KMS key and its three buckets (data, artifacts, access
logs), all private, TLS-only, versioned, with lifecycle rules and a per-environment removal policy.
The key's policy also lets CloudWatch Logs encrypt this account's log groups in this region."""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.checkov_skips import skip_cdk_provider_checks, skip_checkov
from stacks.components.lifecycle import removal_policy
from stacks.nag_suppressions import suppress

# Prefixes with a lifecycle of their own. Other prefixes (raw reviews, processed splits,
# Feature Store offline store) are chosen by the stacks that write them.
ATHENA_RESULTS_PREFIX = "athena-query-results/"
FEATURE_STORE_OFFLINE_PREFIX = "feature-store/"
# Endpoint data capture (raw request and response bodies) under <prefix>/<endpoint name>/.
DATA_CAPTURE_PREFIX = "data-capture"

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
    data_capture_retention_days: int


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
        _allow_cloudwatch_logs(self.key)

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
        skip_checkov(
            self.access_logs_bucket,
            "CKV_AWS_18",
            "This bucket is the server access log destination of the data and artifacts buckets; "
            "logging its own access into itself would loop.",
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
                # Raw review text: the current version expires after the environment's retention
                # and the version that expiry leaves behind a day later (not after the bucket's
                # 90 days; S3 applies the earliest of overlapping expirations).
                s3.LifecycleRule(
                    id="expire-data-capture",
                    prefix=f"{DATA_CAPTURE_PREFIX}/",
                    expiration=cdk.Duration.days(props.data_capture_retention_days),
                    noncurrent_version_expiration=cdk.Duration.days(1),
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
        if auto_delete_objects:
            _skip_auto_delete_provider_checks(cdk.Stack.of(self))


def _allow_cloudwatch_logs(key: kms.Key) -> None:
    """CloudWatch Logs encrypts a log group with the key only if the key policy allows its regional
    service principal; the encryption-context condition limits that to this account's log groups in
    this region (the form AWS documents for KMS-encrypted log groups)."""
    stack = cdk.Stack.of(key)
    key.add_to_resource_policy(iam.PolicyStatement(
        sid="AllowCloudWatchLogsOfThisAccountAndRegion",
        principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
        actions=["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
        resources=["*"],
        conditions={"ArnLike": {"kms:EncryptionContext:aws:logs:arn": stack.format_arn(
            service="logs", resource="log-group", resource_name="*", arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )}},
    ))


# CDK's singleton provider behind `auto_delete_objects` (a CfnResource, not a lambda.Function).
_AUTO_DELETE_PROVIDER_ID = "Custom::S3AutoDeleteObjectsCustomResourceProvider"


def _skip_auto_delete_provider_checks(stack: cdk.Stack) -> None:
    provider = stack.node.try_find_child(_AUTO_DELETE_PROVIDER_ID)
    skip_cdk_provider_checks(
        provider.node.try_find_child("Handler") if provider is not None else None,
        where=stack.node.path, what="CDK's auto-delete-objects provider",
        runs_when="deletes a bucket of this destroyable environment",
        service="S3", calls_on="this stack's buckets",
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
