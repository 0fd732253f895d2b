"""The CloudFormation service role that approval updates of the serving stack run with: the
approval deployer may pass this role and no other, so CloudFormation can do on its behalf only
what promoting a model package changes - the SageMaker model, endpoint config and endpoint, the
endpoint's rollback alarms and auto scaling - and read the two SSM parameters the template
resolves. `cdk deploy` keeps using the CDK bootstrap's execution role for everything else.

The actions follow the handlers' permission lists in the CloudFormation resource schemas of
those types (tests/serving/test_approval_deployer_stack.py compares them with the schemas that
cfn-lint ships), plus what SageMaker checks of the caller beyond them; each statement says why.
"""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from stacks.checkov_skips import skip_checkov
from stacks.components.arns import sagemaker_arn_factory
from stacks.nag_suppressions import suppress

CLOUDFORMATION_SERVICE = "cloudformation.amazonaws.com"
AUTO_SCALING_SERVICE = "sagemaker.application-autoscaling.amazonaws.com"
AUTO_SCALING_SERVICE_LINKED_ROLE = (
    f"aws-service-role/{AUTO_SCALING_SERVICE}/AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
)
SAGEMAKER_TAG_ACTIONS = ("sagemaker:AddTags", "sagemaker:DeleteTags", "sagemaker:ListTags")
ALARM_WRITE_ACTIONS = (
    "cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms",
    "cloudwatch:TagResource", "cloudwatch:UntagResource", "cloudwatch:ListTagsForResource",
)
AUTO_SCALING_ACTIONS = (
    "cloudwatch:GetMetricData",  # the scaling policy handler reads the target metric
    "application-autoscaling:RegisterScalableTarget",
    "application-autoscaling:DeregisterScalableTarget",
    "application-autoscaling:DescribeScalableTargets",
    "application-autoscaling:DescribeScheduledActions",
    "application-autoscaling:PutScalingPolicy",
    "application-autoscaling:DeleteScalingPolicy",
    "application-autoscaling:DescribeScalingPolicies",
    "application-autoscaling:TagResource",
    "application-autoscaling:UntagResource",
    "application-autoscaling:ListTagsForResource",
)


@dataclass(frozen=True)
class ApprovalUpdateRoleProps:
    endpoint_name: str
    model_package_group_name: str
    model_execution_role: iam.IRole
    # Names of the endpoint's alarms the template declares (they roll a deployment back).
    rollback_alarm_names: tuple[str, ...]
    # SSM parameters the template resolves on every update (approved package, bootstrap version).
    resolved_parameter_arns: tuple[str, ...]
    # Real-time endpoints encrypt their volume and captured data with the key; serverless: None.
    endpoint_key: kms.IKey | None
    instance_type: str | None
    auto_scaling: bool
    # The role of the endpoint's Model Monitor jobs, when it has monitoring schedules (they are
    # created with the endpoint, by the first approval update): None without.
    monitoring_role: iam.IRole | None = None


class ApprovalUpdateRole(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, props: ApprovalUpdateRoleProps) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal(CLOUDFORMATION_SERVICE),
            description=(
                f"CloudFormation service role for approval updates of {stack.stack_name}: the served "
                "model, endpoint config, endpoint, its alarms and auto scaling only"
            ),
        )

        region, account = stack.region, stack.account  # each read is a jsii round trip
        sagemaker_arn = sagemaker_arn_factory(stack.partition, region, account)

        models = sagemaker_arn("model", "*")
        endpoint_configs = sagemaker_arn("endpoint-config", "*")
        endpoint = sagemaker_arn("endpoint", props.endpoint_name)
        statements = [
            iam.PolicyStatement(
                sid="ResolveTemplateParameters",
                actions=["ssm:GetParameters"],
                resources=list(props.resolved_parameter_arns),
            ),
            iam.PolicyStatement(
                sid="ManageServedModels",
                actions=["sagemaker:CreateModel", "sagemaker:DescribeModel", "sagemaker:DeleteModel"],
                resources=[models],
            ),
            iam.PolicyStatement(
                # CreateModel from a package reads the package (not in the Model schema's list).
                sid="ReadPackagesOfThisGroup",
                actions=["sagemaker:DescribeModelPackage"],
                resources=[sagemaker_arn("model-package", f"{props.model_package_group_name}/*")],
            ),
            iam.PolicyStatement(
                sid="CreateEndpointConfigsOfTheConfiguredInstanceType",
                actions=["sagemaker:CreateEndpointConfig"],
                resources=[endpoint_configs],
                # Serverless configs name no instance type: then there is nothing to restrict.
                conditions=(
                    {"ForAllValues:StringEquals": {"sagemaker:InstanceTypes": [props.instance_type]}}
                    if props.instance_type else None
                ),
            ),
            iam.PolicyStatement(
                sid="ManageServedEndpointConfigs",
                actions=["sagemaker:DescribeEndpointConfig", "sagemaker:DeleteEndpointConfig"],
                resources=[endpoint_configs],
            ),
            iam.PolicyStatement(
                sid="ManageTheEndpoint",
                actions=[
                    "sagemaker:CreateEndpoint", "sagemaker:UpdateEndpoint",
                    "sagemaker:DescribeEndpoint", "sagemaker:DeleteEndpoint",
                ],
                resources=[endpoint],
            ),
            iam.PolicyStatement(
                sid="TagServedResources",  # CloudFormation propagates the stack's tags
                actions=list(SAGEMAKER_TAG_ACTIONS),
                resources=[models, endpoint_configs, endpoint],
            ),
            iam.PolicyStatement(
                sid="PassTheModelExecutionRoleToSageMaker",
                actions=["iam:PassRole"],
                resources=[props.model_execution_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            ),
            iam.PolicyStatement(
                sid="ManageTheRollbackAlarms",
                actions=list(ALARM_WRITE_ACTIONS),
                resources=[_alarm_arn(stack, name) for name in props.rollback_alarm_names]
                + ([_alarm_arn(stack, f"TargetTracking-endpoint/{props.endpoint_name}/*")] if props.auto_scaling else []),
            ),
            iam.PolicyStatement(sid="ReadAlarms", actions=["cloudwatch:DescribeAlarms"], resources=["*"]),
        ]
        if props.monitoring_role is not None:
            statements += _monitoring_statements(stack, props)
        if props.endpoint_key is not None:
            statements += [
                iam.PolicyStatement(
                    sid="DescribeTheEndpointKey",
                    actions=["kms:DescribeKey"],
                    resources=[props.endpoint_key.key_arn],
                ),
                iam.PolicyStatement(
                    # SageMaker creates grants on the key for the endpoint's volumes with the caller's rights.
                    sid="GrantTheEndpointKeyToSageMaker",
                    actions=["kms:CreateGrant"],
                    resources=[props.endpoint_key.key_arn],
                    conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
                ),
            ]
        if props.auto_scaling:
            statements += [
                iam.PolicyStatement(
                    # Scalable targets, policies and metric reads take no resource-level permissions.
                    sid="ManageAutoScalingOfTheEndpoint",
                    actions=list(AUTO_SCALING_ACTIONS),
                    resources=["*"],
                ),
                iam.PolicyStatement(
                    # Application Auto Scaling checks the caller may scale the variant it registers.
                    sid="ScaleTheEndpointVariant",
                    actions=["sagemaker:UpdateEndpointWeightsAndCapacities"],
                    resources=[endpoint],
                ),
                iam.PolicyStatement(
                    # The first scalable target of an account creates the service-linked role.
                    sid="CreateTheAutoScalingServiceLinkedRole",
                    actions=["iam:CreateServiceLinkedRole"],
                    resources=[stack.format_arn(
                        service="iam", region="", resource="role", resource_name=AUTO_SCALING_SERVICE_LINKED_ROLE,
                    )],
                    conditions={"StringEquals": {"iam:AWSServiceName": AUTO_SCALING_SERVICE}},
                ),
            ]
        for statement in statements:
            self.role.add_to_policy(statement)

        findings = [
            f"Resource::arn:<AWS::Partition>:sagemaker:{region}:{account}:model/*",
            f"Resource::arn:<AWS::Partition>:sagemaker:{region}:{account}:endpoint-config/*",
            f"Resource::arn:<AWS::Partition>:sagemaker:{region}:{account}:"
            f"model-package/{props.model_package_group_name}/*",
            "Resource::*",
        ]
        if props.auto_scaling:
            findings.append(
                f"Resource::arn:<AWS::Partition>:cloudwatch:{region}:{account}:"
                f"alarm:TargetTracking-endpoint/{props.endpoint_name}/*"
            )
        if props.monitoring_role is not None:
            findings += [f"Resource::arn:<AWS::Partition>:sagemaker:{region}:{account}:{kind}/*"
                         for kind in ("data-quality-job-definition", "model-quality-job-definition")]
            findings.append(f"Resource::arn:<AWS::Partition>:sagemaker:{region}:{account}:"
                            f"monitoring-schedule/{props.endpoint_name}-*")
        suppress(
            self.role,
            "AwsSolutions-IAM5",
            "CloudFormation names each new model, endpoint config and monitoring job definition itself (a "
            "new one per promotion or change); monitoring schedules are named after the endpoint; "
            "versions of the environment's own model package group are read; Application Auto Scaling "
            "names its target-tracking alarms after the endpoint; cloudwatch:DescribeAlarms, "
            "cloudwatch:GetMetricData and the application-autoscaling actions take no resource-level "
            "permissions.",
            applies_to=findings,
            apply_to_children=True,
        )
        policy = self.role.node.try_find_child("DefaultPolicy")
        skip_checkov(
            policy, "CKV_AWS_111",
            "Application Auto Scaling's scalable-target and scaling-policy actions and "
            "cloudwatch:GetMetricData take no resource-level permissions; every other write is "
            "scoped to this endpoint, its configs, models and alarms.",
        )


def _monitoring_statements(stack: cdk.Stack, props: ApprovalUpdateRoleProps) -> list[iam.PolicyStatement]:
    """The endpoint's monitoring job definitions (unnamed: CloudFormation names them, and replaces
    them rather than update them) and its schedules, named after the endpoint."""
    job_definitions = [stack.format_arn(service="sagemaker", resource=kind, resource_name="*")
                       for kind in ("data-quality-job-definition", "model-quality-job-definition")]
    schedules = stack.format_arn(service="sagemaker", resource="monitoring-schedule",
                                 resource_name=f"{props.endpoint_name}-*")
    return [
        iam.PolicyStatement(
            sid="ManageTheMonitoringJobDefinitions",
            actions=[f"sagemaker:{verb}{kind}JobDefinition" for kind in ("DataQuality", "ModelQuality")
                     for verb in ("Create", "Describe", "Delete")],
            resources=job_definitions,
        ),
        iam.PolicyStatement(
            sid="ManageTheMonitoringSchedules",
            actions=[f"sagemaker:{verb}MonitoringSchedule" for verb in ("Create", "Describe", "Update", "Delete")],
            resources=[schedules],
        ),
        iam.PolicyStatement(
            sid="TagTheMonitoringResources", actions=list(SAGEMAKER_TAG_ACTIONS), resources=[*job_definitions, schedules],
        ),
        iam.PolicyStatement(
            sid="PassTheMonitoringRoleToSageMaker",
            actions=["iam:PassRole"],
            resources=[props.monitoring_role.role_arn],
            conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
        ),
    ]


def _alarm_arn(stack: cdk.Stack, alarm_name: str) -> str:
    return stack.format_arn(
        service="cloudwatch", resource="alarm", resource_name=alarm_name, arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
    )
