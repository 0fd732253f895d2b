"""The local executor on small hand-written definitions (no jobs): parameters, conditions and
their branches, Fail, Model and RegisterModel steps, dependencies, selective execution and the
reports, each read back from moto as the service would answer them. The full pipeline runs in
test_pipeline_execution.py (slow)."""

from __future__ import annotations

import io
import json
import re
import uuid

import boto3
import pytest

from local_pipeline.executor import PipelineExecutor, SelectiveExecution, StepFailed, job_name, print_step_table, typed_parameters
from local_pipeline import containers
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
        ([{"Type": "Not", "Condition": condition("Equals", {"Get": "Parameters.Epochs"}, 2)}], False),
        ([{"Type": "Or", "Conditions": [condition("Equals", 1, 2), condition("Equals", 3, 3)]}], True),
        ([{"Type": "Or", "Conditions": [condition("Equals", 1, 2), condition("Equals", {"Get": "Parameters.Epochs"}, 2)]}], True),
        ([{"Type": "Or", "Conditions": [condition("Equals", 1, 2), condition("Equals", 3, 4)]}], False),
        ([{"Type": "In", "QueryValue": {"Get": "Parameters.Epochs"}, "Values": [1, 2, 3]}], True),
        ([{"Type": "In", "QueryValue": {"Get": "Parameters.Epochs"}, "Values": [1, 3]}], False),
        ([{"Type": "In", "QueryValue": 2, "Values": [1, {"Get": "Parameters.Epochs"}]}], True),
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


# ---------------------------------------------------------------------------- jobs, property files and registration

BUCKET = "artifacts"
# A repository with a parity env (containers.PARITY_ENV_BY_REPOSITORY): its jobs run here.
PARITY_IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-training:2.1.0-gpu-py310"
ANALYZER_IMAGE = "156813124566.dkr.ecr.us-east-1.amazonaws.com/sagemaker-model-monitor-analyzer"


def _has_parity_env(image: str) -> bool:
    try:
        containers.parity_image(image)
    except containers.ContainerError:
        return False
    return True


runs_a_job = pytest.mark.skipif(not _has_parity_env(PARITY_IMAGE),
                                reason="the training image's parity env is missing: `make setup-parity` builds it")
WRITE_REPORT = ["sh", "-c", "echo '{\"metrics\": {\"accuracy\": 0.8}}' > /opt/ml/processing/evaluation/report.json"]


def processing_step(name: str = "Evaluate", command=WRITE_REPORT, image: str = PARITY_IMAGE, **extra) -> dict:
    # The output URI ends in "X/" (a "/" as a Std:Join of a prefix may leave): only the "/" is
    # stripped before the property file's path is added.
    return {"Name": name, "Type": "Processing", **extra, "Arguments": {
        "AppSpecification": {"ImageUri": image, "ContainerEntrypoint": list(command)},
        "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1}},
        "ProcessingOutputConfig": {"Outputs": [{"OutputName": "evaluation", "S3Output": {
            "S3Uri": f"s3://{BUCKET}/evaluation/run-X/", "LocalPath": "/opt/ml/processing/evaluation", "S3UploadMode": "EndOfJob"}}]},
        "RoleArn": ROLE_ARN}}


def report_file(output: str = "evaluation", path: str = "report.json") -> dict:
    return {"PropertyFileName": "Report", "OutputName": output, "FilePath": path}


def accuracy_from(property_file: str = "Report") -> dict:
    return {"Std:JsonGet": {"PropertyFile": {"Get": f"Steps.Evaluate.PropertyFiles.{property_file}"}, "Path": "metrics.accuracy"}}


@pytest.fixture
def bucket_runner(runner) -> Runner:
    runner.context.s3.create_bucket(Bucket=BUCKET)
    return runner


def execution_id(result) -> str:
    return result.execution_arn.rsplit("/", 1)[-1]


@runs_a_job
@pytest.mark.parametrize(("floor", "last_step"), [(0.75, "MakeModel"), (0.85, "TooLow")])
def test_the_gate_reads_the_property_file_the_processing_job_wrote(bucket_runner, floor, last_step):
    pipeline = definition(processing_step(PropertyFiles=[report_file()]), gate(condition("GreaterThanOrEqualTo", accuracy_from(), floor)))
    result = bucket_runner.run(pipeline)

    assert [name for name, _ in statuses(result)] == ["Evaluate", "CheckAccuracy", last_step]
    assert result.step("Evaluate").status == "Succeeded"
    job = job_name(execution_id(result), "Evaluate")
    assert bucket_runner.sagemaker.describe_processing_job(ProcessingJobName=job)["ProcessingJobName"] == job
    assert result.step("Evaluate").metadata == {"ProcessingJob": {"Arn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:processing-job/{job.lower()}"}}
    report = bucket_runner.context.s3.get_object(Bucket=BUCKET, Key="evaluation/run-X/report.json")["Body"].read()
    assert json.loads(report) == {"metrics": {"accuracy": 0.8}}
    assert result.step_properties["Evaluate"]["ProcessingJobStatus"] == "Completed"


@runs_a_job
@pytest.mark.parametrize(
    ("property_files", "outputs", "read", "reason"),
    [
        ([report_file()], True, "Other", "step Evaluate declares no property file 'Other' (declared: ['Report'])"),
        ([], True, "Report", "step Evaluate declares no property file 'Report' (declared: [])"),
        ([report_file(output="metrics")], True, "Report", "property file Report: step Evaluate has no output 'metrics'"),
        ([report_file()], False, "Report", "property file Report: step Evaluate has no output 'evaluation'"),
        ([report_file(path="missing.json")], True, "Report",
         "property file Report: cannot read s3://artifacts/evaluation/run-X/missing.json: An error occurred (NoSuchKey)"),
    ],
)
def test_a_property_file_that_cannot_be_read_fails_the_step_that_reads_it(bucket_runner, property_files, outputs, read, reason):
    evaluate = processing_step(command=["true"], **({"PropertyFiles": property_files} if property_files else {}))
    if not outputs:
        del evaluate["Arguments"]["ProcessingOutputConfig"]
    pipeline = definition(evaluate, gate(condition("GreaterThanOrEqualTo", accuracy_from(read), 0.5)))
    result = bucket_runner.run(pipeline)
    assert statuses(result) == [("Evaluate", "Succeeded"), ("CheckAccuracy", "Failed")]
    assert result.failure_reason.startswith(f"Step failure: CheckAccuracy failed: {reason}")


@runs_a_job
def test_a_job_that_exits_non_zero_fails_its_step_with_the_jobs_reason(bucket_runner):
    failing = ["sh", "-c", "mkdir -p /opt/ml/output && echo 'no reviews to score' > /opt/ml/output/message; exit 3"]
    result = bucket_runner.run(definition(processing_step(command=failing), model_step(DependsOn=["Evaluate"])))
    assert statuses(result) == [("Evaluate", "Failed")]
    assert result.failure_reason == "Step failure: Evaluate failed: AlgorithmError: exit code 3: no reviews to score"


@runs_a_job
def test_a_job_whose_input_prefix_is_empty_fails_before_it_runs(bucket_runner):
    step = processing_step(command=["sh", "-c", "echo ran > /opt/ml/processing/evaluation/ran"])
    step["Arguments"]["ProcessingInputs"] = [{"InputName": "test", "S3Input": {
        "S3Uri": f"s3://{BUCKET}/nothing-here", "LocalPath": "/opt/ml/processing/test",
        "S3DataType": "S3Prefix", "S3InputMode": "File"}}]
    result = bucket_runner.run(definition(step))
    assert result.step("Evaluate").failure_reason == (
        f'ClientError: No S3 objects found under S3 URL "s3://{BUCKET}/nothing-here" given in input data source')
    assert "Contents" not in bucket_runner.context.s3.list_objects_v2(Bucket=BUCKET, Prefix="evaluation/")


def test_a_processing_or_training_step_whose_image_has_no_local_twin_fails_after_its_job_is_created(runner):
    rules = [{"RuleConfigurationName": "LossNotDecreasing", "RuleEvaluatorImage": IMAGE},
             {"RuleConfigurationName": "Overfit", "RuleEvaluatorImage": IMAGE}]
    training = {"Name": "Train", "Type": "Training", "Arguments": {
        "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        "RoleArn": ROLE_ARN, "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/models"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 60},
        "DebugRuleConfigurations": rules,
        "ProfilerRuleConfigurations": [{"RuleConfigurationName": "ProfilerReport", "RuleEvaluatorImage": IMAGE}]}}
    trained = runner.run(definition(training))
    job = job_name(execution_id(trained), "Train")
    assert runner.sagemaker.describe_training_job(TrainingJobName=job)["TrainingJobName"] == job
    assert trained.step("Train").metadata == {"TrainingJob": {"Arn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/{job.lower()}"}}
    assert trained.failure_reason.startswith(f"Step failure: Train failed: image {IMAGE} has no local parity environment")
    echoed = runner.echo.getvalue()
    assert "    Train: DebugRuleConfigurations are not evaluated locally (LossNotDecreasing, Overfit)\n" in echoed
    assert "    Train: ProfilerRuleConfigurations are not evaluated locally (ProfilerReport)\n" in echoed

    processed = runner.run(definition(processing_step(image=IMAGE)))
    job = job_name(execution_id(processed), "Evaluate")
    assert runner.sagemaker.describe_processing_job(ProcessingJobName=job)["ProcessingJobName"] == job
    assert processed.failure_reason.startswith(f"Step failure: Evaluate failed: image {IMAGE} has no local parity environment")


def test_a_training_step_without_rules_says_nothing_of_them(runner):
    training = {"Name": "Train", "Type": "Training", "Arguments": {
        "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        "RoleArn": ROLE_ARN, "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/models"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 60}, "DebugRuleConfigurations": []}}
    result = runner.run(definition(training))
    assert result.step("Train").status == "Failed"
    assert "not evaluated locally" not in runner.echo.getvalue()


def registration(group: str) -> dict:
    return {"Name": "Register", "Type": "RegisterModel", "Arguments": {
        "ModelPackageGroupName": group, "ModelApprovalStatus": "PendingManualApproval",
        "InferenceSpecification": {"Containers": [{"Image": IMAGE, "ModelDataUrl": {"Get": "Parameters.ModelData"}}],
                                   "SupportedContentTypes": ["application/json"],
                                   "SupportedResponseMIMETypes": ["application/json"]}}}


def test_a_register_model_step_creates_the_package_in_its_group(runner):
    runner.sagemaker.create_model_package_group(ModelPackageGroupName="reviews")
    result = runner.run(definition(registration("reviews")), ModelData="s3://artifacts/sealed.tar.gz")

    (package,) = runner.sagemaker.list_model_packages(ModelPackageGroupName="reviews")["ModelPackageSummaryList"]
    described = runner.sagemaker.describe_model_package(ModelPackageName=package["ModelPackageArn"])
    assert described["InferenceSpecification"]["Containers"][0]["ModelDataUrl"] == "s3://artifacts/sealed.tar.gz"
    assert result.step("Register").metadata == {"RegisterModel": {"Arn": package["ModelPackageArn"]}}
    assert result.step_properties["Register"] == {"ModelPackageArn": package["ModelPackageArn"]}


def test_a_service_error_fails_the_step_with_its_type_and_message(runner):
    result = runner.run(definition(registration("no-such-group")))
    assert statuses(result) == [("Register", "Failed")]
    assert result.failure_reason.startswith(
        "Step failure: Register failed: ClientError: An error occurred (ValidationException) when calling the CreateModelPackage operation")


def quality_check(check_type: str, environment: dict, **flags) -> dict:
    # The output prefix ends in "QX/": only the "/" is stripped before the baselines' file names.
    output = {"OutputName": "quality_check_output", "S3Output": {
        "S3Uri": {"Std:Join": {"On": "/", "Values": ["s3:/", BUCKET, "baselines", {"Get": "Execution.PipelineExecutionId"}, "QX", ""]}},
        "LocalPath": "/opt/ml/processing/output", "S3UploadMode": "EndOfJob"}}
    return {"Name": "Baseline", "Type": "QualityCheck", "CheckType": check_type, **flags, "Arguments": {
        "AppSpecification": {"ImageUri": ANALYZER_IMAGE},
        "Environment": {"dataset_format": '{"json": {"lines": true}}', "dataset_source": "/opt/ml/processing/input/baseline",
                        "output_path": "/opt/ml/processing/output", **environment},
        "ProcessingInputs": [{"InputName": "baseline", "S3Input": {
            "S3Uri": f"s3://{BUCKET}/predictions", "LocalPath": "/opt/ml/processing/input/baseline",
            "S3DataType": "S3Prefix", "S3InputMode": "File"}}],
        "ProcessingOutputConfig": {"Outputs": [output]},
        "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.c5.xlarge", "VolumeSizeInGB": 1}},
        "RoleArn": ROLE_ARN}}


MODEL_QUALITY = {"analysis_type": "MODEL_QUALITY", "problem_type": "MulticlassClassification",
                 "inference_attribute": "predicted_label", "ground_truth_attribute": "label"}


def put_predictions(runner) -> None:
    lines = [{"label": 0, "predicted_label": 0}, {"label": 1, "predicted_label": 1}, {"label": 1, "predicted_label": 0}]
    runner.context.s3.put_object(Bucket=BUCKET, Key="predictions/part-0.jsonl", Body="".join(json.dumps(line) + "\n" for line in lines))


def test_a_quality_check_baselines_its_dataset_and_reports_the_baselines_as_the_service_does(bucket_runner):
    put_predictions(bucket_runner)
    check = quality_check("MODEL_QUALITY", MODEL_QUALITY, SkipCheck=True, RegisterNewBaseline=True, ModelPackageGroupName="reviews")
    reader = model_step("Reader")
    reader["Arguments"]["PrimaryContainer"]["Environment"] = {"CONSTRAINTS": {"Get": "Steps.Baseline.BaselineUsedForDriftCheckConstraints"}}
    result = bucket_runner.run(definition(check, reader))

    assert statuses(result) == [("Baseline", "Succeeded"), ("Reader", "Succeeded")]
    run_id = execution_id(result)
    job = job_name(run_id, "Baseline")
    prefix = f"s3://{BUCKET}/baselines/{run_id}/QX"
    statistics, constraints = f"{prefix}/statistics.json", f"{prefix}/constraints.json"
    assert result.step("Baseline").metadata == {"QualityCheck": {
        "CheckType": "MODEL_QUALITY", "ModelPackageGroupName": "reviews",
        "CheckJobArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:processing-job/{job.lower()}",
        "SkipCheck": True, "RegisterNewBaseline": True,
        "CalculatedBaselineStatistics": statistics, "CalculatedBaselineConstraints": constraints,
        "BaselineUsedForDriftCheckStatistics": statistics, "BaselineUsedForDriftCheckConstraints": constraints}}
    assert bucket_runner.sagemaker.describe_processing_job(ProcessingJobName=job)["ProcessingJobName"] == job
    written = json.loads(bucket_runner.context.s3.get_object(Bucket=BUCKET, Key=f"baselines/{run_id}/QX/statistics.json")["Body"].read())
    assert written["multiclass_classification_metrics"]["accuracy"]["value"] == pytest.approx(2 / 3)
    reader_model = bucket_runner.sagemaker.describe_model(ModelName=result.step_properties["Reader"]["ModelName"])
    assert reader_model["PrimaryContainer"]["Environment"] == {"CONSTRAINTS": constraints}
    assert result.step_properties["Baseline"]["CalculatedBaselineStatistics"] == statistics


def test_a_data_quality_check_outside_a_package_group_reports_an_empty_group(bucket_runner):
    put_predictions(bucket_runner)
    result = bucket_runner.run(definition(quality_check("DATA_QUALITY", {}, SkipCheck=True, RegisterNewBaseline=True)))
    metadata = result.step("Baseline").metadata["QualityCheck"]
    assert (result.status, metadata["CheckType"], metadata["ModelPackageGroupName"]) == ("Succeeded", "DATA_QUALITY", "")


@pytest.mark.parametrize(("skip_check", "register"), [(False, True), (True, False), (None, True)])
def test_a_quality_check_against_an_earlier_baseline_is_refused_before_its_job(bucket_runner, skip_check, register):
    flags = {"RegisterNewBaseline": register} | ({} if skip_check is None else {"SkipCheck": skip_check})
    result = bucket_runner.run(definition(quality_check("MODEL_QUALITY", MODEL_QUALITY, **flags)))
    assert result.failure_reason == (
        "Step failure: Baseline failed: step Baseline: only SkipCheck with RegisterNewBaseline is emulated locally")
    assert bucket_runner.sagemaker.list_processing_jobs()["ProcessingJobSummaries"] == []


# ---------------------------------------------------------------------------- execution variables, branches and reports


def test_execution_variables_name_this_execution_and_its_pipeline(runner):
    reader = model_step("Reader")
    reader["Arguments"]["PrimaryContainer"]["Environment"] = {
        variable.upper(): {"Get": f"Execution.{variable}"}
        for variable in ("PipelineExecutionId", "PipelineExecutionArn", "PipelineName", "PipelineArn",
                         "StartDateTime", "CurrentDateTime")}
    result = runner.run(definition(reader))

    pipeline_name = result.pipeline_arn.rsplit("/", 1)[-1]
    pipeline = runner.sagemaker.describe_pipeline(PipelineName=pipeline_name)
    model = runner.sagemaker.describe_model(ModelName=result.step_properties["Reader"]["ModelName"])
    assert model["PrimaryContainer"]["Environment"] == {
        "PIPELINEEXECUTIONID": execution_id(result), "PIPELINEEXECUTIONARN": result.execution_arn,
        "PIPELINENAME": pipeline["PipelineName"], "PIPELINEARN": pipeline["PipelineArn"],
        "STARTDATETIME": result.start_time.isoformat(), "CURRENTDATETIME": result.start_time.isoformat()}
    assert result.describe()["PipelineArn"] == pipeline["PipelineArn"]


def test_a_branch_step_may_read_another_step_of_its_branch(runner):
    second = model_step("Second")
    second["Arguments"]["PrimaryContainer"]["Environment"] = {"FIRST": {"Get": "Steps.First.ModelName"}}
    result = runner.run(definition(gate(if_steps=[second, model_step("First")])), Accuracy=0.9)
    assert statuses(result) == [("CheckAccuracy", "Succeeded"), ("First", "Succeeded"), ("Second", "Succeeded")]


def test_a_condition_waits_for_the_steps_its_conditions_read(runner):
    same = condition("Equals", {"Get": "Steps.Source.ModelName"}, {"Get": "Steps.Source.ModelName"})
    result = runner.run(definition(gate(same), model_step("Source")))
    assert [name for name, _ in statuses(result)] == ["Source", "CheckAccuracy", "MakeModel"]


def test_a_step_that_waits_on_a_branch_not_taken_never_runs_and_fails_the_execution(runner):
    after = model_step("After", DependsOn=["MakeModel"])
    result = runner.run(definition(gate(else_steps=[]), after), Accuracy=0.1)
    assert statuses(result) == [("CheckAccuracy", "Succeeded")]
    assert (result.status, result.failure_reason) == (
        "Failed", "steps ['After'] never ran: their dependencies or branch were not taken")


def test_a_selective_execution_follows_the_branch_the_source_execution_took(runner):
    pipeline = definition(model_step("Source"), gate(
        condition("Equals", {"Get": "Steps.Source.ModelName"}, "another model"),
        if_steps=[model_step("Deploy")], else_steps=[model_step("Report")]))
    first = runner.run(pipeline)
    assert [name for name, _ in statuses(first)] == ["Source", "CheckAccuracy", "Report"]

    again = runner.run(pipeline, SelectiveExecution(first, frozenset({"Report"})))
    assert (again.status, statuses(again)) == ("Succeeded", [("Report", "Succeeded")])
    assert again.step_properties["CheckAccuracy"] == {"Outcome": False}


@pytest.mark.parametrize("arguments", [{"Arguments": {}}, {}])
def test_a_fail_step_without_a_message_still_fails_the_execution_and_stops_it(runner, arguments):
    # ErrorMessage is optional (FailStep's error_message defaults to None); reaching the step fails the run all the same.
    stop = {"Name": "Stop", "Type": "Fail", **arguments}
    result = runner.run(definition(stop, model_step("After", DependsOn=["Stop"])))
    assert statuses(result) == [("Stop", "Failed")]
    assert result.step("Stop").metadata == {"Fail": {"ErrorMessage": ""}}
    assert (result.status, result.failure_reason) == ("Failed", "")
    assert "FailureReason" not in result.describe()
    assert runner.sagemaker.list_models()["Models"] == []


def test_each_step_reports_its_description_metadata_and_duration(runner):
    described = model_step("MakeModel", Description="The serving model of this run")
    result = runner.run(definition(described))
    (summary,) = result.list_steps()["PipelineExecutionSteps"]
    record = result.step("MakeModel")
    assert summary == {"StepName": "MakeModel", "StepDescription": "The serving model of this run",
                       "StartTime": record.start_time, "EndTime": record.end_time, "StepStatus": "Succeeded",
                       "Metadata": record.metadata, "AttemptCount": 1}
    assert record.seconds == (record.end_time - record.start_time).total_seconds() >= 0
    assert result.describe() == {"PipelineArn": result.pipeline_arn, "PipelineExecutionArn": result.execution_arn,
                                 "PipelineExecutionStatus": "Succeeded", "CreationTime": result.start_time,
                                 "LastModifiedTime": result.end_time}
    undescribed = runner.run(definition(model_step("Plain")))
    assert undescribed.list_steps()["PipelineExecutionSteps"][0]["StepDescription"] == ""

    with pytest.raises(KeyError, match="step Deploy did not run in " + result.execution_arn):
        result.step("Deploy")


def test_the_step_table_lines_up_name_type_status_and_seconds(runner):
    result = runner.run(definition(), Accuracy=0.9)
    table = io.StringIO()
    print_step_table(result, table)
    rows = [f"{record.name:<28} {record.step_type:<14} {record.status:<10} {record.seconds:>8.1f}" for record in result.steps]
    assert table.getvalue() == "\n".join(
        [f"{'step':<28} {'type':<14} {'status':<10} {'seconds':>8}", *rows, "execution Succeeded"]) + "\n"


def test_without_an_echo_the_executor_prints_nothing(moto_endpoint, tmp_path, capsys):
    runner = Runner(moto_endpoint, tmp_path)
    name = f"p-{uuid.uuid4().hex[:12]}"
    runner.sagemaker.create_pipeline(PipelineName=name, PipelineDefinition=json.dumps(definition()), RoleArn=ROLE_ARN)
    arn = runner.sagemaker.start_pipeline_execution(PipelineName=name, ClientRequestToken=uuid.uuid4().hex)["PipelineExecutionArn"]
    capsys.readouterr()
    result = PipelineExecutor(runner.sagemaker, runner.context, echo=None).execute(arn)
    assert result.status == "Failed"
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(("accuracy", "branch"), [(0.9, "IfSteps"), (0.1, "ElseSteps")])
def test_a_condition_without_the_branch_it_takes_ends_the_run_there(runner, accuracy, branch):
    # IfSteps and ElseSteps are each optional in a definition: a missing one is an empty branch.
    gate_step = gate()
    del gate_step["Arguments"][branch]
    result = runner.run(definition(gate_step), Accuracy=accuracy)
    assert (result.status, statuses(result)) == ("Succeeded", [("CheckAccuracy", "Succeeded")])
    assert runner.sagemaker.list_models()["Models"] == []


def test_a_pipeline_that_declares_no_parameters_runs(runner):
    stop = {"Name": "Stop", "Type": "Fail", "Arguments": {"ErrorMessage": {"Get": "Execution.PipelineExecutionId"}}}
    result = runner.run({"Version": "2020-12-01", "Steps": [stop]})
    assert (result.status, result.failure_reason) == ("Failed", execution_id(result))


def test_the_progress_lines_say_each_steps_outcome_and_only_a_failures_reason(runner):
    runner.run(definition(), Accuracy=0.1)
    lines = runner.echo.getvalue().splitlines()
    assert (len(lines), lines[0], lines[2]) == (4, "--- CheckAccuracy (Condition) started", "--- TooLow (Fail) started")
    assert re.fullmatch(r"--- CheckAccuracy Succeeded in \d+\.\d s", lines[1])
    assert re.fullmatch(r"--- TooLow Failed in \d+\.\d s: accuracy 0\.1 is below 0\.7", lines[3])


def test_a_selective_execution_reports_the_steps_its_source_left_unreachable(runner):
    # The source took the condition's missing else-branch, so After (waiting on Deploy) never ran there or here.
    pipeline = definition(model_step("Source"), gate(if_steps=[model_step("Deploy")]), model_step("After", DependsOn=["Deploy"]))
    del pipeline["Steps"][1]["Arguments"]["ElseSteps"]
    first = runner.run(pipeline, Accuracy=0.1)
    assert [name for name, _ in statuses(first)] == ["Source", "CheckAccuracy"]

    again = runner.run(pipeline, SelectiveExecution(first, frozenset({"Source"})), Accuracy=0.1)
    assert statuses(again) == [("Source", "Succeeded")]
    assert (again.status, again.failure_reason) == (
        "Failed", "steps ['After'] never ran: their dependencies or branch were not taken")
