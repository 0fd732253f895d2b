"""Keeps one environment's endpoint on the latest Approved model package of its group.

On an approval decision ("SageMaker Model Package State Change", Approved or Rejected) it writes
that package's ARN to the approved-package SSM parameter and updates the serving stack, which
resolves the parameter (CloudFormation then deploys it). The update runs with the stack's
approval update role, the only role this function may pass. The event only says *that* something
changed; the target is always read from the registry, so duplicate, late or out-of-order events
converge on one state.

On the serving stack's status changes and on a schedule it checks instead of deploying: it marks
a promotion CloudFormation rolled back (the package is set to Rejected with the reason, so no
later event deploys it again), verifies that the endpoint serves the stack's endpoint config and
the declared package, and publishes whether the newest Approved package serves.

Busy stacks and throttling are retried through the queue; any other failure of an approval event
goes to the dead-letter queue at once and counts in the PromotionFailures metric.
boto3 and the standard library only.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from enum import Enum
from typing import Any, Mapping

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionError as BotocoreConnectionError, HTTPClientError

LOGGER = logging.getLogger()
LOGGER.setLevel(logging.INFO)

APPROVAL_EVENT = ("aws.sagemaker", "SageMaker Model Package State Change")
STACK_STATUS_EVENT = ("aws.cloudformation", "CloudFormation Stack Status Change")
SCHEDULED_EVENT = ("aws.events", "Scheduled Event")
# PendingManualApproval never deploys: only a human decision moves the endpoint.
ACTING_APPROVAL_STATUSES = frozenset({"Approved", "Rejected"})
APPROVED = "Approved"
REJECTED = "Rejected"
NO_APPROVED_PACKAGE = "none"  # the SSM parameter's value before the first approval

NO_APPROVED_PACKAGE_METRIC = "NoApprovedModelPackage"
NOT_SERVING_METRIC = "ApprovedModelNotServing"
PROMOTION_FAILURES_METRIC = "PromotionFailures"

STACK_CAPABILITIES = ("CAPABILITY_IAM", "CAPABILITY_NAMED_IAM")
# States from which an UpdateStack can start.
UPDATABLE_STACK_STATUSES = frozenset({
    "CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE", "IMPORT_ROLLBACK_COMPLETE",
})
# States that end, by themselves, in one of those: wait for them. Every other state (ROLLBACK_*,
# *_FAILED, DELETE_*, REVIEW_IN_PROGRESS, or one this code does not know) needs a person.
BUSY_STACK_STATUSES = frozenset({
    "CREATE_IN_PROGRESS", "UPDATE_IN_PROGRESS", "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS",
    "UPDATE_ROLLBACK_IN_PROGRESS", "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS",
    "IMPORT_IN_PROGRESS", "IMPORT_ROLLBACK_IN_PROGRESS",
})
ROLLED_BACK_STATUS = "UPDATE_ROLLBACK_COMPLETE"
ROLLBACK_STARTED_STATUS = "UPDATE_ROLLBACK_IN_PROGRESS"
# Error codes that say "try again later"; everything else is permanent and goes to the DLQ.
TRANSIENT_ERROR_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottled", "RequestThrottledException",
    "TooManyRequestsException", "RequestLimitExceeded", "ProvisionedThroughputExceededException", "SlowDown",
    "TooManyUpdates", "ServiceUnavailable", "ServiceUnavailableException", "InternalFailure", "InternalError",
    "InternalServerError", "InternalServerException", "RequestTimeout", "RequestTimeoutException",
    "PriorRequestNotComplete",
})
STACK_STATE_IN_MESSAGE = re.compile(r" is in ([A-Z_]+) state")
TOKEN_PREFIX = "promote"
APPROVAL_DESCRIPTION_LIMIT = 1024
SQS_ATTRIBUTE_LIMIT = 1000
# Standard retries: throttling is first retried inside the call, then through the queue.
CLIENT_CONFIG = Config(retries={"mode": "standard", "total_max_attempts": 3})


class MalformedEvent(ValueError):
    """The message is not an event this handler can read; retrying will not help."""


class RetryLater(Exception):
    """The stack is busy with another operation; the message goes back to the queue for later."""


class PermanentFailure(Exception):
    """No retry can fix this (a stack state that needs a person, a missing stack or parameter)."""


class Outcome(str, Enum):
    IGNORED = "ignored"  # not for this group, or not an approval decision
    UNCHANGED = "unchanged"  # the stack already serves the latest Approved package
    UPDATED = "updated"  # a stack update to the latest Approved package has started
    NO_APPROVED_PACKAGE = "no_approved_package"  # nothing approved left: endpoint kept as is, alarm raised
    SERVING = "serving"  # check: the newest Approved package serves
    DEPLOYING = "deploying"  # check: the stack is busy, presumably deploying it
    NOT_SERVING = "not_serving"  # check: it does not serve (alarm)
    CHECK_FAILED = "check_failed"  # check: could not tell (alarm)


@dataclass(frozen=True)
class Settings:
    stack_name: str
    parameter_name: str  # the stack parameter (SSM-typed) that says what serves
    approved_package_parameter_name: str  # the SSM parameter behind it
    cloudformation_role_arn: str  # the approval update role
    dead_letter_queue_url: str
    model_package_group_name: str
    environment_name: str
    metric_namespace: str
    # Set in an environment that serves promoted packages only: the ARN prefix of the source group's
    # versions (`arn:...:model-package/<group>/`); every package must be a verified promotion of one.
    promotion_source_prefix: str = ""
    # s3://<artifacts bucket>/serving-baselines/<endpoint>: where the monitoring schedules read the
    # served package's baselines; "" when the environment has no monitoring.
    serving_baselines_uri: str = ""

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> "Settings":
        names = {
            "stack_name": "STACK_NAME",
            "parameter_name": "PARAMETER_NAME",
            "approved_package_parameter_name": "APPROVED_PACKAGE_PARAMETER_NAME",
            "cloudformation_role_arn": "CLOUDFORMATION_ROLE_ARN",
            "dead_letter_queue_url": "DEAD_LETTER_QUEUE_URL",
            "model_package_group_name": "MODEL_PACKAGE_GROUP_NAME",
            "environment_name": "ENVIRONMENT_NAME",
            "metric_namespace": "METRIC_NAMESPACE",
        }
        missing = [variable for variable in names.values() if not environ.get(variable)]
        if missing:
            raise RuntimeError(f"approval deployer is misconfigured: missing environment variables {missing}")
        return cls(**{field: environ[variable] for field, variable in names.items()},
                   promotion_source_prefix=environ.get("PROMOTION_SOURCE_PREFIX", ""),
                   serving_baselines_uri=environ.get("SERVING_BASELINES_URI", ""))


@dataclass(frozen=True)
class ApprovalChange:
    """What an approval event says: a package of some group changed to some approval status."""

    event_id: str
    model_package_arn: str
    model_package_group_name: str
    approval_status: str


@dataclass(frozen=True)
class ServingCheck:
    """A stack status change or the schedule: look, mark, report; never deploy."""

    cause: str
    # Set for this stack's status-change events: a stuck stack is announced once, on the change,
    # not again on every scheduled check (the not-serving alarm keeps saying it).
    stack_status: str | None = None


@dataclass(frozen=True)
class Clients:
    sagemaker: Any
    cloudformation: Any
    cloudwatch: Any
    ssm: Any
    sqs: Any
    s3: Any

    @classmethod
    def create(cls, **client_kwargs: Any) -> "Clients":
        client_kwargs.setdefault("config", CLIENT_CONFIG)
        return cls(**{
            name: boto3.client(name, **client_kwargs)
            for name in ("sagemaker", "cloudformation", "cloudwatch", "ssm", "sqs", "s3")
        })


# --- Reading events -------------------------------------------------------------------------------

def parse_event(event: Any) -> ApprovalChange | ServingCheck:
    """Read an EventBridge event (a dict or its JSON text) this function subscribes to."""
    if isinstance(event, (str, bytes)):
        try:
            event = json.loads(event)
        except json.JSONDecodeError as error:
            raise MalformedEvent(f"not JSON: {error}") from None
    if not isinstance(event, dict):
        raise MalformedEvent(f"expected a JSON object, got {type(event).__name__}")
    kind = (event.get("source"), event.get("detail-type"))
    if kind == SCHEDULED_EVENT:
        return ServingCheck(cause="scheduled check")
    detail = event.get("detail")
    if kind not in (APPROVAL_EVENT, STACK_STATUS_EVENT):
        raise MalformedEvent(f"unexpected source={kind[0]!r} detail-type={kind[1]!r}")
    if not isinstance(detail, dict):
        raise MalformedEvent("event has no 'detail' object")
    if kind == STACK_STATUS_EVENT:
        status = str((detail.get("status-details") or {}).get("status"))
        return ServingCheck(cause=f"stack status {status}", stack_status=status)
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


# --- Reading state --------------------------------------------------------------------------------

@dataclass(frozen=True)
class StackState:
    status: str
    parameter_keys: tuple[str, ...]
    served_arn: str | None  # the package the stack's parameter resolved to at its last operation

    @property
    def busy(self) -> bool:
        return self.status in BUSY_STACK_STATUSES

    @property
    def updatable(self) -> bool:
        return self.status in UPDATABLE_STACK_STATUSES


def describe_stack(cloudformation: Any, settings: Settings) -> StackState:
    try:
        stack = cloudformation.describe_stacks(StackName=settings.stack_name)["Stacks"][0]
    except ClientError as error:
        if "does not exist" in error_message(error):
            raise PermanentFailure(f"stack {settings.stack_name} does not exist") from error
        raise
    parameters = {p["ParameterKey"]: p for p in stack.get("Parameters", [])}
    if settings.parameter_name not in parameters:
        raise PermanentFailure(f"stack {settings.stack_name} has no parameter {settings.parameter_name}")
    parameter = parameters[settings.parameter_name]
    # SSM-typed parameters report the SSM name as ParameterValue and what it resolved to apart.
    served = parameter.get("ResolvedValue", parameter.get("ParameterValue", ""))
    return StackState(
        status=stack["StackStatus"],
        parameter_keys=tuple(sorted(parameters)),
        served_arn=None if served in ("", NO_APPROVED_PACKAGE) else served,
    )


def declared_package(ssm: Any, settings: Settings) -> str | None:
    """What the approved-package parameter declares now (None: no package)."""
    try:
        value = ssm.get_parameter(Name=settings.approved_package_parameter_name)["Parameter"]["Value"]
    except ClientError as error:
        if error_code(error) == "ParameterNotFound":
            raise PermanentFailure(
                f"SSM parameter {settings.approved_package_parameter_name} does not exist (the foundation "
                "stack creates it)"
            ) from error
        raise
    return None if value == NO_APPROVED_PACKAGE else value


def declare_package(ssm: Any, settings: Settings, arn: str | None) -> None:
    ssm.put_parameter(
        Name=settings.approved_package_parameter_name,
        Value=arn or NO_APPROVED_PACKAGE,
        Type="String",
        Overwrite=True,
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


# --- Promoted packages -----------------------------------------------------------------------------
# tools/promote_model.py copies a version of another environment's group into this one, pending a
# person's approval here; its artifact stays the source's sealed, content-addressed object.

PROMOTED_FROM_KEY = "PromotedFromModelPackageArn"  # CustomerMetadataProperties keys it writes
ARTIFACT_SHA256_KEY = "ModelArtifactSha256"
SEALED_ARTIFACT_URL = re.compile(r"^s3://(?P<bucket>[^/]+)/(?P<key>(?:[^/]+/)*sha256/(?P<digest>[0-9a-f]{64})/model\.tar\.gz)$")


def sealed_artifact(model_data_url: str) -> re.Match | None:
    """Bucket, key and digest of a sealed artifact's URL (container_code/seal_model.py names it)."""
    return SEALED_ARTIFACT_URL.match(model_data_url or "")


def model_data_urls(package: Mapping[str, Any]) -> list[str]:
    return [c.get("ModelDataUrl", "") for c in package.get("InferenceSpecification", {}).get("Containers", [])]


def sha256_of_object(s3: Any, bucket: str, key: str) -> str:
    """The digest of the object's bytes, read in chunks."""
    digest = hashlib.sha256()
    for chunk in s3.get_object(Bucket=bucket, Key=key)["Body"].iter_chunks(8 * 1024 * 1024):
        digest.update(chunk)
    return digest.hexdigest()


def artifact_sha256(s3: Any, bucket: str, key: str) -> str:
    """The SHA-256 S3 verified when the object was written, else (an object written without one)
    the digest of its bytes."""
    head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    if head.get("ChecksumSHA256") and head.get("ChecksumType", "FULL_OBJECT") == "FULL_OBJECT":
        return base64.b64decode(head["ChecksumSHA256"]).hex()
    return sha256_of_object(s3, bucket, key)


def verify_promoted_artifact(clients: Clients, settings: Settings, package_arn: str) -> None:
    """Before a promoted package serves: its artifact is the one its source version registers, and
    S3 holds it with the SHA-256 that travelled with it. S3 checked that checksum against the bytes
    when the seal step wrote them, and the key is write-once: reading it back costs one HEAD
    whatever the model's size. Where the environment trains its own, a package without a promotion
    record needs no check; where it promotes, every package must be a promotion from its source."""
    package = clients.sagemaker.describe_model_package(ModelPackageName=package_arn)
    metadata = package.get("CustomerMetadataProperties") or {}
    source_arn = metadata.get(PROMOTED_FROM_KEY, "")
    if not source_arn and not settings.promotion_source_prefix:
        return
    if settings.promotion_source_prefix and not source_arn.startswith(settings.promotion_source_prefix):
        raise PermanentFailure(f"package {package_arn} is not a promotion from {settings.promotion_source_prefix}* "
                               f"(promoted from: {source_arn or 'nothing'}); this environment serves promotions only")
    expected = metadata.get(ARTIFACT_SHA256_KEY, "")
    urls = model_data_urls(package)
    sealed = sealed_artifact(urls[0]) if len(urls) == 1 else None
    if sealed is None or sealed["digest"] != expected:
        raise PermanentFailure(f"promoted package {package_arn}: artifact {urls} is not the sealed artifact "
                               f"with SHA-256 {expected or '<none>'}")
    source = clients.sagemaker.describe_model_package(ModelPackageName=source_arn)
    if model_data_urls(source) != urls:
        raise PermanentFailure(f"promoted package {package_arn}: its source {source_arn} "
                               f"registers {model_data_urls(source)}, not {urls}")
    stored = artifact_sha256(clients.s3, sealed["bucket"], sealed["key"])
    if stored != expected:
        raise PermanentFailure(f"promoted package {package_arn}: {urls[0]} has SHA-256 {stored}, "
                               f"not {expected}: not served")
    LOGGER.info("Promoted package %s: artifact %s verified (SHA-256 %s)", package_arn, urls[0], expected)
# --- Monitoring baselines -------------------------------------------------------------------------

# DriftCheckBaselines of a package -> the files the monitoring schedules read
# (stacks/components/model_monitoring.py, serving_baseline_key).
SERVING_BASELINE_FILES = (
    (("ModelDataQuality", "Statistics"), "data-quality/statistics.json"),
    (("ModelDataQuality", "Constraints"), "data-quality/constraints.json"),
    (("ModelQuality", "Statistics"), "model-quality/statistics.json"),
    (("ModelQuality", "Constraints"), "model-quality/constraints.json"),
)


def _bucket_and_key(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def publish_serving_baselines(clients: Clients, settings: Settings, package_arn: str) -> int:
    """Copy the package's drift-check baselines to where the endpoint's monitoring schedules read
    them, so that monitoring compares with the package that is about to serve. Returns how many
    files it copied: none without monitoring; a package registered without baselines keeps the
    previous files (logged)."""
    if not settings.serving_baselines_uri:
        return 0
    baselines = clients.sagemaker.describe_model_package(ModelPackageName=package_arn).get("DriftCheckBaselines", {})
    sources = [(baselines.get(kind, {}).get(document, {}).get("S3Uri"), target)
               for (kind, document), target in SERVING_BASELINE_FILES]
    if not all(source for source, _ in sources):
        LOGGER.warning("Package %s has no complete DriftCheckBaselines: monitoring keeps the previous baselines", package_arn)
        return 0
    bucket, prefix = _bucket_and_key(settings.serving_baselines_uri.rstrip("/"))
    for source, target in sources:
        source_bucket, source_key = _bucket_and_key(source)
        # No encryption headers: the copy takes the destination bucket's default, the environment's
        # key. `aws:kms` without a key id would encrypt it with the AWS managed key aws/s3 (S3
        # PutObject/CopyObject reference). The source may be a promotion source's bucket.
        clients.s3.copy_object(Bucket=bucket, Key=f"{prefix}/{target}",
                               CopySource={"Bucket": source_bucket, "Key": source_key})
    LOGGER.info("Monitoring baselines of %s published to %s", package_arn, settings.serving_baselines_uri)
    return len(sources)


# --- Updating the stack ---------------------------------------------------------------------------

def package_version(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def request_token(event_id: str, target_arn: str) -> str:
    """Same event and target -> same token, so CloudFormation itself drops a repeated request. The
    package version leads, so stack events tell which promotion an operation was."""
    digest = hashlib.sha256(f"{event_id}|{target_arn}".encode()).hexdigest()[:40]
    return f"{TOKEN_PREFIX}-{package_version(target_arn)}-{digest}"


def is_promotion_of(token: str | None, arn: str) -> bool:
    return bool(token) and token.startswith(f"{TOKEN_PREFIX}-{package_version(arn)}-")


def update_stack(cloudformation: Any, settings: Settings, state: StackState, token: str) -> bool:
    """Start a stack update that re-reads the approved-package parameter; False if nothing changed."""
    parameters = [
        {"ParameterKey": key, "UsePreviousValue": True} for key in state.parameter_keys if key != settings.parameter_name
    ]
    # Named explicitly: whatever the stack held before, it resolves the deployer's parameter.
    parameters.append({"ParameterKey": settings.parameter_name, "ParameterValue": settings.approved_package_parameter_name})
    try:
        cloudformation.update_stack(
            StackName=settings.stack_name,
            UsePreviousTemplate=True,  # the template stays exactly what `cdk deploy` declared
            Parameters=parameters,
            Capabilities=list(STACK_CAPABILITIES),
            RoleARN=settings.cloudformation_role_arn,  # the only role this function may pass
            ClientRequestToken=token,
        )
    except ClientError as error:
        if "No updates are to be performed" in error_message(error):
            return False
        if error_code(error) == "TokenAlreadyExistsException":
            # This event already started this update once (an earlier delivery whose reply was
            # lost); if that update rolled back, repeating it for the same event would not help.
            LOGGER.warning("Update for this event was already requested (token %s): not repeated", token)
            return False
        raise
    return True


# --- Rolled-back promotions -----------------------------------------------------------------------

@dataclass(frozen=True)
class RolledBackPromotion:
    package_arn: str
    reason: str


def find_rolled_back_promotion(
    cloudformation: Any, settings: Settings, state: StackState, declared: str | None,
) -> RolledBackPromotion | None:
    """The declared package, if the stack's last operation was its promotion and was rolled back."""
    if state.status != ROLLED_BACK_STATUS or declared is None or declared == state.served_arn:
        return None
    events = cloudformation.describe_stack_events(StackName=settings.stack_name).get("StackEvents", [])  # newest first
    rollback = next(
        (e for e in events
         if e.get("ResourceType") == "AWS::CloudFormation::Stack" and e.get("ResourceStatus") == ROLLBACK_STARTED_STATUS),
        None,
    )
    if rollback is None or not is_promotion_of(rollback.get("ClientRequestToken"), declared):
        return None  # another operation (a `cdk deploy`) was rolled back: not this promotion's doing
    token = rollback["ClientRequestToken"]
    failures = [
        f"{e.get('LogicalResourceId')}: {e.get('ResourceStatusReason')}"
        for e in events
        if e.get("ClientRequestToken") == token and str(e.get("ResourceStatus", "")).endswith("_FAILED")
        and e.get("ResourceType") != "AWS::CloudFormation::Stack"
    ]
    reason = "; ".join(failures) or rollback.get("ResourceStatusReason") or "no reason given"
    return RolledBackPromotion(package_arn=declared, reason=reason)


def mark_rolled_back(clients: Clients, settings: Settings, state: StackState, rolled_back: RolledBackPromotion) -> None:
    """Reject the package (so no later event deploys it again), then declare what still serves
    (so no `cdk deploy` tries it again). In that order: if either call fails, the next run finds
    the same mismatch and finishes the job."""
    package = clients.sagemaker.describe_model_package(ModelPackageName=rolled_back.package_arn)
    if package.get("ModelApprovalStatus") == APPROVED:
        description = (
            f"Rejected by the approval deployer: CloudFormation rolled back its promotion on stack "
            f"{settings.stack_name} ({rolled_back.reason})"
        )
        clients.sagemaker.update_model_package(
            ModelPackageArn=rolled_back.package_arn,
            ModelApprovalStatus=REJECTED,
            ApprovalDescription=description[:APPROVAL_DESCRIPTION_LIMIT],
        )
    declare_package(clients.ssm, settings, state.served_arn)
    LOGGER.error(
        "PROMOTION ROLLED BACK: %s did not deploy on stack %s (%s). It is now Rejected; %s keeps serving. "
        "Fix the cause, then register or approve a package again.",
        rolled_back.package_arn, settings.stack_name, rolled_back.reason, state.served_arn or "no endpoint",
    )
    publish(clients.cloudwatch, settings, {PROMOTION_FAILURES_METRIC: 1})


# --- What the endpoint serves ---------------------------------------------------------------------

def resource_name(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def serving_problem(clients: Clients, settings: Settings, served_arn: str) -> str | None:
    """None if the endpoint is in service on the stack's endpoint config, whose model is built from
    `served_arn`; else what is wrong."""
    resources = clients.cloudformation.describe_stack_resources(StackName=settings.stack_name)["StackResources"]
    physical = {r.get("ResourceType"): r.get("PhysicalResourceId") for r in resources if r.get("PhysicalResourceId")}
    endpoint_arn = physical.get("AWS::SageMaker::Endpoint")
    config_arn = physical.get("AWS::SageMaker::EndpointConfig")
    if not endpoint_arn or not config_arn:
        return f"stack {settings.stack_name} declares {served_arn} but has no endpoint or endpoint config"
    try:
        endpoint = clients.sagemaker.describe_endpoint(EndpointName=resource_name(endpoint_arn))
    except ClientError as error:
        if error_code(error) in ("ValidationException", "ResourceNotFound"):
            return f"endpoint {resource_name(endpoint_arn)} does not exist ({error_message(error)})"
        raise
    name = endpoint["EndpointName"]
    if endpoint.get("EndpointStatus") != "InService":
        return f"endpoint {name} is {endpoint.get('EndpointStatus')} ({endpoint.get('FailureReason', '')})"
    # SageMaker ARNs spell names in lower case.
    if endpoint["EndpointConfigName"].lower() != resource_name(config_arn).lower():
        return (f"endpoint {name} serves endpoint config {endpoint['EndpointConfigName']}, not the stack's "
                f"{resource_name(config_arn)}")
    config = clients.sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    for variant in config.get("ProductionVariants", []):
        model = clients.sagemaker.describe_model(ModelName=variant["ModelName"])
        containers = [model.get("PrimaryContainer", {}), *model.get("Containers", [])]
        packages = {c.get("ModelPackageName") for c in containers if c.get("ModelPackageName")}
        if packages != {served_arn}:
            return (f"variant {variant.get('VariantName')} of endpoint {name} runs model {variant['ModelName']} "
                    f"built from {sorted(packages) or 'no package'}, not {served_arn}")
    return None


# --- Metrics ----------------------------------------------------------------------------------------

def publish(cloudwatch: Any, settings: Settings, values: Mapping[str, float]) -> None:
    cloudwatch.put_metric_data(
        Namespace=settings.metric_namespace,
        MetricData=[
            {
                "MetricName": name,
                "Dimensions": [{"Name": "Environment", "Value": settings.environment_name}],
                "Value": value,
                "Unit": "Count",
            }
            for name, value in values.items()
        ],
    )


# --- The two paths ----------------------------------------------------------------------------------

def read_state(clients: Clients, settings: Settings) -> tuple[StackState, str | None]:
    """The stack and the declared package, after marking a rolled-back promotion if there is one."""
    state = describe_stack(clients.cloudformation, settings)
    if not (state.updatable or state.busy):
        raise PermanentFailure(
            f"stack {settings.stack_name} is {state.status}: no update can start from it; it needs a person "
            "(see the stack events)"
        )
    declared = declared_package(clients.ssm, settings)
    rolled_back = find_rolled_back_promotion(clients.cloudformation, settings, state, declared)
    if rolled_back is not None:
        mark_rolled_back(clients, settings, state, rolled_back)
        declared = state.served_arn
    return state, declared


def reconcile(change: ApprovalChange, clients: Clients, settings: Settings) -> Outcome:
    """Make the stack serve the latest Approved package of the group, if the event calls for it."""
    if change.model_package_group_name != settings.model_package_group_name:
        LOGGER.info("Ignored: %s belongs to group %s, not %s", change.model_package_arn,
                    change.model_package_group_name, settings.model_package_group_name)
        return Outcome.IGNORED
    if change.approval_status not in ACTING_APPROVAL_STATUSES:
        LOGGER.info("Ignored: %s is %s; only Approved and Rejected decisions deploy",
                    change.model_package_arn, change.approval_status)
        return Outcome.IGNORED

    state, declared = read_state(clients, settings)
    if state.busy:
        raise RetryLater(f"stack {settings.stack_name} is {state.status}; will retry")
    served = state.served_arn
    target = latest_approved_package_arn(clients.sagemaker, settings.model_package_group_name)

    if target is None:
        if not served:
            LOGGER.info("No Approved package in %s and no endpoint deployed: nothing to do",
                        settings.model_package_group_name)
            return Outcome.UNCHANGED
        LOGGER.error(
            "NO APPROVED MODEL PACKAGE LEFT in group %s after %s became %s: the endpoint of %s keeps "
            "serving %s. Approve a package to move it (alarm %s/%s Environment=%s).",
            settings.model_package_group_name, change.model_package_arn, change.approval_status,
            settings.environment_name, served, settings.metric_namespace, NO_APPROVED_PACKAGE_METRIC,
            settings.environment_name,
        )
        publish(clients.cloudwatch, settings, {NO_APPROVED_PACKAGE_METRIC: 1})
        return Outcome.NO_APPROVED_PACKAGE

    publish(clients.cloudwatch, settings, {NO_APPROVED_PACKAGE_METRIC: 0})
    if target != served:
        verify_promoted_artifact(clients, settings, target)
    if declared != target:
        declare_package(clients.ssm, settings, target)
    if target == served:
        # What the endpoint really serves is verified by the checks (stack status changes, schedule).
        LOGGER.info("Unchanged: stack %s already serves the latest Approved package %s", settings.stack_name, target)
        return Outcome.UNCHANGED
    publish_serving_baselines(clients, settings, target)
    token = request_token(change.event_id, target)
    if not update_stack(clients.cloudformation, settings, state, token):
        return Outcome.UNCHANGED
    publish(clients.cloudwatch, settings, {NOT_SERVING_METRIC: 0})  # deploying it: not a failure
    LOGGER.info("Updating stack %s: %s -> %s (after %s became %s; token %s)", settings.stack_name,
                served or "<none>", target, change.model_package_arn, change.approval_status, token)
    return Outcome.UPDATED


def report_serving(clients: Clients, settings: Settings, served: str, *, cause: str) -> Outcome:
    problem = serving_problem(clients, settings, served)
    if problem is None:
        publish(clients.cloudwatch, settings, {NOT_SERVING_METRIC: 0})
        LOGGER.info("Serving %s as declared (%s)", served, cause)
        return Outcome.SERVING
    publish(clients.cloudwatch, settings, {NOT_SERVING_METRIC: 1})
    LOGGER.error("ENDPOINT DOES NOT SERVE THE APPROVED PACKAGE %s (%s): %s", served, cause, problem)
    return Outcome.NOT_SERVING


def check_serving(check: ServingCheck, clients: Clients, settings: Settings) -> Outcome:
    """Mark a rolled-back promotion, then report whether the newest Approved package serves. Never
    deploys and never raises: whatever goes wrong is reported, and the next check comes anyway."""
    try:
        state, _ = read_state(clients, settings)
        if state.busy:
            publish(clients.cloudwatch, settings, {NOT_SERVING_METRIC: 0})
            LOGGER.info("Stack %s is %s: checked again when it ends (%s)", settings.stack_name, state.status, check.cause)
            return Outcome.DEPLOYING
        target = latest_approved_package_arn(clients.sagemaker, settings.model_package_group_name)
        if target is None:
            publish(clients.cloudwatch, settings, {NOT_SERVING_METRIC: 0})
            return Outcome.SERVING
        if target != state.served_arn:
            publish(clients.cloudwatch, settings, {NOT_SERVING_METRIC: 1})
            LOGGER.error(
                "THE NEWEST APPROVED PACKAGE %s IS NOT SERVING (%s): stack %s serves %s. An approval that "
                "failed is in the dead-letter queue; approving the package again retries it.",
                target, check.cause, settings.stack_name, state.served_arn or "no endpoint",
            )
            return Outcome.NOT_SERVING
        return report_serving(clients, settings, target, cause=check.cause)
    except Exception as error:  # noqa: BLE001 - reported, never lost: the alarm watches this metric
        LOGGER.exception("Serving check failed (%s): %s", check.cause, describe_error(error))
        if isinstance(error, PermanentFailure) and check.stack_status:
            try_publish(clients, settings, {PROMOTION_FAILURES_METRIC: 1})
        try_publish(clients, settings, {NOT_SERVING_METRIC: 1})
        return Outcome.CHECK_FAILED


# --- Errors and the dead-letter queue ---------------------------------------------------------------

def error_code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def error_message(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Message", "")


def describe_error(error: BaseException) -> str:
    if isinstance(error, ClientError):
        return f"{error_code(error)}: {error_message(error)}"
    return f"{type(error).__name__}: {error}"


def is_transient(error: BaseException) -> bool:
    """Only a busy stack, throttling, a server-side error or a lost connection is worth retrying."""
    if isinstance(error, RetryLater):
        return True
    if isinstance(error, (BotocoreConnectionError, HTTPClientError)):
        return True
    if isinstance(error, ClientError):
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if error_code(error) in TRANSIENT_ERROR_CODES or status >= 500:
            return True
        busy = STACK_STATE_IN_MESSAGE.search(error_message(error))  # "... is in UPDATE_IN_PROGRESS state ..."
        return bool(busy) and busy.group(1) in BUSY_STACK_STATUSES
    return False


def try_publish(clients: Clients, settings: Settings, values: Mapping[str, float]) -> None:
    try:
        publish(clients.cloudwatch, settings, values)
    except Exception as error:  # noqa: BLE001 - the log line is the last resort
        LOGGER.exception("Could not publish %s: %s", dict(values), describe_error(error))


def dead_letter(record: Mapping[str, Any], error: BaseException, clients: Clients, settings: Settings) -> bool:
    """Send the record to the dead-letter queue now and count the failure; False if it could not be
    sent (then SQS keeps it and moves it there itself after the last receive)."""
    reason = describe_error(error)
    message_id = str(record.get("messageId", ""))
    LOGGER.error("APPROVAL EVENT DEAD-LETTERED (message %s): %s. Body: %.500s", message_id, reason, record.get("body", ""))
    try_publish(clients, settings, {PROMOTION_FAILURES_METRIC: 1})
    try:
        clients.sqs.send_message(
            QueueUrl=settings.dead_letter_queue_url,
            MessageBody=record.get("body") or "<empty message>",
            MessageAttributes={
                "FailureReason": {"DataType": "String", "StringValue": reason[:SQS_ATTRIBUTE_LIMIT] or "unknown"},
                "SourceMessageId": {"DataType": "String", "StringValue": message_id or "unknown"},
            },
        )
    except Exception as send_error:  # noqa: BLE001
        LOGGER.exception("Could not send message %s to the dead-letter queue (%s); it stays in the queue",
                         message_id, describe_error(send_error))
        return False
    return True


def process_record(body: str, clients: Clients, settings: Settings) -> Outcome:
    trigger = parse_event(body)
    if isinstance(trigger, ServingCheck):
        return check_serving(trigger, clients, settings)
    return reconcile(trigger, clients, settings)


def handler(event: dict, context: Any, clients: Clients | None = None, settings: Settings | None = None) -> dict:
    """SQS batch entry point: transient failures are reported as item failures (retried); every
    other failure is dead-lettered at once and the message reported as processed."""
    settings = settings or Settings.from_environment()
    clients = clients or Clients.create()
    failures = []
    for record in event.get("Records", []):
        message_id = record.get("messageId", "")
        try:
            outcome = process_record(record.get("body", ""), clients, settings)
            LOGGER.info("Message %s: %s", message_id, outcome.value)
        except Exception as error:  # noqa: BLE001 - retried or dead-lettered, never lost
            if is_transient(error):
                LOGGER.warning("Message %s retried later: %s", message_id, describe_error(error))
                failures.append({"itemIdentifier": message_id})
            elif not dead_letter(record, error, clients, settings):
                failures.append({"itemIdentifier": message_id})
    return {"batchItemFailures": failures}
