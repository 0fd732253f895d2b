"""The cross-account policies of the staging -> prod promotion, read from the synthesized
templates (staging's foundation, prod's foundation and serving stacks, resolved as CloudFormation
would) and evaluated as AWS evaluates a request between two accounts: prod's identity policy and
staging's resource policy must both allow it (tests/support/policy_evaluation.py). moto's server
evaluates neither resource policies nor requests between accounts; these are the closest check."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from local_pipeline.cloudformation import Deployment, PhysicalResource, find_role, role_policies
from stacks.config import load_environment
from support.policy_evaluation import ALLOWED, IMPLICITLY_DENIED, Request, evaluate, evaluate_cross_account

STAGING, PROD = load_environment("staging"), load_environment("prod")
KEY_ID = "11111111-2222-3333-4444-555555555555"
TRANSPORT = {"aws:SecureTransport": "true", "s3:TlsVersion": "1.3"}
SEALED_KEY = f"immutable-models/sha256/{'ab' * 32}/model.tar.gz"
# A baseline staging's pipeline writes (pipeline_definition/steps/baselines.py) and registers.
BASELINE_KEY = "monitoring-baselines/execution-7/data-quality/statistics.json"
STAGING_PACKAGE = f"arn:aws:sagemaker:{STAGING.region}:{STAGING.account}:model-package/{STAGING.model_package_group_name}/3"
PROD_PACKAGE = f"arn:aws:sagemaker:{PROD.region}:{PROD.account}:model-package/{PROD.model_package_group_name}/1"


@dataclass(frozen=True)
class Promotion:
    group_policy: dict
    bucket_arn: str
    bucket_policy: dict
    key_arn: str
    key_policy: dict
    roles: dict[str, list[dict]]  # prod role ARN -> its identity policies

    def decide(self, principal: str, action: str, resource: str, resource_policy: dict, **context: str) -> str:
        request = Request(principal, action, resource, {**TRANSPORT, "aws:PrincipalArn": principal, **context})
        return evaluate_cross_account(request, self.roles.get(principal, []), [resource_policy])

    def read_package(self, principal: str, action: str = "sagemaker:DescribeModelPackage",
                     resource: str = STAGING_PACKAGE) -> str:
        return self.decide(principal, action, resource, self.group_policy)

    def get_object(self, principal: str, key: str = SEALED_KEY, action: str = "s3:GetObject") -> str:
        return self.decide(principal, action, f"{self.bucket_arn}/{key}", self.bucket_policy,
                           **{"s3:ResourceAccount": STAGING.account})

    def decrypt(self, principal: str, via: str | None = f"s3.{STAGING.region}.amazonaws.com",
                action: str = "kms:Decrypt") -> str:
        return self.decide(principal, action, self.key_arn, self.key_policy, **({"kms:ViaService": via} if via else {}))


SERVING_MODEL = PROD.role_arn(PROD.serving_model_role_name)
DEPLOYER = PROD.role_arn(PROD.approval_deployer_role_name)
PROMOTER = PROD.role_arn(PROD.model_promotion_role_name)
PROD_ADMIN = f"arn:aws:iam::{PROD.account}:role/Admin"
# The same role name in an account that does not promote from staging.
DEV_DEPLOYER = f"arn:aws:iam::{load_environment('dev').account}:role/{PROD.approval_deployer_role_name}"


def _resource(template: dict, resource_type: str, prefix: str = "") -> tuple[str, dict]:
    [found] = [(lid, r) for lid, r in template["Resources"].items() if r["Type"] == resource_type and lid.startswith(prefix)]
    return found


@pytest.fixture(scope="module")
def promotion(synthesized_app) -> Promotion:
    staging_stack = STAGING.stack_name("foundation")
    staging = Deployment(account=STAGING.account, region=STAGING.region, overrides={
        "StorageDataKey": PhysicalResource(KEY_ID, {"Arn": f"arn:aws:kms:{STAGING.region}:{STAGING.account}:key/{KEY_ID}"}),
    })
    foundation = synthesized_app.template_json("staging", "foundation")
    staging.add_stack(staging_stack, foundation)
    bucket_id, _ = _resource(foundation, "AWS::S3::Bucket", "StorageArtifactsBucket")
    [bucket_policy] = [r["Properties"]["PolicyDocument"] for r in foundation["Resources"].values()
                       if r["Type"] == "AWS::S3::BucketPolicy" and r["Properties"]["Bucket"] == {"Ref": bucket_id}]
    _, group = _resource(foundation, "AWS::SageMaker::ModelPackageGroup")
    _, key = _resource(foundation, "AWS::KMS::Key", "StorageDataKey")

    prod = Deployment(account=PROD.account, region=PROD.region)
    prod.add_stack(PROD.stack_name("foundation"), synthesized_app.template_json("prod", "foundation"))
    serving_stack, serving = PROD.stack_name("serving"), synthesized_app.template_json("prod", "serving")
    prod.add_stack(serving_stack, serving)
    roles = {
        PROD.role_arn(name): list(role_policies(prod, serving_stack, find_role(serving, role_name=name)).policies.values())
        for name in (PROD.serving_model_role_name, PROD.approval_deployer_role_name, PROD.model_promotion_role_name)
    }
    return Promotion(
        group_policy=staging.resolve(staging_stack, group["Properties"]["ModelPackageGroupPolicy"]),
        bucket_arn=staging.physical(staging_stack, bucket_id).attributes["Arn"],
        bucket_policy=staging.resolve(staging_stack, bucket_policy),
        key_arn=f"arn:aws:kms:{STAGING.region}:{STAGING.account}:key/{KEY_ID}",
        key_policy=staging.resolve(staging_stack, key["Properties"]["KeyPolicy"]),
        roles=roles,
    )


# --- staging's model package group ---------------------------------------------------------------

def test_prods_deployer_and_promoter_read_staging_versions(promotion):
    assert promotion.read_package(DEPLOYER) == ALLOWED
    assert promotion.read_package(PROMOTER) == ALLOWED
    assert promotion.read_package(PROMOTER, "sagemaker:ListModelPackages") == ALLOWED


@pytest.mark.parametrize("action", ["sagemaker:UpdateModelPackage", "sagemaker:DeleteModelPackage",
                                    "sagemaker:CreateModelPackage", "sagemaker:PutModelPackageGroupPolicy"])
def test_nobody_in_prod_changes_staging_versions(promotion, action):
    for principal in (DEPLOYER, PROMOTER, SERVING_MODEL):
        assert promotion.read_package(principal, action) == IMPLICITLY_DENIED, principal


def test_only_the_named_prod_roles_read_staging_versions(promotion):
    assert promotion.read_package(SERVING_MODEL) == IMPLICITLY_DENIED  # it reads the artifact, not the registry
    assert promotion.read_package(DEPLOYER, "sagemaker:ListModelPackages") == IMPLICITLY_DENIED
    for stranger in (PROD_ADMIN, DEV_DEPLOYER):
        request = Request(stranger, "sagemaker:DescribeModelPackage", STAGING_PACKAGE, {"aws:PrincipalArn": stranger})
        assert evaluate_cross_account(request, [{"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}],
                                      [promotion.group_policy]) == IMPLICITLY_DENIED, stranger


def test_the_group_policy_covers_staging_versions_only(promotion):
    other_group = STAGING_PACKAGE.replace(STAGING.model_package_group_name, "another-group")
    assert promotion.read_package(DEPLOYER, resource=other_group) == IMPLICITLY_DENIED


# --- staging's artifacts bucket and key ----------------------------------------------------------

def test_prods_serving_roles_read_and_decrypt_sealed_artifacts(promotion):
    for principal in (SERVING_MODEL, DEPLOYER, PROMOTER):
        assert promotion.get_object(principal) == ALLOWED, principal
        assert promotion.decrypt(principal) == ALLOWED, principal


@pytest.mark.parametrize("key", ["models/execution-1/model.tar.gz", "immutable-models/model.tar.gz",
                                 "evaluation/report.json", "feature-store/x"])
def test_nothing_but_sealed_artifacts_is_readable(promotion, key):
    assert promotion.get_object(SERVING_MODEL, key) == IMPLICITLY_DENIED


@pytest.mark.parametrize("action", ["s3:PutObject", "s3:DeleteObject", "s3:GetObjectVersion", "s3:ListBucket"])
def test_prod_writes_or_lists_nothing_in_staging(promotion, action):
    assert promotion.get_object(PROMOTER, action=action) == IMPLICITLY_DENIED


def test_the_key_decrypts_for_prod_only_through_s3(promotion):
    assert promotion.decrypt(SERVING_MODEL, via=None) == IMPLICITLY_DENIED
    assert promotion.decrypt(SERVING_MODEL, via=f"sqs.{STAGING.region}.amazonaws.com") == IMPLICITLY_DENIED
    for action in ("kms:Encrypt", "kms:GenerateDataKey", "kms:ReEncryptFrom", "kms:CreateGrant"):
        assert promotion.decrypt(SERVING_MODEL, action=action) == IMPLICITLY_DENIED, action


def test_other_principals_of_prod_get_no_artifact(promotion):
    for stranger in (PROD_ADMIN, DEV_DEPLOYER):
        admin = [{"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}]
        request = Request(stranger, "s3:GetObject", f"{promotion.bucket_arn}/{SEALED_KEY}",
                          {**TRANSPORT, "aws:PrincipalArn": stranger})
        assert evaluate_cross_account(request, admin, [promotion.bucket_policy]) == IMPLICITLY_DENIED
        request = Request(stranger, "kms:Decrypt", promotion.key_arn,
                          {"aws:PrincipalArn": stranger, "kms:ViaService": f"s3.{STAGING.region}.amazonaws.com"})
        assert evaluate_cross_account(request, admin, [promotion.key_policy]) == IMPLICITLY_DENIED


# --- staging's baselines: prod's deployer alone reads them ------------------------------------------

def test_prods_deployer_reads_and_decrypts_stagings_baselines(promotion):
    """publish_serving_baselines copies a promoted version's DriftCheckBaselines out of staging's bucket."""
    for key in (BASELINE_KEY, "monitoring-baselines/execution-7/model-quality/constraints.json"):
        assert promotion.get_object(DEPLOYER, key) == ALLOWED, key
    assert promotion.decrypt(DEPLOYER) == ALLOWED


@pytest.mark.parametrize("principal", [SERVING_MODEL, PROMOTER])
def test_no_other_prod_role_reads_stagings_baselines(promotion, principal):
    assert promotion.get_object(principal, BASELINE_KEY) == IMPLICITLY_DENIED


@pytest.mark.parametrize("key", ["serving-baselines/review-classifier-staging/data-quality/statistics.json",
                                 "pipeline-executions/execution-7/evaluation/evaluation.json",
                                 "monitoring-baselines-old/x.json", "data/monitoring-baselines/x.json"])
def test_the_deployer_reads_nothing_else_of_staging(promotion, key):
    assert promotion.get_object(DEPLOYER, key) == IMPLICITLY_DENIED


@pytest.mark.parametrize("action", ["s3:PutObject", "s3:DeleteObject", "s3:GetObjectVersion", "s3:ListBucket"])
def test_the_deployer_only_gets_baselines(promotion, action):
    assert promotion.get_object(DEPLOYER, BASELINE_KEY, action=action) == IMPLICITLY_DENIED


def test_stagings_baselines_stay_closed_to_other_principals(promotion):
    admin = [{"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}]
    for stranger in (PROD_ADMIN, DEV_DEPLOYER):
        request = Request(stranger, "s3:GetObject", f"{promotion.bucket_arn}/{BASELINE_KEY}",
                          {**TRANSPORT, "aws:PrincipalArn": stranger})
        assert evaluate_cross_account(request, admin, [promotion.bucket_policy]) == IMPLICITLY_DENIED, stranger


def test_the_deployers_own_policy_reads_baselines_of_stagings_account_only(promotion):
    def read(account: str) -> str:
        return evaluate(Request(DEPLOYER, "s3:GetObject", f"arn:aws:s3:::any-bucket/{BASELINE_KEY}",
                                {"s3:ResourceAccount": account}), promotion.roles[DEPLOYER])

    assert read(STAGING.account) == ALLOWED
    assert read(load_environment("dev").account) == IMPLICITLY_DENIED


# --- prod's side --------------------------------------------------------------------------------

def test_prods_roles_reach_no_other_accounts_artifacts(promotion):
    request = Request(SERVING_MODEL, "s3:GetObject", f"arn:aws:s3:::any-bucket/{SEALED_KEY}",
                      {"s3:ResourceAccount": load_environment("dev").account})
    assert evaluate(request, promotion.roles[SERVING_MODEL]) == IMPLICITLY_DENIED


def test_the_promoter_creates_pending_versions_in_prod_and_never_approves(promotion):
    own = promotion.roles[PROMOTER]

    def create(status: str) -> str:
        return evaluate(Request(PROMOTER, "sagemaker:CreateModelPackage", PROD_PACKAGE,
                                {"sagemaker:ModelApprovalStatus": status}), own)

    assert create("PendingManualApproval") == ALLOWED
    assert create("Approved") == IMPLICITLY_DENIED
    assert evaluate(Request(PROMOTER, "sagemaker:CreateModelPackage", PROD_PACKAGE), own) == IMPLICITLY_DENIED
    assert evaluate(Request(PROMOTER, "sagemaker:UpdateModelPackage", PROD_PACKAGE), own) == IMPLICITLY_DENIED
