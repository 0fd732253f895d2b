"""The Athena workgroup for querying the Feature Store offline store, with its results
KMS-encrypted in the data bucket and the settings enforced on every query."""

from __future__ import annotations

from aws_cdk import aws_athena as athena
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

# A runaway query (a missing WHERE on a large offline store) stops here instead of billing on.
BYTES_SCANNED_CUTOFF_PER_QUERY = 10 * 1024**3


class FeatureStoreQueryWorkgroup(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        workgroup_name: str,
        key: kms.IKey,
        results_bucket: s3.IBucket,
        results_prefix: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self.results_location = results_bucket.s3_url_for_object(results_prefix.strip("/")) + "/"
        self.workgroup = athena.CfnWorkGroup(
            self,
            "WorkGroup",
            name=workgroup_name,
            description="Queries of the reviews Feature Store offline store",
            state="ENABLED",
            # Deleting the stack must not fail on saved queries; results live in the data bucket.
            recursive_delete_option=True,
            work_group_configuration=athena.CfnWorkGroup.WorkGroupConfigurationProperty(
                enforce_work_group_configuration=True,
                publish_cloud_watch_metrics_enabled=True,
                bytes_scanned_cutoff_per_query=BYTES_SCANNED_CUTOFF_PER_QUERY,
                result_configuration=athena.CfnWorkGroup.ResultConfigurationProperty(
                    output_location=self.results_location,
                    encryption_configuration=athena.CfnWorkGroup.EncryptionConfigurationProperty(
                        encryption_option="SSE_KMS", kms_key=key.key_arn,
                    ),
                ),
            ),
        )
        self.workgroup_name = workgroup_name
