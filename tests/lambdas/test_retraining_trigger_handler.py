"""The retraining trigger on moto's server: a drift alarm or a schedule starts one execution of
the pipeline, never while one is running, and a redelivered event starts nothing new.

moto completes every execution at once ("Succeeded"); to have one still running, the test sets
its status in moto's in-process backend, the state the service would report mid-run."""

from __future__ import annotations

import json

import boto3
import pytest

from stacks.lambdas.retraining_trigger import handler as trigger

PIPELINE = "review-classifier-staging-training"
REGION = "us-east-1"


@pytest.fixture
def sagemaker(moto_endpoint):
    client = boto3.client("sagemaker", region_name=REGION, endpoint_url=moto_endpoint)
    client.create_pipeline(PipelineName=PIPELINE, RoleArn="arn:aws:iam::123456789012:role/pipeline",
                           PipelineDefinition=json.dumps({"Version": "2020-12-01", "Steps": []}))
    return client


SETTINGS = trigger.Settings(pipeline_name=PIPELINE)


def alarm_event(event_id: str, state: str = "ALARM") -> dict:
    return {"id": event_id, "detail-type": trigger.ALARM_STATE_CHANGE, "source": "aws.cloudwatch",
            "detail": {"alarmName": "review-classifier-staging-data-drift", "state": {"value": state}}}


def schedule_event(event_id: str) -> dict:
    return {"id": event_id, "detail-type": trigger.SCHEDULED_EVENT, "source": "aws.events", "detail": {}}


def executions(sagemaker) -> list[dict]:
    return sagemaker.list_pipeline_executions(PipelineName=PIPELINE)["PipelineExecutionSummaries"]


def mark_running(arn: str) -> None:
    from moto.sagemaker.models import sagemaker_backends

    for account in sagemaker_backends.values():
        for pipeline in account[REGION].pipelines.values():
            if arn in pipeline.pipeline_executions:
                pipeline.pipeline_executions[arn].pipeline_execution_status = "Executing"
                return
    raise AssertionError(f"no execution {arn} in moto")


def test_a_drift_alarm_starts_one_execution(sagemaker):
    result = trigger.handler(alarm_event("e1"), None, sagemaker, SETTINGS)
    assert result["reason"] == "alarm review-classifier-staging-data-drift"
    (execution,) = executions(sagemaker)
    assert execution["PipelineExecutionArn"] == result["started"]
    described = sagemaker.describe_pipeline_execution(PipelineExecutionArn=result["started"])
    assert described["PipelineExecutionDisplayName"] == "retrain-drift"


def test_nothing_starts_while_an_execution_is_running(sagemaker):
    first = trigger.handler(schedule_event("s1"), None, sagemaker, SETTINGS)["started"]
    mark_running(first)
    result = trigger.handler(alarm_event("e2"), None, sagemaker, SETTINGS)
    assert (result["started"], result["running"]) == (None, [first])
    assert trigger.handler(schedule_event("s2"), None, sagemaker, SETTINGS)["started"] is None
    assert len(executions(sagemaker)) == 1


def test_after_the_run_ends_the_next_trigger_starts_again(sagemaker):
    trigger.handler(schedule_event("s1"), None, sagemaker, SETTINGS)  # moto finishes it at once
    assert trigger.handler(schedule_event("s2"), None, sagemaker, SETTINGS)["started"] is not None
    assert len(executions(sagemaker)) == 2


def test_a_redelivered_event_asks_with_the_same_idempotency_token(sagemaker):
    # The service starts no second execution for a token it has seen (StartPipelineExecution's
    # ClientRequestToken); moto does not implement that, so the test checks the requests.
    tokens = []
    sagemaker.meta.events.register("provide-client-params.sagemaker.StartPipelineExecution",
                                   lambda params, **_: tokens.append(params["ClientRequestToken"]))
    for event in (alarm_event("e1"), alarm_event("e1"), alarm_event("e2")):
        trigger.handler(event, None, sagemaker, SETTINGS)
    assert tokens[0] == tokens[1] != tokens[2]


def test_an_alarm_returning_to_ok_starts_nothing(sagemaker):
    assert trigger.handler(alarm_event("e1", state="OK"), None, sagemaker, SETTINGS)["started"] is None
    assert executions(sagemaker) == []


def test_other_events_are_refused_and_settings_name_the_variable():
    with pytest.raises(ValueError, match="unexpected event"):
        trigger.trigger_reason({"detail-type": "SageMaker Model Package State Change"})
    with pytest.raises(RuntimeError, match="PIPELINE_NAME"):
        trigger.Settings.from_environment({})
    assert 32 <= len(trigger.request_token("x")) <= 128
