"""The serving stack of every environment: what it serves and under which condition (the
endpoint, its config and deployment guardrails, auto scaling). The approval deployer, its
permissions and alarms are tested in test_approval_deployer_stack.py; cdk-nag, cfn-lint and the
template snapshots run over every stack in tests/.
"""

from __future__ import annotations

import json

import pytest

from stacks.components.approved_model_package_parameter import NO_APPROVED_PACKAGE
from stacks.config import load_environment
from stacks.serving_stack import APPROVED_MODEL_PACKAGE_PARAMETER
from support.cfn_template import deployed_resource_types, only, resources_of_type

SERVED_TYPES = (
    "AWS::SageMaker::Model",
    "AWS::SageMaker::EndpointConfig",
    "AWS::SageMaker::Endpoint",
    "AWS::ApplicationAutoScaling::ScalableTarget",
    "AWS::ApplicationAutoScaling::ScalingPolicy",
)


@pytest.fixture
def serving_template(environment_name, synthesized_app) -> dict:
    return synthesized_app.template_json(environment_name, "serving")


# --- What is served, and when --------------------------------------------------------------

def alarm_namespaces(alarm: dict) -> set[str]:
    """The namespaces an alarm reads: its own metric's, or those of its metric math queries."""
    queries = [query["MetricStat"]["Metric"] for query in alarm.get("Metrics", []) if "MetricStat" in query]
    return {metric["Namespace"] for metric in [alarm, *queries] if "Namespace" in metric}


def test_every_served_resource_is_conditional(serving_template):
    served = [
        (key, resource) for key, resource in serving_template["Resources"].items()
        if resource["Type"] in SERVED_TYPES
        or resource["Type"] == "AWS::CloudWatch::Alarm" and "AWS/SageMaker" in alarm_namespaces(resource["Properties"])
    ]
    assert served
    for key, resource in served:
        assert resource.get("Condition") == "HasApprovedModel", key


def test_without_an_approved_package_nothing_is_served(serving_template):
    # What the parameter resolves to: the approved-package SSM parameter's value.
    nothing_approved = {APPROVED_MODEL_PACKAGE_PARAMETER: NO_APPROVED_PACKAGE}
    assert not deployed_resource_types(serving_template, nothing_approved) & set(SERVED_TYPES)
    approved = {APPROVED_MODEL_PACKAGE_PARAMETER: "arn:aws:sagemaker:x:1:model-package/g/1"}
    deployed = deployed_resource_types(serving_template, approved)
    assert {"AWS::SageMaker::Model", "AWS::SageMaker::EndpointConfig", "AWS::SageMaker::Endpoint"} <= deployed
    # The deployer itself exists in both states.
    assert {"AWS::Lambda::Function", "AWS::Events::Rule", "AWS::SQS::Queue"} <= deployed_resource_types(
        serving_template, nothing_approved)


def test_model_is_built_from_the_parameter(serving_template):
    _, model = only(serving_template, "AWS::SageMaker::Model")
    assert model["Properties"]["PrimaryContainer"] == {"ModelPackageName": {"Ref": APPROVED_MODEL_PACKAGE_PARAMETER}}
    assert "ModelName" not in model["Properties"]  # a new package must create a new model beside the old


def test_endpoint_config_has_a_stable_variant_and_no_fixed_name(serving_template, environment_name):
    serving = load_environment(environment_name).serving
    _, config = only(serving_template, "AWS::SageMaker::EndpointConfig")
    properties = config["Properties"]
    assert "EndpointConfigName" not in properties  # blue/green creates the new config beside the old
    (variant,) = properties["ProductionVariants"]
    assert variant["VariantName"] == "AllTraffic"
    if serving.is_serverless:
        assert variant["ServerlessConfig"] == {
            "MaxConcurrency": serving.serverless.max_concurrency,
            "MemorySizeInMB": serving.serverless.memory_size_mb,
        }
        assert "DataCaptureConfig" not in properties  # unsupported by serverless endpoints
    else:
        assert variant["InstanceType"] == serving.instance_type
        assert variant["InitialInstanceCount"] == serving.initial_instance_count
        capture = properties["DataCaptureConfig"]
        assert capture["EnableCapture"] is True
        assert capture["InitialSamplingPercentage"] == serving.data_capture_sampling_percent
        assert "ExportsOutputFnGetAttStorageDataKey" in json.dumps(capture["KmsKeyId"])
        assert "ExportsOutputRefStorageDataBucket" in json.dumps(capture["DestinationS3Uri"])
        assert "data-capture/" in json.dumps(capture["DestinationS3Uri"])


def test_endpoint_deployment_config_follows_the_environment(serving_template, environment_name):
    config = load_environment(environment_name)
    serving = config.serving
    _, endpoint = only(serving_template, "AWS::SageMaker::Endpoint")
    properties = endpoint["Properties"]
    assert properties["EndpointName"] == config.endpoint_name
    if serving.is_serverless:
        assert "DeploymentConfig" not in properties  # deployment guardrails are real-time only
        return
    assert properties["RetainAllVariantProperties"] is True  # keeps auto-scaled instance counts
    deployment = properties["DeploymentConfig"]
    routing = deployment["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    shifting = serving.traffic_shifting
    assert routing["Type"] == shifting.type
    assert routing["WaitIntervalInSeconds"] == shifting.wait_interval_seconds
    step = {"Type": "CAPACITY_PERCENT", "Value": shifting.step_percent}
    assert routing.get("CanarySize") == (step if shifting.type == "CANARY" else None)
    assert routing.get("LinearStepSize") == (step if shifting.type == "LINEAR" else None)
    assert deployment["BlueGreenUpdatePolicy"]["TerminationWaitInSeconds"] == shifting.termination_wait_seconds
    alarm_refs = {alarm["AlarmName"]["Ref"] for alarm in deployment["AutoRollbackConfiguration"]["Alarms"]}
    alarms = {key: serving_template["Resources"][key]["Properties"] for key in alarm_refs}
    by_metric = {alarm["MetricName"]: alarm for alarm in alarms.values() if "MetricName" in alarm}
    assert set(by_metric) == {"Invocation5XXErrors", "ModelLatency"}
    assert by_metric["Invocation5XXErrors"]["Threshold"] == serving.error_5xx_alarm_threshold
    assert by_metric["ModelLatency"]["Threshold"] == serving.latency_alarm_threshold_ms * 1000  # microseconds
    # The image answers a failing model with 400s: the share of 4XX among invocations rolls back too.
    (share,) = [alarm for alarm in alarms.values() if "Metrics" in alarm]
    assert share["Threshold"] == serving.error_4xx_share_alarm_threshold_percent
    assert share["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    (returned,) = [query for query in share["Metrics"] if query.get("ReturnData", True)]
    assert returned["Expression"] == "100 * errors4xx / invocations"
    summed = {query["Id"]: query["MetricStat"] for query in share["Metrics"] if "MetricStat" in query}
    assert {stat["Metric"]["MetricName"] for stat in summed.values()} == {"Invocation4XXErrors", "Invocations"}
    assert {stat["Stat"] for stat in summed.values()} == {"Sum"}
    dimension_lists = [alarm["Dimensions"] for alarm in by_metric.values()]
    dimension_lists += [stat["Metric"]["Dimensions"] for stat in summed.values()]
    for dimensions in dimension_lists:
        assert {"Name": "EndpointName", "Value": config.endpoint_name} in dimensions
        assert {"Name": "VariantName", "Value": "AllTraffic"} in dimensions


def test_auto_scaling_on_invocations_per_instance(serving_template, environment_name):
    config = load_environment(environment_name)
    targets = resources_of_type(serving_template, "AWS::ApplicationAutoScaling::ScalableTarget")
    if config.serving.auto_scaling is None:
        assert not targets
        return
    (target_id, target), = targets.items()
    assert target["Properties"]["ResourceId"] == f"endpoint/{config.endpoint_name}/variant/AllTraffic"
    assert target["Properties"]["MinCapacity"] == config.serving.auto_scaling.min_capacity
    assert target["Properties"]["MaxCapacity"] == config.serving.auto_scaling.max_capacity
    assert any("Endpoint" in dependency for dependency in target["DependsOn"])
    _, policy = only(serving_template, "AWS::ApplicationAutoScaling::ScalingPolicy")
    tracking = policy["Properties"]["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["PredefinedMetricSpecification"]["PredefinedMetricType"] == "SageMakerVariantInvocationsPerInstance"
    assert tracking["TargetValue"] == config.serving.auto_scaling.target_invocations_per_instance
    assert policy["Properties"]["ScalingTargetId"] == {"Ref": target_id}
