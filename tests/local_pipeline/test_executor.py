"""The local executor on small hand-written definitions (no jobs): parameters, conditions and
their branches, Fail, Model and RegisterModel steps, dependencies, selective execution and the
reports, each read back from moto as the service would answer them. The full pipeline runs in
test_pipeline_execution.py (slow)."""

from __future__ import annotations

import io
import json
import uuid

import boto3
import pytest

from local_pipeline.executor import PipelineExecutor, SelectiveExecution, StepFailed, job_name, print_step_table, typed_parameters
from local_pipeline.jobs import JobContext

REGION, ACCOUNT = "us-east-1", "123456789012"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/pipeline"
IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/serving:1"

PARAMETERS = [
    {"Name": "Accuracy", "Type": "Float", "DefaultValue": 0.5},
    {"Name": "Floor", "Type": "Float", "DefaultValue": 0.7},
    {"Name": "Epochs", "Type": "Integer", "DefaultValue": 2},
    {"Name": "Register", "Type": "Boolean", "DefaultValue": False},
    {"Name": "ModelData", "Type": "String", "DefaultValue": "s3://artifacts/model.tar.gz"},
]


def model_step(name: str = "MakeModel", **extra) -> dict:
    return {"Name": name, "Type": "Model", **extra, "Arguments": {
        "ExecutionRoleArn": ROLE_ARN,
        "PrimaryContainer": {"Image": IMAGE, "ModelDataUrl": {"Get": "Parameters.ModelData"}}}}


def fail_step(name: str = "TooLow") -> dict:
    return {"Name": name, "Type": "Fail", "Arguments": {"ErrorMessage": {"Std:Join": {
        "On": " ", "Values": ["accuracy", {"Get": "Parameters.Accuracy"}, "is below", {"Get": "Parameters.Floor"}]}}}}


def condition(kind: str = "GreaterThanOrEqualTo", left=None, right=None) -> dict:
    return {"Type": kind, "LeftValue": left if left is not None else {"Get": "Parameters.Accuracy"},
            "RightValue": right if right is not None else {"Get": "Parameters.Floor"}}


def gate(*conditions: dict, if_steps=None, else_steps=None) -> dict:
    return {"Name": "CheckAccuracy", "Type": "Condition", "Arguments": {
        "Conditions": list(conditions) or [condition()],
        "IfSteps": [model_step()] if if_steps is None else if_steps,
        "ElseSteps": [fail_step()] if else_steps is None else else_steps}}


def definition(*steps: dict) -> dict:
    return {"Version": "2020-12-01", "Parameters": PARAMETERS, "Steps": list(steps) or [gate()]}


class Runner:
    def __init__(self, endpoint: str, work_dir):
        session = boto3.Session(region_name=REGION)
        self.sagemaker = session.client("sagemaker", endpoint_url=endpoint)
        self.context = JobContext(session.client("s3", endpoint_url=endpoint), self.sagemaker, work_dir, REGION, ACCOUNT, {})
        self.echo = io.StringIO()

    def run(self, pipeline: dict, selective: SelectiveExecution | None = None, **parameters):
        name = f"p-{uuid.uuid4().hex[:12]}"
        self.sagemaker.create_pipeline(PipelineName=name, PipelineDefinition=json.dumps(pipeline), RoleArn=ROLE_ARN)
        arn = self.sagemaker.start_pipeline_execution(
            PipelineName=name, ClientRequestToken=uuid.uuid4().hex,
            PipelineParameters=[{"Name": key, "Value": str(value)} for key, value in parameters.items()],
        )["PipelineExecutionArn"]
        return PipelineExecutor(self.sagemaker, self.context, echo=self.echo).execute(arn, selective)


@pytest.fixture
def runner(moto_endpoint, tmp_path) -> Runner:
    return Runner(moto_endpoint, tmp_path)


def statuses(result) -> list[tuple[str, str]]:
    return [(step.name, step.status) for step in result.steps]


# ---------------------------------------------------------------------------- conditions


def test_above_the_floor_the_if_branch_runs_and_creates_the_model(runner):
    result = runner.run(definition(), Accuracy=0.9, ModelData="s3://artifacts/trained.tar.gz")

    assert (result.status, result.failure_reason) == ("Succeeded", "")
    assert statuses(result) == [("CheckAccuracy", "Succeeded"), ("MakeModel", "Succeeded")]
    assert result.step("CheckAccuracy").metadata == {"Condition": {"Outcome": "True"}}
    execution_id = result.execution_arn.rsplit("/", 1)[-1]
    model = runner.sagemaker.describe_model(ModelName=job_name(execution_id, "MakeModel"))
    assert model["PrimaryContainer"]["ModelDataUrl"] == "s3://artifacts/trained.tar.gz"
    assert result.step("MakeModel").metadata == {"Model": {"Arn": model["ModelArn"]}}
    assert result.step_properties["MakeModel"] == {"ModelName": model["ModelName"], "ModelArn": model["ModelArn"]}


def test_exactly_at_the_floor_passes_and_just_below_fails_with_the_fail_steps_message(runner):
    assert runner.run(definition(), Accuracy=0.7).status == "Succeeded"

    below = runner.run(definition(), Accuracy=0.69)
    assert below.status == "Failed"
    assert below.failure_reason == "accuracy 0.69 is below 0.7"  # the Fail step's own message, as the service reports it
    assert statuses(below) == [("CheckAccuracy", "Succeeded"), ("TooLow", "Failed")]
    assert below.step("CheckAccuracy").metadata == {"Condition": {"Outcome": "False"}}
    assert below.step("TooLow").metadata == {"Fail": {"ErrorMessage": "accuracy 0.69 is below 0.7"}}
    assert len(runner.sagemaker.list_models()["Models"]) == 1  # the passing run's model only


@pytest.mark.parametrize(
    ("kind", "left", "right", "outcome"),
    [
        ("Equals", 2, 2, True), ("Equals", 2, 3, False), ("Equals", "a", "a", True),
        ("GreaterThan", 0.8, 0.7, True), ("GreaterThan", 0.7, 0.7, False),
        ("GreaterThanOrEqualTo", "0.7", 0.7, True), ("GreaterThanOrEqualTo", 0.6, 0.7, False),
        ("LessThan", 0.6, 0.7, True), ("LessThan", 0.7, 0.7, False),
        ("LessThanOrEqualTo", 0.7, 0.7, True), ("LessThanOrEqualTo", 0.8, 0.7, False),
    ],
)
def test_each_comparison_decides_the_branch(runner, kind, left, right, outcome):
    result = runner.run(definition(gate(condition(kind, left, right))))
    assert result.step("CheckAccuracy").metadata == {"Condition": {"Outcome": str(outcome)}}
    assert result.steps[-1].name == ("MakeModel" if outcome else "TooLow")


@pytest.mark.parametrize(
    ("conditions", "outcome"),
    [
        ([{"Type": "Not", "Condition": condition("Equals", 1, 2)}], True),
        ([{"Type": "Not", "Condition": condition("Equals", 1, 1)}], False),
        ([{"Type": "Or", "Conditions": [condition("Equals", 1, 2), condition("Equals", 3, 3)]}], True),
        ([{"Type": "Or", "Conditions": [condition("Equals", 1, 2), condition("Equals", 3, 4)]}], False),
        ([{"Type": "In", "QueryValue": {"Get": "Parameters.Epochs"}, "Values": [1, 2, 3]}], True),
        ([{"Type": "In", "QueryValue": {"Get": "Parameters.Epochs"}, "Values": [1, 3]}], False),
        ([condition("Equals", 1, 1), condition("Equals", 2, 2)], True),  # every condition must hold
        ([condition("Equals", 1, 1), condition("Equals", 2, 3)], False),
    ],
)
def test_not_or_in_and_a_list_of_conditions(runner, conditions, outcome):
    result = runner.run(definition(gate(*conditions)))
    assert result.step("CheckAccuracy").metadata == {"Condition": {"Outcome": str(outcome)}}


def test_an_unemulated_condition_fails_the_condition_step(runner):
    result = runner.run(definition(gate({"Type": "Matches", "LeftValue": 1, "RightValue": 1})))
    assert result.status == "Failed"
    assert result.failure_reason == "Step failure: CheckAccuracy failed: condition type Matches is not emulated locally"


# ---------------------------------------------------------------------------- parameters


def test_parameters_are_typed_from_their_declaration_with_overrides_over_defaults():
    given = [{"Name": "Epochs", "Value": "5"}, {"Name": "Register", "Value": "True"}]
    assert typed_parameters(PARAMETERS, given) == {
        "Accuracy": 0.5, "Floor": 0.7, "Epochs": 5, "Register": True, "ModelData": "s3://artifacts/model.tar.gz"}
    assert typed_parameters(PARAMETERS, [{"Name": "Register", "Value": "false"}])["Register"] is False
    assert typed_parameters([{"Name": "Untyped", "DefaultValue": 3}], []) == {"Untyped": "3"}


@pytest.mark.parametrize(
    ("declared", "given", "message"),
    [
        (PARAMETERS, [{"Name": "Epoch", "Value": "1"}, {"Name": "Lr", "Value": "1"}],
         r"^parameters \['Epoch', 'Lr'\] are not declared by the pipeline \(declared: \['Accuracy', 'Epochs', 'Floor', 'ModelData', 'Register'\]\)$"),
        ([{"Name": "Bucket", "Type": "String"}], [], r"^parameter Bucket has no default and no value was given$"),
        (PARAMETERS, [{"Name": "Epochs", "Value": "two"}], r"^parameter Epochs: 'two' is not a valid Integer: "),
        ([{"Name": "X", "Type": "Decimal", "DefaultValue": 1}], [], r"^parameter X: 1 is not a valid Decimal: "),
    ],
)
def test_bad_parameters_are_refused_by_name(declared, given, message):
    with pytest.raises(StepFailed, match=message):
        typed_parameters(declared, given)


def test_an_execution_with_a_bad_parameter_fails_before_any_step(runner):
    result = runner.run(definition(), Epochs="two")
    assert result.status == "Failed"
    assert result.failure_reason.startswith("invalid parameters: parameter Epochs: 'two' is not a valid Integer")
    assert result.steps == []


# ---------------------------------------------------------------------------- dependencies


def test_steps_run_after_what_they_depend_on_and_a_failure_stops_the_rest(runner):
    first = model_step("First", DependsOn=["Second"])
    second = model_step("Second")
    result = runner.run(definition(first, second, fail_step("Stop"), model_step("After", DependsOn=["Stop"])))
    assert statuses(result) == [("Second", "Succeeded"), ("First", "Succeeded"), ("Stop", "Failed")]
    assert result.failure_reason == "accuracy 0.5 is below 0.7"


def test_a_step_reading_another_steps_property_waits_for_it(runner):
    reader = model_step("Reader")
    reader["Arguments"]["PrimaryContainer"]["Environment"] = {"SOURCE": {"Get": "Steps.Source.ModelName"}}
    result = runner.run(definition(reader, model_step("Source")))
    assert [step.name for step in result.steps] == ["Source", "Reader"]
    reader_model = runner.sagemaker.describe_model(ModelName=result.step_properties["Reader"]["ModelName"])
    assert reader_model["PrimaryContainer"]["Environment"] == {"SOURCE": result.step_properties["Source"]["ModelName"]}


def test_a_dependency_on_a_step_that_does_not_exist_fails_the_execution_before_any_step(runner):
    # The service refuses such a definition at CreatePipeline (moto stores it): the nearest local
    # outcome is an execution that fails, naming the step, before anything runs. A dangling
    # dependency in a branch that would not be taken counts too: the whole definition is refused.
    pipeline = definition(model_step("First"), gate(if_steps=[model_step("Lonely", DependsOn=["Ghost", "Attic"])]))
    result = runner.run(pipeline, Accuracy=0.1)
    assert (result.status, result.steps) == ("Failed", [])
    assert result.failure_reason == "invalid definition: step Lonely depends on steps that do not exist: ['Attic', 'Ghost']"
    assert result.describe()["FailureReason"] == result.failure_reason
    assert runner.sagemaker.list_models()["Models"] == []


def test_an_unemulated_step_type_fails_with_its_name(runner):
    result = runner.run(definition({"Name": "Batch", "Type": "Transform", "Arguments": {}}))
    assert (result.status, result.failure_reason) == ("Failed", "Step failure: Batch failed: step type Transform is not emulated locally")


def test_a_failing_aws_call_fails_the_step_with_the_error(runner):
    bad = model_step("BadModel")
    del bad["Arguments"]["PrimaryContainer"]
    bad["Arguments"]["Unknown"] = 1
    result = runner.run(definition(bad))
    assert result.status == "Failed"
    assert result.failure_reason.startswith("Step failure: BadModel failed: ParamValidationError: ")


# ---------------------------------------------------------------------------- selective execution


def test_a_selective_execution_reruns_the_chosen_steps_on_the_earlier_results(runner):
    pipeline = definition(model_step("Source"), gate(
        condition("Equals", {"Get": "Steps.Source.ModelName"}, {"Get": "Steps.Source.ModelName"}),
        if_steps=[model_step("Deploy")]))
    first = runner.run(pipeline)
    assert first.status == "Succeeded"

    again = runner.run(pipeline, SelectiveExecution(first, frozenset({"Deploy"})))
    assert (again.status, statuses(again)) == ("Succeeded", [("Deploy", "Succeeded")])
    assert again.step_properties["Source"] == first.step_properties["Source"]

    missing = runner.run(pipeline, SelectiveExecution(first, frozenset({"Deploy", "Nowhere"})))
    assert missing.failure_reason == "steps ['Nowhere'] never ran: their dependencies or branch were not taken"


# ---------------------------------------------------------------------------- reports


def test_the_reports_have_the_services_shapes_newest_step_first(runner):
    result = runner.run(definition(), Accuracy=0.1)
    described = result.describe()
    assert described["PipelineExecutionStatus"] == "Failed"
    assert described["FailureReason"] == "accuracy 0.1 is below 0.7"
    assert described["PipelineExecutionArn"] == result.execution_arn
    assert described["CreationTime"] <= described["LastModifiedTime"]
    steps = result.list_steps()["PipelineExecutionSteps"]
    assert [(s["StepName"], s["StepStatus"]) for s in steps] == [("TooLow", "Failed"), ("CheckAccuracy", "Succeeded")]
    assert steps[0]["FailureReason"] == "accuracy 0.1 is below 0.7" and "FailureReason" not in steps[1]
    assert all(s["StartTime"] <= s["EndTime"] and s["AttemptCount"] == 1 for s in steps)
    assert "FailureReason" not in runner.run(definition(), Accuracy=0.9).describe()

    table = io.StringIO()
    print_step_table(result, table)
    lines = table.getvalue().splitlines()
    assert lines[0].split() == ["step", "type", "status", "seconds"]
    assert lines[1].split()[:3] == ["CheckAccuracy", "Condition", "Succeeded"]
    assert lines[2].split()[:3] == ["TooLow", "Fail", "Failed"]
    assert lines[-1] == "execution Failed: accuracy 0.1 is below 0.7"
    assert "--- CheckAccuracy (Condition) started" in runner.echo.getvalue()
    assert "--- TooLow Failed in " in runner.echo.getvalue()


def test_a_job_name_is_stable_unique_per_step_and_fits_63_characters():
    name = job_name("abc123", "Register-RegisterModel")
    assert name == job_name("abc123", "Register-RegisterModel") and name.startswith("pipelines-abc123-Register-RegisterModel-")
    assert job_name("abc123", "A B") != job_name("abc123", "A-B") and job_name("abc123", "A B").startswith("pipelines-abc123-A-B-")
    long = job_name("x" * 12, "S" * 100)
    assert len(long) == 63 and long.startswith("pipelines-xxxxxxxxxxxx-SSS")
