"""Starts one execution of the environment's training pipeline when a drift alarm goes into
ALARM or a retraining schedule fires (EventBridge events), unless an execution of it is
already running: a drifting endpoint raises its alarm again and again, and each retraining run
takes hours, so a second one would only train on the same data twice.

EventBridge can target a pipeline directly, but it cannot ask whether one is running; this
function does (ListPipelineExecutions), then StartPipelineExecution with a ClientRequestToken
derived from the event's id, so a retried delivery of the same event starts nothing new.
Uses boto3 and the standard library only.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from typing import Any, Mapping

import boto3

LOGGER = logging.getLogger(__name__)
LOGGER.setLevel(logging.INFO)

# The statuses of an execution that still runs (DescribePipelineExecution's enum).
RUNNING_STATUSES = frozenset({"Executing", "Stopping"})
ALARM_STATE_CHANGE = "CloudWatch Alarm State Change"
SCHEDULED_EVENT = "Scheduled Event"


@dataclass(frozen=True)
class Settings:
    pipeline_name: str

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> "Settings":
        if not environ.get("PIPELINE_NAME"):
            raise RuntimeError("retraining trigger is misconfigured: missing environment variable PIPELINE_NAME")
        return cls(pipeline_name=environ["PIPELINE_NAME"])


def trigger_reason(event: Mapping[str, Any]) -> str | None:
    """Why this event asks for retraining, or None when it does not (an alarm leaving ALARM)."""
    detail_type = event.get("detail-type")
    if detail_type == ALARM_STATE_CHANGE:
        detail = event.get("detail", {})
        if detail.get("state", {}).get("value") != "ALARM":
            return None
        return f"alarm {detail.get('alarmName', '?')}"
    if detail_type == SCHEDULED_EVENT:
        return "schedule"
    raise ValueError(f"unexpected event (detail-type {detail_type!r}): only alarm state changes and schedules")


def running_executions(sagemaker: Any, pipeline_name: str) -> list[str]:
    """ARNs of the pipeline's executions that are still running."""
    running = []
    for page in sagemaker.get_paginator("list_pipeline_executions").paginate(
            PipelineName=pipeline_name, SortBy="CreationTime", SortOrder="Descending"):
        running += [summary["PipelineExecutionArn"] for summary in page.get("PipelineExecutionSummaries", [])
                    if summary.get("PipelineExecutionStatus") in RUNNING_STATUSES]
    return running


def request_token(event_id: str) -> str:
    """StartPipelineExecution's idempotency token (32-128 characters) for one event."""
    return hashlib.sha256(f"retrain/{event_id}".encode()).hexdigest()


def handler(event: dict, context: Any, sagemaker: Any = None, settings: Settings | None = None) -> dict:
    settings = settings or Settings.from_environment()
    reason = trigger_reason(event)
    if reason is None:
        LOGGER.info("Ignored: %s", event.get("detail", {}).get("state", {}).get("value"))
        return {"started": None, "reason": None}
    sagemaker = sagemaker or boto3.client("sagemaker")
    running = running_executions(sagemaker, settings.pipeline_name)
    if running:
        LOGGER.info("Not retraining (%s): %s is still running", reason, ", ".join(running))
        return {"started": None, "reason": reason, "running": running}
    arn = sagemaker.start_pipeline_execution(
        PipelineName=settings.pipeline_name,
        PipelineExecutionDisplayName=f"retrain-{'schedule' if reason == 'schedule' else 'drift'}",
        PipelineExecutionDescription=f"Retraining started by {reason}"[:3072],
        ClientRequestToken=request_token(str(event.get("id", ""))),
    )["PipelineExecutionArn"]
    LOGGER.info("Retraining (%s): started %s", reason, arn)
    return {"started": arn, "reason": reason}
