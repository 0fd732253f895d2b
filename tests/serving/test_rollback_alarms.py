"""The endpoint's rollback alarms, as synthesized, against what the HuggingFace inference image
reports for a model that fails every request.

Each scenario serves an artifact through the image's model server (`LocalEndpoint`, the
inference parity environment) and sends requests minute by minute (a logical minute: a batch of
requests). Every answer is counted as SageMaker publishes it per InvokeEndpoint call (namespace
AWS/SageMaker, EndpointName + VariantName): Invocations 1; Invocation4XXErrors and
Invocation5XXErrors 1 or 0 by the container's status; ModelLatency in microseconds (measured
here at the client, so an upper bound). Then each alarm's own definition, read from the
template, is evaluated against those minutes (tests/support/cloudwatch_alarm.py).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from stacks.components.approved_model_endpoint import SAGEMAKER_METRICS_NAMESPACE, VARIANT_NAME
from stacks.config import load_environment
from support.cloudwatch_alarm import RecordedMetrics, evaluate_alarm
from support.local_endpoint import build_tiny_artifact, serve

MINUTES = 2  # the alarms' EvaluationPeriods
REQUESTS_PER_MINUTE = 30
VALID = (json.dumps([{"review_body": "Great product, works as described."}]), "application/json")
MALFORMED = ('{"review_body": "missing the closing brace"', "application/json")
# What train.py would ship, with one handler replaced: a model that fails every request.
BROKEN_HANDLERS = {
    "predict_fn raises": 'def predict_fn(texts, classifier):\n    raise RuntimeError("the weights are corrupt")\n',
    "model_fn raises": 'def model_fn(model_dir):\n    raise RuntimeError("the weights are corrupt")\n',
}
SCENARIOS = (*BROKEN_HANDLERS, "healthy, a few bad requests")

Observation = tuple[int, int, float]  # (minute, status, latency in microseconds)


@pytest.fixture(scope="module")
def artifact(tmp_path_factory) -> Path:
    return build_tiny_artifact(tmp_path_factory.mktemp("tiny-artifact"))


def requests_of(scenario: str) -> list[tuple[str, str]]:
    if scenario in BROKEN_HANDLERS:
        return [VALID] * REQUESTS_PER_MINUTE
    return [VALID] * (REQUESTS_PER_MINUTE - 1) + [MALFORMED]  # 1 in 30: 3.3 %, below every threshold


def observe(model_dir: Path, scenario: str) -> list[Observation]:
    # Raw answers, no retry: what the endpoint reports is what CloudWatch counts.
    with serve(model_dir, retry_when_the_worker_dies=False) as endpoint:
        endpoint.invoke(*VALID)  # the worker finishes loading after /ping answers 200: not a measured request
        observed = []
        for minute in range(MINUTES):
            for body, content_type in requests_of(scenario):
                started = time.perf_counter()
                response = endpoint.invoke(body, content_type)
                observed.append((minute, response.status, (time.perf_counter() - started) * 1e6))
        return observed


@pytest.fixture(scope="module")
def observations(artifact, tmp_path_factory) -> dict[str, list[Observation]]:
    observed = {}
    for scenario, handler in BROKEN_HANDLERS.items():
        broken = tmp_path_factory.mktemp("broken-artifact") / "model"
        shutil.copytree(artifact, broken)
        with (broken / "code" / "inference.py").open("a") as script:
            script.write("\n\n" + handler)
        observed[scenario] = observe(broken, scenario)
    observed["healthy, a few bad requests"] = observe(artifact, "healthy, a few bad requests")
    return observed


def sagemaker_metrics(observed: list[Observation], endpoint_name: str) -> RecordedMetrics:
    metrics = RecordedMetrics(SAGEMAKER_METRICS_NAMESPACE, {"EndpointName": endpoint_name, "VariantName": VARIANT_NAME})
    for minute, status, latency_us in observed:
        metrics.add(minute, "Invocations", 1)
        metrics.add(minute, "Invocation4XXErrors", int(400 <= status < 500))
        metrics.add(minute, "Invocation5XXErrors", int(status >= 500))
        metrics.add(minute, "ModelLatency", latency_us)
    return metrics


def rollback_alarms(synthesized_app, environment_name: str) -> dict[str, dict]:
    """The endpoint's alarms by what they watch, from the synthesized serving template."""
    endpoint_name = load_environment(environment_name).endpoint_name
    alarms = {
        resource["Properties"]["AlarmName"]: resource["Properties"]
        for resource in synthesized_app.template_json(environment_name, "serving")["Resources"].values()
        if resource["Type"] == "AWS::CloudWatch::Alarm"
    }
    return {kind: alarms[f"{endpoint_name}-{kind}"] for kind in ("invocation-4xx-share", "invocation-5xx-errors", "model-latency")}


@pytest.mark.parametrize("scenario", list(BROKEN_HANDLERS))
def test_a_model_that_fails_every_request_is_answered_400_not_5xx(observations, scenario):
    statuses = {status for _, status, _ in observations[scenario]}
    assert statuses == {400}


@pytest.mark.parametrize("scenario", list(BROKEN_HANDLERS))
def test_a_model_that_fails_every_request_trips_the_4xx_share_alarm(observations, synthesized_app, environment_name, scenario):
    alarms = rollback_alarms(synthesized_app, environment_name)
    metrics = sagemaker_metrics(observations[scenario], load_environment(environment_name).endpoint_name)

    share = evaluate_alarm(alarms["invocation-4xx-share"], metrics)
    assert share.datapoints == [100.0] * MINUTES
    assert share.state == "ALARM"
    # What the 5XX alarm alone would have done: nothing.
    assert evaluate_alarm(alarms["invocation-5xx-errors"], metrics).state == "OK"


def test_a_healthy_model_with_a_few_bad_requests_trips_nothing(observations, synthesized_app, environment_name):
    alarms = rollback_alarms(synthesized_app, environment_name)
    observed = observations["healthy, a few bad requests"]
    assert [status for _, status, _ in observed].count(400) == MINUTES
    metrics = sagemaker_metrics(observed, load_environment(environment_name).endpoint_name)

    share = evaluate_alarm(alarms["invocation-4xx-share"], metrics)
    assert share.datapoints == pytest.approx([100 / REQUESTS_PER_MINUTE] * MINUTES)
    for kind, alarm in alarms.items():
        assert evaluate_alarm(alarm, metrics).state == "OK", kind
