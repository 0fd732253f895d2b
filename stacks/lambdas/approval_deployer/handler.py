"""Moves one environment's endpoint to the latest Approved model package of its group, by setting
the serving stack's `ApprovedModelPackageArn` parameter (CloudFormation then deploys it).

Triggered by "SageMaker Model Package State Change" events that EventBridge puts on an SQS queue.
The event only says *that* something changed; the target is always read from the registry (the
latest Approved version), so duplicate, late or out-of-order events converge on one state.
boto3 and the standard library only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from enum import Enum
from typing import Any, Mapping

import boto3
from botocore.exceptions import ClientError

LOGGER = logging.getLogger()
LOGGER.setLevel(logging.INFO)

EVENT_SOURCE = "aws.sagemaker"
EVENT_DETAIL_TYPE = "SageMaker Model Package State Change"
# PendingManualApproval never deploys: only a human decision moves the endpoint.
ACTING_APPROVAL_STATUSES = frozenset({"Approved", "Rejected"})
APPROVED = "Approved"
NO_APPROVED_PACKAGE_METRIC = "NoApprovedModelPackage"
# CloudFormation refuses an update while any operation runs; these are the states it answers with.
BUSY_STACK_STATUS_SUFFIX = "_IN_PROGRESS"
STACK_CAPABILITIES = ("CAPABILITY_IAM", "CAPABILITY_NAMED_IAM")


class MalformedEvent(ValueError):
    """The message is not a model package state change this handler can read; retrying will not help."""


class RetryLater(Exception):
    """The stack is busy with another operation; the message goes back to the queue for later."""


class Outcome(str, Enum):
    IGNORED = "ignored"  # not for this group, or not an approval decision
    UNCHANGED = "unchanged"  # the stack already declares the latest Approved package
    UPDATED = "updated"  # a stack update to the latest Approved package has started
    NO_APPROVED_PACKAGE = "no_approved_package"  # nothing approved left: endpoint kept as is, alarm raised


@dataclass(frozen=True)
class Settings:
    stack_name: str
    parameter_name: str
    model_package_group_name: str
    environment_name: str
    metric_namespace: str

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> "Settings":
        names = {
            "stack_name": "STACK_NAME",
            "parameter_name": "PARAMETER_NAME",
            "model_package_group_name": "MODEL_PACKAGE_GROUP_NAME",
            "environment_name": "ENVIRONMENT_NAME",
            "metric_namespace": "METRIC_NAMESPACE",
        }
        missing = [variable for variable in names.values() if not environ.get(variable)]
        if missing:
            raise RuntimeError(f"approval deployer is misconfigured: missing environment variables {missing}")
        return cls(**{field: environ[variable] for field, variable in names.items()})


@dataclass(frozen=True)
class ApprovalChange:
    """What the event says: a package of some group changed to some approval status."""

    event_id: str
    model_package_arn: str
    model_package_group_name: str
    approval_status: str


@dataclass(frozen=True)
class Clients:
    sagemaker: Any
    cloudformation: Any
    cloudwatch: Any

    @classmethod
    def create(cls, **client_kwargs: Any) -> "Clients":
        return cls(
            sagemaker=boto3.client("sagemaker", **client_kwargs),
            cloudformation=boto3.client("cloudformation", **client_kwargs),
            cloudwatch=boto3.client("cloudwatch", **client_kwargs),
        )


def parse_event(event: Any) -> ApprovalChange:
    """Read an EventBridge "SageMaker Model Package State Change" event (a dict or its JSON text)."""
    if isinstance(event, (str, bytes)):
        try:
            event = json.loads(event)
        except json.JSONDecodeError as error:
            raise MalformedEvent(f"not JSON: {error}") from None
    if not isinstance(event, dict):
        raise MalformedEvent(f"expected a JSON object, got {type(event).__name__}")
    if event.get("source") != EVENT_SOURCE or event.get("detail-type") != EVENT_DETAIL_TYPE:
        raise MalformedEvent(
            f"expected source={EVENT_SOURCE!r} detail-type={EVENT_DETAIL_TYPE!r}, "
            f"got source={event.get('source')!r} detail-type={event.get('detail-type')!r}"
        )
    detail = event.get("detail")
    if not isinstance(detail, dict):
        raise MalformedEvent("event has no 'detail' object")
    fields = {}
    for key in ("ModelPackageArn", "ModelPackageGroupName", "ModelApprovalStatus"):
        value = detail.get(key)
        if not isinstance(value, str) or not value:
            raise MalformedEvent(f"event detail has no {key}")
        fields[key] = value
    return ApprovalChange(
        event_id=str(event.get("id", "")),
        model_package_arn=fields["ModelPackageArn"],
        model_package_group_name=fields["ModelPackageGroupName"],
        approval_status=fields["ModelApprovalStatus"],
    )


def latest_approved_package_arn(sagemaker: Any, model_package_group_name: str) -> str | None:
    """The newest Approved version of the group (versions only grow), or None."""
    response = sagemaker.list_model_packages(
        ModelPackageGroupName=model_package_group_name,
        ModelApprovalStatus=APPROVED,
        ModelPackageType="Versioned",
        SortBy="CreationTime",
        SortOrder="Descending",
        MaxResults=1,
    )
    summaries = response.get("ModelPackageSummaryList", [])
    return summaries[0]["ModelPackageArn"] if summaries else None


@dataclass(frozen=True)
class StackState:
    status: str
    parameters: dict[str, str]

    @property
    def busy(self) -> bool:
        return self.status.endswith(BUSY_STACK_STATUS_SUFFIX)


def describe_stack(cloudformation: Any, stack_name: str) -> StackState:
    stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    parameters = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])}
    return StackState(status=stack["StackStatus"], parameters=parameters)


def request_token(event_id: str, target_arn: str) -> str:
    """Same event and target -> same token, so CloudFormation itself drops a repeated request."""
    digest = hashlib.sha256(f"{event_id}|{target_arn}".encode()).hexdigest()[:48]
    return f"approval-{digest}"


def update_stack_parameter(cloudformation: Any, settings: Settings, state: StackState, target_arn: str, token: str) -> bool:
    """Start a stack update that changes only the approved package; False if there was nothing to change."""
    parameters = [
        {"ParameterKey": key, "UsePreviousValue": True} for key in sorted(state.parameters) if key != settings.parameter_name
    ]
    parameters.append({"ParameterKey": settings.parameter_name, "ParameterValue": target_arn})
    try:
        cloudformation.update_stack(
            StackName=settings.stack_name,
            UsePreviousTemplate=True,  # the template stays exactly what `cdk deploy` declared
            Parameters=parameters,
            Capabilities=list(STACK_CAPABILITIES),
            ClientRequestToken=token,
        )
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        message = error.response.get("Error", {}).get("Message", "")
        if "No updates are to be performed" in message:
            return False
        if code == "TokenAlreadyExistsException":
            # This event already started this update once (an earlier delivery whose reply was
            # lost); if that update rolled back, repeating it for the same event would not help.
            LOGGER.warning("Update for this event was already requested (token %s): not repeated", token)
            return False
        if BUSY_STACK_STATUS_SUFFIX in message:  # another operation started since describe_stacks
            raise RetryLater(message) from error
        raise
    return True


def publish_no_approved_package(cloudwatch: Any, settings: Settings, value: int) -> None:
    cloudwatch.put_metric_data(
        Namespace=settings.metric_namespace,
        MetricData=[{
            "MetricName": NO_APPROVED_PACKAGE_METRIC,
            "Dimensions": [{"Name": "Environment", "Value": settings.environment_name}],
            "Value": value,
            "Unit": "Count",
        }],
    )


def reconcile(change: ApprovalChange, clients: Clients, settings: Settings) -> Outcome:
    """Make the stack declare the latest Approved package of the group, if the event calls for it."""
    if change.model_package_group_name != settings.model_package_group_name:
        LOGGER.info("Ignored: %s belongs to group %s, not %s", change.model_package_arn,
                    change.model_package_group_name, settings.model_package_group_name)
        return Outcome.IGNORED
    if change.approval_status not in ACTING_APPROVAL_STATUSES:
        LOGGER.info("Ignored: %s is %s; only Approved and Rejected decisions deploy",
                    change.model_package_arn, change.approval_status)
        return Outcome.IGNORED

    state = describe_stack(clients.cloudformation, settings.stack_name)
    if settings.parameter_name not in state.parameters:
        raise RuntimeError(f"stack {settings.stack_name} has no parameter {settings.parameter_name}")
    if state.busy:
        raise RetryLater(f"stack {settings.stack_name} is {state.status}; will retry")
    deployed_arn = state.parameters[settings.parameter_name]
    target_arn = latest_approved_package_arn(clients.sagemaker, settings.model_package_group_name)

    if target_arn is None:
        if not deployed_arn:
            LOGGER.info("No Approved package in %s and no endpoint deployed: nothing to do",
                        settings.model_package_group_name)
            return Outcome.UNCHANGED
        LOGGER.error(
            "NO APPROVED MODEL PACKAGE LEFT in group %s after %s became %s: the endpoint of %s keeps "
            "serving %s. Approve a package to move it (alarm %s/%s Environment=%s).",
            settings.model_package_group_name, change.model_package_arn, change.approval_status,
            settings.environment_name, deployed_arn, settings.metric_namespace, NO_APPROVED_PACKAGE_METRIC,
            settings.environment_name,
        )
        publish_no_approved_package(clients.cloudwatch, settings, 1)
        return Outcome.NO_APPROVED_PACKAGE

    publish_no_approved_package(clients.cloudwatch, settings, 0)
    if target_arn == deployed_arn:
        LOGGER.info("Unchanged: stack %s already declares the latest Approved package %s",
                    settings.stack_name, target_arn)
        return Outcome.UNCHANGED
    token = request_token(change.event_id, target_arn)
    if not update_stack_parameter(clients.cloudformation, settings, state, target_arn, token):
        return Outcome.UNCHANGED
    LOGGER.info("Updating stack %s: %s %s -> %s (after %s became %s)", settings.stack_name, settings.parameter_name,
                deployed_arn or "<none>", target_arn, change.model_package_arn, change.approval_status)
    return Outcome.UPDATED


def process_record(body: str, clients: Clients, settings: Settings) -> Outcome:
    try:
        change = parse_event(body)
    except MalformedEvent as error:
        # Retrying cannot fix a malformed message: log it (truncated) and let it go.
        LOGGER.error("Malformed event dropped (%s): %.500s", error, body)
        return Outcome.IGNORED
    return reconcile(change, clients, settings)


def handler(event: dict, context: Any, clients: Clients | None = None, settings: Settings | None = None) -> dict:
    """SQS batch entry point; busy stacks and unexpected errors are reported as item failures (retried)."""
    settings = settings or Settings.from_environment()
    clients = clients or Clients.create()
    failures = []
    for record in event.get("Records", []):
        message_id = record.get("messageId", "")
        try:
            outcome = process_record(record.get("body", ""), clients, settings)
            LOGGER.info("Message %s: %s", message_id, outcome.value)
        except RetryLater as busy:
            LOGGER.warning("Message %s retried later: %s", message_id, busy)
            failures.append({"itemIdentifier": message_id})
        except Exception:  # noqa: BLE001 - kept in the queue (then the DLQ), never lost
            LOGGER.exception("Message %s failed; it stays in the queue and reaches the DLQ if it keeps failing", message_id)
            failures.append({"itemIdentifier": message_id})
    return {"batchItemFailures": failures}
