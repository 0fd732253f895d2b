"""The reviews Feature Group: one record per prepared review (the columns prepare.py writes),
with a KMS-encrypted offline store in the data bucket, catalogued in Glue for Athena."""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from stacks.components.lifecycle import removal_policy
from stacks.nag_suppressions import suppress

RECORD_ID_FEATURE = "review_id"
EVENT_TIME_FEATURE = "date"
# Feature name -> Feature Store type, in the order prepare.py writes the columns. input_ids is
# a JSON-encoded list: collection types would force the in-memory online store.
REVIEW_FEATURES: dict[str, str] = {
    "review_id": "String",
    "date": "String",  # ISO-8601 UTC, the record's event time
    "sentiment": "Integral",
    "label_id": "Integral",
    "input_ids": "String",
    "review_body": "String",
    "split_type": "String",
}
# Feature Store creates its Glue tables in this database (and names them after the group).
FEATURE_STORE_GLUE_DATABASE = "sagemaker_featurestore"


@dataclass(frozen=True)
class ReviewsFeatureStoreProps:
    feature_group_name: str
    key: kms.IKey
    data_bucket: s3.IBucket
    offline_store_prefix: str
    online_store_enabled: bool
    retain_on_delete: bool


class ReviewsFeatureStore(Construct):
    """Feature group + the narrow role Feature Store uses to write its offline store."""

    def __init__(self, scope: Construct, construct_id: str, *, props: ReviewsFeatureStoreProps) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        prefix = props.offline_store_prefix.strip("/")
        self.offline_store_s3_uri = props.data_bucket.s3_url_for_object(prefix)

        self.offline_store_role = iam.Role(
            self,
            "OfflineStoreRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="Lets SageMaker Feature Store write the reviews offline store",
        )
        offline_objects = props.data_bucket.arn_for_objects(f"{prefix}/*")
        glue_table_prefix = props.feature_group_name.replace("-", "_")
        glue_tables = stack.format_arn(
            service="glue", resource="table",
            resource_name=f"{FEATURE_STORE_GLUE_DATABASE}/{glue_table_prefix}*",
        )
        for statement in (
            iam.PolicyStatement(
                sid="WriteOfflineStore",
                actions=["s3:PutObject", "s3:PutObjectAcl", "s3:GetObject"],
                resources=[offline_objects],
            ),
            iam.PolicyStatement(sid="CheckBucketAcl", actions=["s3:GetBucketAcl"], resources=[props.data_bucket.bucket_arn]),
            iam.PolicyStatement(
                sid="EncryptOfflineStore",
                actions=["kms:GenerateDataKey", "kms:Decrypt", "kms:DescribeKey"],
                resources=[props.key.key_arn],
            ),
            iam.PolicyStatement(
                sid="MaintainGlueTable",
                actions=["glue:GetTable", "glue:UpdateTable"],
                resources=[
                    stack.format_arn(service="glue", resource="catalog"),
                    stack.format_arn(service="glue", resource="database", resource_name=FEATURE_STORE_GLUE_DATABASE),
                    glue_tables,
                ],
            ),
        ):
            self.offline_store_role.add_to_policy(statement)
        data_bucket_id = stack.get_logical_id(props.data_bucket.node.default_child)
        suppress(
            self.offline_store_role, "AwsSolutions-IAM5",
            "Feature Store writes date-partitioned files under its own prefix of the data bucket.",
            applies_to=[f"Resource::<{data_bucket_id}.Arn>/{prefix}/*"], apply_to_children=True,
        )
        suppress(
            self.offline_store_role, "AwsSolutions-IAM5",
            "Feature Store names the group's Glue table '<group name>_<creation timestamp>'; "
            "the pattern admits only this group's tables.",
            applies_to=[
                f"Resource::arn:<AWS::Partition>:glue:{stack.region}:{stack.account}:table/"
                f"{FEATURE_STORE_GLUE_DATABASE}/{glue_table_prefix}*"
            ],
            apply_to_children=True,
        )

        # OfflineStoreConfig and OnlineStoreConfig are untyped JSON in the CloudFormation spec,
        # so CDK passes them through as written: keys must be CloudFormation's PascalCase.
        online_store: dict = {"EnableOnlineStore": props.online_store_enabled}
        if props.online_store_enabled:
            online_store["SecurityConfig"] = {"KmsKeyId": props.key.key_arn}
        self.feature_group = sagemaker.CfnFeatureGroup(
            self,
            "FeatureGroup",
            feature_group_name=props.feature_group_name,
            description="Prepared product reviews: tokens, labels and split assignment",
            record_identifier_feature_name=RECORD_ID_FEATURE,
            event_time_feature_name=EVENT_TIME_FEATURE,
            feature_definitions=[
                sagemaker.CfnFeatureGroup.FeatureDefinitionProperty(feature_name=name, feature_type=feature_type)
                for name, feature_type in REVIEW_FEATURES.items()
            ],
            offline_store_config={
                "S3StorageConfig": {"S3Uri": self.offline_store_s3_uri, "KmsKeyId": props.key.key_arn},
                "DisableGlueTableCreation": False,
                "TableFormat": "Glue",
            },
            online_store_config=online_store,
            role_arn=self.offline_store_role.role_arn,
        )
        # Feature Store checks its access to the bucket on creation: the policy must exist first.
        self.feature_group.node.add_dependency(self.offline_store_role)
        self.feature_group.apply_removal_policy(removal_policy(props.retain_on_delete))
