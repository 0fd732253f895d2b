"""ECR pull permissions for exactly the image repositories a role's containers run from
(`pipeline_definition.image_registries` says which those are in the environment's region)."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from constructs import Construct

from pipeline_definition.image_registries import ImageRepository

PULL_ACTIONS = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"]


def image_pull_statements(scope: Construct, repositories: tuple[ImageRepository, ...]) -> list[iam.PolicyStatement]:
    """The registry token (no resource-level permissions: `*`) and pulls from each repository."""
    stack = cdk.Stack.of(scope)
    if not repositories:
        raise ValueError(f"{scope.node.path}: no image repositories to allow pulls from")
    if not cdk.Token.is_unresolved(stack.region):
        elsewhere = [r for r in repositories if r.region != stack.region]
        if elsewhere:
            raise ValueError(f"{scope.node.path}: SageMaker pulls images from {stack.region} only, not {elsewhere}")
    return [
        iam.PolicyStatement(sid="GetRegistryToken", actions=["ecr:GetAuthorizationToken"], resources=["*"]),
        iam.PolicyStatement(
            sid="PullImages",
            actions=list(PULL_ACTIONS),
            resources=[
                stack.format_arn(
                    service="ecr", account=r.account, region=r.region, resource="repository", resource_name=r.name,
                )
                for r in repositories
            ],
        ),
    ]
