"""Cross-account access for model promotion (docs/serving.md#promotion-across-accounts).

A promoting environment (prod) serves packages of its own group whose artifact stays where the
source environment's (staging's) pipeline sealed it: the write-once, content-addressed
`immutable-models/sha256/<digest>/model.tar.gz` of the source's artifacts bucket. Two halves:

- `PromotionSourceGrants`, in the source's foundation stack: the model package group's resource
  policy lets the target's deployer and promotion roles read the group's packages; the artifacts
  bucket's policy and the key's policy let the target's serving-model, deployer and promotion
  roles read (and decrypt) the sealed artifacts; where the target monitors its endpoint, its
  deployer alone also reads the Model Monitor baselines the source's pipeline wrote (it copies a
  promoted version's DriftCheckBaselines to where the target's schedules read them). Nothing else.
  Each statement names the target
  account as principal and the exact roles in an `aws:PrincipalArn` condition: a policy that
  named a role of another account as principal would fail to deploy (S3 and KMS reject unknown
  principals) until the target's serving stack exists, and would break if that role were recreated.
- `PromotedModelAccess`, in the target's serving stack: the same reads in the target roles' own
  policies (cross-account access needs both sides), and the promotion role, which may create
  versions in its own group as PendingManualApproval only, never approve one.

Every name and account comes from configuration: both halves synthesize offline.
"""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from pipeline_definition.locations import BASELINES_PREFIX, IMMUTABLE_MODELS_PREFIX
from stacks.nag_suppressions import suppress

# The sealed copies (container_code/seal_model.py): only they are promoted, only they are readable.
SEALED_ARTIFACTS_PATTERN = f"{IMMUTABLE_MODELS_PREFIX}/sha256/*"
# The pipeline's baselines (pipeline_definition/steps/baselines.py): only a monitoring target's
# deployer reads them (publish_serving_baselines in stacks/lambdas/approval_deployer/handler.py).
PIPELINE_BASELINES_PATTERN = f"{BASELINES_PREFIX}/*"
# The promotion tool lists and reads versions; the deployer reads the one it is about to serve.
PROMOTER_PACKAGE_ACTIONS = ("sagemaker:DescribeModelPackage", "sagemaker:ListModelPackages")
DEPLOYER_PACKAGE_ACTIONS = ("sagemaker:DescribeModelPackage",)
PENDING_MANUAL_APPROVAL = "PendingManualApproval"


@dataclass(frozen=True)
class PromotionTarget:
    """An environment that promotes out of this one, as the source's policies name it."""

    account: str
    serving_model_role_arn: str
    deployer_role_arn: str
    promotion_role_arn: str
    # The target monitors its endpoint: its deployer copies the promoted versions' baselines.
    deployer_reads_baselines: bool = False

    @property
    def artifact_reader_role_arns(self) -> list[str]:
        return [self.serving_model_role_arn, self.deployer_role_arn, self.promotion_role_arn]


@dataclass(frozen=True)
class PromotionSource:
    """The environment a target promotes from, as the target's policies name it."""

    environment_name: str
    account: str
    region: str
    model_package_group_name: str

    @property
    def package_arn_prefix(self) -> str:
        return f"arn:aws:sagemaker:{self.region}:{self.account}:model-package/{self.model_package_group_name}/"


def group_arns(region: str, account: str, group: str) -> list[str]:
    """The group and its versions (literal ARNs: the other account's are known from config only);
    ListModelPackages is authorized on the versions' ARNs."""
    return [f"arn:aws:sagemaker:{region}:{account}:model-package-group/{group}",
            f"arn:aws:sagemaker:{region}:{account}:model-package/{group}/*"]


class PromotionSourceGrants(Construct):
    """Statements only: the group's, the bucket's and the key's resource policies."""

    def __init__(
        self, scope: Construct, construct_id: str, *, group: sagemaker.CfnModelPackageGroup, bucket: s3.IBucket,
        key: kms.IKey, targets: tuple[PromotionTarget, ...],
    ) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        packages = group_arns(stack.region, stack.account, group.model_package_group_name)[1:]
        group.model_package_group_policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": f"PromotionTarget{target.account}{who}",
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{target.account}:root"},
                    "Action": list(actions),
                    "Resource": packages,
                    "Condition": {"ArnEquals": {"aws:PrincipalArn": role_arn}},
                }
                for target in targets
                for who, actions, role_arn in (
                    ("PromoterReadsVersions", PROMOTER_PACKAGE_ACTIONS, target.promotion_role_arn),
                    ("DeployerReadsVersions", DEPLOYER_PACKAGE_ACTIONS, target.deployer_role_arn),
                )
            ],
        }
        for target in targets:
            principal = iam.AccountPrincipal(target.account)
            readers = {"ArnEquals": {"aws:PrincipalArn": target.artifact_reader_role_arns}}
            bucket.add_to_resource_policy(iam.PolicyStatement(
                sid=f"PromotionTarget{target.account}ReadsSealedModels",
                principals=[principal],
                actions=["s3:GetObject"],
                resources=[bucket.arn_for_objects(SEALED_ARTIFACTS_PATTERN)],
                conditions=readers,
            ))
            if target.deployer_reads_baselines:
                bucket.add_to_resource_policy(iam.PolicyStatement(
                    sid=f"PromotionTarget{target.account}DeployerReadsBaselines",
                    principals=[principal],
                    actions=["s3:GetObject"],
                    resources=[bucket.arn_for_objects(PIPELINE_BASELINES_PATTERN)],
                    conditions={"ArnEquals": {"aws:PrincipalArn": target.deployer_role_arn}},
                ))
            key.add_to_resource_policy(iam.PolicyStatement(
                sid=f"PromotionTarget{target.account}DecryptsSealedModels",
                principals=[principal],
                actions=["kms:Decrypt"],
                resources=["*"],
                # Only through S3: S3 asks for the decryption only for objects the bucket policy
                # above lets them read (the bucket uses an S3 Bucket Key, so the encryption context
                # names the bucket, never a prefix: the bucket policy is what tells them apart). (Naming the bucket in the encryption context would make
                # the key depend on the bucket that depends on the key: a cycle.)
                conditions={**readers, "StringEquals": {"kms:ViaService": f"s3.{stack.region}.amazonaws.com"}},
            ))


def source_artifact_statements(source: PromotionSource) -> list[iam.PolicyStatement]:
    """Read and decrypt the source's sealed artifacts. The source's bucket and key have generated
    names the target cannot know offline: any bucket and key *of the source account*, narrowed by
    the source's own policies to its one bucket and key."""
    return [
        iam.PolicyStatement(
            sid="ReadPromotedSealedModels",
            actions=["s3:GetObject"],
            resources=[f"arn:aws:s3:::*/{SEALED_ARTIFACTS_PATTERN}"],
            conditions={"StringEquals": {"s3:ResourceAccount": source.account}},
        ),
        iam.PolicyStatement(
            sid="DecryptPromotedSealedModels",
            actions=["kms:Decrypt"],
            resources=[f"arn:aws:kms:{source.region}:{source.account}:key/*"],
            conditions={"StringEquals": {"kms:ViaService": f"s3.{source.region}.amazonaws.com"}},
        ),
    ]


def source_baselines_statement(source: PromotionSource) -> iam.PolicyStatement:
    """Read the source pipeline's baselines (decrypted through the artifact statements' key grant)."""
    return iam.PolicyStatement(
        sid="ReadPromotionSourceBaselines",
        actions=["s3:GetObject"],
        resources=[f"arn:aws:s3:::*/{PIPELINE_BASELINES_PATTERN}"],
        conditions={"StringEquals": {"s3:ResourceAccount": source.account}},
    )


def source_package_statement(source: PromotionSource) -> iam.PolicyStatement:
    return iam.PolicyStatement(
        sid="ReadPromotionSourcePackages",
        actions=list(DEPLOYER_PACKAGE_ACTIONS),
        resources=group_arns(source.region, source.account, source.model_package_group_name)[1:],
    )


def _suppress_source_wildcards(role: iam.IRole, source: PromotionSource, *, baselines: bool = False) -> None:
    findings = [
        f"Resource::arn:aws:s3:::*/{SEALED_ARTIFACTS_PATTERN}",
        *([f"Resource::arn:aws:s3:::*/{PIPELINE_BASELINES_PATTERN}"] if baselines else []),
        f"Resource::arn:aws:kms:{source.region}:{source.account}:key/*",
        f"Resource::arn:aws:sagemaker:{source.region}:{source.account}:model-package/{source.model_package_group_name}/*",
    ]
    suppress(
        role, "AwsSolutions-IAM5",
        "Promotion: the source environment's sealed artifacts (content-addressed keys), its pipeline's "
        "baselines (named per execution; the deployer only), its key and its group's versions; the source bucket's and key's names are generated in another account, so the "
        "bucket and key are limited to that account (s3:ResourceAccount, the key ARN's account) and, on "
        "the source side, to exactly this role.",
        applies_to=findings,
        apply_to_children=True,
    )


@dataclass(frozen=True)
class PromotedModelAccessProps:
    source: PromotionSource
    model_package_group_name: str  # the target's own group, where promotions land
    promotion_role_name: str
    serving_model_role: iam.Role
    deployer_role: iam.IRole
    # The target monitors its endpoint: the deployer reads the source pipeline's baselines.
    deployer_reads_baselines: bool = False


class PromotedModelAccess(Construct):
    """The target's side: its roles' reads of the source, and the promotion role."""

    def __init__(self, scope: Construct, construct_id: str, *, props: PromotedModelAccessProps) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        for statement in source_artifact_statements(props.source):
            props.serving_model_role.add_to_policy(statement)
            props.deployer_role.add_to_principal_policy(statement)
        props.deployer_role.add_to_principal_policy(source_package_statement(props.source))
        if props.deployer_reads_baselines:
            props.deployer_role.add_to_principal_policy(source_baselines_statement(props.source))

        own_group = group_arns(stack.region, stack.account, props.model_package_group_name)
        self.promotion_role = iam.Role(
            self,
            "PromotionRole",
            role_name=props.promotion_role_name,
            # A person of this account assumes it (their own policy must allow sts:AssumeRole on it).
            assumed_by=iam.AccountRootPrincipal(),
            description=(f"Promotes a model package of {props.source.model_package_group_name} "
                         f"({props.source.account}) into {props.model_package_group_name}, pending approval"),
            max_session_duration=cdk.Duration.hours(1),
        )
        for statement in (
            source_package_statement(props.source),
            # No resource-level permissions: the source group's policy narrows it there.
            iam.PolicyStatement(sid="ListModelPackages", actions=["sagemaker:ListModelPackages"], resources=["*"]),
            *source_artifact_statements(props.source),
            iam.PolicyStatement(sid="ReadOwnVersions", actions=["sagemaker:DescribeModelPackage"], resources=own_group[1:]),
            iam.PolicyStatement(
                # The promotion is a record awaiting a person of this account: it cannot approve.
                sid="CreatePendingVersionsOnly",
                actions=["sagemaker:CreateModelPackage"],
                resources=own_group,
                conditions={"StringEquals": {"sagemaker:ModelApprovalStatus": PENDING_MANUAL_APPROVAL}},
            ),
        ):
            self.promotion_role.add_to_policy(statement)
        _suppress_source_wildcards(self.promotion_role, props.source)
        _suppress_source_wildcards(props.serving_model_role, props.source)
        _suppress_source_wildcards(props.deployer_role, props.source, baselines=props.deployer_reads_baselines)
        suppress(
            self.promotion_role, "AwsSolutions-IAM5",
            "Its own group's versions (model-package/<group>/*): versions are numbered at creation; "
            "sagemaker:ListModelPackages supports no resource-level permissions.",
            applies_to=[f"Resource::arn:aws:sagemaker:{stack.region}:{stack.account}:model-package/"
                        f"{props.model_package_group_name}/*", "Resource::*"],
            apply_to_children=True,
        )
