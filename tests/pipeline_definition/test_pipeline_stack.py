"""PipelineStack: the generated definition goes to the upserter with every deploy-time
placeholder substituted by CloudFormation, the code bundle is a content-addressed asset, and
the outputs tell a user how to start a run."""

from __future__ import annotations

import json
import re

from pipeline_definition import PipelineDefinitionSettings, definition_json
from pipeline_definition.settings import PLACEHOLDER_NAMES, example_deploy_time_values
from stacks.config import load_environment


def _pipeline_resource(template: dict) -> dict:
    [resource] = [r for r in template["Resources"].values() if r["Type"] == "Custom::SageMakerPipeline"]
    return resource


def _substitute(text: str, values: dict[str, str]) -> str:
    return re.sub(r"\$\{([^}!]+)\}", lambda m: values[m.group(1)], text)


def test_definition_is_the_generated_one_with_placeholders_substituted(synthesized_app, training_environment_name):
    config = load_environment(training_environment_name)
    properties = _pipeline_resource(synthesized_app.template_json(training_environment_name, "pipeline"))["Properties"]
    assert properties["PipelineName"] == config.pipeline_name
    definition_template, variables = properties["PipelineDefinition"]["Fn::Sub"]
    assert definition_template == definition_json(PipelineDefinitionSettings.from_environment(config), compact=True)
    assert set(variables) == set(PLACEHOLDER_NAMES)
    # Buckets and key come from the foundation stack; the code bundle is this stack's asset.
    for name in ("DataBucketName", "ArtifactsBucketName", "DataKeyArn"):
        assert "Fn::ImportValue" in variables[name], name
    assert variables["FeatureGroupName"] == config.feature_group_name
    assert variables["ModelPackageGroupName"] == config.model_package_group_name
    assert re.fullmatch(r"[0-9a-f]{64}\.gz", variables["CodeBundleKey"])
    assert variables["CodeBundleBucket"] == f"cdk-hnb659fds-assets-{config.account}-{config.region}"


def test_substituted_definition_equals_generation_with_real_values(synthesized_app, training_environment_name):
    # What CloudFormation will send is exactly what the generator gives for the same values.
    config = load_environment(training_environment_name)
    definition_template, _ = _pipeline_resource(synthesized_app.template_json(training_environment_name, "pipeline"))["Properties"]["PipelineDefinition"]["Fn::Sub"]
    example = example_deploy_time_values(config)
    bucket, key = example.code_bundle_s3_uri.removeprefix("s3://").split("/", 1)
    substituted = _substitute(definition_template, {
        "DataBucketName": example.data_bucket_name,
        "ArtifactsBucketName": example.artifacts_bucket_name,
        "CodeBundleBucket": bucket,
        "CodeBundleKey": key,
        "DataKeyArn": example.kms_key_arn,
        "FeatureGroupName": example.feature_group_name,
        "ModelPackageGroupName": example.model_package_group_name,
        "AWS::Partition": "aws",
        "AWS::AccountId": config.account,
    })
    expected = definition_json(PipelineDefinitionSettings.from_environment(config, example), compact=True)
    assert json.loads(substituted) == json.loads(expected)


def test_upserter_gets_the_environment_settings(synthesized_app, training_environment_name):
    config = load_environment(training_environment_name)
    properties = _pipeline_resource(synthesized_app.template_json(training_environment_name, "pipeline"))["Properties"]
    assert properties["RetainOnDelete"] == ("true" if config.retain_on_delete else "false")
    assert properties["StartExecution"] == ("true" if config.pipeline.start_execution_after_upsert else "false")
    assert {t["Key"]: t["Value"] for t in properties["Tags"]} == config.tags
    # The role the definition names is the foundation's execution role (a fixed name).
    assert f":role/{config.pipeline_execution_role_name}\\\"" in json.dumps(properties["PipelineDefinition"]["Fn::Sub"][0])


def test_outputs_name_the_pipeline_and_how_to_start_it(synthesized_app, training_environment_name):
    config = load_environment(training_environment_name)
    outputs = synthesized_app.template_json(training_environment_name, "pipeline")["Outputs"]
    assert outputs["PipelineName"]["Value"] == config.pipeline_name
    assert "Fn::GetAtt" in outputs["PipelineArn"]["Value"]
    command = outputs["StartPipelineExecutionCommand"]["Value"]
    assert command.startswith(f"aws sagemaker start-pipeline-execution --region {config.region} --pipeline-name {config.pipeline_name}")
    assert "Name=Epochs,Value=" in command
