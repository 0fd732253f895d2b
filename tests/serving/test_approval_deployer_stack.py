"""The approval deployer as the serving and foundation stacks declare it, for every environment:
where the served package is recorded, what the deployer and the approval update role may do, the
events it follows and the alarms on what it publishes.

The update role's actions are compared with the handler permissions of the CloudFormation resource
schemas (as cfn-lint ships them) of the resource types an approval update creates, updates or
deletes: the role may do exactly that, plus the few extra checks SageMaker, KMS and Application
Auto Scaling make of the caller, each named below.
"""

from __future__ import annotations

import json
import re

import pytest

from stacks.components import approval_deployer as construct
from stacks.components.approved_model_package_parameter import (
    NO_APPROVED_PACKAGE,
    RESOURCE_TYPE as PARAMETER_RESOURCE_TYPE,
    approved_package_value_pattern,
)
from stacks.config import load_environment
from stacks.lambdas.approval_deployer import handler
from stacks.serving_stack import APPROVED_MODEL_PACKAGE_PARAMETER, METRIC_NAMESPACE
from support.cfn_template import (
    actions_of,
    as_list,
    deployed_resource_types,
    only,
    resources_of_type,
    role_statements,
)

SERVED_CONDITION = "HasApprovedModel"
# Handler permissions of the schemas that an approval update never needs, and why.
SCHEMA_PERMISSIONS_NOT_NEEDED = {
    "lambda:GetProvisionedConcurrencyConfig": "Lambda scalable targets only",
    "lambda:PutProvisionedConcurrencyConfig": "Lambda scalable targets only",
    "lambda:DeleteProvisionedConcurrencyConfig": "Lambda scalable targets only",
    "application-autoscaling:PutScheduledAction": "the template declares no scheduled actions",
    "application-autoscaling:DeleteScheduledAction": "the template declares no scheduled actions",
}
# What the role holds beyond the schemas' lists, and why.
PERMISSIONS_BEYOND_THE_SCHEMAS = {
    "ssm:GetParameters": "CloudFormation resolves the template's SSM-typed parameters on every update",
    "sagemaker:DescribeModelPackage": "CreateModel reads the package the model is built from",
}
REAL_TIME_PERMISSIONS_BEYOND_THE_SCHEMAS = {
    "kms:CreateGrant": "SageMaker grants itself the endpoint key for the instance volumes",
}
AUTO_SCALING_PERMISSIONS_BEYOND_THE_SCHEMAS = {
    "sagemaker:UpdateEndpointWeightsAndCapacities": "Application Auto Scaling checks the caller may scale the variant",
}


@pytest.fixture
def config(environment_name):
    return load_environment(environment_name)


@pytest.fixture
def serving(synthesized_app, environment_name) -> dict:
    return synthesized_app.template_json(environment_name, "serving")


@pytest.fixture
def foundation(synthesized_app, environment_name) -> dict:
    return synthesized_app.template_json(environment_name, "foundation")


def update_role_id(template: dict) -> str:
    role_id, _ = only(template, "AWS::IAM::Role", "ApprovalUpdateRole")
    return role_id


def update_role_statements(template: dict) -> list[dict]:
    return role_statements(template, "ApprovalUpdateRole")


def deployer_statements(template: dict) -> list[dict]:
    return role_statements(template, "ApprovalDeployerHandlerRole")


def by_sid(statements: list[dict], sid: str) -> dict:
    (statement,) = [s for s in statements if s.get("Sid") == sid]
    return statement


def ssm_parameter_arn(config, name: str) -> dict:
    return {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, f":ssm:{config.region}:{config.account}:parameter{name}"]]}


def schema_permissions(resource_type: str) -> set[str]:
    from cfnlint.schema.manager import PROVIDER_SCHEMA_MANAGER

    schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema(region="us-east-1", resource_type=resource_type).schema
    handlers = schema["handlers"]
    # Job definitions have no update handler: CloudFormation replaces them.
    return {p for operation in ("create", "read", "update", "delete") for p in handlers.get(operation, {}).get("permissions", [])}


def served_resources(template: dict) -> dict[str, dict]:
    return {key: r for key, r in template["Resources"].items() if r.get("Condition") == SERVED_CONDITION}


# --- Where the served package is recorded ---------------------------------------------------------

def test_the_stack_reads_the_served_package_from_the_parameter_the_deployer_writes(serving, config):
    parameter = serving["Parameters"][APPROVED_MODEL_PACKAGE_PARAMETER]
    assert parameter["Type"] == "AWS::SSM::Parameter::Value<String>"
    assert parameter["Default"] == config.approved_model_package_parameter_name
    _, function = only(serving, "AWS::Lambda::Function", "ApprovalDeployerHandler")
    variables = function["Properties"]["Environment"]["Variables"]
    assert variables["APPROVED_PACKAGE_PARAMETER_NAME"] == config.approved_model_package_parameter_name
    assert variables["PARAMETER_NAME"] == APPROVED_MODEL_PACKAGE_PARAMETER
    assert serving["Conditions"][SERVED_CONDITION] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": APPROVED_MODEL_PACKAGE_PARAMETER}, NO_APPROVED_PACKAGE]}]
    }


def test_no_deploy_with_or_without_previous_parameters_can_take_the_endpoint_down(serving, config):
    """`cdk deploy` sends UsePreviousValue (the previous value) or, with --no-previous-parameters,
    nothing (the Default). Before, the Default was "" and deleted the endpoint. Now both are the
    name of the SSM parameter, which CloudFormation resolves on every update: the stack serves what
    the deployer last declared, whatever the deploy sends."""
    parameter = serving["Parameters"][APPROVED_MODEL_PACKAGE_PARAMETER]
    previous_value = default = parameter["Default"]
    for sent in (previous_value, default):
        assert sent == config.approved_model_package_parameter_name  # an SSM name, never a package
    resolved = f"arn:aws:sagemaker:{config.region}:{config.account}:model-package/{config.model_package_group_name}/7"
    deployed = deployed_resource_types(serving, {APPROVED_MODEL_PACKAGE_PARAMETER: resolved})
    assert "AWS::SageMaker::Endpoint" in deployed
    assert "AllowedPattern" not in parameter  # checked where the value is written: the SSM parameter


def test_foundation_creates_the_parameter_once_and_never_writes_it_again(foundation, config):
    (resource,) = resources_of_type(foundation, PARAMETER_RESOURCE_TYPE).values()
    properties = resource["Properties"]
    create = json.loads(properties["Create"])
    assert create["service"] == "SSM" and create["action"] == "PutParameter"
    assert create["parameters"]["Name"] == config.approved_model_package_parameter_name
    assert create["parameters"]["Value"] == NO_APPROVED_PACKAGE
    assert create["parameters"]["Overwrite"] is False
    assert create["parameters"]["AllowedPattern"] == approved_package_value_pattern(
        region=config.region, account=config.account, model_package_group_name=config.model_package_group_name,
    )
    assert create["ignoreErrorCodesMatching"] == "ParameterAlreadyExists"  # kept from before: what serves
    assert "Update" not in properties  # a tag or description change must never reset what serves
    assert ("Delete" in properties) is (not config.retain_on_delete)
    assert not resources_of_type(foundation, "AWS::SSM::Parameter")  # its update handler rewrites Value


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        ("none", True),
        ("arn:aws:sagemaker:us-east-1:111111111111:model-package/review-classifier-dev/12", True),
        ("arn:aws:sagemaker:us-east-1:111111111111:model-package/review-classifier-prod/12", False),
        ("arn:aws:sagemaker:us-east-1:222222222222:model-package/review-classifier-dev/12", False),
        ("arn:aws:sagemaker:us-east-1:111111111111:model-package/review-classifier-dev", False),
        ("", False),
        ("review-classifier-dev/12", False),
    ],
)
def test_parameter_accepts_only_versions_of_the_environments_own_group(value, accepted):
    config = load_environment("dev")
    pattern = approved_package_value_pattern(
        region=config.region, account=config.account, model_package_group_name=config.model_package_group_name,
    )
    assert bool(re.search(pattern, value)) is accepted


# --- No path to admin: the deployer ------------------------------------------------------------------

def test_deployer_may_update_its_stack_only_with_the_update_role(serving, config):
    statements = deployer_statements(serving)
    updates = [s for s in statements if {"cloudformation:UpdateStack", "cloudformation:*", "*"} & set(as_list(s["Action"]))]
    (update,) = updates
    assert update["Action"] == "cloudformation:UpdateStack"
    assert update["Condition"] == {
        "StringEquals": {"cloudformation:RoleArn": {"Fn::GetAtt": [update_role_id(serving), "Arn"]}}
    }
    assert f":stack/{config.stack_name('serving')}/*" in json.dumps(update["Resource"])


def test_deployer_passes_only_the_update_role_and_only_to_cloudformation(serving):
    statements = deployer_statements(serving)
    iam_statements = [s for s in statements if any(a.startswith("iam:") for a in as_list(s["Action"]))]
    (passing,) = iam_statements
    assert passing["Action"] == "iam:PassRole"
    assert passing["Resource"] == {"Fn::GetAtt": [update_role_id(serving), "Arn"]}
    assert passing["Condition"] == {"StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}}
    assert "cfn-exec-role" not in json.dumps(serving)  # the CDK bootstrap's (administrator) role


def test_deployer_holds_exactly_what_its_handler_calls(serving, config):
    statements = deployer_statements(serving)
    # publish_serving_baselines, where the environment monitors its endpoint.
    baselines = {"s3:GetObject", "s3:PutObject"} if config.serving.monitoring is not None else set()
    assert actions_of(statements) == baselines | {
        "logs:CreateLogStream", "logs:PutLogEvents",
        "cloudformation:DescribeStacks", "cloudformation:DescribeStackEvents", "cloudformation:DescribeStackResources",
        "cloudformation:UpdateStack", "iam:PassRole",
        "ssm:GetParameter", "ssm:GetParameters", "ssm:PutParameter",
        "sagemaker:ListModelPackages", "sagemaker:DescribeModelPackage", "sagemaker:UpdateModelPackage",
        "sagemaker:DescribeEndpoint", "sagemaker:DescribeEndpointConfig", "sagemaker:DescribeModel",
        "cloudwatch:PutMetricData", "sqs:SendMessage",
        # granted by the SQS event source, on the approval events queue only
        "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
        "sqs:GetQueueAttributes", "sqs:GetQueueUrl",
        # the environment key: the function's environment, the queues' messages, sending to the DLQ
        "kms:Decrypt", "kms:GenerateDataKey",
        # a promoting environment's deployer checks the promoted artifact's SHA-256 in the source bucket
        *(() if config.trains else ("s3:GetObject",)),
    }
    (consume,) = [s for s in statements if "sqs:ReceiveMessage" in as_list(s["Action"])]
    assert "ApprovalEventsQueue" in json.dumps(consume["Resource"])
    read_stack = by_sid(statements, "ReadServingStack")
    assert f":stack/{config.stack_name('serving')}/*" in json.dumps(read_stack["Resource"])
    dead_letter = by_sid(statements, "DeadLetterPermanentFailures")
    assert "DeadLetterQueue" in json.dumps(dead_letter["Resource"])
    declare = by_sid(statements, "DeclareTheApprovedPackage")
    assert declare["Resource"] == ssm_parameter_arn(config, config.approved_model_package_parameter_name)
    reject = by_sid(statements, "RejectPackagesOfThisGroup")
    assert reject["Condition"] == {"StringEquals": {"sagemaker:ModelApprovalStatus": "Rejected"}}  # never approves
    assert f"model-package/{config.model_package_group_name}/*" in json.dumps(reject["Resource"])
    verify = by_sid(statements, "VerifyWhatTheEndpointServes")
    assert f"endpoint/{config.endpoint_name}" in json.dumps(verify["Resource"])
    metrics = by_sid(statements, "PublishServingMetrics")
    assert metrics["Condition"] == {"StringEquals": {"cloudwatch:namespace": METRIC_NAMESPACE}}
    if baselines:
        assert actions_of(statements) >= baselines
        if config.trains:
            assert "/monitoring-baselines/*" in json.dumps(by_sid(statements, "ReadPipelineBaselines")["Resource"])
        else:
            # No pipeline here: the promoted versions' baselines are in the source's bucket only.
            assert "ReadPipelineBaselines" not in {s.get("Sid") for s in statements}
            source = load_environment(config.model_source.promote_from)
            read = by_sid(statements, "ReadPromotionSourceBaselines")
            assert (read["Action"], read["Resource"]) == ("s3:GetObject", "arn:aws:s3:::*/monitoring-baselines/*")
            assert read["Condition"] == {"StringEquals": {"s3:ResourceAccount": source.account}}
        assert f"/serving-baselines/{config.endpoint_name}/*" in json.dumps(
            by_sid(statements, "PublishServingBaselines")["Resource"])


def test_deployer_and_update_role_may_read_the_bootstrap_version_cloudformation_resolves(serving, config):
    """CloudFormation resolves the SSM-typed BootstrapVersion again on every update, also with
    UsePreviousValue (aws-cdk issue 20959); before, neither role could read it."""
    bootstrap = ssm_parameter_arn(config, serving["Parameters"]["BootstrapVersion"]["Default"])
    approved = ssm_parameter_arn(config, config.approved_model_package_parameter_name)
    deployer_reads = by_sid(deployer_statements(serving), "ResolveBootstrapVersion")
    assert deployer_reads["Action"] == "ssm:GetParameters" and deployer_reads["Resource"] == bootstrap
    role_reads = by_sid(update_role_statements(serving), "ResolveTemplateParameters")
    assert role_reads["Action"] == "ssm:GetParameters"
    assert sorted(as_list(role_reads["Resource"]), key=json.dumps) == sorted([bootstrap, approved], key=json.dumps)


def test_handler_environment_names_this_stack_and_its_update_role(serving, config):
    _, function = only(serving, "AWS::Lambda::Function", "ApprovalDeployerHandler")
    variables = function["Properties"]["Environment"]["Variables"]
    dead_letter_queue, _ = only(serving, "AWS::SQS::Queue", "ApprovalDeployerDeadLetterQueue")
    assert variables == {
        "STACK_NAME": config.stack_name("serving"),
        "PARAMETER_NAME": APPROVED_MODEL_PACKAGE_PARAMETER,
        "APPROVED_PACKAGE_PARAMETER_NAME": config.approved_model_package_parameter_name,
        "CLOUDFORMATION_ROLE_ARN": {"Fn::GetAtt": [update_role_id(serving), "Arn"]},
        "DEAD_LETTER_QUEUE_URL": {"Ref": dead_letter_queue},
        "MODEL_PACKAGE_GROUP_NAME": config.model_package_group_name,
        "ENVIRONMENT_NAME": config.name,
        "METRIC_NAMESPACE": METRIC_NAMESPACE,
        # an environment that promotes serves promotions of its source group's versions only
        **({} if config.trains else {"PROMOTION_SOURCE_PREFIX": (
            f"arn:aws:sagemaker:{config.region}:{load_environment(config.model_source.promote_from).account}:"
            f"model-package/{load_environment(config.model_source.promote_from).model_package_group_name}/")}),
        "SERVING_BASELINES_URI": variables["SERVING_BASELINES_URI"],
    }
    # Where monitoring reads the served package's baselines; "" without monitoring.
    if config.serving.monitoring is None:
        assert variables["SERVING_BASELINES_URI"] == ""
    else:
        assert json.dumps(variables["SERVING_BASELINES_URI"]).endswith(f'/serving-baselines/{config.endpoint_name}"]]}}')
    optional = {"PROMOTION_SOURCE_PREFIX"} - set(variables)
    assert set(variables) | optional == {field.upper() for field in handler.Settings.__dataclass_fields__}


# --- No path to admin: the approval update role ---------------------------------------------------------

def test_update_role_is_assumed_by_cloudformation_only(serving):
    _, role = only(serving, "AWS::IAM::Role", "ApprovalUpdateRole")
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "cloudformation.amazonaws.com"}
    assert "ManagedPolicyArns" not in role["Properties"]


def test_update_role_may_do_exactly_what_an_approval_update_changes(serving):
    served = served_resources(serving)
    resource_types = {r["Type"] for r in served.values()}
    assert {"AWS::SageMaker::Model", "AWS::SageMaker::EndpointConfig", "AWS::SageMaker::Endpoint",
            "AWS::CloudWatch::Alarm"} <= resource_types
    needed = set().union(*(schema_permissions(t) for t in resource_types)) - set(SCHEMA_PERMISSIONS_NOT_NEEDED)
    extras = set(PERMISSIONS_BEYOND_THE_SCHEMAS)
    (config_id, endpoint_config), = resources_of_type(serving, "AWS::SageMaker::EndpointConfig").items()
    if "KmsKeyId" in endpoint_config["Properties"]:
        extras |= set(REAL_TIME_PERMISSIONS_BEYOND_THE_SCHEMAS)
    else:
        needed -= {"kms:DescribeKey"}  # asked only for a KmsKeyId, which serverless configs cannot have
    if "AWS::ApplicationAutoScaling::ScalableTarget" in resource_types:
        extras |= set(AUTO_SCALING_PERMISSIONS_BEYOND_THE_SCHEMAS)

    assert actions_of(update_role_statements(serving)) == needed | extras


def test_update_role_touches_only_this_endpoint_its_alarms_and_its_own_roles(serving, config):
    statements = update_role_statements(serving)
    endpoint = by_sid(statements, "ManageTheEndpoint")
    assert json.dumps(endpoint["Resource"]).endswith(f":endpoint/{config.endpoint_name}\"]]}}")
    passing = by_sid(statements, "PassTheModelExecutionRoleToSageMaker")
    model_role, _ = only(serving, "AWS::IAM::Role", "ApprovedModelEndpointModelExecutionRole")
    assert passing["Resource"] == {"Fn::GetAtt": [model_role, "Arn"]}
    assert passing["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
    alarm_names = {
        r["Properties"]["AlarmName"] for r in served_resources(serving).values() if r["Type"] == "AWS::CloudWatch::Alarm"
    }
    expected_alarms = {f":alarm:{name}" for name in alarm_names}
    if config.serving.auto_scaling is not None:
        expected_alarms.add(f":alarm:TargetTracking-endpoint/{config.endpoint_name}/*")
    alarms = by_sid(statements, "ManageTheRollbackAlarms")
    assert {json.dumps(arn).split(f"{config.account}")[-1].rstrip('"]}') for arn in as_list(alarms["Resource"])} == expected_alarms
    # The deployer's own alarms stay out of its reach.
    assert not any(name.startswith(config.stack_name("serving")) for name in alarm_names)
    if config.serving.instance_type:
        create_config = by_sid(statements, "CreateEndpointConfigsOfTheConfiguredInstanceType")
        assert create_config["Condition"] == {
            "ForAllValues:StringEquals": {"sagemaker:InstanceTypes": [config.serving.instance_type]}
        }
    unscoped = {a for s in statements if s["Resource"] == "*" for a in as_list(s["Action"])}
    assert all(a.startswith(("cloudwatch:Describe", "cloudwatch:GetMetricData", "application-autoscaling:"))
               for a in unscoped), unscoped


# --- Events it follows --------------------------------------------------------------------------------

def test_rule_matches_only_approval_decisions_of_this_group(serving, config):
    _, rule = only(serving, "AWS::Events::Rule", "ApprovalDeployerApprovalDecisionsRule")
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


def test_ends_of_this_stacks_updates_and_a_schedule_trigger_checks(serving):
    _, status_rule = only(serving, "AWS::Events::Rule", "ApprovalDeployerStackStatusRule")
    assert status_rule["Properties"]["EventPattern"] == {
        "source": ["aws.cloudformation"],
        "detail-type": ["CloudFormation Stack Status Change"],
        "detail": {
            "stack-id": [{"Ref": "AWS::StackId"}],
            "status-details": {"status": ["UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "UPDATE_ROLLBACK_FAILED"]},
        },
    }
    _, schedule = only(serving, "AWS::Events::Rule", "ApprovalDeployerServingCheckSchedule")
    assert schedule["Properties"]["ScheduleExpression"] == "rate(5 minutes)"
    for rule in (status_rule, schedule):
        (target,) = rule["Properties"]["Targets"]
        assert "ApprovalEventsQueue" in json.dumps(target["Arn"])
    assert handler.STACK_STATUS_EVENT == ("aws.cloudformation", "CloudFormation Stack Status Change")
    assert handler.SCHEDULED_EVENT == ("aws.events", "Scheduled Event")


def test_events_are_retried_from_a_queue_with_a_dead_letter_queue(serving):
    queues = resources_of_type(serving, "AWS::SQS::Queue")
    (queue,) = [q for key, q in queues.items() if "ApprovalEventsQueue" in key]
    redrive = queue["Properties"]["RedrivePolicy"]
    assert redrive["maxReceiveCount"] * queue["Properties"]["VisibilityTimeout"] >= 6 * 3600  # busy stacks only
    assert "DeadLetterQueue" in json.dumps(redrive["deadLetterTargetArn"])
    _, mapping = only(serving, "AWS::Lambda::EventSourceMapping")
    assert mapping["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["Properties"]["BatchSize"] == 1


# --- Alarms on what it publishes ----------------------------------------------------------------------

def alarm_on(template: dict, metric_name: str) -> dict:
    (alarm,) = [
        a["Properties"] for a in resources_of_type(template, "AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("MetricName") == metric_name
    ]
    return alarm


def test_construct_and_handler_agree_on_metric_names():
    assert construct.NO_APPROVED_PACKAGE_METRIC == handler.NO_APPROVED_PACKAGE_METRIC
    assert construct.NOT_SERVING_METRIC == handler.NOT_SERVING_METRIC
    assert construct.PROMOTION_FAILURES_METRIC == handler.PROMOTION_FAILURES_METRIC


def test_a_failed_promotion_alarms_within_minutes(serving, environment_name):
    alarm = alarm_on(serving, handler.PROMOTION_FAILURES_METRIC)
    assert alarm["Namespace"] == METRIC_NAMESPACE
    assert alarm["Dimensions"] == [{"Name": "Environment", "Value": environment_name}]
    assert (alarm["Statistic"], alarm["Period"], alarm["EvaluationPeriods"], alarm["Threshold"]) == ("Sum", 60, 1, 1)
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["TreatMissingData"] == "notBreaching"
    assert "Condition" not in alarm


def test_an_approved_package_that_does_not_serve_alarms(serving, environment_name):
    alarm = alarm_on(serving, handler.NOT_SERVING_METRIC)
    assert alarm["Namespace"] == METRIC_NAMESPACE
    assert alarm["Dimensions"] == [{"Name": "Environment", "Value": environment_name}]
    # Every check of three 5-minute periods said "not serving" (Minimum), or no check reported.
    assert (alarm["Statistic"], alarm["Period"], alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (
        "Minimum", 300, 3, 3)
    assert alarm["Threshold"] == 1
    assert alarm["TreatMissingData"] == "breaching"
    assert "Condition" not in alarm


def test_no_approved_package_alarm_watches_what_the_handler_publishes(serving, environment_name):
    alarm = alarm_on(serving, handler.NO_APPROVED_PACKAGE_METRIC)
    assert alarm["Namespace"] == METRIC_NAMESPACE
    assert alarm["Dimensions"] == [{"Name": "Environment", "Value": environment_name}]
    assert alarm["TreatMissingData"] == "ignore"  # stays raised until a package is approved again
    assert "Condition" not in alarm
