"""What matters in the foundation stack of every environment: encryption, private TLS-only
versioned buckets, retention, least-privilege roles, the feature group and the workgroup."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from aws_cdk.assertions import Match

import reviews
from support.cfn_template import as_list, only, resources_of_type
from stacks.components.reviews_feature_store import REVIEW_FEATURES
from stacks.config import load_all_environments, load_environment, promotion_targets

# Every Resource "*" the pipeline role may hold: actions without resource-level permissions.
ACTIONS_ALLOWED_ON_ANY_RESOURCE = {"cloudwatch:PutMetricData", "ecr:GetAuthorizationToken"}
PROJECT_BUCKET_IDS = ("StorageDataBucket", "StorageArtifactsBucket")


@pytest.fixture
def config(environment_name):
    return load_environment(environment_name)


@pytest.fixture
def storage_retained(config):
    """An environment that others promote from keeps its storage whatever its removal policy:
    their endpoints read the sealed artifacts from its bucket, with its key."""
    return config.retain_on_delete or bool(promotion_targets(config, load_all_environments()))


@pytest.fixture
def template(synthesized_app, environment_name):
    return synthesized_app.template(environment_name, "foundation")


@pytest.fixture
def template_json(synthesized_app, environment_name):
    return synthesized_app.template_json(environment_name, "foundation")




def role_statements(template_json: dict, role_logical_id_prefix: str) -> list[dict]:
    role_id, _ = only(template_json, "AWS::IAM::Role", role_logical_id_prefix)
    statements = []
    for policy in resources_of_type(template_json, "AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"]["Roles"]:
            statements.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    assert statements, f"no policy attached to {role_id}"
    return statements


# --- KMS ------------------------------------------------------------------------------------

def test_customer_managed_key_rotates(template):
    template.resource_count_is("AWS::KMS::Key", 1)
    template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})


def test_key_retention_follows_environment(template, storage_retained):
    expected = "Retain" if storage_retained else "Delete"
    template.has_resource("AWS::KMS::Key", {"DeletionPolicy": expected, "UpdateReplacePolicy": expected})


# --- S3 -------------------------------------------------------------------------------------

def test_three_buckets_all_private_versioned_and_encrypted(template_json):
    buckets = resources_of_type(template_json, "AWS::S3::Bucket")
    assert len(buckets) == 3
    for logical_id, bucket in buckets.items():
        properties = bucket["Properties"]
        assert properties["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True, "BlockPublicPolicy": True,
            "IgnorePublicAcls": True, "RestrictPublicBuckets": True,
        }, logical_id
        assert properties["VersioningConfiguration"] == {"Status": "Enabled"}, logical_id
        assert properties["BucketEncryption"]["ServerSideEncryptionConfiguration"], logical_id
        assert properties["LifecycleConfiguration"]["Rules"], logical_id


def test_data_and_artifacts_buckets_use_the_key_and_log_access(template_json):
    key_id, _ = only(template_json, "AWS::KMS::Key")
    logs_id, _ = only(template_json, "AWS::S3::Bucket", "StorageAccessLogsBucket")
    for prefix in PROJECT_BUCKET_IDS:
        _, bucket = only(template_json, "AWS::S3::Bucket", prefix)
        [rule] = bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert rule["ServerSideEncryptionByDefault"] == {
            "SSEAlgorithm": "aws:kms", "KMSMasterKeyID": {"Fn::GetAtt": [key_id, "Arn"]},
        }
        assert bucket["Properties"]["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": logs_id}


def test_access_log_bucket_uses_s3_managed_keys(template_json):
    # S3 cannot deliver server access logs to an SSE-KMS bucket.
    _, bucket = only(template_json, "AWS::S3::Bucket", "StorageAccessLogsBucket")
    [rule] = bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}


def test_access_logs_expire_with_the_environment_log_retention(template_json, config):
    _, bucket = only(template_json, "AWS::S3::Bucket", "StorageAccessLogsBucket")
    expirations = [rule.get("ExpirationInDays") for rule in bucket["Properties"]["LifecycleConfiguration"]["Rules"]]
    assert config.log_retention_days in expirations


def test_versioned_buckets_expire_noncurrent_versions_and_abort_uploads(template_json):
    for prefix in PROJECT_BUCKET_IDS:
        _, bucket = only(template_json, "AWS::S3::Bucket", prefix)
        rules = bucket["Properties"]["LifecycleConfiguration"]["Rules"]
        assert any("NoncurrentVersionExpiration" in rule for rule in rules), prefix
        assert any("AbortIncompleteMultipartUpload" in rule for rule in rules), prefix


def test_every_bucket_policy_denies_insecure_transport(template_json):
    buckets = resources_of_type(template_json, "AWS::S3::Bucket")
    protected = set()
    for policy in resources_of_type(template_json, "AWS::S3::BucketPolicy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if (statement["Effect"] == "Deny"
                    and statement.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
                    and statement["Principal"] == {"AWS": "*"}):
                protected.add(policy["Properties"]["Bucket"]["Ref"])
    assert protected == set(buckets)


def test_bucket_retention_follows_environment(template_json, storage_retained):
    expected = "Retain" if storage_retained else "Delete"
    for logical_id, bucket in resources_of_type(template_json, "AWS::S3::Bucket").items():
        assert bucket["DeletionPolicy"] == expected, logical_id
        assert bucket["UpdateReplacePolicy"] == expected, logical_id


def test_only_destroyable_environments_empty_buckets_on_delete(template_json, storage_retained):
    auto_delete = resources_of_type(template_json, "Custom::S3AutoDeleteObjects")
    assert len(auto_delete) == (0 if storage_retained else 3)


def test_a_promotion_source_keeps_its_storage_although_its_policy_is_destroy(synthesized_app):
    # The default cdk.json: staging is destroyable, and prod serves staging's sealed artifacts.
    staging = load_environment("staging")
    assert not staging.retain_on_delete and staging.name in {
        target.model_source.promote_from for target in load_all_environments().values()
    }
    template_json = synthesized_app.template_json("staging", "foundation")
    for resource_type in ("AWS::S3::Bucket", "AWS::KMS::Key"):
        for logical_id, resource in resources_of_type(template_json, resource_type).items():
            assert resource["DeletionPolicy"] == "Retain", logical_id
    assert not resources_of_type(template_json, "Custom::S3AutoDeleteObjects")
    # What is not read by another environment still follows the policy.
    for resource_type in ("AWS::SageMaker::FeatureGroup", "AWS::SageMaker::ModelPackageGroup"):
        assert {r["DeletionPolicy"] for r in resources_of_type(template_json, resource_type).values()} == {"Delete"}


# --- IAM ------------------------------------------------------------------------------------

def test_no_aws_managed_policies_on_project_roles(template_json):
    for logical_id, role in resources_of_type(template_json, "AWS::IAM::Role").items():
        if logical_id.startswith("CustomS3AutoDeleteObjects"):
            continue  # CDK's own custom-resource provider, only in destroyable environments
        assert "ManagedPolicyArns" not in role["Properties"], logical_id


def test_no_role_has_a_full_access_policy(template_json):
    assert "FullAccess" not in json.dumps(template_json)


def test_pipeline_role_is_named_and_assumed_by_sagemaker(template, config):
    template.has_resource_properties("AWS::IAM::Role", {
        "RoleName": config.pipeline_execution_role_name,
        "AssumeRolePolicyDocument": {"Statement": [Match.object_like({
            "Action": "sts:AssumeRole", "Principal": {"Service": "sagemaker.amazonaws.com"},
        })]},
    })


def test_pipeline_role_holds_no_action_wildcard_and_star_only_where_unavoidable(template_json):
    statements = role_statements(template_json, "PipelineExecutionRole")
    # Its only denies (test_model_release_policies.py evaluates them).
    assert {s["Sid"] for s in statements if s["Effect"] == "Deny"} == {"NeverApproveModelVersions", "NeverDeleteImmutableModels"}
    for statement in statements:
        actions = as_list(statement["Action"])
        assert not any(action.endswith("*") for action in actions), actions
        if "*" in as_list(statement["Resource"]):
            assert set(actions) <= ACTIONS_ALLOWED_ON_ANY_RESOURCE, actions


def test_pipeline_role_sagemaker_grants_are_scoped_to_pipeline_resources(template_json, config):
    scoped = {}
    for statement in role_statements(template_json, "PipelineExecutionRole"):
        for action in as_list(statement["Action"]):
            if action.startswith("sagemaker:"):
                scoped.setdefault(action, []).extend(json.dumps(r) for r in as_list(statement["Resource"]))
    for action in ("sagemaker:CreateProcessingJob", "sagemaker:CreateTrainingJob", "sagemaker:CreateModel"):
        assert scoped[action], action
        assert all(re.search(r":(processing-job|training-job|model)/pipelines-\*", r) for r in scoped[action]), scoped[action]
    assert all(config.model_package_group_name in r for r in scoped["sagemaker:CreateModelPackage"])
    assert all(f"feature-group/{config.feature_group_name}" in r for r in scoped["sagemaker:PutRecord"])


def test_pipeline_role_passes_only_itself_only_to_sagemaker(template_json):
    role_id, _ = only(template_json, "AWS::IAM::Role", "PipelineExecutionRole")
    [statement] = [s for s in role_statements(template_json, "PipelineExecutionRole")
                   if "iam:PassRole" in as_list(s["Action"])]
    assert statement["Resource"] == {"Fn::GetAtt": [role_id, "Arn"]}
    assert statement["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}


def test_pipeline_role_s3_access_is_limited_to_project_and_code_asset_buckets(template_json, config):
    allowed = [*PROJECT_BUCKET_IDS, f"cdk-hnb659fds-assets-{config.account}-{config.region}"]
    for statement in role_statements(template_json, "PipelineExecutionRole"):
        if any(action.startswith("s3:") for action in as_list(statement["Action"])):
            for resource in as_list(statement["Resource"]):
                assert any(name in json.dumps(resource) for name in allowed), resource


def test_code_asset_bucket_is_read_only(template_json):
    for statement in role_statements(template_json, "PipelineExecutionRole"):
        if "cdk-hnb659fds-assets" in json.dumps(statement["Resource"]):
            assert set(as_list(statement["Action"])) <= {"s3:GetObject", "s3:ListBucket", "s3:GetBucketLocation"}


def test_metrics_wildcard_is_limited_by_namespace(template_json):
    [statement] = [s for s in role_statements(template_json, "PipelineExecutionRole")
                   if "cloudwatch:PutMetricData" in as_list(s["Action"])]
    assert statement["Condition"] == {"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}}


def test_offline_store_role_writes_only_its_prefix(template_json):
    for statement in role_statements(template_json, "ReviewsFeatureStoreOfflineStoreRole"):
        if "s3:PutObject" in as_list(statement["Action"]):
            for resource in as_list(statement["Resource"]):
                assert "/feature-store/*" in json.dumps(resource)


# --- Feature Store --------------------------------------------------------------------------

def test_feature_definitions_match_prepared_columns(template_json):
    _, group = only(template_json, "AWS::SageMaker::FeatureGroup")
    properties = group["Properties"]
    names = [definition["FeatureName"] for definition in properties["FeatureDefinitions"]]
    assert names == list(reviews.PREPARED_COLUMNS)
    assert properties["RecordIdentifierFeatureName"] == reviews.RECORD_ID_FEATURE
    assert properties["EventTimeFeatureName"] == reviews.EVENT_TIME_FEATURE


def test_feature_types(template_json):
    _, group = only(template_json, "AWS::SageMaker::FeatureGroup")
    types = {d["FeatureName"]: d["FeatureType"] for d in group["Properties"]["FeatureDefinitions"]}
    assert types == REVIEW_FEATURES
    assert types["sentiment"] == types["label_id"] == "Integral"
    assert types["input_ids"] == "String"  # JSON list: no collection types without the in-memory store


def test_offline_store_is_encrypted_in_the_data_bucket_with_glue_table(template_json, config):
    key_id, _ = only(template_json, "AWS::KMS::Key")
    data_id, _ = only(template_json, "AWS::S3::Bucket", "StorageDataBucket")
    role_id, _ = only(template_json, "AWS::IAM::Role", "ReviewsFeatureStoreOfflineStoreRole")
    _, group = only(template_json, "AWS::SageMaker::FeatureGroup")
    properties = group["Properties"]
    assert properties["FeatureGroupName"] == config.feature_group_name
    offline = properties["OfflineStoreConfig"]
    assert offline["S3StorageConfig"]["KmsKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    assert {"Ref": data_id} in offline["S3StorageConfig"]["S3Uri"]["Fn::Join"][1]
    assert offline["DisableGlueTableCreation"] is False
    assert properties["RoleArn"] == {"Fn::GetAtt": [role_id, "Arn"]}
    assert properties["OnlineStoreConfig"]["EnableOnlineStore"] is config.feature_store.online_store_enabled


def test_feature_group_waits_for_its_role_policy(template_json):
    _, group = only(template_json, "AWS::SageMaker::FeatureGroup")
    policy_id, _ = only(template_json, "AWS::IAM::Policy", "ReviewsFeatureStoreOfflineStoreRole")
    assert policy_id in group["DependsOn"]


def test_stateful_sagemaker_resources_follow_environment_retention(template, config):
    expected = "Retain" if config.retain_on_delete else "Delete"
    template.has_resource("AWS::SageMaker::FeatureGroup", {"DeletionPolicy": expected})
    template.has_resource("AWS::SageMaker::ModelPackageGroup", {"DeletionPolicy": expected})


# --- Model registry and Athena --------------------------------------------------------------

def test_model_package_group_is_named_for_the_environment(template, config):
    template.has_resource_properties(
        "AWS::SageMaker::ModelPackageGroup", {"ModelPackageGroupName": config.model_package_group_name}
    )


def test_athena_workgroup_encrypts_enforced_results_with_the_key(template_json, config):
    key_id, _ = only(template_json, "AWS::KMS::Key")
    _, workgroup = only(template_json, "AWS::Athena::WorkGroup")
    properties = workgroup["Properties"]
    assert properties["Name"] == config.athena_workgroup_name
    configuration = properties["WorkGroupConfiguration"]
    assert configuration["EnforceWorkGroupConfiguration"] is True
    results = configuration["ResultConfiguration"]
    assert results["EncryptionConfiguration"] == {"EncryptionOption": "SSE_KMS", "KmsKey": {"Fn::GetAtt": [key_id, "Arn"]}}
    assert "athena-query-results/" in json.dumps(results["OutputLocation"])


# --- Stability and outputs ------------------------------------------------------------------

FROZEN_LOGICAL_IDS = {
    "AWS::KMS::Key": "StorageDataKeyE15BA43B",
    "AWS::SageMaker::FeatureGroup": "ReviewsFeatureStoreFeatureGroup81C76E30",
    "AWS::SageMaker::ModelPackageGroup": "ModelRegistryModelPackageGroup1833CAA7",
    "AWS::Athena::WorkGroup": "FeatureStoreQueriesWorkGroupC8B4B2DF",
}
FROZEN_BUCKET_IDS = {"StorageAccessLogsBucketFEE4D6FB", "StorageDataBucketB1B922FA", "StorageArtifactsBucketB19151BF"}


def test_stateful_logical_ids_are_frozen(template_json):
    # Renaming one of these replaces the resource (and can destroy its data): never change them.
    for resource_type, logical_id in FROZEN_LOGICAL_IDS.items():
        assert only(template_json, resource_type)[0] == logical_id
    assert set(resources_of_type(template_json, "AWS::S3::Bucket")) == FROZEN_BUCKET_IDS


def test_outputs_a_user_needs(template_json):
    assert {
        "DataBucketName", "ArtifactsBucketName", "AccessLogsBucketName", "DataKeyArn",
        "PipelineExecutionRoleArn", "FeatureGroupName", "ModelPackageGroupName", "AthenaWorkgroupName",
    } <= set(template_json["Outputs"])


def test_shared_resources_expose_the_foundation(synthesized_app, environment_name):
    config = load_environment(environment_name)
    shared = synthesized_app.stacks[(environment_name, "foundation")].shared
    assert shared.feature_group_name == config.feature_group_name
    assert shared.model_package_group_name == config.model_package_group_name
    assert shared.athena_workgroup_name == config.athena_workgroup_name
    assert shared.pipeline_execution_role.node.path.endswith("/PipelineExecution/Role")


def test_code_assets_bucket_follows_the_bootstrap_qualifier(offline_aws_environment, tmp_path):
    import aws_cdk as cdk

    from stacks.foundation_stack import FoundationStack

    config = load_environment("dev")
    context = {**json.loads((Path(__file__).parent.parent / "cdk.json").read_text())["context"],
               "@aws-cdk/core:bootstrapQualifier": "custom123"}
    app = cdk.App(context=context, outdir=str(tmp_path))
    stack = FoundationStack(app, "QualifierCheck", config=config,
                            env=cdk.Environment(account=config.account, region=config.region))
    resources = json.dumps(app.synth().get_stack_artifact(stack.artifact_id).template["Resources"])
    assert f"cdk-custom123-assets-{config.account}-{config.region}" in resources
    assert "cdk-hnb659fds-assets" not in resources
