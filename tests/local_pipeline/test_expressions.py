"""The definition expressions the local executor evaluates, on the shapes the generated
definition uses."""

from __future__ import annotations

import pytest

from local_pipeline.expressions import EvaluationContext, ExpressionError, evaluate, json_get, path_tokens, step_references


@pytest.fixture
def context() -> EvaluationContext:
    return EvaluationContext(
        parameters={"Epochs": 2, "LearningRate": 3e-05, "ModelNameOrPath": "roberta-base"},
        execution_variables={"PipelineExecutionId": "abc123"},
        step_properties={
            "PrepareReviews": {
                "ProcessingJobName": "pipelines-abc123-PrepareReviews-1",
                "ProcessingOutputConfig": {"Outputs": [
                    {"OutputName": "train", "S3Output": {"S3Uri": "s3://data/prepared/abc123/train"}},
                    {"OutputName": "test", "S3Output": {"S3Uri": "s3://data/prepared/abc123/test"}},
                ]},
            },
        },
        read_property_file=lambda step, name: {"metrics": {"accuracy": {"value": 0.8}}, "items": [{"v": 1}, {"v": 2}]},
    )


def test_path_tokens_reads_names_keys_and_indexes():
    assert path_tokens("ProcessingOutputConfig.Outputs['train'].S3Output.S3Uri") == [
        "ProcessingOutputConfig", "Outputs", "train", "S3Output", "S3Uri"]
    assert path_tokens("a[2].b") == ["a", 2, "b"]
    with pytest.raises(ExpressionError, match="cannot parse"):
        path_tokens("a..b[")


def test_get_of_parameters_execution_variables_and_step_properties(context):
    assert evaluate({"Get": "Parameters.Epochs"}, context) == 2
    assert evaluate({"Get": "Execution.PipelineExecutionId"}, context) == "abc123"
    uri = {"Get": "Steps.PrepareReviews.ProcessingOutputConfig.Outputs['test'].S3Output.S3Uri"}
    assert evaluate(uri, context) == "s3://data/prepared/abc123/test"


def test_join_renders_each_value_as_text(context):
    join = {"Std:Join": {"On": "/", "Values": ["s3:/", "bucket", {"Get": "Execution.PipelineExecutionId"}, {"Get": "Parameters.Epochs"}]}}
    assert evaluate(join, context) == "s3://bucket/abc123/2"
    assert evaluate({"Std:Join": {"On": "", "Values": [True]}}, context) == "true"


def test_json_get_reads_the_property_file(context):
    spec = {"Std:JsonGet": {"PropertyFile": {"Get": "Steps.PrepareReviews.PropertyFiles.Report"}, "Path": "metrics.accuracy.value"}}
    assert evaluate(spec, context) == 0.8
    assert json_get({"items": [{"v": 1}, {"v": 2}]}, "items[1].v") == 2


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ({"Get": "Parameters.Missing"}, "no parameter 'Missing'"),
        ({"Get": "Steps.TrainModel.ModelArtifacts.S3ModelArtifacts"}, "step 'TrainModel' has not run"),
        ({"Get": "Steps.PrepareReviews.ProcessingOutputConfig.Outputs['training'].S3Output.S3Uri"}, "no item named 'training'"),
        ({"Get": "Steps.PrepareReviews.ProcessingJobArn"}, "'ProcessingJobArn' does not exist"),
        ({"Get": "Execution.Nope"}, "unknown execution variable"),
        ({"Std:JsonGet": {"PropertyFile": {"Get": "Steps.PrepareReviews.PropertyFiles.Report"}, "Path": "metrics.acc.value"}},
         "JsonGet .*'acc' does not exist"),
        ({"Std:Select": {"Array": [], "Index": 0}}, "unsupported function 'Std:Select'"),
    ],
)
def test_what_cannot_be_evaluated_is_an_error_that_names_it(context, expression, message):
    with pytest.raises(ExpressionError, match=message):
        evaluate(expression, context)


def test_step_references_finds_every_step_read_inside_nested_values():
    arguments = {
        "a": [{"Get": "Steps.PrepareReviews.ProcessingJobName"}],
        "b": {"Std:JsonGet": {"PropertyFile": {"Get": "Steps.EvaluateModel.PropertyFiles.R"}, "Path": "x"}},
        "c": {"Get": "Parameters.Epochs"},
    }
    assert step_references(arguments) == {"PrepareReviews", "EvaluateModel"}
