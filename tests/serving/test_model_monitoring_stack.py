"""The monitoring schedules of each environment's serving stack: present where cdk.json
configures them (staging, prod), absent in dev; the analyzer image, the record preprocessor
(container_code/record_features.py as a CDK asset), the served package's baselines at the keys
the deployer publishes to, the ground-truth prefix, the violation alarms, and everything under
the endpoint's condition. What Model Monitor does with them needs a real account (docs/serving.md)."""

from __future__ import annotations

import json

import pytest

from pipeline_definition import images
from stacks.components import model_monitoring
from stacks.config import ConfigError, load_environment, parse_environment
from support.cfn_template import only, resources_of_type

MONITORING_TYPES = ("AWS::SageMaker::DataQualityJobDefinition", "AWS::SageMaker::ModelQualityJobDefinition",
                    "AWS::SageMaker::MonitoringSchedule")


@pytest.fixture
def serving_template(environment_name, synthesized_app) -> dict:
    return synthesized_app.template_json(environment_name, "serving")


def test_schedules_exist_exactly_where_configured(serving_template, environment_name):
    config = load_environment(environment_name)
    counts = {kind: len(resources_of_type(serving_template, kind)) for kind in MONITORING_TYPES}
    expected = 2 if config.serving.monitoring is not None else 0
    assert counts == {"AWS::SageMaker::DataQualityJobDefinition": expected // 2,
                      "AWS::SageMaker::ModelQualityJobDefinition": expected // 2,
                      "AWS::SageMaker::MonitoringSchedule": expected}
    assert (environment_name == "dev") == (config.serving.monitoring is None)


def monitored(environment_name: str):
    config = load_environment(environment_name)
    if config.serving.monitoring is None:
        pytest.skip(f"{environment_name} has no monitoring (cdk.json)")
    return config


def test_data_quality_reads_captures_through_the_record_preprocessor(serving_template, environment_name):
    config = monitored(environment_name)
    _, job = only(serving_template, "AWS::SageMaker::DataQualityJobDefinition", "ModelMonitoringDataQualityJobDefinition")
    properties = job["Properties"]
    app = properties["DataQualityAppSpecification"]
    assert app["ImageUri"] == images.model_monitor_image_uri(config.region)
    assert app["Environment"] == {"REVIEW_CLASSIFIER_MAX_SEQ_LENGTH": str(config.pipeline.max_seq_length)}
    assert "RecordPreprocessorSourceUri" in app and ".py" in json.dumps(app["RecordPreprocessorSourceUri"])
    assert properties["DataQualityJobInput"]["EndpointInput"]["EndpointName"] == config.endpoint_name
    baseline = json.dumps(properties["DataQualityBaselineConfig"])
    assert f"/serving-baselines/{config.endpoint_name}/data-quality/statistics.json" in baseline
    assert f"/serving-baselines/{config.endpoint_name}/data-quality/constraints.json" in baseline
    assert properties["NetworkConfig"] == {"EnableInterContainerTrafficEncryption": True, "EnableNetworkIsolation": True}
    assert "KmsKeyId" in properties["DataQualityJobOutputConfig"]


def test_model_quality_merges_captured_predictions_with_uploaded_labels(serving_template, environment_name):
    config = monitored(environment_name)
    _, job = only(serving_template, "AWS::SageMaker::ModelQualityJobDefinition", "ModelMonitoringModelQualityJobDefinition")
    properties = job["Properties"]
    assert properties["ModelQualityAppSpecification"]["ProblemType"] == "MulticlassClassification"
    assert properties["ModelQualityJobInput"]["EndpointInput"]["InferenceAttribute"] == "predicted_label"
    assert json.dumps(properties["ModelQualityJobInput"]["GroundTruthS3Input"]["S3Uri"]).endswith(
        f'/ground-truth/{config.endpoint_name}"]]}}')
    assert f"/serving-baselines/{config.endpoint_name}/model-quality/constraints.json" in json.dumps(
        properties["ModelQualityBaselineConfig"])


def test_schedules_follow_the_configured_expressions(serving_template, environment_name):
    config = monitored(environment_name)
    schedules = {r["Properties"]["MonitoringScheduleConfig"]["MonitoringType"]: r["Properties"]
                 for r in resources_of_type(serving_template, "AWS::SageMaker::MonitoringSchedule").values()}
    assert schedules["DataQuality"]["MonitoringScheduleConfig"]["ScheduleConfig"]["ScheduleExpression"] == \
        config.serving.monitoring.data_quality_schedule
    assert schedules["ModelQuality"]["MonitoringScheduleConfig"]["ScheduleConfig"]["ScheduleExpression"] == \
        config.serving.monitoring.model_quality_schedule
    assert {s["MonitoringScheduleName"] for s in schedules.values()} == {
        f"{config.endpoint_name}-data-quality", f"{config.endpoint_name}-model-quality"}


def test_violations_raise_alarms(serving_template, environment_name):
    config = monitored(environment_name)
    alarms = {r["Properties"]["AlarmName"]: r["Properties"] for r in resources_of_type(serving_template, "AWS::CloudWatch::Alarm").values()}
    drift = alarms[f"{config.endpoint_name}-data-drift"]
    drift_metrics = {q["MetricStat"]["Metric"]["MetricName"] for q in drift["Metrics"] if "MetricStat" in q}
    assert drift_metrics == {f"feature_baseline_drift_{name}" for name in model_monitoring.MONITORED_FEATURES}
    assert drift["Threshold"] == config.serving.monitoring.drifted_features_alarm_threshold
    accuracy = alarms[f"{config.endpoint_name}-accuracy-below-floor"]
    assert (accuracy["Namespace"], accuracy["MetricName"]) == (model_monitoring.MODEL_METRICS_NAMESPACE, "accuracy")
    assert (accuracy["Threshold"], accuracy["ComparisonOperator"]) == (config.pipeline.min_accuracy, "LessThanThreshold")


def test_the_monitored_features_are_the_record_preprocessors():
    import record_features

    assert model_monitoring.MONITORED_FEATURES == record_features.FEATURE_NAMES
    assert model_monitoring.RECORD_PREPROCESSOR == __import__("pathlib").Path(record_features.__file__).resolve()


def test_everything_monitoring_exists_only_while_a_package_is_approved(serving_template, environment_name):
    monitored(environment_name)
    for kind in MONITORING_TYPES:
        for resource in resources_of_type(serving_template, kind).values():
            assert resource["Condition"] == "HasApprovedModel"


def test_monitoring_on_a_serverless_endpoint_is_refused_naming_the_key():
    raw = json.loads((load_environment.__globals__["CDK_JSON"]).read_text())["context"]["environments"]["dev"]
    with pytest.raises(ConfigError, match=r"environments\.dev\.serving.*monitoring reads captured requests"):
        parse_environment("dev", {**raw, "serving": {**raw["serving"], "monitoring": {}}})


def test_a_schedule_model_monitor_does_not_take_is_refused():
    raw = json.loads((load_environment.__globals__["CDK_JSON"]).read_text())["context"]["environments"]["staging"]
    bad = {**raw, "serving": {**raw["serving"], "monitoring": {"data_quality_schedule": "rate(5 minutes)"}}}
    with pytest.raises(ConfigError, match=r"environments\.staging\.serving\.monitoring\.data_quality_schedule"):
        parse_environment("staging", bad)


# --- Retraining triggers (cdk.json `retraining`; off unless set) -----------------------------------

def test_retraining_triggers_exist_exactly_where_configured(serving_template, environment_name):
    config = load_environment(environment_name)
    rules = [r["Properties"] for r in resources_of_type(serving_template, "AWS::Events::Rule").values()
             if "RetrainingTrigger" in json.dumps(r["Properties"].get("Targets", []))]
    drift = [r for r in rules if "EventPattern" in r]
    schedules = [r for r in rules if "ScheduleExpression" in r]
    assert len(drift) == int(config.retraining.on_drift)
    assert [r["ScheduleExpression"] for r in schedules] == ([config.retraining.schedule] if config.retraining.schedule else [])
    if drift:
        assert drift[0]["EventPattern"]["detail"] == {
            "alarmName": [f"{config.endpoint_name}-data-drift"], "state": {"value": ["ALARM"]}}


def test_the_trigger_may_only_list_and_start_this_pipeline(serving_template, environment_name):
    config = load_environment(environment_name)
    if not (config.retraining.on_drift or config.retraining.schedule):
        pytest.skip(f"{environment_name} has no retraining trigger (cdk.json)")
    _, function = only(serving_template, "AWS::Lambda::Function", "RetrainingTriggerHandler")
    assert function["Properties"]["Environment"]["Variables"] == {"PIPELINE_NAME": config.pipeline_name}
    assert function["Properties"]["ReservedConcurrentExecutions"] == 1
    _, policy = only(serving_template, "AWS::IAM::Policy", "RetrainingTriggerHandlerRoleDefaultPolicy")
    (start,) = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s.get("Sid") == "StartThePipelineWhenIdle"]
    assert set(start["Action"]) == {"sagemaker:ListPipelineExecutions", "sagemaker:StartPipelineExecution"}
    assert json.dumps(start["Resource"]).endswith(f':pipeline/{config.pipeline_name}"]]}}')


def test_retraining_on_drift_without_monitoring_is_refused_naming_the_key():
    raw = json.loads((load_environment.__globals__["CDK_JSON"]).read_text())["context"]["environments"]["dev"]
    with pytest.raises(ConfigError, match=r"environments\.dev\.retraining\.on_drift.*needs the drift alarm"):
        parse_environment("dev", {**raw, "retraining": {"on_drift": True}})
