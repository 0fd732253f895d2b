"""Where an environment records which model package its endpoint serves: an SSM parameter
holding the ARN of the approved package, or `none` before the first approval.

The approval deployer writes it; the serving stack reads it through an SSM-typed stack parameter,
which CloudFormation resolves again on every create and update. A `cdk deploy`, with or without
previous parameter values, therefore always deploys what the parameter says and can never reset
it to "no endpoint".

CloudFormation creates the parameter once and never writes it again: a custom resource calls
PutParameter without Overwrite on create only. An `AWS::SSM::Parameter` resource would not do:
its update handler writes the template's `Value` on every update of the resource (a changed tag or
description is enough), which would silently reset what serves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import custom_resources as cr
from constructs import Construct

from stacks.checkov_skips import skip_cdk_provider_checks

from stacks.components.lifecycle import log_retention, removal_policy

# SSM parameters cannot hold an empty string; the serving stack's condition compares with this.
NO_APPROVED_PACKAGE = "none"
RESOURCE_TYPE = "Custom::ApprovedModelPackageParameter"


def approved_package_value_pattern(*, region: str, account: str, model_package_group_name: str) -> str:
    """`none`, or a version of this environment's own group in its own account and region."""
    group = re.escape(model_package_group_name)
    return (
        f"^({NO_APPROVED_PACKAGE}|arn:aws[a-z-]*:sagemaker:{region}:{account}:model-package/{group}/[0-9]+)$"
    )


@dataclass(frozen=True)
class ApprovedModelPackageParameterProps:
    parameter_name: str
    model_package_group_name: str
    retain_on_delete: bool
    log_retention_days: int
    # The environment key: encrypts the handler's log group.
    key: kms.IKey


class ApprovedModelPackageParameter(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, props: ApprovedModelPackageParameterProps) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        self.parameter_name = props.parameter_name
        self.parameter_arn = parameter_arn(stack, props.parameter_name)
        self.value_pattern = approved_package_value_pattern(
            region=stack.region, account=stack.account, model_package_group_name=props.model_package_group_name,
        )
        removal = removal_policy(props.retain_on_delete)

        log_group = logs.LogGroup(
            self, "HandlerLogs", retention=log_retention(props.log_retention_days), removal_policy=removal,
            encryption_key=props.key,
        )
        # Our own role: the default one would carry the AWSLambdaBasicExecutionRole managed policy.
        role = iam.Role(
            self,
            "HandlerRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Creates the SSM parameter {props.parameter_name} once",
        )
        log_group.grant_write(role)
        actions = ["ssm:PutParameter"] if props.retain_on_delete else ["ssm:PutParameter", "ssm:DeleteParameter"]
        statement = iam.PolicyStatement(actions=actions, resources=[self.parameter_arn])

        create_once = cr.AwsSdkCall(
            service="SSM",
            action="PutParameter",
            parameters={
                "Name": props.parameter_name,
                "Type": "String",
                "Value": NO_APPROVED_PACKAGE,
                "AllowedPattern": self.value_pattern,
                "Description": (
                    f"ARN of the approved model package of {props.model_package_group_name} that the "
                    f"endpoint serves ({NO_APPROVED_PACKAGE}: no endpoint). Written by the approval deployer."
                ),
                "Overwrite": False,
            },
            physical_resource_id=cr.PhysicalResourceId.of(props.parameter_name),
            # Kept from an earlier foundation stack (prod retains it): its value is what serves.
            ignore_error_codes_matching="ParameterAlreadyExists",
        )
        delete = None if props.retain_on_delete else cr.AwsSdkCall(
            service="SSM",
            action="DeleteParameter",
            parameters={"Name": props.parameter_name},
            ignore_error_codes_matching="ParameterNotFound",
        )
        self.resource = cr.AwsCustomResource(
            self,
            "CreateOnce",
            resource_type=RESOURCE_TYPE,
            on_create=create_once,
            on_delete=delete,  # no on_update: CloudFormation never writes the value again
            policy=cr.AwsCustomResourcePolicy.from_statements([statement]),
            role=role,
            log_group=log_group,
            install_latest_aws_sdk=False,
        )
        _skip_singleton_function_checks(cdk.Stack.of(self))


# The id of the singleton function that every AwsCustomResource of a stack shares (CDK's own).
_AWS_CUSTOM_RESOURCE_FUNCTION_ID = "AWS679f53fac002430cb0da5b7982bd2287"


def _skip_singleton_function_checks(stack: cdk.Stack) -> None:
    skip_cdk_provider_checks(
        stack.node.try_find_child(_AWS_CUSTOM_RESOURCE_FUNCTION_ID),
        where=stack.node.path, what="CDK's AwsCustomResource function",
        runs_when="creates or deletes this parameter", service="SSM", calls_on="this one parameter",
    )


def parameter_arn(stack: cdk.Stack, parameter_name: str) -> str:
    """ARN of an SSM parameter of this stack's account and region (`name` starts with `/`)."""
    return stack.format_arn(service="ssm", resource="parameter", resource_name=parameter_name.lstrip("/"))
