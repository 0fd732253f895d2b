"""Starts the environment's training pipeline when the endpoint's data-drift alarm goes into
ALARM and/or on a schedule, through stacks/lambdas/retraining_trigger (which starts nothing
while an execution is running). Built only where cdk.json's `retraining` asks for it."""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks.checkov_skips import skip_lambda_checks
from stacks.components.lambda_handlers import HANDLER_RUNTIME, handler_code
from stacks.components.lifecycle import log_retention, removal_policy


@dataclass(frozen=True)
class RetrainingTriggerProps:
    pipeline_name: str
    drift_alarm: cloudwatch.CfnAlarm | None  # None: no drift trigger
    schedule: str | None  # an EventBridge cron expression; None: no schedule
    log_retention_days: int
    retain_on_delete: bool
    key: kms.IKey


class RetrainingTrigger(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, props: RetrainingTriggerProps) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        log_group = logs.LogGroup(self, "HandlerLogs", retention=log_retention(props.log_retention_days),
                                  removal_policy=removal_policy(props.retain_on_delete), encryption_key=props.key)
        role = iam.Role(self, "HandlerRole", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                        description=f"Starts {props.pipeline_name} on drift or schedule, one execution at a time")
        pipeline_arn = stack.format_arn(service="sagemaker", resource="pipeline", resource_name=props.pipeline_name)
        role.add_to_policy(iam.PolicyStatement(
            sid="StartThePipelineWhenIdle",
            actions=["sagemaker:ListPipelineExecutions", "sagemaker:StartPipelineExecution"],
            resources=[pipeline_arn],
        ))
        role.add_to_policy(iam.PolicyStatement(
            sid="WriteOwnLogs", actions=["logs:CreateLogStream", "logs:PutLogEvents"], resources=[log_group.log_group_arn],
        ))
        self.function = lambda_.Function(
            self, "Handler",
            description=f"Starts {props.pipeline_name} on drift or schedule unless an execution is running",
            runtime=HANDLER_RUNTIME, handler="handler.handler", code=handler_code("retraining_trigger"),
            timeout=cdk.Duration.minutes(1), memory_size=128, role=role, log_group=log_group,
            environment_encryption=props.key, environment={"PIPELINE_NAME": props.pipeline_name},
            # One invocation at a time: two triggers in the same instant cannot both see an idle pipeline.
            reserved_concurrent_executions=1,
        )
        props.key.grant(role, "kms:Decrypt")
        skip_lambda_checks(
            self.function,
            concurrency="It reserves a concurrency of 1; the check is about reserving some.",
            dead_letter_queue="EventBridge invokes it asynchronously and a missed trigger is replaced by the next "
            "alarm or schedule; a failed start is in its log.",
            vpc="It calls only the SageMaker API and reaches no private network resource.",
        )
        self.rules = []
        if props.drift_alarm is not None:
            rule = events.Rule(
                self, "DriftAlarmRule",
                description=f"{props.drift_alarm.alarm_name} in ALARM: retrain",
                event_pattern=events.EventPattern(
                    source=["aws.cloudwatch"], detail_type=["CloudWatch Alarm State Change"],
                    detail={"alarmName": [props.drift_alarm.alarm_name], "state": {"value": ["ALARM"]}},
                ),
            )
            self.rules.append(rule)
        if props.schedule is not None:
            self.rules.append(events.Rule(self, "ScheduleRule", description=f"Scheduled retraining of {props.pipeline_name}",
                                          schedule=events.Schedule.expression(props.schedule)))
        for rule in self.rules:
            rule.add_target(targets.LambdaFunction(self.function, retry_attempts=2))
