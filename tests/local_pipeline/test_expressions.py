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


@pytest.mark.parametrize(
    ("document", "path", "message"),
    [
        ({"items": [{"v": 1}, {"v": 2}]}, "items[2].v", r"^JsonGet items\[2\]\.v: index \[2\] is out of range$"),
        ({"items": {"v": 1}}, "items[0]", r"^JsonGet items\[0\]: index \[0\] is out of range$"),
        ({"metrics": {"f1": 1, "accuracy": 2}}, "metrics.recall", r"^JsonGet metrics\.recall: 'recall' does not exist \(available: \['accuracy', 'f1'\]\)$"),
        ({"metrics": "text"}, "metrics.accuracy", r"^JsonGet metrics\.accuracy: 'accuracy' does not exist \(available: str\)$"),
        ({"channels": [{"ChannelName": "train"}, {"ChannelName": "test", "Other": "x"}, "loose"]}, "channels['dev']",
         r"^JsonGet channels\['dev'\]: no item named 'dev' \(there are \['test', 'train'\]\)$"),
    ],
)
def test_a_path_that_leads_nowhere_says_where_and_what_there_is(document, path, message):
    with pytest.raises(ExpressionError, match=message):
        json_get(document, path)


def test_a_list_item_is_found_by_any_of_its_name_fields():
    channels = [{"ChannelName": "train", "Uri": "s3://a"}, {"OutputName": "test", "Uri": "s3://b"}]
    assert json_get({"c": channels}, "c['test'].Uri") == "s3://b"
    assert json_get({"c": channels}, "c[1].Uri") == "s3://b"


def test_get_reads_a_property_file_of_the_step_it_names():
    reads = []
    context = EvaluationContext(
        parameters={}, execution_variables={},
        step_properties={"EvaluateModel": {"ProcessingOutputConfig": {"Outputs": [{"OutputName": "report"}]}}},
        read_property_file=lambda step, name: reads.append((step, name)) or {"read": [step, name]},
    )
    assert evaluate({"Get": "Steps.EvaluateModel.PropertyFiles.EvaluationReport"}, context) == {"read": ["EvaluateModel", "EvaluationReport"]}
    assert reads == [("EvaluateModel", "EvaluationReport")]
    # A two-token path that is not a property file is a plain property, not a file read.
    assert evaluate({"Get": "Steps.EvaluateModel.ProcessingOutputConfig.Outputs"}, context) == [{"OutputName": "report"}]
    assert reads == [("EvaluateModel", "EvaluationReport")]


def test_property_files_are_an_error_where_none_can_be_read():
    context = EvaluationContext(parameters={}, execution_variables={}, step_properties={"EvaluateModel": {}})
    with pytest.raises(ExpressionError, match=r"^Get Steps\.EvaluateModel\.PropertyFiles\.Report: property files are not available here$"):
        evaluate({"Get": "Steps.EvaluateModel.PropertyFiles.Report"}, context)


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("Pipeline.Name", r"^Get Pipeline\.Name: unknown reference kind 'Pipeline'$"),
        ("Steps.PrepareReviews.ProcessingJobArn",
         r"^Get Steps\.PrepareReviews\.ProcessingJobArn: 'ProcessingJobArn' does not exist \(available: \['ProcessingJobName', 'ProcessingOutputConfig'\]\)$"),
        ("Parameters.Missing", r"^Get Parameters\.Missing: no parameter 'Missing' \(declared: \['Epochs', 'LearningRate', 'ModelNameOrPath'\]\)$"),
    ],
)
def test_a_get_that_cannot_be_answered_names_the_whole_reference(context, reference, message):
    with pytest.raises(ExpressionError, match=message):
        evaluate({"Get": reference}, context)


def test_join_renders_false_and_json_values_as_sagemaker_does(context):
    join = {"Std:Join": {"On": ",", "Values": [False, True, {"a": 1}, [1, "x"], 2.5, None]}}
    assert evaluate(join, context) == 'false,true,{"a": 1},[1, "x"],2.5,None'


def test_expressions_nested_in_lists_and_objects_are_all_evaluated(context):
    value = {
        "Args": [{"Get": "Parameters.Epochs"}, ["--lr", {"Get": "Parameters.LearningRate"}]],
        "Env": {"RUN": {"Get": "Execution.PipelineExecutionId"}, "aws:tag": "kept", "Std": "plain", "Fn": 1},
    }
    assert evaluate(value, context) == {
        "Args": [2, ["--lr", 3e-05]],
        "Env": {"RUN": "abc123", "aws:tag": "kept", "Std": "plain", "Fn": 1},
    }


@pytest.mark.parametrize("function", ["Std:Select", "Fn::Sub", "Fn:Split"])
def test_any_std_or_fn_function_not_emulated_is_refused(context, function):
    with pytest.raises(ExpressionError, match=f"^unsupported function '{function}' in the definition$"):
        evaluate({"Args": [{function: "x"}]}, context)


def test_step_references_collects_the_steps_of_every_list_item():
    value = [{"Get": "Steps.A.X"}, {"Get": "Steps.B.Y"}, [{"Get": "Steps.C.Z"}], {"Get": "Parameters.A"}]
    assert step_references(value) == {"A", "B", "C"}
