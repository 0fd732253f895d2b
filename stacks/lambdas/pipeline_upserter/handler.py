"""CloudFormation custom-resource handler (behind the CDK Provider framework) that upserts a
SageMaker Pipeline on Create/Update and deletes it on Delete unless the environment retains it.

Uses boto3 and the standard library only. Every failure is raised as an exception whose
message names the operation, the pipeline and the API's own error; the Provider framework
reports it to CloudFormation as FAILED with that message, so a stack never waits on us.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from typing import Any, Mapping

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

LOGGER = logging.getLogger(__name__)
LOGGER.setLevel(logging.INFO)

# Retry budget: botocore's standard mode retries throttling and transient errors (never
# validation errors) with jittered exponential backoff. The worst case for one API call is
# MAX_ATTEMPTS * READ_TIMEOUT + at most 1+2+4+8 s of backoff, about two minutes; a normal event
# takes a few seconds. The construct's 5-minute function timeout stays far below the Provider
# framework's 15 minutes, and if it ever runs out the framework still reports FAILED
# ("Task timed out") instead of leaving the stack waiting.
MAX_ATTEMPTS = 5  # in all, the first attempt included
CONNECT_TIMEOUT_SECONDS = 5
READ_TIMEOUT_SECONDS = 20

TRUE_STRINGS = frozenset({"true"})
FALSE_STRINGS = frozenset({"false", ""})
PIPELINE_NAME_PATTERN = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,255}")
NOT_FOUND_ERROR_CODES = frozenset({"ResourceNotFound", "ResourceNotFoundException"})
# moto (and some SageMaker paths) answer a missing pipeline with ValidationException; only a
# message that both says "not found" and names the pipeline counts as "missing".
MISSING_MESSAGE_PATTERN = re.compile(r"could not find|does not exist|not found", re.IGNORECASE)
# Tags SageMaker or AWS manage themselves; they can be neither set nor removed by us.
SYSTEM_TAG_PREFIXES = ("aws:", "sagemaker:")


class PipelineUpsertError(Exception):
    """A failure whose message CloudFormation shows as the resource's status reason."""


@dataclass(frozen=True)
class PipelineSpec:
    """The desired pipeline, parsed and validated from the custom resource's properties."""

    name: str
    definition: str
    role_arn: str
    description: str
    tags: dict[str, str]
    retain_on_delete: bool
    start_execution: bool

    @classmethod
    def from_properties(cls, properties: Mapping[str, Any]) -> "PipelineSpec":
        name = _required_string(properties, "PipelineName")
        if not PIPELINE_NAME_PATTERN.fullmatch(name):
            raise PipelineUpsertError(
                f"PipelineName {name!r} is not a valid SageMaker pipeline name "
                "(1-256 letters, digits and single or repeated hyphens, starting and ending with a letter or digit)"
            )
        definition = _required_string(properties, "PipelineDefinition")
        _validate_definition(name, definition)
        return cls(
            name=name,
            definition=definition,
            role_arn=_required_string(properties, "RoleArn"),
            description=str(properties.get("Description") or ""),
            tags=_parse_tags(properties.get("Tags")),
            retain_on_delete=_parse_bool(properties, "RetainOnDelete"),
            start_execution=_parse_bool(properties, "StartExecution"),
        )


@dataclass(frozen=True)
class UpsertResult:
    pipeline_arn: str
    created: bool
    pipeline_updated: bool
    tags_updated: bool
    execution_arn: str = ""

    @property
    def changed(self) -> bool:
        return self.created or self.pipeline_updated or self.tags_updated


def on_event(event: Mapping[str, Any], context: object = None) -> dict[str, Any]:
    """Entry point: the Provider framework's onEvent handler."""
    request_type = event.get("RequestType")
    LOGGER.info(
        "request %s for %s (physical id %s)",
        request_type, event.get("LogicalResourceId"), event.get("PhysicalResourceId", "-"),
    )
    if request_type in ("Create", "Update"):
        return handle_upsert(event)
    if request_type == "Delete":
        return handle_delete(event)
    raise PipelineUpsertError(f"unknown RequestType {request_type!r}; expected Create, Update or Delete")


def handle_upsert(event: Mapping[str, Any]) -> dict[str, Any]:
    spec = PipelineSpec.from_properties(event.get("ResourceProperties") or {})
    previous_name = event.get("PhysicalResourceId")
    if event.get("RequestType") == "Update" and previous_name and previous_name != spec.name:
        # CloudFormation sends Delete for the old physical id once it sees the new one.
        LOGGER.info("pipeline renamed from %s to %s: upserting the new one", previous_name, spec.name)
    result = upsert_pipeline(sagemaker_client(), spec, request_id=str(event.get("RequestId", "")))
    LOGGER.info(
        "upsert of pipeline %s done: created=%s pipeline_updated=%s tags_updated=%s execution=%s",
        spec.name, result.created, result.pipeline_updated, result.tags_updated, result.execution_arn or "none",
    )
    return {
        "PhysicalResourceId": spec.name,
        "Data": {
            "PipelineArn": result.pipeline_arn,
            "PipelineName": spec.name,
            "Changed": _bool_string(result.changed),
            "ExecutionArn": result.execution_arn,
        },
    }


def handle_delete(event: Mapping[str, Any]) -> dict[str, Any]:
    pipeline_name = str(event.get("PhysicalResourceId") or "")
    properties = event.get("ResourceProperties") or {}
    if not PIPELINE_NAME_PATTERN.fullmatch(pipeline_name):
        # Not a pipeline name, so not something this handler ever created: nothing to delete.
        LOGGER.info("delete: physical id %r is not a pipeline name; nothing to do", pipeline_name)
        return {"PhysicalResourceId": pipeline_name}
    if _parse_bool(properties, "RetainOnDelete"):
        LOGGER.info("delete: pipeline %s retained (RetainOnDelete=true)", pipeline_name)
        return {"PhysicalResourceId": pipeline_name}
    deleted = delete_pipeline(sagemaker_client(), pipeline_name, request_id=str(event.get("RequestId", "")))
    LOGGER.info("delete: pipeline %s %s", pipeline_name, "deleted" if deleted else "was already gone")
    return {"PhysicalResourceId": pipeline_name}


def sagemaker_client() -> Any:
    """A SageMaker client with the retry budget above; the endpoint follows the standard
    AWS_ENDPOINT_URL(_SAGEMAKER) settings, which is how tests point it at moto."""
    config = Config(
        retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
    )
    return boto3.client("sagemaker", config=config)


def upsert_pipeline(client: Any, spec: PipelineSpec, *, request_id: str) -> UpsertResult:
    """Create the pipeline if absent, else update what differs; start an execution if asked
    and the pipeline itself (not only its tags) was created or changed."""
    deployed = _describe_pipeline(client, spec.name)
    if deployed is None:
        pipeline_arn = _call(
            "CreatePipeline", spec.name, client.create_pipeline,
            PipelineName=spec.name,
            PipelineDefinition=spec.definition,
            PipelineDescription=spec.description,
            RoleArn=spec.role_arn,
            Tags=_tag_list(spec.tags),
            ClientRequestToken=request_token(request_id, "CreatePipeline", spec.name),
        )["PipelineArn"]
        created, pipeline_updated, tags_updated = True, False, False
    else:
        pipeline_arn = deployed["PipelineArn"]
        created = False
        pipeline_updated = _pipeline_differs(deployed, spec)
        if pipeline_updated:
            _call(
                "UpdatePipeline", spec.name, client.update_pipeline,
                PipelineName=spec.name,
                PipelineDefinition=spec.definition,
                PipelineDescription=spec.description,
                RoleArn=spec.role_arn,
            )
        tags_updated = _sync_tags(client, spec.name, pipeline_arn, spec.tags)

    execution_arn = ""
    if spec.start_execution and (created or pipeline_updated):
        execution_arn = _call(
            "StartPipelineExecution", spec.name, client.start_pipeline_execution,
            PipelineName=spec.name,
            PipelineExecutionDescription="Started by the deployment that upserted this pipeline",
            ClientRequestToken=request_token(request_id, "StartPipelineExecution", spec.name),
        )["PipelineExecutionArn"]
    return UpsertResult(pipeline_arn, created, pipeline_updated, tags_updated, execution_arn)


def delete_pipeline(client: Any, pipeline_name: str, *, request_id: str) -> bool:
    """Delete the pipeline; False if it was already gone (which is success, not failure)."""
    try:
        client.delete_pipeline(
            PipelineName=pipeline_name,
            ClientRequestToken=request_token(request_id, "DeletePipeline", pipeline_name),
        )
    except ClientError as error:
        if is_missing_pipeline_error(error, pipeline_name):
            return False
        raise _upsert_error("DeletePipeline", pipeline_name, error) from error
    except BotoCoreError as error:
        raise _upsert_error("DeletePipeline", pipeline_name, error) from error
    return True


def request_token(request_id: str, operation: str, pipeline_name: str) -> str:
    """Idempotency token: the same CloudFormation request retried gives the same token
    (64 hex characters, within SageMaker's 32-128)."""
    if not request_id:
        raise PipelineUpsertError("the event has no RequestId to derive an idempotency token from")
    return hashlib.sha256(f"{request_id}:{operation}:{pipeline_name}".encode()).hexdigest()


def is_missing_pipeline_error(error: ClientError, pipeline_name: str) -> bool:
    code = error.response.get("Error", {}).get("Code", "")
    message = error.response.get("Error", {}).get("Message", "")
    if code in NOT_FOUND_ERROR_CODES:
        return True
    return (
        code == "ValidationException"
        and bool(MISSING_MESSAGE_PATTERN.search(message))
        and pipeline_name.lower() in message.lower()
    )


def _describe_pipeline(client: Any, pipeline_name: str) -> dict[str, Any] | None:
    try:
        return client.describe_pipeline(PipelineName=pipeline_name)
    except ClientError as error:
        if is_missing_pipeline_error(error, pipeline_name):
            return None
        raise _upsert_error("DescribePipeline", pipeline_name, error) from error
    except BotoCoreError as error:
        raise _upsert_error("DescribePipeline", pipeline_name, error) from error


def _pipeline_differs(deployed: Mapping[str, Any], spec: PipelineSpec) -> bool:
    # Compare parsed JSON so that key order or whitespace alone never causes an update.
    try:
        same_definition = json.loads(deployed.get("PipelineDefinition") or "null") == json.loads(spec.definition)
    except json.JSONDecodeError:
        same_definition = False
    return not (
        same_definition
        and deployed.get("RoleArn") == spec.role_arn
        and (deployed.get("PipelineDescription") or "") == spec.description
    )


def _sync_tags(client: Any, pipeline_name: str, pipeline_arn: str, desired: Mapping[str, str]) -> bool:
    current = _list_tags(client, pipeline_name, pipeline_arn)
    to_remove = sorted(key for key in current if key not in desired and not key.startswith(SYSTEM_TAG_PREFIXES))
    to_set = {key: value for key, value in desired.items() if current.get(key) != value}
    if to_remove:
        _call("DeleteTags", pipeline_name, client.delete_tags, ResourceArn=pipeline_arn, TagKeys=to_remove)
    if to_set:
        # AddTags overwrites the value of a key that is already there.
        _call("AddTags", pipeline_name, client.add_tags, ResourceArn=pipeline_arn, Tags=_tag_list(to_set))
    return bool(to_remove or to_set)


def _list_tags(client: Any, pipeline_name: str, pipeline_arn: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    kwargs: dict[str, Any] = {"ResourceArn": pipeline_arn}
    while True:
        page = _call("ListTags", pipeline_name, client.list_tags, **kwargs)
        # Later entries win: moto appends on AddTags where AWS overwrites, so the last is current.
        tags.update({tag["Key"]: tag.get("Value", "") for tag in page.get("Tags", [])})
        if not page.get("NextToken"):
            return tags
        kwargs["NextToken"] = page["NextToken"]


def _call(operation: str, pipeline_name: str, method: Any, **kwargs: Any) -> dict[str, Any]:
    try:
        return method(**kwargs)
    except (ClientError, BotoCoreError) as error:
        raise _upsert_error(operation, pipeline_name, error) from error


def _upsert_error(operation: str, pipeline_name: str, error: Exception) -> PipelineUpsertError:
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        reason = f"{details.get('Code', 'Unknown')}: {details.get('Message', '')}"
    else:
        reason = f"{type(error).__name__}: {error}"
    LOGGER.error("%s of pipeline %s failed: %s", operation, pipeline_name, reason)
    return PipelineUpsertError(f"{operation} of pipeline {pipeline_name} failed: {reason}")


def _validate_definition(pipeline_name: str, definition: str) -> None:
    try:
        parsed = json.loads(definition)
    except json.JSONDecodeError as error:
        raise PipelineUpsertError(
            f"PipelineDefinition of pipeline {pipeline_name} is not valid JSON: {error.msg} "
            f"at line {error.lineno} column {error.colno}"
        ) from None
    if not isinstance(parsed, dict) or not isinstance(parsed.get("Steps"), list):
        raise PipelineUpsertError(
            f"PipelineDefinition of pipeline {pipeline_name} must be a JSON object with a 'Steps' list"
        )


def _required_string(properties: Mapping[str, Any], key: str) -> str:
    value = properties.get(key)
    if not isinstance(value, str) or not value:
        raise PipelineUpsertError(f"resource property {key} is required and must be a non-empty string")
    return value


def _parse_bool(properties: Mapping[str, Any], key: str) -> bool:
    # CloudFormation passes every custom-resource property value as a string.
    value = properties.get(key, "false")
    text = str(value).strip().lower()
    if text in TRUE_STRINGS:
        return True
    if text in FALSE_STRINGS:
        return False
    raise PipelineUpsertError(f"resource property {key} must be 'true' or 'false', got {value!r}")


def _parse_tags(raw: Any) -> dict[str, str]:
    if raw in (None, ""):
        return {}
    if not isinstance(raw, list):
        raise PipelineUpsertError("resource property Tags must be a list of {Key, Value} objects")
    tags: dict[str, str] = {}
    for item in raw:
        if not isinstance(item, Mapping) or not isinstance(item.get("Key"), str) or not item["Key"]:
            raise PipelineUpsertError(f"resource property Tags has an entry without a Key: {item!r}")
        tags[item["Key"]] = str(item.get("Value", ""))
    return tags


def _tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in sorted(tags.items())]


def _bool_string(value: bool) -> str:
    return "true" if value else "false"
