"""Follows model package approvals: an EventBridge rule for the environment's model package group
puts approval decisions on an SQS queue, and a Lambda moves the serving stack's approved-package
parameter to the latest Approved version. Busy stacks are retried from the queue; what keeps
failing lands in a dead-letter queue with an alarm, so no approval is lost.
"""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.checkov_skips import skip_lambda_checks
from stacks.components.lambda_handlers import HANDLER_RUNTIME, handler_code
from stacks.components.lifecycle import log_retention, removal_policy
from stacks.nag_suppressions import suppress

# Mirrors stacks/lambdas/approval_deployer/handler.py (that file may import boto3 only).
NO_APPROVED_PACKAGE_METRIC = "NoApprovedModelPackage"
APPROVAL_STATUSES_THAT_DEPLOY = ("Approved", "Rejected")
# A stack update with canary/linear shifting and baking can take an hour or more; a busy stack's
# message comes back every VISIBILITY_TIMEOUT, MAX_RECEIVE_COUNT times (6 hours) before the DLQ.
HANDLER_TIMEOUT = cdk.Duration.seconds(60)
VISIBILITY_TIMEOUT = cdk.Duration.minutes(10)
MAX_RECEIVE_COUNT = 36
DEAD_LETTER_RETENTION = cdk.Duration.days(14)


@dataclass(frozen=True)
class ApprovalDeployerProps:
    environment_name: str
    model_package_group_name: str
    parameter_name: str  # the serving stack's approved-package parameter
    metric_namespace: str
    log_retention_days: int
    retain_on_delete: bool
    # The role CloudFormation runs this stack's updates with (the `cdk deploy` execution role);
    # UpdateStack without RoleARN reuses it, and the caller may need to pass it.
    cloudformation_execution_role_arn: str | None
    # The environment key: encrypts both queues, the log group and the function's environment.
    key: kms.IKey


class ApprovalDeployer(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, props: ApprovalDeployerProps) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        removal = removal_policy(props.retain_on_delete)

        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetterQueue",
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=props.key,
            enforce_ssl=True,
            retention_period=DEAD_LETTER_RETENTION,
            removal_policy=removal,
        )
        suppress(self.dead_letter_queue, "AwsSolutions-SQS3", "This queue is itself the dead-letter queue.")
        self.queue = sqs.Queue(
            self,
            "ApprovalEventsQueue",
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=props.key,
            enforce_ssl=True,
            visibility_timeout=VISIBILITY_TIMEOUT,
            retention_period=cdk.Duration.days(4),
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.dead_letter_queue, max_receive_count=MAX_RECEIVE_COUNT),
        )

        self.rule = events.Rule(
            self,
            "ApprovalDecisionsRule",
            description=f"Approval decisions in model package group {props.model_package_group_name}",
            event_pattern=events.EventPattern(
                source=["aws.sagemaker"],
                detail_type=["SageMaker Model Package State Change"],
                detail={
                    "ModelPackageGroupName": [props.model_package_group_name],
                    "ModelApprovalStatus": list(APPROVAL_STATUSES_THAT_DEPLOY),
                },
            ),
        )
        self.rule.add_target(targets.SqsQueue(
            self.queue,
            dead_letter_queue=self.dead_letter_queue,  # events EventBridge could not deliver
            retry_attempts=185,
            max_event_age=cdk.Duration.hours(24),
        ))
        # For a KMS-encrypted queue CDK's target allows EventBridge by account, not by rule (the
        # key's grant cannot name the rule without a cycle, aws-cdk issue 11158): only this rule sends.
        self.queue.add_to_resource_policy(iam.PolicyStatement(
            sid="OnlyTheApprovalDecisionsRuleSends",
            effect=iam.Effect.DENY,
            principals=[iam.ServicePrincipal("events.amazonaws.com")],
            actions=["sqs:SendMessage"],
            resources=[self.queue.queue_arn],
            conditions={"ArnNotEquals": {"aws:SourceArn": self.rule.rule_arn}},
        ))

        self.log_group = log_group = logs.LogGroup(
            self, "HandlerLogs", retention=log_retention(props.log_retention_days), removal_policy=removal,
            encryption_key=props.key,
        )
        role = iam.Role(
            self,
            "HandlerRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Moves the {props.environment_name} serving stack to the latest Approved model package",
        )
        self.function = lambda_.Function(
            self,
            "Handler",
            description="Moves the endpoint to the latest Approved model package (via the serving stack)",
            runtime=HANDLER_RUNTIME,
            handler="handler.handler",
            code=handler_code("approval_deployer"),
            timeout=HANDLER_TIMEOUT,
            memory_size=256,
            role=role,
            log_group=log_group,
            environment_encryption=props.key,
            environment={
                "STACK_NAME": stack.stack_name,
                "PARAMETER_NAME": props.parameter_name,
                "MODEL_PACKAGE_GROUP_NAME": props.model_package_group_name,
                "ENVIRONMENT_NAME": props.environment_name,
                "METRIC_NAMESPACE": props.metric_namespace,
            },
        )
        self.function.add_event_source(event_sources.SqsEventSource(
            self.queue,
            batch_size=1,
            report_batch_item_failures=True,
            max_concurrency=2,  # the minimum; CloudFormation serializes updates anyway
        ))
        self._grant_handler(role, log_group, props)
        props.key.grant_decrypt(role)  # its environment; the SQS event source adds the same for the queue
        skip_lambda_checks(
            self.function,
            concurrency="Only its SQS event source invokes it, capped at 2 concurrent batches (max_concurrency); "
            "CloudFormation serializes the stack updates anyway, and reserving would take from the account.",
            dead_letter_queue="It is invoked synchronously by its SQS event source: a failed message returns to "
            "the queue and moves to the queue's dead-letter queue (with an alarm), not to a function DLQ.",
            vpc="It calls only AWS APIs (SageMaker, CloudFormation, CloudWatch) and reaches no private "
            "network resource; a VPC would need NAT or interface endpoints and narrow nothing its role does not.",
        )

        self.no_approved_package_alarm = cloudwatch.Alarm(
            self,
            "NoApprovedPackageAlarm",
            alarm_name=f"{stack.stack_name}-no-approved-model-package",
            alarm_description=(
                f"The serving package of {props.model_package_group_name} was rejected and no Approved "
                "package is left: the endpoint keeps serving the rejected one. Approve a package."
            ),
            metric=cloudwatch.Metric(
                namespace=props.metric_namespace,
                metric_name=NO_APPROVED_PACKAGE_METRIC,
                dimensions_map={"Environment": props.environment_name},
                statistic="Maximum",
                period=cdk.Duration.minutes(1),
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            # The handler publishes 1 when none is left and 0 once one is approved again; between
            # events the alarm keeps its state.
            treat_missing_data=cloudwatch.TreatMissingData.IGNORE,
        )
        self.dead_letter_alarm = cloudwatch.Alarm(
            self,
            "DeadLetterAlarm",
            alarm_name=f"{stack.stack_name}-approval-events-dead-letters",
            alarm_description="Approval events the deployer could not process; inspect and redrive the DLQ",
            metric=self.dead_letter_queue.metric_approximate_number_of_messages_visible(
                period=cdk.Duration.minutes(5), statistic="Maximum",
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )

    def _grant_handler(self, role: iam.Role, log_group: logs.LogGroup, props: ApprovalDeployerProps) -> None:
        stack = cdk.Stack.of(self)
        stack_arn = stack.format_arn(service="cloudformation", resource="stack", resource_name=f"{stack.stack_name}/*")
        role.add_to_policy(iam.PolicyStatement(
            sid="WriteOwnLogs",
            actions=["logs:CreateLogStream", "logs:PutLogEvents"],
            resources=[log_group.log_group_arn],
        ))
        role.add_to_policy(iam.PolicyStatement(
            sid="UpdateServingStackOnly",
            actions=["cloudformation:DescribeStacks", "cloudformation:UpdateStack"],
            resources=[stack_arn],
        ))
        if props.cloudformation_execution_role_arn:
            role.add_to_policy(iam.PolicyStatement(
                sid="ReuseStackExecutionRole",
                actions=["iam:PassRole"],
                resources=[props.cloudformation_execution_role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}},
            ))
        role.add_to_policy(iam.PolicyStatement(
            sid="ReadApprovedPackages",
            actions=["sagemaker:ListModelPackages"],
            resources=["*"],
        ))
        role.add_to_policy(iam.PolicyStatement(
            sid="PublishNoApprovedPackageMetric",
            actions=["cloudwatch:PutMetricData"],
            resources=["*"],
            conditions={"StringEquals": {"cloudwatch:namespace": props.metric_namespace}},
        ))
        suppress(
            role,
            "AwsSolutions-IAM5",
            "The stack ARN ends in a stack id CloudFormation assigns at creation (the name is fixed); "
            "sagemaker:ListModelPackages and cloudwatch:PutMetricData "
            "support no resource-level permissions (the metric namespace is pinned by a condition).",
            applies_to=[
                f"Resource::arn:<AWS::Partition>:cloudformation:{stack.region}:{stack.account}:stack/{stack.stack_name}/*",
                "Resource::*",
            ],
            apply_to_children=True,
        )

