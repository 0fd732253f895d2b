"""The serving stack in its two states - no approved model (what `cdk synth` builds) and an
approved model package - for every environment: assertions on what matters, cdk-nag, snapshots.

Update this file's snapshots after an intended change:
    .venv/bin/python -m pytest tests/serving/test_serving_stack.py --snapshot-update
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import pytest
from syrupy.extensions.json import JSONSnapshotExtension

from stacks.config import ENVIRONMENTS_CONTEXT_KEY, load_environment
from stacks.serving_stack import APPROVED_MODEL_PACKAGE_PARAMETER, METRIC_NAMESPACE, model_package_arn_pattern

ASSET_HASH = re.compile(r"(?<![0-9a-fA-F])[0-9a-f]{64}(?![0-9a-fA-F])")
SERVED_TYPES = (
    "AWS::SageMaker::Model",
    "AWS::SageMaker::EndpointConfig",
    "AWS::SageMaker::Endpoint",
    "AWS::ApplicationAutoScaling::ScalableTarget",
    "AWS::ApplicationAutoScaling::ScalingPolicy",
)
NAG_PACK_PREFIX = "AwsSolutions-"


def approved_arn(env: str, version: int = 3) -> str:
    config = load_environment(env)
    return f"arn:aws:sagemaker:{config.region}:{config.account}:model-package/{config.model_package_group_name}/{version}"


# --- The "approved model" state, synthesized once for this module --------------------------

@dataclass
class ApprovedStateApp:
    templates: dict[str, dict]
    nag_findings: dict[str, list[str]]


@pytest.fixture(scope="module")
def approved_state(offline_aws_environment, tmp_path_factory) -> ApprovedStateApp:
    import aws_cdk as cdk
    from cdk_nag import AwsSolutionsChecks

    from stacks.config import CDK_JSON, parse_environments
    from stacks.foundation_stack import FoundationStack
    from stacks.serving_stack import ServingStack

    context = json.loads(CDK_JSON.read_text())["context"]
    app = cdk.App(context=context, outdir=str(tmp_path_factory.mktemp("approved-cdk.out")))
    serving = {}
    for config in parse_environments(context[ENVIRONMENTS_CONTEXT_KEY]):
        env = cdk.Environment(account=config.account, region=config.region)
        foundation = FoundationStack(app, config.stack_name("foundation"), config=config, env=env)
        serving[config.name] = ServingStack(
            app, config.stack_name("serving"), config=config, shared=foundation.shared, env=env,
            initial_approved_model_package_arn=approved_arn(config.name),
        )
    cdk.Aspects.of(app).add(AwsSolutionsChecks(reports=False))
    assembly = app.synth()
    templates, findings = {}, {}
    for name, stack in serving.items():
        artifact = assembly.get_stack_artifact(stack.artifact_id)
        templates[name] = json.loads(open(artifact.template_full_path).read())
        findings[name] = [
            f"{message.id}: {str(message.entry.data).splitlines()[0]}"
            for message in artifact.messages
            if message.level.name in ("ERROR", "WARNING") and str(message.entry.data).startswith(NAG_PACK_PREFIX)
        ]
    return ApprovedStateApp(templates=templates, nag_findings=findings)


@pytest.fixture(params=["no-approved-model", "approved-model"])
def state(request) -> str:
    return request.param


@pytest.fixture
def serving_template(request, state, environment_name, synthesized_app) -> dict:
    if state == "no-approved-model":
        return synthesized_app.template_json(environment_name, "serving")
    return request.getfixturevalue("approved_state").templates[environment_name]


# --- Helpers ----------------------------------------------------------------------------------

def resources_of_type(template: dict, resource_type: str) -> dict[str, dict]:
    return {key: value for key, value in template["Resources"].items() if value["Type"] == resource_type}


def only(template: dict, resource_type: str) -> tuple[str, dict]:
    found = resources_of_type(template, resource_type)
    assert len(found) == 1, f"expected one {resource_type}, found {sorted(found)}"
    return next(iter(found.items()))


def evaluate_condition(expression: Any, parameters: dict[str, str]) -> Any:
    """Evaluates the intrinsic functions a condition may use here (Not, Equals, Ref)."""
    if isinstance(expression, dict):
        (function, argument), = expression.items()
        if function == "Ref":
            return parameters[argument]
        if function == "Fn::Not":
            return not evaluate_condition(argument[0], parameters)
        if function == "Fn::Equals":
            left, right = (evaluate_condition(item, parameters) for item in argument)
            return left == right
        raise AssertionError(f"unexpected function {function} in a condition")
    return expression


def deployed_resource_types(template: dict, parameter_value: str) -> set[str]:
    parameters = {APPROVED_MODEL_PACKAGE_PARAMETER: parameter_value}
    conditions = {
        name: evaluate_condition(expression, parameters) for name, expression in template.get("Conditions", {}).items()
    }
    return {
        resource["Type"] for resource in template["Resources"].values()
        if conditions.get(resource.get("Condition"), True)
    }


def mask_asset_hashes(template: dict) -> dict:
    return json.loads(ASSET_HASH.sub("<asset-hash>", json.dumps(template, sort_keys=True)))


# --- Both states ------------------------------------------------------------------------------

def test_snapshot(serving_template, snapshot):
    assert mask_asset_hashes(serving_template) == snapshot.use_extension(JSONSnapshotExtension)


def test_no_unsuppressed_nag_findings_with_an_approved_model(approved_state, environment_name):
    findings = approved_state.nag_findings[environment_name]
    assert not findings, "\n".join(findings)


def test_parameter_default_is_the_state(serving_template, state, environment_name):
    parameter = serving_template["Parameters"][APPROVED_MODEL_PACKAGE_PARAMETER]
    expected = "" if state == "no-approved-model" else approved_arn(environment_name)
    assert parameter["Default"] == expected
    assert parameter["AllowedPattern"] == model_package_arn_pattern(load_environment(environment_name))


def test_every_served_resource_is_conditional(serving_template):
    served = [
        (key, resource) for key, resource in serving_template["Resources"].items()
        if resource["Type"] in SERVED_TYPES
        or resource["Type"] == "AWS::CloudWatch::Alarm" and resource["Properties"].get("Namespace") == "AWS/SageMaker"
    ]
    assert served
    for key, resource in served:
        assert resource.get("Condition") == "HasApprovedModel", key


def test_without_an_approved_package_nothing_is_served(serving_template):
    # The parameter value CloudFormation uses is the stack's, whatever the default: check both.
    assert not deployed_resource_types(serving_template, "") & set(SERVED_TYPES)
    deployed = deployed_resource_types(serving_template, "arn:aws:sagemaker:x:1:model-package/g/1")
    assert {"AWS::SageMaker::Model", "AWS::SageMaker::EndpointConfig", "AWS::SageMaker::Endpoint"} <= deployed
    # The deployer itself exists in both states.
    assert {"AWS::Lambda::Function", "AWS::Events::Rule", "AWS::SQS::Queue"} <= deployed_resource_types(serving_template, "")


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
    by_metric = {alarm["MetricName"]: alarm for alarm in alarms.values()}
    assert set(by_metric) == {"Invocation5XXErrors", "ModelLatency"}
    assert by_metric["Invocation5XXErrors"]["Threshold"] == serving.error_5xx_alarm_threshold
    assert by_metric["ModelLatency"]["Threshold"] == serving.latency_alarm_threshold_ms * 1000  # microseconds
    for alarm in alarms.values():
        assert {"Name": "EndpointName", "Value": config.endpoint_name} in alarm["Dimensions"]
        assert {"Name": "VariantName", "Value": "AllTraffic"} in alarm["Dimensions"]


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


def test_rule_matches_only_approval_decisions_of_this_group(serving_template, environment_name):
    config = load_environment(environment_name)
    _, rule = only(serving_template, "AWS::Events::Rule")
    assert rule["Properties"]["EventPattern"] == {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Model Package State Change"],
        "detail": {
            "ModelPackageGroupName": [config.model_package_group_name],
            "ModelApprovalStatus": ["Approved", "Rejected"],  # PendingManualApproval never deploys
        },
    }
    (target,) = rule["Properties"]["Targets"]
    assert "ApprovalEventsQueue" in json.dumps(target["Arn"])
    assert "DeadLetterConfig" in target


def test_events_are_retried_from_a_queue_with_a_dead_letter_queue(serving_template):
    queues = resources_of_type(serving_template, "AWS::SQS::Queue")
    (queue,) = [q for key, q in queues.items() if "ApprovalEventsQueue" in key]
    redrive = queue["Properties"]["RedrivePolicy"]
    assert redrive["maxReceiveCount"] * queue["Properties"]["VisibilityTimeout"] >= 6 * 3600
    assert "DeadLetterQueue" in json.dumps(redrive["deadLetterTargetArn"])
    _, mapping = only(serving_template, "AWS::Lambda::EventSourceMapping")
    assert mapping["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["Properties"]["BatchSize"] == 1


def test_handler_environment_names_this_stack(serving_template, environment_name):
    config = load_environment(environment_name)
    _, function = only(serving_template, "AWS::Lambda::Function")
    assert function["Properties"]["Environment"]["Variables"] == {
        "STACK_NAME": config.stack_name("serving"),
        "PARAMETER_NAME": APPROVED_MODEL_PACKAGE_PARAMETER,
        "MODEL_PACKAGE_GROUP_NAME": config.model_package_group_name,
        "ENVIRONMENT_NAME": config.name,
        "METRIC_NAMESPACE": METRIC_NAMESPACE,
    }


def handler_statements(template: dict) -> list[dict]:
    policies = resources_of_type(template, "AWS::IAM::Policy")
    (policy,) = [p for key, p in policies.items() if key.startswith("ApprovalDeployerHandlerRole")]
    return policy["Properties"]["PolicyDocument"]["Statement"]


def test_handler_may_update_only_its_own_stack(serving_template, environment_name):
    config = load_environment(environment_name)
    statements = handler_statements(serving_template)
    actions = {action for statement in statements for action in _as_list(statement["Action"])}
    assert actions == {
        "logs:CreateLogStream", "logs:PutLogEvents",
        "cloudformation:DescribeStacks", "cloudformation:UpdateStack",
        "iam:PassRole", "sagemaker:ListModelPackages", "cloudwatch:PutMetricData",
        # granted by the SQS event source, on the approval events queue only
        "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
        "sqs:GetQueueAttributes", "sqs:GetQueueUrl",
        # the environment key only: the queue's messages and the function's environment are encrypted with it
        "kms:Decrypt",
    }
    (decrypt,) = [s for s in statements if s["Action"] == "kms:Decrypt"]
    assert "DataKey" in json.dumps(decrypt["Resource"])
    (consume,) = [s for s in statements if "sqs:ReceiveMessage" in _as_list(s["Action"])]
    assert "ApprovalEventsQueue" in json.dumps(consume["Resource"])
    (update,) = [s for s in statements if "cloudformation:UpdateStack" in _as_list(s["Action"])]
    assert f":stack/{config.stack_name('serving')}/*" in json.dumps(update["Resource"])
    (passing,) = [s for s in statements if s["Action"] == "iam:PassRole"]
    assert f"cdk-hnb659fds-cfn-exec-role-{config.account}-{config.region}" in json.dumps(passing["Resource"])
    assert passing["Condition"] == {"StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}}
    (metrics,) = [s for s in statements if s["Action"] == "cloudwatch:PutMetricData"]
    assert metrics["Condition"] == {"StringEquals": {"cloudwatch:namespace": METRIC_NAMESPACE}}


def test_no_approved_package_alarm_watches_what_the_handler_publishes(serving_template, environment_name):
    from stacks.lambdas.approval_deployer import handler

    alarms = [
        a["Properties"] for a in resources_of_type(serving_template, "AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("MetricName") == handler.NO_APPROVED_PACKAGE_METRIC
    ]
    (alarm,) = alarms
    assert alarm["Namespace"] == METRIC_NAMESPACE
    assert alarm["Dimensions"] == [{"Name": "Environment", "Value": environment_name}]
    assert alarm["TreatMissingData"] == "ignore"  # stays raised until a package is approved again
    assert "Condition" not in alarm


# --- Parameter pattern and bad input ----------------------------------------------------------

@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        ("", True),
        ("arn:aws:sagemaker:us-east-1:111111111111:model-package/review-classifier-dev/12", True),
        ("arn:aws:sagemaker:us-east-1:111111111111:model-package/review-classifier-prod/12", False),
        ("arn:aws:sagemaker:us-east-1:222222222222:model-package/review-classifier-dev/12", False),
        ("arn:aws:sagemaker:us-east-1:111111111111:model-package/review-classifier-dev", False),
        ("review-classifier-dev/12", False),
    ],
)
def test_parameter_pattern(value, accepted):
    assert bool(re.fullmatch(model_package_arn_pattern(load_environment("dev")), value)) is accepted


def test_initial_arn_of_another_group_is_refused(offline_aws_environment):
    import aws_cdk as cdk

    from stacks.foundation_stack import FoundationStack
    from stacks.serving_stack import ServingStack

    from stacks.config import CDK_JSON

    config = load_environment("dev")
    app = cdk.App(context=json.loads(CDK_JSON.read_text())["context"])
    foundation = FoundationStack(app, "Foundation", config=config)
    with pytest.raises(ValueError, match="not a version of model package group review-classifier-dev"):
        ServingStack(app, "Serving", config=config, shared=foundation.shared,
                     initial_approved_model_package_arn=approved_arn("prod"))


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]
