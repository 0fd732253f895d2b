"""PipelineUpserter: a custom resource (Lambda behind the CDK Provider framework) that creates
or updates one SageMaker Pipeline from its JSON definition on every deploy, and deletes it
with the stack unless the environment retains it. See docs/pipeline-upserter.md."""

from __future__ import annotations

from typing import Mapping

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import custom_resources as cr
from constructs import Construct

from stacks.checkov_skips import skip_lambda_checks
from stacks.components.lambda_handlers import HANDLER_RUNTIME, handler_code
from stacks.components.lifecycle import log_retention, removal_policy
from stacks.nag_suppressions import suppress

RESOURCE_TYPE = "Custom::SageMakerPipeline"
# A normal event takes a few seconds. The handler's retry budget is about two minutes per API
# call in the worst case, and the Provider framework's own function waits up to 15 minutes for
# it: 5 minutes leaves room for retries and still fails (FAILED, never a hung stack) well
# before the framework would.
DEFAULT_HANDLER_TIMEOUT = cdk.Duration.minutes(5)
PIPELINE_ACTIONS = (
    "sagemaker:AddTags",
    "sagemaker:CreatePipeline",
    "sagemaker:DeletePipeline",
    "sagemaker:DeleteTags",
    "sagemaker:DescribePipeline",
    "sagemaker:ListTags",
    "sagemaker:StartPipelineExecution",
    "sagemaker:UpdatePipeline",
)


class PipelineUpserter(Construct):
    """Creates or updates the SageMaker Pipeline `pipeline_name` on every deploy.

    `pipeline_arn` is the deployed pipeline's ARN (a token). The custom resource's physical
    id is the pipeline name, so renaming the pipeline creates the new one and deletes the old.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        pipeline_name: str,
        pipeline_definition: str,
        pipeline_role: iam.IRole,
        description: str,
        tags: Mapping[str, str],
        retain_on_delete: bool,
        start_execution_after_upsert: bool,
        log_retention_days: int,
        handler_timeout: cdk.Duration = DEFAULT_HANDLER_TIMEOUT,
        encryption_key: kms.IKey | None = None,
    ) -> None:
        super().__init__(scope, id)
        retention = log_retention(log_retention_days)
        if handler_timeout.to_seconds() > cdk.Duration.minutes(14).to_seconds():
            raise ValueError("handler_timeout must stay under the Provider framework's 15-minute limit (at most 14 minutes)")
        log_removal_policy = removal_policy(retain_on_delete)

        handler_log_group = logs.LogGroup(
            self, "HandlerLogGroup", retention=retention, removal_policy=log_removal_policy, encryption_key=encryption_key,
        )
        handler_role = iam.Role(
            self,
            "HandlerRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Upserts the SageMaker pipeline {pipeline_name}",
            inline_policies={
                "UpsertPipeline": _handler_policy(self, pipeline_name, pipeline_role, handler_log_group),
            },
        )
        self.handler = lambda_.Function(
            self,
            "Handler",
            description=f"Upserts the SageMaker pipeline {pipeline_name} (CloudFormation custom resource)",
            runtime=HANDLER_RUNTIME,
            handler="handler.on_event",
            code=handler_code("pipeline_upserter"),
            timeout=handler_timeout,
            memory_size=256,
            role=handler_role,
            log_group=handler_log_group,
        )

        provider_log_group = logs.LogGroup(
            self, "ProviderLogGroup", retention=retention, removal_policy=log_removal_policy, encryption_key=encryption_key,
        )
        # Our own role instead of the default one, which would carry AWSLambdaBasicExecutionRole.
        provider_role = iam.Role(
            self,
            "ProviderRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"CDK Provider framework for the upserter of SageMaker pipeline {pipeline_name}",
        )
        provider_log_group.grant_write(provider_role)
        self.provider = cr.Provider(
            self,
            "Provider",
            on_event_handler=self.handler,
            framework_on_event_role=provider_role,
            log_group=provider_log_group,
            provider_function_env_encryption=encryption_key,
        )
        if encryption_key is not None:
            # Lambda decrypts the framework's environment (the handler's ARN) as its role.
            encryption_key.grant_decrypt(provider_role)

        self.resource = cdk.CustomResource(
            self,
            "Resource",
            service_token=self.provider.service_token,
            resource_type=RESOURCE_TYPE,
            properties={
                "PipelineName": pipeline_name,
                "PipelineDefinition": pipeline_definition,
                "RoleArn": pipeline_role.role_arn,
                "Description": description,
                "Tags": [{"Key": key, "Value": value} for key, value in sorted(tags.items())],
                "RetainOnDelete": _cfn_bool(retain_on_delete),
                "StartExecution": _cfn_bool(start_execution_after_upsert),
            },
        )
        if cdk.Stack.of(pipeline_role) is cdk.Stack.of(self):
            # An execution started right after the upsert needs the role's policies in place.
            self.resource.node.add_dependency(pipeline_role)
        self.pipeline_arn: str = self.resource.get_att_string("PipelineArn")
        self.pipeline_name = pipeline_name
        _suppress_provider_framework_findings(provider_role, self.handler)
        self._skip_lambda_checks(pipeline_name)

    def _skip_lambda_checks(self, pipeline_name: str) -> None:
        no_vpc = (
            "It calls only AWS APIs ({apis}) and reaches no private network resource; a VPC would "
            "need NAT or interface endpoints and narrow nothing its role does not."
        )
        skip_lambda_checks(
            self.handler,
            concurrency="Only the Provider framework invokes it, once per CloudFormation event of this one "
            "pipeline; reserving concurrency would only take from the account's pool.",
            dead_letter_queue="The Provider framework invokes it synchronously and reports its errors to "
            "CloudFormation as a failed resource; a dead-letter queue serves only asynchronous invocations.",
            vpc=no_vpc.format(apis=f"SageMaker, for pipeline {pipeline_name}"),
        )
        skip_lambda_checks(
            self.provider.node.find_child("framework-onEvent"),
            concurrency="CDK's Provider framework function runs only for CloudFormation events of this custom "
            "resource; reserving concurrency would only take from the account's pool.",
            dead_letter_queue="CloudFormation invokes it and learns of a failure from its response or its "
            "timeout, which fails the stack operation; nobody would read a dead-letter queue.",
            vpc=no_vpc.format(apis="Lambda, to invoke the upserter, and the CloudFormation response URL"),
        )


def _handler_policy(
    scope: Construct, pipeline_name: str, pipeline_role: iam.IRole, log_group: logs.ILogGroup
) -> iam.PolicyDocument:
    return iam.PolicyDocument(
        statements=[
            iam.PolicyStatement(
                sid="WriteOwnLogs",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[log_group.log_group_arn],
            ),
            iam.PolicyStatement(
                sid="ManageThisPipelineOnly",
                actions=list(PIPELINE_ACTIONS),
                resources=pipeline_arns_for(scope, pipeline_name),
            ),
            iam.PolicyStatement(
                sid="PassThePipelineRoleToSageMakerOnly",
                actions=["iam:PassRole"],
                resources=[pipeline_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            ),
        ]
    )


def pipeline_arns_for(scope: Construct, pipeline_name: str) -> list[str]:
    """The ARN(s) IAM may see for this pipeline. SageMaker lower-cases some resource names in
    ARNs and not others, so a name with capitals is granted in both spellings (still only it)."""
    if cdk.Token.is_unresolved(pipeline_name):
        names = [pipeline_name]
    else:
        names = sorted({pipeline_name, pipeline_name.lower()})
    stack = cdk.Stack.of(scope)
    return [
        stack.format_arn(service="sagemaker", resource="pipeline", resource_name=name,
                         arn_format=cdk.ArnFormat.SLASH_RESOURCE_NAME)
        for name in names
    ]


def _suppress_provider_framework_findings(provider_role: iam.IRole, handler: lambda_.Function) -> None:
    """The CDK Provider framework's function is CDK's code, not ours: suppress the one finding
    its grants cannot avoid, for exactly that role and that resource. (Its Node.js runtime is
    aws-cdk-lib's latest today, so AwsSolutions-L1 passes and is deliberately not suppressed.)"""
    handler_logical_id = cdk.Stack.of(handler).get_logical_id(handler.node.default_child)
    suppress(
        provider_role,
        "AwsSolutions-IAM5",
        "The Provider framework grants itself lambda:InvokeFunction on the upserter function and "
        "its versions (<function ARN>:*); the wildcard covers only versions of that one function.",
        applies_to=[f"Resource::<{handler_logical_id}.Arn>:*"],
        apply_to_children=True,
    )


def _cfn_bool(value: bool) -> str:
    # CloudFormation hands every custom-resource property to the handler as a string anyway.
    return "true" if value else "false"
