"""What the pipeline role (and so the code of every pipeline job, which runs as that role) may do
to the model registry and to the model artifacts that versions register and endpoints serve,
read from each environment's synthesized foundation template and evaluated with the condition
keys AWS supplies (moto checks actions and S3 resources only: local_pipeline/iam.py)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from local_pipeline.cloudformation import Deployment, PhysicalResource, find_role, role_policies
from pipeline_definition.locations import IMMUTABLE_MODELS_PREFIX
from stacks.config import load_environment
from support.policy_evaluation import ALLOWED, EXPLICITLY_DENIED, IMPLICITLY_DENIED, Request, evaluate

SEALED_KEY = f"{IMMUTABLE_MODELS_PREFIX}/sha256/{'ab' * 32}/model.tar.gz"
# Every S3 request over TLS 1.3: the buckets' transport denies must not be what decides.
TRANSPORT = {"aws:SecureTransport": "true", "s3:TlsVersion": "1.3"}


@dataclass(frozen=True)
class Foundation:
    role_arn: str
    role_policies: list[dict]
    artifacts_bucket_arn: str
    artifacts_bucket_policy: dict
    group_arn: str

    def decide(self, action: str, resource: str, principal_arn: str | None = None, **context: str) -> str:
        principal = principal_arn or self.role_arn
        request = Request(principal, action, resource, {**TRANSPORT, "aws:PrincipalArn": principal, **context})
        identity = self.role_policies if principal == self.role_arn else []
        return evaluate(request, identity, [self.artifacts_bucket_policy])

    def object_arn(self, key: str) -> str:
        return f"{self.artifacts_bucket_arn}/{key}"


@pytest.fixture
def foundation(synthesized_app, environment_name) -> Foundation:
    config = load_environment(environment_name)
    stack = config.stack_name("foundation")
    template = synthesized_app.template_json(environment_name, "foundation")
    key_id = "00000000-0000-0000-0000-000000000000"
    key = PhysicalResource(key_id, {"Arn": f"arn:aws:kms:{config.region}:{config.account}:key/{key_id}"})
    deployment = Deployment(account=config.account, region=config.region, overrides={"StorageDataKey": key})
    deployment.add_stack(stack, template)
    role_id = find_role(template, role_name=config.pipeline_execution_role_name)
    resources = template["Resources"]
    [bucket_id] = [lid for lid, r in resources.items() if r["Type"] == "AWS::S3::Bucket" and lid.startswith("StorageArtifactsBucket")]
    [bucket_policy] = [r["Properties"]["PolicyDocument"] for r in resources.values()
                       if r["Type"] == "AWS::S3::BucketPolicy" and r["Properties"]["Bucket"] == {"Ref": bucket_id}]
    return Foundation(
        role_arn=deployment.physical(stack, role_id).attributes["Arn"],
        role_policies=list(role_policies(deployment, stack, role_id).policies.values()),
        artifacts_bucket_arn=deployment.physical(stack, bucket_id).attributes["Arn"],
        artifacts_bucket_policy=deployment.resolve(stack, bucket_policy),
        group_arn=f"arn:aws:sagemaker:{config.region}:{config.account}:model-package-group/{config.model_package_group_name}",
    )


# --- Approval -------------------------------------------------------------------------------


def test_the_role_registers_versions_with_the_environments_approval_status_only(foundation, environment_name):
    configured = load_environment(environment_name).pipeline.model_approval_status
    assert foundation.decide("sagemaker:CreateModelPackage", foundation.group_arn,
                             **{"sagemaker:ModelApprovalStatus": configured}) == ALLOWED
    for other in {"PendingManualApproval", "Approved", "Rejected"} - {configured}:
        assert foundation.decide("sagemaker:CreateModelPackage", foundation.group_arn,
                                 **{"sagemaker:ModelApprovalStatus": other}) == IMPLICITLY_DENIED, other
    # A request that names no status matches no condition.
    assert foundation.decide("sagemaker:CreateModelPackage", foundation.group_arn) == IMPLICITLY_DENIED


def test_staging_and_prod_pipelines_cannot_register_an_approved_version(synthesized_app):
    for environment in ("staging", "prod"):
        statement = _statement(synthesized_app, environment, "RegisterModelVersions")
        assert statement["Action"] == "sagemaker:CreateModelPackage"
        assert statement["Condition"] == {"StringEquals": {"sagemaker:ModelApprovalStatus": "PendingManualApproval"}}


def test_the_role_can_never_change_a_versions_approval(foundation):
    package_arn = foundation.group_arn.replace(":model-package-group/", ":model-package/") + "/7"
    assert foundation.decide("sagemaker:UpdateModelPackage", package_arn,
                             **{"sagemaker:ModelApprovalStatus": "Approved"}) == EXPLICITLY_DENIED


def _statement(synthesized_app, environment: str, sid: str) -> dict:
    template = synthesized_app.template_json(environment, "foundation")
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::IAM::Policy":
            for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
                if statement.get("Sid") == sid:
                    return statement
    raise KeyError(sid)


# --- Immutable model artifacts ---------------------------------------------------------------


def test_the_bucket_policy_requires_if_none_match_to_create_under_the_prefix(foundation):
    [create_once] = [s for s in foundation.artifacts_bucket_policy["Statement"] if s.get("Sid") == "CreateImmutableModelsOnlyIfAbsent"]
    assert create_once == {
        "Sid": "CreateImmutableModelsOnlyIfAbsent",
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Action": "s3:PutObject",
        "Resource": foundation.object_arn(f"{IMMUTABLE_MODELS_PREFIX}/*"),
        "Condition": {"Null": {"s3:if-none-match": "true"}, "Bool": {"s3:ObjectCreationOperation": "true"}},
    }
    [no_delete] = [s for s in foundation.artifacts_bucket_policy["Statement"] if s.get("Sid") == "PipelineRoleNeverDeletesImmutableModels"]
    assert no_delete["Effect"] == "Deny" and no_delete["Action"] == ["s3:DeleteObject", "s3:DeleteObjectVersion"]
    assert no_delete["Condition"] == {"ArnEquals": {"aws:PrincipalArn": foundation.role_arn}}


def test_the_role_may_create_a_new_sealed_artifact(foundation):
    created = {"s3:if-none-match": "*", "s3:ObjectCreationOperation": "true"}
    assert foundation.decide("s3:PutObject", foundation.object_arn(SEALED_KEY), **created) == ALLOWED


@pytest.mark.parametrize(
    "request_context",
    [
        pytest.param({"s3:ObjectCreationOperation": "true"}, id="PutObject-without-condition"),
        pytest.param({"s3:ObjectCreationOperation": "true", "s3:if-match": '"etag"'}, id="PutObject-if-match"),
        pytest.param({"s3:ObjectCreationOperation": "true", "s3:x-amz-copy-source": "other-bucket/key"}, id="CopyObject"),
        pytest.param({"s3:ObjectCreationOperation": "true"}, id="CompleteMultipartUpload-without-condition"),
    ],
)
def test_the_role_cannot_overwrite_a_sealed_artifact(foundation, request_context):
    assert foundation.decide("s3:PutObject", foundation.object_arn(SEALED_KEY), **request_context) == EXPLICITLY_DENIED


def test_a_multipart_upload_may_start_and_completes_only_if_absent(foundation):
    # CreateMultipartUpload and UploadPart create no object and take no conditional header.
    assert foundation.decide("s3:PutObject", foundation.object_arn(SEALED_KEY), **{"s3:ObjectCreationOperation": "false"}) == ALLOWED
    assert foundation.decide("s3:PutObject", foundation.object_arn(SEALED_KEY),
                             **{"s3:ObjectCreationOperation": "true", "s3:if-none-match": "*"}) == ALLOWED


@pytest.mark.parametrize("action", ["s3:DeleteObject", "s3:DeleteObjectVersion"])
def test_the_role_cannot_delete_a_sealed_artifact(foundation, action):
    assert foundation.decide(action, foundation.object_arn(SEALED_KEY)) == EXPLICITLY_DENIED


def test_the_rules_hold_under_the_prefix_only(foundation):
    training_output = foundation.object_arn("training/train-review-classifier-1/output/model.tar.gz")
    assert foundation.decide("s3:PutObject", training_output, **{"s3:ObjectCreationOperation": "true"}) == ALLOWED
    assert foundation.decide("s3:DeleteObject", training_output) == ALLOWED


def test_other_principals_are_not_denied_deletes(foundation):
    # Administrators, and the auto-delete custom resource of a destroyable environment, may
    # still empty the bucket: only the pipeline role is refused.
    administrator = foundation.role_arn.replace(foundation.role_arn.rsplit("/", 1)[-1], "administrator")
    assert foundation.decide("s3:DeleteObject", foundation.object_arn(SEALED_KEY), principal_arn=administrator) != EXPLICITLY_DENIED
