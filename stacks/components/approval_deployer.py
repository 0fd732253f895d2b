"""Follows model package approvals: EventBridge puts the approval decisions of the environment's
model package group on an SQS queue, and a Lambda declares the latest Approved version in the
approved-package SSM parameter and updates the serving stack, passing only the stack's approval
update role. The same queue carries the serving stack's own status changes and a check every
few minutes, on which the Lambda marks rolled-back promotions and verifies what the endpoint
serves.

Busy stacks and throttling are retried from the queue; every other failure of an approval event
is sent to the dead-letter queue at once and counted in a metric whose alarm fires within a
minute or two. A second alarm fires when the newest Approved package is not what the endpoint
serves.
"""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from cdk_nag import RegexAppliesTo
from constructs import Construct

from stacks.checkov_skips import skip_lambda_checks
from stacks.components.arns import sagemaker_arn_factory
from stacks.components.lambda_handlers import HANDLER_RUNTIME, handler_code
from stacks.components.lifecycle import log_retention, removal_policy
from stacks.nag_suppressions import suppress

# Mirrors stacks/lambdas/approval_deployer/handler.py (that file may import boto3 only).
NO_APPROVED_PACKAGE_METRIC = "NoApprovedModelPackage"
NOT_SERVING_METRIC = "ApprovedModelNotServing"
PROMOTION_FAILURES_METRIC = "PromotionFailures"
APPROVAL_STATUSES_THAT_DEPLOY = ("Approved", "Rejected")
# Stack states after which the deployer looks again: a promotion finished or was rolled back.
STACK_STATUSES_TO_CHECK = ("UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "UPDATE_ROLLBACK_FAILED")
# A stack update with canary/linear shifting and baking can take an hour or more; a busy stack's
# message comes back every VISIBILITY_TIMEOUT, MAX_RECEIVE_COUNT times (6 hours) before the DLQ.
HANDLER_TIMEOUT = cdk.Duration.seconds(60)
VISIBILITY_TIMEOUT = cdk.Duration.minutes(10)
MAX_RECEIVE_COUNT = 36
DEAD_LETTER_RETENTION = cdk.Duration.days(14)
# Every CHECK_INTERVAL the deployer publishes whether the newest Approved package serves; the alarm
# fires after NOT_SERVING_PERIODS intervals in a row that say "not serving" or say nothing.
CHECK_INTERVAL = cdk.Duration.minutes(5)
NOT_SERVING_PERIODS = 3


@dataclass(frozen=True)
class ApprovalDeployerProps:
    environment_name: str
    model_package_group_name: str
    parameter_name: str  # the serving stack's approved-package parameter (its logical id)
    approved_package_parameter_name: str  # the SSM parameter behind it, which the deployer writes
    approved_package_parameter_arn: str
    bootstrap_version_parameter_arn: str | None  # the template's BootstrapVersion, re-read on updates
    update_role: iam.IRole  # the only role the deployer may pass to CloudFormation
    endpoint_name: str
    metric_namespace: str
    log_retention_days: int
    retain_on_delete: bool
    # The environment key: encrypts both queues, the log group and the function's environment.
    key: kms.IKey
    # Fixed where another account's policies must name the role (a promotion target); else generated.
    role_name: str | None = None
    # A promoting environment: the ARN prefix of its source group's versions (the handler serves
    # verified promotions of them only).
    promotion_source_prefix: str | None = None
    # With monitoring: the deployer copies a promoted package's baselines (written by the pipeline
    # under pipeline_baselines_prefix) to serving_baselines_prefix, where the schedules read them.
    # No pipeline_baselines_prefix where the environment promotes: the baselines are the source's.
    artifacts_bucket: s3.IBucket | None = None
    pipeline_baselines_prefix: str | None = None
    serving_baselines_prefix: str | None = None


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
        self.rule.add_target(self._queue_target())
        self.stack_status_rule = events.Rule(
            self,
            "StackStatusRule",
            description=f"Ends of updates of {stack.stack_name}: check what serves, mark rolled-back promotions",
            event_pattern=events.EventPattern(
                source=["aws.cloudformation"],
                detail_type=["CloudFormation Stack Status Change"],
                detail={
                    "stack-id": [stack.stack_id],
                    "status-details": {"status": list(STACK_STATUSES_TO_CHECK)},
                },
            ),
        )
        self.stack_status_rule.add_target(self._queue_target())
        self.check_schedule = events.Rule(
            self,
            "ServingCheckSchedule",
            description=f"Checks every {CHECK_INTERVAL.to_minutes()} minutes that the newest Approved package serves",
            schedule=events.Schedule.rate(CHECK_INTERVAL),
        )
        # A missed check is replaced by the next one: no retries, no dead letters.
        self.check_schedule.add_target(targets.SqsQueue(self.queue, retry_attempts=0))
        # For a KMS-encrypted queue CDK's target allows EventBridge by account, not by rule (the
        # key's grant cannot name the rule without a cycle, aws-cdk issue 11158): only these rules send.
        self.queue.add_to_resource_policy(iam.PolicyStatement(
            sid="OnlyThisStacksRulesSend",
            effect=iam.Effect.DENY,
            principals=[iam.ServicePrincipal("events.amazonaws.com")],
            actions=["sqs:SendMessage"],
            resources=[self.queue.queue_arn],
            conditions={"ArnNotEquals": {"aws:SourceArn": [
                rule.rule_arn for rule in (self.rule, self.stack_status_rule, self.check_schedule)
            ]}},
        ))

        self.log_group = log_group = logs.LogGroup(
            self, "HandlerLogs", retention=log_retention(props.log_retention_days), removal_policy=removal,
            encryption_key=props.key,
        )
        role = iam.Role(
            self,
            "HandlerRole",
            role_name=props.role_name,
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
                "APPROVED_PACKAGE_PARAMETER_NAME": props.approved_package_parameter_name,
                "CLOUDFORMATION_ROLE_ARN": props.update_role.role_arn,
                "DEAD_LETTER_QUEUE_URL": self.dead_letter_queue.queue_url,
                "MODEL_PACKAGE_GROUP_NAME": props.model_package_group_name,
                "ENVIRONMENT_NAME": props.environment_name,
                "METRIC_NAMESPACE": props.metric_namespace,
                **({"PROMOTION_SOURCE_PREFIX": props.promotion_source_prefix}
                   if props.promotion_source_prefix else {}),
                "SERVING_BASELINES_URI": (
                    props.artifacts_bucket.s3_url_for_object(props.serving_baselines_prefix)
                    if props.artifacts_bucket is not None else ""
                ),
            },
        )
        self.function.add_event_source(event_sources.SqsEventSource(
            self.queue,
            batch_size=1,
            report_batch_item_failures=True,
            max_concurrency=2,  # the minimum; CloudFormation serializes updates anyway
        ))
        self._grant_handler(role, log_group, props)
        if props.artifacts_bucket is not None:
            self._grant_baseline_publishing(role, props)
        # Decrypt: its environment and the queue's messages. GenerateDataKey: sending to the
        # KMS-encrypted dead-letter queue needs a data key (SQS server-side encryption).
        props.key.grant(role, "kms:Decrypt", "kms:GenerateDataKey")
        skip_lambda_checks(
            self.function,
            concurrency="Only its SQS event source invokes it, capped at 2 concurrent batches (max_concurrency); "
            "CloudFormation serializes the stack updates anyway, and reserving would take from the account.",
            dead_letter_queue="It is invoked synchronously by its SQS event source: a failed message returns to "
            "the queue and moves to the queue's dead-letter queue (with an alarm), not to a function DLQ.",
            vpc="It calls only AWS APIs (SageMaker, CloudFormation, CloudWatch) and reaches no private "
            "network resource; a VPC would need NAT or interface endpoints and narrow nothing its role does not.",
        )
        self._alarms(props)

    def _queue_target(self) -> targets.SqsQueue:
        return targets.SqsQueue(
            self.queue,
            dead_letter_queue=self.dead_letter_queue,  # events EventBridge could not deliver
            retry_attempts=185,
            max_event_age=cdk.Duration.hours(24),
        )

    def _metric(self, props: ApprovalDeployerProps, name: str, statistic: str, period: cdk.Duration) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=props.metric_namespace,
            metric_name=name,
            dimensions_map={"Environment": props.environment_name},
            statistic=statistic,
            period=period,
        )

    def _alarms(self, props: ApprovalDeployerProps) -> None:
        self.no_approved_package_alarm = self._alarm(
            "NoApprovedPackageAlarm", "no-approved-model-package",
            f"The serving package of {props.model_package_group_name} was rejected and no Approved "
            "package is left: the endpoint keeps serving the rejected one. Approve a package.",
            self._metric(props, NO_APPROVED_PACKAGE_METRIC, "Maximum", cdk.Duration.minutes(1)),
            # The handler publishes 1 when none is left and 0 once one is approved again; between
            # events the alarm keeps its state.
            missing_data=cloudwatch.TreatMissingData.IGNORE,
        )
        self.promotion_failed_alarm = self._alarm(
            "PromotionFailedAlarm", "promotion-failed",
            "An approval could not be deployed: its event is in the dead-letter queue (a permanent "
            "error or a stack state no retry can fix), or CloudFormation rolled the promotion back "
            "(the package was set to Rejected with the reason). See the deployer's log group.",
            self._metric(props, PROMOTION_FAILURES_METRIC, "Sum", cdk.Duration.minutes(1)),
            missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.not_serving_alarm = self._alarm(
            "ApprovedModelNotServingAlarm", "approved-model-not-serving",
            f"For {NOT_SERVING_PERIODS * CHECK_INTERVAL.to_minutes()} minutes the newest Approved package "
            f"of {props.model_package_group_name} has not been what the endpoint serves (and no "
            "deployment of it was running), or the deployer's checks stopped reporting.",
            # Minimum: one "serving" report in a period clears it, so a check that runs just before
            # an approval is processed does not count.
            self._metric(props, NOT_SERVING_METRIC, "Minimum", CHECK_INTERVAL),
            periods=NOT_SERVING_PERIODS,
            # Silence means the scheduled checks stopped: that is a failure too.
            missing_data=cloudwatch.TreatMissingData.BREACHING,
        )
        self.dead_letter_alarm = self._alarm(
            "DeadLetterAlarm", "approval-events-dead-letters",
            "Approval events the deployer could not process; inspect and redrive the DLQ",
            self.dead_letter_queue.metric_approximate_number_of_messages_visible(
                period=cdk.Duration.minutes(5), statistic="Maximum",
            ),
            missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )

    def _alarm(
        self, construct_id: str, name_suffix: str, description: str, metric: cloudwatch.IMetric, *,
        missing_data: cloudwatch.TreatMissingData, periods: int = 1,
    ) -> cloudwatch.Alarm:
        """An alarm that fires when `metric` is at least 1 in `periods` periods in a row."""
        return cloudwatch.Alarm(
            self,
            construct_id,
            alarm_name=f"{cdk.Stack.of(self).stack_name}-{name_suffix}",
            alarm_description=description,
            metric=metric,
            threshold=1,
            evaluation_periods=periods,
            datapoints_to_alarm=periods if periods > 1 else None,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=missing_data,
        )

    def _grant_baseline_publishing(self, role: iam.Role, props: ApprovalDeployerProps) -> None:
        """publish_serving_baselines: copy what the pipeline calculated to where monitoring reads."""
        bucket = props.artifacts_bucket
        own_prefixes = [prefix for prefix in (props.pipeline_baselines_prefix, props.serving_baselines_prefix) if prefix]
        prefixes = "|".join(prefix.replace("/", "\\/") for prefix in own_prefixes)
        if props.pipeline_baselines_prefix:
            role.add_to_policy(iam.PolicyStatement(
                sid="ReadPipelineBaselines", actions=["s3:GetObject"],
                resources=[bucket.arn_for_objects(f"{props.pipeline_baselines_prefix}/*")],
            ))
        role.add_to_policy(iam.PolicyStatement(
            sid="PublishServingBaselines", actions=["s3:PutObject"],
            resources=[bucket.arn_for_objects(f"{props.serving_baselines_prefix}/*")],
        ))
        suppress(
            role, "AwsSolutions-IAM5",
            "Baseline files are named per pipeline execution (monitoring-baselines/<execution id>/...) and "
            "copied under this endpoint's serving-baselines prefix: only object keys below these prefixes.",
            applies_to=[RegexAppliesTo(regex=f"/^Resource::.*\\/({prefixes})\\/\\*$/")],
            apply_to_children=True,
        )

    def _grant_handler(self, role: iam.Role, log_group: logs.LogGroup, props: ApprovalDeployerProps) -> None:
        stack = cdk.Stack.of(self)
        stack_arn = stack.format_arn(service="cloudformation", resource="stack", resource_name=f"{stack.stack_name}/*")

        region, account = stack.region, stack.account  # each read is a jsii round trip
        sagemaker_arn = sagemaker_arn_factory(stack.partition, region, account)

        packages = sagemaker_arn("model-package", f"{props.model_package_group_name}/*")
        statements = [
            iam.PolicyStatement(
                sid="WriteOwnLogs",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[log_group.log_group_arn],
            ),
            iam.PolicyStatement(
                sid="ReadServingStack",
                actions=[
                    "cloudformation:DescribeStacks", "cloudformation:DescribeStackEvents",
                    "cloudformation:DescribeStackResources",
                ],
                resources=[stack_arn],
            ),
            iam.PolicyStatement(
                # IAM cannot force UsePreviousTemplate; what it can force is the role CloudFormation
                # uses, and that role can change only the served resources.
                sid="UpdateServingStackOnlyWithItsUpdateRole",
                actions=["cloudformation:UpdateStack"],
                resources=[stack_arn],
                conditions={"StringEquals": {"cloudformation:RoleArn": props.update_role.role_arn}},
            ),
            iam.PolicyStatement(
                sid="PassOnlyTheUpdateRoleToCloudFormation",
                actions=["iam:PassRole"],
                resources=[props.update_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}},
            ),
            iam.PolicyStatement(
                sid="DeclareTheApprovedPackage",
                actions=["ssm:GetParameter", "ssm:GetParameters", "ssm:PutParameter"],
                resources=[props.approved_package_parameter_arn],
            ),
            iam.PolicyStatement(
                sid="ReadApprovedPackages",
                actions=["sagemaker:ListModelPackages"],
                resources=["*"],
            ),
            iam.PolicyStatement(
                sid="ReadPackagesOfThisGroup",
                actions=["sagemaker:DescribeModelPackage"],
                resources=[packages],
            ),
            iam.PolicyStatement(
                # Marks a rolled-back promotion; it can never approve anything.
                sid="RejectPackagesOfThisGroup",
                actions=["sagemaker:UpdateModelPackage"],
                resources=[packages],
                conditions={"StringEquals": {"sagemaker:ModelApprovalStatus": "Rejected"}},
            ),
            iam.PolicyStatement(
                sid="VerifyWhatTheEndpointServes",
                actions=["sagemaker:DescribeEndpoint", "sagemaker:DescribeEndpointConfig", "sagemaker:DescribeModel"],
                resources=[
                    sagemaker_arn("endpoint", props.endpoint_name),
                    sagemaker_arn("endpoint-config", "*"),
                    sagemaker_arn("model", "*"),
                ],
            ),
            iam.PolicyStatement(
                sid="PublishServingMetrics",
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": props.metric_namespace}},
            ),
            iam.PolicyStatement(
                sid="DeadLetterPermanentFailures",
                actions=["sqs:SendMessage"],
                resources=[self.dead_letter_queue.queue_arn],
            ),
        ]
        if props.bootstrap_version_parameter_arn:
            statements.append(iam.PolicyStatement(
                # CloudFormation resolves the template's SSM-typed parameters again on every
                # UpdateStack, also with UsePreviousValue (aws-cdk issue 20959).
                sid="ResolveBootstrapVersion",
                actions=["ssm:GetParameters"],
                resources=[props.bootstrap_version_parameter_arn],
            ))
        for statement in statements:
            role.add_to_policy(statement)
        suppress(
            role,
            "AwsSolutions-IAM5",
            "The stack ARN ends in a stack id CloudFormation assigns at creation (the name is fixed); "
            "versions of the environment's own model package group are read and rejected; the served "
            "model and endpoint config are named by CloudFormation; sagemaker:ListModelPackages and "
            "cloudwatch:PutMetricData support no resource-level permissions (the metric namespace is "
            "pinned by a condition).",
            applies_to=[
                f"Resource::arn:<AWS::Partition>:cloudformation:{region}:{account}:stack/{stack.stack_name}/*",
                f"Resource::arn:<AWS::Partition>:sagemaker:{region}:{account}:"
                f"model-package/{props.model_package_group_name}/*",
                f"Resource::arn:<AWS::Partition>:sagemaker:{region}:{account}:endpoint-config/*",
                f"Resource::arn:<AWS::Partition>:sagemaker:{region}:{account}:model/*",
                "Resource::*",
            ],
            apply_to_children=True,
        )
