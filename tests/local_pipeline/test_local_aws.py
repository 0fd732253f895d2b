"""Deploy-time placeholders resolved as CloudFormation's Fn::Sub resolves them, parameters
typed as the service types them, and job names within the service's limits."""

from __future__ import annotations

import json

import pytest

from local_pipeline.executor import StepFailed, job_name, typed_parameters
from local_pipeline.local_aws import PlaceholderError, substitute
from local_pipeline.s3_io import relative_name


def test_substitute_resolves_names_and_keeps_escaped_literals():
    template = 'arn:${AWS::Partition}:iam::${AWS::AccountId}:role/x ${!NotAVariable} s3://${DataBucketName}/k'
    values = {"AWS::Partition": "aws", "AWS::AccountId": "123456789012", "DataBucketName": "data"}
    assert substitute(template, values) == "arn:aws:iam::123456789012:role/x ${NotAVariable} s3://data/k"


def test_substitute_refuses_an_unknown_placeholder():
    with pytest.raises(PlaceholderError, match=r"\$\{Unknown\}"):
        substitute("${Unknown}", {})


def test_every_placeholder_of_every_environment_resolves(environment_name):
    """The definition each stack generates has no ${...} left once the local values apply."""
    from local_pipeline.local_aws import LocalEnvironment
    from pipeline_definition import PipelineDefinitionSettings, definition_json
    from stacks.config import load_environment

    config = load_environment(environment_name)
    local = LocalEnvironment(config, "data", "artifacts", "assets", "bundle.tar.gz", "arn:aws:kms:us-east-1:1:key/k")
    resolved = substitute(definition_json(PipelineDefinitionSettings.from_environment(config), compact=True),
                          local.deploy_time_values)
    assert "${" not in resolved
    assert json.loads(resolved)["Steps"]


def test_parameters_take_overrides_over_defaults_in_their_declared_types():
    declared = [
        {"Name": "Epochs", "Type": "Integer", "DefaultValue": 1},
        {"Name": "LearningRate", "Type": "Float", "DefaultValue": 3e-05},
        {"Name": "Balance", "Type": "String", "DefaultValue": "true"},
    ]
    values = typed_parameters(declared, [{"Name": "Epochs", "Value": "3"}])
    assert values == {"Epochs": 3, "LearningRate": 3e-05, "Balance": "true"}


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ([{"Name": "Epoch", "Value": "3"}], r"\['Epoch'\] are not declared"),
        ([{"Name": "Epochs", "Value": "three"}], "not a valid Integer"),
    ],
)
def test_bad_parameters_are_refused_with_their_name(given, message):
    with pytest.raises(StepFailed, match=message):
        typed_parameters([{"Name": "Epochs", "Type": "Integer", "DefaultValue": 1}], given)


def test_job_names_fit_the_service_limit_and_differ_per_step():
    names = {job_name("x" * 12, step) for step in ("PrepareReviews", "A" * 80, "Register-RegisterModel")}
    assert len(names) == 3
    assert all(len(name) <= 63 and name.startswith("pipelines-xxxxxxxxxxxx-") for name in names)


@pytest.mark.parametrize(
    ("key", "prefix", "expected"),
    [
        ("reviews/prepared/e1/train/part-algo-1.jsonl", "reviews/prepared/e1/train", "part-algo-1.jsonl"),
        ("reviews/raw/a.csv", "reviews/raw/", "a.csv"),
        ("code/bundle.tar.gz", "code/bundle.tar.gz", "bundle.tar.gz"),
    ],
)
def test_objects_land_below_the_input_path_as_in_file_mode(key, prefix, expected):
    assert relative_name(key, prefix) == expected
