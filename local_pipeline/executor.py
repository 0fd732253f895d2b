"""Executes a SageMaker Pipeline execution from its stored definition, on this machine: the
definition and parameters are read back from the SageMaker API (moto's server here), as the
service reads them, and each step runs as the service would run it.

Emulated: parameters (defaults and overrides, typed), execution variables, `Get` of step
properties, `Std:Join`, `Std:JsonGet` on property files, DependsOn and data dependencies,
Processing and Training jobs (jobs.py), QualityCheck baselining jobs (the analyzer image's
work done by baseline_analyzer.py, the one stand-in), Condition, Fail, RegisterModel
(CreateModelPackage) and Model (CreateModel) steps, and selective execution (re-running chosen steps with the
others' results taken from an earlier execution). Not emulated, and said so where a step uses
it: step caching and retries, Debugger/Profiler rules, several training hosts.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, TextIO

from botocore.exceptions import BotoCoreError, ClientError

from local_pipeline import baseline_analyzer, jobs, s3_io
from local_pipeline.containers import ContainerError
from local_pipeline.expressions import EvaluationContext, ExpressionError, evaluate, step_references

# Condition types and how they compare (left, right).
COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "Equals": lambda left, right: left == right,
    "GreaterThan": lambda left, right: float(left) > float(right),
    "GreaterThanOrEqualTo": lambda left, right: float(left) >= float(right),
    "LessThan": lambda left, right: float(left) < float(right),
    "LessThanOrEqualTo": lambda left, right: float(left) <= float(right),
}
PARAMETER_TYPES: dict[str, Callable[[Any], Any]] = {
    "String": str,
    "Integer": int,
    "Float": float,
    "Boolean": lambda value: value if isinstance(value, bool) else str(value).lower() == "true",
}


class StepFailed(Exception):
    """The step's FailureReason."""


@dataclass
class StepRecord:
    """One entry of ListPipelineExecutionSteps."""

    name: str
    step_type: str
    description: str = ""
    status: str = "Executing"
    start_time: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))
    end_time: dt.datetime | None = None
    failure_reason: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        end = self.end_time or dt.datetime.now(dt.timezone.utc)
        return (end - self.start_time).total_seconds()

    def summary(self) -> dict[str, Any]:
        """The PipelineExecutionStepSummary shape (botocore's sagemaker model)."""
        summary = {
            "StepName": self.name,
            "StepDescription": self.description,
            "StartTime": self.start_time,
            "StepStatus": self.status,
            "Metadata": self.metadata,
            "AttemptCount": 1,
        }
        if self.end_time is not None:
            summary["EndTime"] = self.end_time
        if self.failure_reason:
            summary["FailureReason"] = self.failure_reason
        return summary


@dataclass
class ExecutionResult:
    pipeline_arn: str
    execution_arn: str
    status: str
    failure_reason: str
    steps: list[StepRecord]
    # Describe* fields of every step that succeeded, for Get and for selective execution.
    step_properties: dict[str, dict[str, Any]]
    start_time: dt.datetime
    end_time: dt.datetime

    def step(self, name: str) -> StepRecord:
        for record in self.steps:
            if record.name == name:
                return record
        raise KeyError(f"step {name} did not run in {self.execution_arn}")

    def describe(self) -> dict[str, Any]:
        """The DescribePipelineExecution shape."""
        response = {
            "PipelineArn": self.pipeline_arn,
            "PipelineExecutionArn": self.execution_arn,
            "PipelineExecutionStatus": self.status,
            "CreationTime": self.start_time,
            "LastModifiedTime": self.end_time,
        }
        if self.failure_reason:
            response["FailureReason"] = self.failure_reason
        return response

    def list_steps(self) -> dict[str, Any]:
        """The ListPipelineExecutionSteps shape: the newest step first, as the service sorts."""
        return {"PipelineExecutionSteps": [record.summary() for record in reversed(self.steps)]}


@dataclass(frozen=True)
class SelectiveExecution:
    """Run only `selected_steps`; every other step's results come from `source`."""

    source: ExecutionResult
    selected_steps: frozenset[str]


def typed_parameters(declared: list[Mapping[str, Any]], given: list[Mapping[str, Any]]) -> dict[str, Any]:
    """The execution's parameter values: overrides over defaults, in each declared type."""
    by_name = {parameter["Name"]: parameter for parameter in declared}
    unknown = sorted(item["Name"] for item in given if item["Name"] not in by_name)
    if unknown:
        raise StepFailed(f"parameters {unknown} are not declared by the pipeline (declared: {sorted(by_name)})")
    values = {name: parameter.get("DefaultValue") for name, parameter in by_name.items()}
    values.update({item["Name"]: item["Value"] for item in given})
    typed = {}
    for name, value in values.items():
        if value is None:
            raise StepFailed(f"parameter {name} has no default and no value was given")
        try:
            typed[name] = PARAMETER_TYPES[by_name[name].get("Type", "String")](value)
        except (KeyError, ValueError) as error:
            raise StepFailed(f"parameter {name}: {value!r} is not a valid {by_name[name].get('Type')}: {error}") from None
    return typed


def _all_steps(steps: list[Mapping[str, Any]], parent: str | None = None) -> dict[str, tuple[Mapping[str, Any], str | None]]:
    """Every step of the definition (condition branches included) with its condition step."""
    found: dict[str, tuple[Mapping[str, Any], str | None]] = {}
    for step in steps:
        found[step["Name"]] = (step, parent)
        if step["Type"] == "Condition":
            arguments = step.get("Arguments", {})
            found.update(_all_steps([*arguments.get("IfSteps", []), *arguments.get("ElseSteps", [])], step["Name"]))
    return found


def job_name(execution_id: str, step_name: str) -> str:
    """`pipelines-<execution id>-<step>-<suffix>`, within the 63 characters job names allow."""
    suffix = hashlib.sha256(f"{execution_id}/{step_name}".encode()).hexdigest()[:10]
    stem = "".join(ch if ch.isalnum() else "-" for ch in step_name)[: 63 - len("pipelines--") - len(execution_id) - 11]
    return f"pipelines-{execution_id}-{stem}-{suffix}"


class PipelineExecutor:
    def __init__(self, sagemaker: Any, context: jobs.JobContext, *, echo: TextIO | None = sys.stdout):
        # `sagemaker` reads executions as the service does; steps call AWS as the pipeline's
        # role, through the clients in `context`.
        self.sagemaker = sagemaker
        self.s3 = context.s3
        self.context = context
        self.echo = echo

    def _say(self, text: str) -> None:
        if self.echo is not None:
            print(text, file=self.echo, flush=True)

    def execute(self, execution_arn: str, selective: SelectiveExecution | None = None) -> ExecutionResult:
        described = self.sagemaker.describe_pipeline_execution(PipelineExecutionArn=execution_arn)
        definition = json.loads(
            self.sagemaker.describe_pipeline_definition_for_execution(PipelineExecutionArn=execution_arn)["PipelineDefinition"]
        )
        given = self.sagemaker.list_pipeline_parameters_for_execution(PipelineExecutionArn=execution_arn).get("PipelineParameters", [])
        steps_by_name = _all_steps(definition["Steps"])
        started = dt.datetime.now(dt.timezone.utc)
        execution_id = execution_arn.rsplit("/", 1)[-1]
        records: list[StepRecord] = []
        properties: dict[str, dict[str, Any]] = {}
        # None while the execution has not failed: a Fail step without an ErrorMessage fails it with "".
        failure: str | None = None
        parameters: dict[str, Any] = {}
        try:
            # The service refuses a dependency on a step that is not in the definition at
            # CreatePipeline; moto stores it, so here the execution fails before any step runs.
            for name in steps_by_name:
                self._dependencies(steps_by_name, name)
        except StepFailed as error:
            failure = f"invalid definition: {error}"
        else:
            try:
                parameters = typed_parameters(definition.get("Parameters", []), given)
            except StepFailed as error:
                failure = f"invalid parameters: {error}"
        context = EvaluationContext(
            parameters=parameters,
            execution_variables={
                "PipelineExecutionId": execution_id,
                "PipelineExecutionArn": execution_arn,
                "PipelineName": described["PipelineArn"].rsplit("/", 1)[-1],
                "PipelineArn": described["PipelineArn"],
                "StartDateTime": started.isoformat(),
                "CurrentDateTime": started.isoformat(),
            },
            step_properties=properties,
            read_property_file=lambda step, name: self._read_property_file(steps_by_name[step][0], properties[step], name),
        )
        if selective is not None:
            for name in steps_by_name:
                if name not in selective.selected_steps and name in selective.source.step_properties:
                    properties[name] = selective.source.step_properties[name]
        eligible = [step["Name"] for step in definition["Steps"]]
        done: set[str] = set(properties)
        for name in sorted(done):
            step = steps_by_name[name][0]
            if step["Type"] == "Condition":  # its branch, as the source execution chose it
                branch = step["Arguments"].get("IfSteps" if properties[name]["Outcome"] else "ElseSteps", [])
                eligible.extend(branch_step["Name"] for branch_step in branch)
        while failure is None:
            ready = [name for name in eligible if name not in done and self._dependencies(steps_by_name, name) <= done]
            if not ready:
                break
            name = ready[0]
            done.add(name)
            step = steps_by_name[name][0]
            record = StepRecord(name, step["Type"], step.get("Description", ""))
            records.append(record)
            self._say(f"--- {name} ({step['Type']}) started")
            try:
                properties[name], branch = self._run_step(step, context, record, execution_id)
                record.status = "Succeeded"
                eligible.extend(branch)
            except (StepFailed, jobs.JobFailed, ExpressionError, ContainerError, s3_io.NoS3ObjectsError,
                    s3_io.S3TransferError) as error:
                record.status, record.failure_reason = "Failed", str(error)
            except (ClientError, BotoCoreError) as error:
                record.status, record.failure_reason = "Failed", f"{type(error).__name__}: {error}"
            record.end_time = dt.datetime.now(dt.timezone.utc)
            self._say(f"--- {name} {record.status} in {record.seconds:.1f} s"
                      + (f": {record.failure_reason}" if record.failure_reason else ""))
            if record.status == "Failed":
                failure = (record.failure_reason if step["Type"] == "Fail"
                           else f"Step failure: {name} failed: {record.failure_reason}")
        pending = [name for name in eligible if name not in done]
        if selective is not None:
            pending += sorted(selective.selected_steps - done - set(pending))
        if pending and failure is None:
            failure = f"steps {pending} never ran: their dependencies or branch were not taken"
        return ExecutionResult(
            pipeline_arn=described["PipelineArn"], execution_arn=execution_arn,
            status="Succeeded" if failure is None else "Failed", failure_reason=failure or "", steps=records,
            step_properties=properties, start_time=started, end_time=dt.datetime.now(dt.timezone.utc),
        )

    @staticmethod
    def _dependencies(steps_by_name: Mapping[str, tuple[Mapping[str, Any], str | None]], name: str) -> set[str]:
        step, parent = steps_by_name[name]
        depends = set(step.get("DependsOn", [])) | step_references(step.get("Arguments", {}))
        if step["Type"] == "Condition":
            # Its Arguments hold its branches too: what its own branch steps read is theirs to wait for.
            depends -= {branch for branch, (_, owner) in steps_by_name.items() if owner == name}
        if parent is not None:
            depends.add(parent)
        unknown = depends - set(steps_by_name)
        if unknown:
            raise StepFailed(f"step {name} depends on steps that do not exist: {sorted(unknown)}")
        return depends

    def _read_property_file(self, step: Mapping[str, Any], step_properties: Mapping[str, Any], name: str) -> Any:
        files = {item["PropertyFileName"]: item for item in step.get("PropertyFiles", [])}
        if name not in files:
            raise ExpressionError(f"step {step['Name']} declares no property file {name!r} (declared: {sorted(files)})")
        spec = files[name]
        outputs = {item["OutputName"]: item for item in step_properties.get("ProcessingOutputConfig", {}).get("Outputs", [])}
        if spec["OutputName"] not in outputs:
            raise ExpressionError(f"property file {name}: step {step['Name']} has no output {spec['OutputName']!r}")
        uri = f"{outputs[spec['OutputName']]['S3Output']['S3Uri'].rstrip('/')}/{spec['FilePath']}"
        try:
            return s3_io.read_json_object(self.s3, uri)
        except ClientError as error:
            raise ExpressionError(f"property file {name}: cannot read {uri}: {error}") from None

    def _run_step(self, step: Mapping[str, Any], context: EvaluationContext, record: StepRecord,
                  execution_id: str) -> tuple[dict[str, Any], list[str]]:
        kind = step["Type"]
        name = step["Name"]
        if kind == "Condition":
            arguments = step["Arguments"]
            outcome = all(self._condition(condition, context) for condition in arguments["Conditions"])
            record.metadata = {"Condition": {"Outcome": "True" if outcome else "False"}}
            branch = arguments.get("IfSteps" if outcome else "ElseSteps", [])
            return {"Outcome": outcome}, [branch_step["Name"] for branch_step in branch]
        arguments = evaluate(step.get("Arguments", {}), context)
        if kind == "Fail":
            message = str(arguments.get("ErrorMessage", ""))
            record.metadata = {"Fail": {"ErrorMessage": message}}
            raise StepFailed(message)
        if kind == "Processing":
            job = job_name(execution_id, name)
            record.metadata = {"ProcessingJob": {"Arn": self.context.job_arn("processing-job", job)}}
            return jobs.run_processing_job(self.context, job, arguments), []
        if kind == "Training":
            job = job_name(execution_id, name)
            record.metadata = {"TrainingJob": {"Arn": self.context.job_arn("training-job", job)}}
            for unemulated in ("DebugRuleConfigurations", "ProfilerRuleConfigurations"):
                if arguments.get(unemulated):
                    self._say(f"    {name}: {unemulated} are not evaluated locally "
                              f"({', '.join(rule['RuleConfigurationName'] for rule in arguments[unemulated])})")
            return jobs.run_training_job(self.context, job, arguments), []
        if kind == "QualityCheck":
            return self._quality_check(step, arguments, record, execution_id), []
        if kind == "RegisterModel":
            arn = self.context.sagemaker.create_model_package(**arguments)["ModelPackageArn"]
            record.metadata = {"RegisterModel": {"Arn": arn}}
            return {"ModelPackageArn": arn}, []
        if kind == "Model":
            model_name = job_name(execution_id, name)
            arn = self.context.sagemaker.create_model(ModelName=model_name, **arguments)["ModelArn"]
            record.metadata = {"Model": {"Arn": arn}}
            return {"ModelName": model_name, "ModelArn": arn}, []
        raise StepFailed(f"step type {kind} is not emulated locally")

    def _quality_check(self, step: Mapping[str, Any], arguments: Mapping[str, Any], record: StepRecord,
                       execution_id: str) -> dict[str, Any]:
        """A baselining job (the analyzer's work done by baseline_analyzer.py, docs/local-run.md) and
        the step's properties as the service sets them for SkipCheck with RegisterNewBaseline."""
        name = step["Name"]
        if not step.get("SkipCheck") or not step.get("RegisterNewBaseline"):
            # The check against the latest approved package's baseline is the analyzer's
            # monitoring mode, which the stand-in does not compute.
            raise StepFailed(f"step {name}: only SkipCheck with RegisterNewBaseline is emulated locally")
        job = job_name(execution_id, name)
        result = jobs.run_baselining_job(self.context, job, arguments)
        output = result["OutputS3Uri"].rstrip("/")
        baselines = {
            "CalculatedBaselineStatistics": f"{output}/{baseline_analyzer.STATISTICS_FILE}",
            "CalculatedBaselineConstraints": f"{output}/{baseline_analyzer.CONSTRAINTS_FILE}",
        }
        baselines.update({"BaselineUsedForDriftCheckStatistics": baselines["CalculatedBaselineStatistics"],
                          "BaselineUsedForDriftCheckConstraints": baselines["CalculatedBaselineConstraints"]})
        # QualityCheckStepMetadata, as ListPipelineExecutionSteps reports it.
        record.metadata = {"QualityCheck": {
            "CheckType": step["CheckType"], "ModelPackageGroupName": step.get("ModelPackageGroupName", ""),
            "CheckJobArn": result["ProcessingJobArn"], "SkipCheck": True, "RegisterNewBaseline": True, **baselines}}
        return {**result, **baselines}

    def _condition(self, condition: Mapping[str, Any], context: EvaluationContext) -> bool:
        kind = condition["Type"]
        if kind == "Not":
            return not self._condition(condition["Condition"], context)
        if kind == "Or":
            return any(self._condition(item, context) for item in condition["Conditions"])
        if kind == "In":
            value = evaluate(condition["QueryValue"], context)
            return value in evaluate(condition["Values"], context)
        if kind not in COMPARISONS:
            raise StepFailed(f"condition type {kind} is not emulated locally")
        left, right = evaluate(condition["LeftValue"], context), evaluate(condition["RightValue"], context)
        return COMPARISONS[kind](left, right)


def print_step_table(result: ExecutionResult, out: TextIO = sys.stdout) -> None:
    """The execution's steps as `list-pipeline-execution-steps` reports them, oldest first."""
    print(f"{'step':<28} {'type':<14} {'status':<10} {'seconds':>8}", file=out)
    for record in result.steps:
        print(f"{record.name:<28} {record.step_type:<14} {record.status:<10} {record.seconds:>8.1f}", file=out)
    print(f"execution {result.status}" + (f": {result.failure_reason}" if result.failure_reason else ""), file=out)
