"""Serving stack of one environment: an endpoint that follows model package approvals.

The stack declares which model package serves through its `ApprovedModelPackageArn` parameter:
empty (the default) deploys no endpoint; an ARN deploys the model, endpoint config, endpoint and
auto scaling for it. The approval deployer changes only that parameter (UpdateStack with the
previous template), and `cdk deploy` keeps previous parameter values, so neither undoes the other.
"""

from __future__ import annotations

import re

import aws_cdk as cdk
from constructs import Construct

from pipeline_definition import image_registries
from stacks.components.approval_deployer import ApprovalDeployer, ApprovalDeployerProps
from stacks.components.approved_model_endpoint import ApprovedModelEndpoint, ApprovedModelEndpointProps
from stacks.config import EnvironmentConfig
from stacks.shared_resources import SharedResources

APPROVED_MODEL_PACKAGE_PARAMETER = "ApprovedModelPackageArn"
METRIC_NAMESPACE = "ReviewClassifier/Serving"


def model_package_arn_pattern(config: EnvironmentConfig) -> str:
    """A version of this environment's own group, or empty (CloudFormation matches the whole value)."""
    group = re.escape(config.model_package_group_name)
    return (
        f"(arn:aws[a-z-]*:sagemaker:{config.region}:{config.account}:model-package/{group}/[0-9]+)?"
    )


class ServingStack(cdk.Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        shared: SharedResources,
        initial_approved_model_package_arn: str = "",
        **kwargs,
    ) -> None:
        """`initial_approved_model_package_arn` only sets the parameter's default (first deployment
        and tests); once deployed, the stack's parameter value is what serves."""
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        self.shared = shared
        pattern = model_package_arn_pattern(config)
        if not re.fullmatch(pattern, initial_approved_model_package_arn):
            raise ValueError(
                f"initial_approved_model_package_arn {initial_approved_model_package_arn!r} is not a "
                f"version of model package group {config.model_package_group_name} in {config.account}/{config.region}"
            )

        self.approved_model_package_arn = cdk.CfnParameter(
            self,
            APPROVED_MODEL_PACKAGE_PARAMETER,
            type="String",
            default=initial_approved_model_package_arn,
            allowed_pattern=pattern,
            constraint_description=f"empty, or the ARN of a version in model package group {config.model_package_group_name}",
            description=(
                "The Approved model package the endpoint serves; empty deploys no endpoint. Set by the "
                "approval deployer on every approval decision; `cdk deploy` keeps the previous value."
            ),
        )
        # Logical ids are frozen: the approval deployer and operators address the parameter by name.
        self.approved_model_package_arn.override_logical_id(APPROVED_MODEL_PACKAGE_PARAMETER)
        self.has_approved_model = cdk.CfnCondition(
            self,
            "HasApprovedModel",
            expression=cdk.Fn.condition_not(
                cdk.Fn.condition_equals(self.approved_model_package_arn.value_as_string, "")
            ),
        )

        self.served = ApprovedModelEndpoint(
            self,
            "ApprovedModelEndpoint",
            props=ApprovedModelEndpointProps(
                endpoint_name=config.endpoint_name,
                model_package_group_name=config.model_package_group_name,
                approved_model_package_arn=self.approved_model_package_arn.value_as_string,
                has_approved_model=self.has_approved_model,
                serving=config.serving,
                key=shared.key,
                data_bucket=shared.data_bucket,
                artifacts_bucket=shared.artifacts_bucket,
                image_repositories=image_registries.inference_repositories(config.region),
            ),
        )
        self.deployer = ApprovalDeployer(
            self,
            "ApprovalDeployer",
            props=ApprovalDeployerProps(
                environment_name=config.name,
                model_package_group_name=config.model_package_group_name,
                parameter_name=APPROVED_MODEL_PACKAGE_PARAMETER,
                metric_namespace=METRIC_NAMESPACE,
                log_retention_days=config.log_retention_days,
                retain_on_delete=config.retain_on_delete,
                cloudformation_execution_role_arn=self._cloudformation_execution_role_arn(),
                key=shared.key,
            ),
        )

        endpoint_output = cdk.CfnOutput(
            self, "EndpointName", value=config.endpoint_name,
            description="The endpoint serving the approved model package",
        )
        endpoint_output.condition = self.has_approved_model
        cdk.CfnOutput(
            self, "ServingModelPackageArn", value=self.approved_model_package_arn.value_as_string,
            description="The model package the stack declares (empty: no endpoint)",
        )
        cdk.CfnOutput(self, "ApprovalEventsDeadLetterQueueUrl", value=self.deployer.dead_letter_queue.queue_url)
        cdk.CfnOutput(self, "ApprovalDeployerLogGroupName", value=self.deployer.log_group.log_group_name)

    def _cloudformation_execution_role_arn(self) -> str | None:
        synthesizer = self.synthesizer
        if not isinstance(synthesizer, cdk.DefaultStackSynthesizer):
            return None
        # The synthesizer's ARN keeps CloudFormation placeholders; fill them with this stack's values.
        return (
            synthesizer.cloud_formation_execution_role_arn
            .replace("${AWS::Partition}", self.partition)
            .replace("${AWS::AccountId}", self.account)
            .replace("${AWS::Region}", self.region)
        )
