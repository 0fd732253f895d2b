"""The PipelineUpserter construct in a small standalone app: IAM scoped to one pipeline and one
role, log retention, the custom resource's properties, and cdk-nag AwsSolutions clean."""

from __future__ import annotations

import json
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam
from aws_cdk.assertions import Match, Template

from stacks.components.pipeline_upserter import PIPELINE_ACTIONS, RESOURCE_TYPE, PipelineUpserter, pipeline_arns_for

ACCOUNT, REGION = "111111111111", "us-east-1"
DEV_PIPELINE = "review-classifier-dev-training"
PROD_PIPELINE = "review-classifier-prod-training"
NAG_PREFIX = "AwsSolutions-"


class Synthesized:
    def __init__(self, assembly: cdk.cx_api.CloudAssembly, stacks: dict[str, cdk.Stack]) -> None:
        self.assembly = assembly
        self.stacks = stacks

    def artifact(self, name: str):
        return self.assembly.get_stack_artifact(self.stacks[name].artifact_id)

    def template(self, name: str) -> Template:
        return Template.from_json(self.artifact(name).template)

    def nag_findings(self, name: str) -> list[str]:
        return [
            f"{message.id}: {str(message.entry.data).splitlines()[0]}"
            for message in self.artifact(name).messages
            if message.level.name in ("ERROR", "WARNING") and str(message.entry.data).startswith(NAG_PREFIX)
        ]


def pipeline_definition(role: iam.IRole) -> str:
    # The role ARN is a token: the definition reaches CloudFormation as an Fn::Join.
    return json.dumps({"Version": "2020-12-01", "Parameters": [],
                       "Steps": [{"Name": "Prepare", "Type": "Processing", "Arguments": {"RoleArn": role.role_arn}}]})


@pytest.fixture(scope="module")
def synthesized(offline_aws_environment, tmp_path_factory) -> Synthesized:
    from cdk_nag import AwsSolutionsChecks

    app = cdk.App(outdir=str(tmp_path_factory.mktemp("upserter-cdk.out")))
    env = cdk.Environment(account=ACCOUNT, region=REGION)
    foundation = cdk.Stack(app, "Foundation", env=env)
    shared_role = iam.Role(foundation, "PipelineExecutionRole", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"))

    dev = cdk.Stack(app, "DevPipeline", env=env)
    dev_upserter = PipelineUpserter(
        dev, "TrainingPipeline", pipeline_name=DEV_PIPELINE, pipeline_definition=pipeline_definition(shared_role),
        pipeline_role=shared_role, description="Trains the review classifier (dev)",
        tags={"project": "review-classifier", "environment": "dev"}, retain_on_delete=False,
        start_execution_after_upsert=True, log_retention_days=14,
    )
    cdk.CfnOutput(dev, "PipelineArn", value=dev_upserter.pipeline_arn)

    prod = cdk.Stack(app, "ProdPipeline", env=env)
    prod_role = iam.Role(prod, "PipelineExecutionRole", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"))
    PipelineUpserter(
        prod, "TrainingPipeline", pipeline_name=PROD_PIPELINE, pipeline_definition=pipeline_definition(prod_role),
        pipeline_role=prod_role, description="Trains the review classifier (prod)", tags={},
        retain_on_delete=True, start_execution_after_upsert=False, log_retention_days=365,
    )
    cdk.Aspects.of(app).add(AwsSolutionsChecks(reports=False))
    return Synthesized(app.synth(), {"foundation": foundation, "dev": dev, "prod": prod})


def resources(template: Template, resource_type: str) -> dict[str, dict]:
    return template.find_resources(resource_type)


def logical_id(template: Template, resource_type: str, id_prefix: str) -> str:
    matches = [key for key in resources(template, resource_type) if key.startswith(id_prefix)]
    assert len(matches) == 1, f"expected one {resource_type} named {id_prefix}*, found {matches}"
    return matches[0]


def handler_statements(template: Template) -> list[dict]:
    role = resources(template, "AWS::IAM::Role")[logical_id(template, "AWS::IAM::Role", "TrainingPipelineHandlerRole")]
    (policy,) = role["Properties"]["Policies"]
    return policy["PolicyDocument"]["Statement"]


def pipeline_arn(name: str) -> dict:
    return {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, f":sagemaker:{REGION}:{ACCOUNT}:pipeline/{name}"]]}


# -- The handler function ----------------------------------------------------------------------


def test_handler_runs_the_python_handler_on_the_latest_python_runtime(synthesized):
    template = synthesized.template("dev")
    template.has_resource_properties("AWS::Lambda::Function", {
        "Runtime": "python3.14",
        "Handler": "handler.on_event",
        "Timeout": 300,
        "Role": {"Fn::GetAtt": [logical_id(template, "AWS::IAM::Role", "TrainingPipelineHandlerRole"), "Arn"]},
        "LoggingConfig": {"LogGroup": {"Ref": logical_id(template, "AWS::Logs::LogGroup", "TrainingPipelineHandlerLogGroup")}},
    })


def test_handler_asset_holds_only_the_handler_code(synthesized):
    template = synthesized.template("dev")
    handler = resources(template, "AWS::Lambda::Function")[logical_id(template, "AWS::Lambda::Function", "TrainingPipelineHandler")]
    asset_hash = handler["Properties"]["Code"]["S3Key"].removesuffix(".zip")
    asset_directory = Path(synthesized.assembly.directory) / f"asset.{asset_hash}"
    assert sorted(path.name for path in asset_directory.iterdir()) == ["handler.py"]


# -- IAM ---------------------------------------------------------------------------------------------


def test_handler_role_has_only_its_inline_policy(synthesized):
    template = synthesized.template("dev")
    role_id = logical_id(template, "AWS::IAM::Role", "TrainingPipelineHandlerRole")
    role = resources(template, "AWS::IAM::Role")[role_id]
    assert "ManagedPolicyArns" not in role["Properties"]
    attached = [policy for policy in resources(template, "AWS::IAM::Policy").values()
                if {"Ref": role_id} in policy["Properties"]["Roles"]]
    assert attached == []


def test_handler_may_manage_this_pipeline_only(synthesized):
    statements = {statement["Sid"]: statement for statement in handler_statements(synthesized.template("dev"))}
    assert set(statements) == {"WriteOwnLogs", "ManageThisPipelineOnly", "PassThePipelineRoleToSageMakerOnly"}
    pipeline = statements["ManageThisPipelineOnly"]
    assert sorted(pipeline["Action"]) == sorted(PIPELINE_ACTIONS)
    assert pipeline["Resource"] == pipeline_arn(DEV_PIPELINE)
    assert "*" not in json.dumps([statement.get("Resource") for statement in statements.values()])


def test_handler_writes_only_its_own_log_group(synthesized):
    template = synthesized.template("dev")
    statements = {statement["Sid"]: statement for statement in handler_statements(template)}
    assert statements["WriteOwnLogs"]["Resource"] == {
        "Fn::GetAtt": [logical_id(template, "AWS::Logs::LogGroup", "TrainingPipelineHandlerLogGroup"), "Arn"]
    }
    assert sorted(statements["WriteOwnLogs"]["Action"]) == ["logs:CreateLogStream", "logs:PutLogEvents"]


def test_handler_passes_only_the_pipeline_role_and_only_to_sagemaker(synthesized):
    statements = {statement["Sid"]: statement for statement in handler_statements(synthesized.template("dev"))}
    pass_role = statements["PassThePipelineRoleToSageMakerOnly"]
    assert pass_role["Action"] == "iam:PassRole"
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
    # The role lives in the foundation stack: a cross-stack import of exactly its ARN.
    assert set(pass_role["Resource"]) == {"Fn::ImportValue"}
    export_name = pass_role["Resource"]["Fn::ImportValue"]
    foundation_outputs = synthesized.artifact("foundation").template["Outputs"]
    (exported,) = [output for output in foundation_outputs.values() if output["Export"]["Name"] == export_name]
    assert exported["Value"]["Fn::GetAtt"][0].startswith("PipelineExecutionRole")


def test_same_stack_role_is_passed_by_its_arn_and_created_before_the_pipeline(synthesized):
    template = synthesized.template("prod")
    role_id = logical_id(template, "AWS::IAM::Role", "PipelineExecutionRole")
    statements = {statement["Sid"]: statement for statement in handler_statements(template)}
    assert statements["PassThePipelineRoleToSageMakerOnly"]["Resource"] == {"Fn::GetAtt": [role_id, "Arn"]}
    (custom,) = resources(template, RESOURCE_TYPE).values()
    assert role_id in custom["DependsOn"]


def test_provider_framework_uses_its_own_role_without_managed_policies(synthesized):
    template = synthesized.template("dev")
    provider_role_id = logical_id(template, "AWS::IAM::Role", "TrainingPipelineProviderRole")
    assert "ManagedPolicyArns" not in resources(template, "AWS::IAM::Role")[provider_role_id]["Properties"]
    template.has_resource_properties("AWS::Lambda::Function", {
        "Handler": "framework.onEvent",
        "Role": {"Fn::GetAtt": [provider_role_id, "Arn"]},
        "LoggingConfig": Match.object_like(
            {"LogGroup": {"Ref": logical_id(template, "AWS::Logs::LogGroup", "TrainingPipelineProviderLogGroup")}}
        ),
    })


def test_capitalised_pipeline_names_are_granted_in_both_arn_spellings_and_nothing_else():
    stack = cdk.Stack(cdk.App(), "Names", env=cdk.Environment(account=ACCOUNT, region=REGION))
    arns = [stack.resolve(arn) for arn in pipeline_arns_for(stack, "Review-Training")]
    assert arns == [pipeline_arn("Review-Training"), pipeline_arn("review-training")]
    assert [stack.resolve(arn) for arn in pipeline_arns_for(stack, DEV_PIPELINE)] == [pipeline_arn(DEV_PIPELINE)]


# -- Logs --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("stack", "days", "policy"), [("dev", 14, "Delete"), ("prod", 365, "Retain")])
def test_both_log_groups_keep_logs_for_the_configured_days(synthesized, stack, days, policy):
    log_groups = resources(synthesized.template(stack), "AWS::Logs::LogGroup")
    assert len(log_groups) == 2
    for log_group in log_groups.values():
        assert log_group["Properties"]["RetentionInDays"] == days
        assert log_group["DeletionPolicy"] == policy


# -- The custom resource -------------------------------------------------------------------------


def test_custom_resource_properties_are_small_and_stable(synthesized):
    template = synthesized.template("dev")
    (custom,) = resources(template, RESOURCE_TYPE).values()
    properties = custom["Properties"]
    assert set(properties) == {"ServiceToken", "PipelineName", "PipelineDefinition", "RoleArn", "Description",
                               "Tags", "RetainOnDelete", "StartExecution"}
    assert properties["PipelineName"] == DEV_PIPELINE
    assert properties["Description"] == "Trains the review classifier (dev)"
    assert properties["Tags"] == [{"Key": "environment", "Value": "dev"}, {"Key": "project", "Value": "review-classifier"}]
    assert (properties["RetainOnDelete"], properties["StartExecution"]) == ("false", "true")
    assert properties["ServiceToken"] == {
        "Fn::GetAtt": [logical_id(template, "AWS::Lambda::Function", "TrainingPipelineProviderframeworkonEvent"), "Arn"]
    }


def test_prod_retains_the_pipeline_and_starts_nothing(synthesized):
    (custom,) = resources(synthesized.template("prod"), RESOURCE_TYPE).values()
    assert (custom["Properties"]["RetainOnDelete"], custom["Properties"]["StartExecution"]) == ("true", "false")
    assert custom["Properties"]["Tags"] == []


def test_definition_tokens_are_left_for_cloudformation_to_resolve(synthesized):
    (custom,) = resources(synthesized.template("dev"), RESOURCE_TYPE).values()
    definition = custom["Properties"]["PipelineDefinition"]
    assert set(definition) == {"Fn::Join"}
    assert any(isinstance(part, dict) and "Fn::ImportValue" in part for part in definition["Fn::Join"][1])


def test_pipeline_arn_attribute_comes_from_the_custom_resource(synthesized):
    template = synthesized.template("dev")
    custom_id = logical_id(template, RESOURCE_TYPE, "TrainingPipeline")
    assert template.to_json()["Outputs"]["PipelineArn"]["Value"] == {"Fn::GetAtt": [custom_id, "PipelineArn"]}


# -- cdk-nag -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_cdk_nag_finds_nothing_unsuppressed(synthesized, stack):
    findings = synthesized.nag_findings(stack)
    assert findings == [], "\n".join(findings)


def test_the_only_suppression_is_the_provider_frameworks_invoke_wildcard(synthesized):
    template = synthesized.artifact("dev").template
    suppressed = {
        logical: [(rule["id"], tuple(rule.get("applies_to", []))) for rule in resource["Metadata"]["cdk_nag"]["rules_to_suppress"]]
        for logical, resource in template["Resources"].items()
        if "cdk_nag" in resource.get("Metadata", {})
    }
    handler_id = next(key for key, value in template["Resources"].items()
                      if value["Type"] == "AWS::Lambda::Function" and key.startswith("TrainingPipelineHandler"))
    expected = [("AwsSolutions-IAM5", (f"Resource::<{handler_id}.Arn>:*",))]
    assert sorted(suppressed) == sorted(key for key in template["Resources"] if key.startswith("TrainingPipelineProviderRole"))
    assert all(rules == expected for rules in suppressed.values())


# -- Bad input -------------------------------------------------------------------------------------


def _upserter(**overrides: object) -> PipelineUpserter:
    stack = cdk.Stack(cdk.App(), "Bad", env=cdk.Environment(account=ACCOUNT, region=REGION))
    role = iam.Role(stack, "Role", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"))
    arguments: dict = dict(pipeline_name=DEV_PIPELINE, pipeline_definition='{"Steps": []}', pipeline_role=role,
                           description="d", tags={}, retain_on_delete=False, start_execution_after_upsert=False,
                           log_retention_days=14)
    arguments.update(overrides)
    return PipelineUpserter(stack, "Upserter", **arguments)


def test_log_retention_days_must_be_a_cloudwatch_value():
    with pytest.raises(ValueError, match="log_retention_days must be one of 1, 3, 5, 7, 14.*got 10"):
        _upserter(log_retention_days=10)


def test_handler_timeout_must_stay_under_the_provider_framework_limit():
    with pytest.raises(ValueError, match="15-minute limit"):
        _upserter(handler_timeout=cdk.Duration.minutes(15))
