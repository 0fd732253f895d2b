"""Every environment's definition against the published pipeline-definition JSON schema
(../shared/schemas/pipeline-definition.schema.json).

The schema (last changed 2025-04-03) lags the service and the SDK: it has no Std:Join or
Std:JsonGet as argument values, no PropertyFiles, no ProfilerConfig, no ModelApprovalStatus
and no run-time ModelDataUrl, all of which the requirements need. So the test validates
twice: strictly, where every error must be one of the documented gaps below (a new kind of
error fails), and against the schema extended with exactly those gaps, which must pass. A gap
that no longer occurs fails too, so the list shrinks when the schema catches up.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import pytest

from definition_helpers import all_steps, generated_definition_text

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = PROJECT_ROOT / ".." / "shared" / "schemas" / "pipeline-definition.schema.json"
STEP_SCHEMA_BY_TYPE = {
    "Processing": "ProcessingStep",
    "Training": "TrainingStep",
    "Condition": "ConditionStep",
    "RegisterModel": "RegisterModelStep",
    "Model": "CreateModelStep",
    "Fail": "FailStep",
    "QualityCheck": "QualityCheckStep",
}


@dataclass(frozen=True)
class SchemaGap:
    """Something the service and SDK accept that the published schema does not know."""

    reason: str
    definition: str  # the schema definition it concerns
    path_suffix: tuple  # where in a step the error is reported (trailing path elements)


def _is_function(value) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in ("Std:Join", "Std:JsonGet")


KNOWN_GAPS = (
    SchemaGap("Std:Join/Std:JsonGet as a string argument (numeric parameters, execution-id "
              "paths, the fail message, the model-metrics URI)", "StringArgumentValue", ()),
    SchemaGap("AppManaged on processing inputs and outputs (the SDK always writes it)", "ProcessingArgs", ("AppManaged",)),
    SchemaGap("PropertyFiles on a processing step (the accuracy condition reads one)", "ProcessingStep", ("PropertyFiles",)),
    SchemaGap("ProfilerConfig and ProfilerRuleConfigurations on a training step", "TrainingStep", ("ProfilerConfig",)),
    SchemaGap("Environment of a registered model's container (SAGEMAKER_PROGRAM...)", "RegisterModelStep", ("Environment",)),
    SchemaGap("ModelApprovalStatus and SkipModelValidation of a registered model", "RegisterModelStep", ("ModelApprovalStatus",)),
    SchemaGap("DriftCheckBaselines of a registered model (CreateModelPackage takes them)", "RegisterModelStep",
              ("DriftCheckBaselines",)),
    SchemaGap("FailOnViolation of a quality check step (the SDK always writes it)", "QualityCheckStep", ("FailOnViolation",)),
    SchemaGap("a property-file value (Std:JsonGet of the seal report) as a model's ModelDataUrl",
              "ContainerDefinition", ("ModelDataUrl",)),
)


def _load_schema() -> dict:
    if not SCHEMA_PATH.is_file():
        pytest.fail(f"schema not found at {SCHEMA_PATH.resolve()} (expected beside the repository in shared/)")
    return json.loads(SCHEMA_PATH.read_text())


def _extended_schema(schema: dict) -> dict:
    """The published schema plus exactly the KNOWN_GAPS."""
    extended = copy.deepcopy(schema)
    definitions = extended["definitions"]
    function = {"type": "object", "minProperties": 1, "maxProperties": 1,
                "propertyNames": {"enum": ["Std:Join", "Std:JsonGet"]}}
    for name in ("StringArgumentValue", "IntegerArgumentValue", "FloatArgumentValue", "BooleanArgumentValue"):
        definitions[name]["oneOf"].append(function)
    for io in ("ProcessingInputs",):
        definitions["ProcessingArgs"]["properties"][io]["items"]["properties"]["AppManaged"] = {"type": "boolean"}
    outputs = definitions["ProcessingArgs"]["properties"]["ProcessingOutputConfig"]["properties"]["Outputs"]
    outputs["items"]["properties"]["AppManaged"] = {"type": "boolean"}
    definitions["ProcessingStep"]["properties"]["PropertyFiles"] = {"type": "array"}
    training_args = definitions["TrainingStep"]["properties"]["Arguments"]["properties"]
    training_args["ProfilerConfig"] = {"type": "object"}
    training_args["ProfilerRuleConfigurations"] = {"type": "array"}
    register_args = definitions["RegisterModelStep"]["properties"]["Arguments"]["properties"]
    register_args["InferenceSpecification"]["properties"]["Containers"]["items"]["properties"]["Environment"] = {"type": "object"}
    register_args["ModelApprovalStatus"] = {"$ref": "#/definitions/StringArgumentValue"}
    register_args["DriftCheckBaselines"] = {"type": "object"}
    register_args["SkipModelValidation"] = {"type": "string", "enum": ["All", "None"]}
    definitions["QualityCheckStep"]["properties"]["FailOnViolation"] = {"$ref": "#/definitions/BooleanArgumentValue"}
    definitions["ContainerDefinition"]["properties"]["ModelDataUrl"] = {
        "oneOf": [definitions["ContainerDefinition"]["properties"]["ModelDataUrl"], function]
    }
    return extended


def _errors(schema: dict, definition: dict) -> list[jsonschema.ValidationError]:
    """Schema errors of the document and of each step checked against its own type's schema
    (the schema's oneOf over step types otherwise reports only 'not valid under any');
    a condition's branch steps are checked as steps of their own."""
    top_level = copy.deepcopy(definition)
    top_level["Steps"] = []
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(top_level))
    for step in all_steps(definition):
        step_schema = {"$ref": f"#/definitions/{STEP_SCHEMA_BY_TYPE[step['Type']]}", "definitions": schema["definitions"]}
        step_only = copy.deepcopy(step)
        if step["Type"] == "Condition":
            step_only["Arguments"].pop("IfSteps", None)
            step_only["Arguments"].pop("ElseSteps", None)
        errors.extend(jsonschema.Draft202012Validator(step_schema).iter_errors(step_only))
    return errors


def _gaps_of(error: jsonschema.ValidationError) -> list[SchemaGap]:
    """The documented gaps an error shows (one error may name several unexpected keys)."""
    path = tuple(error.absolute_path)
    if error.validator == "oneOf" and _is_function(error.instance):
        return [KNOWN_GAPS[0]]
    if error.validator in ("oneOf", "anyOf") and isinstance(error.instance, dict) and any(
        _is_function(error.instance.get(side)) for side in ("LeftValue", "RightValue")
    ):
        return [KNOWN_GAPS[0]]
    if error.validator == "additionalProperties":
        unexpected = set(error.instance) - set(error.schema.get("properties", {}))
        return [gap for gap in KNOWN_GAPS[1:] if gap.path_suffix[0] in unexpected]
    if path and path[-1] == "ModelDataUrl" and _is_function(error.instance):
        return [KNOWN_GAPS[-1]]
    return []


def _gap_of(error: jsonschema.ValidationError) -> SchemaGap | None:
    gaps = _gaps_of(error)
    return gaps[0] if gaps else None


def test_schema_file_is_the_published_one():
    schema = _load_schema()
    assert schema["title"] == "SageMaker Pipeline Definition JSON Schema"
    assert "ProcessingStep" in schema["definitions"]


def test_definition_validates_against_the_schema_extended_with_known_gaps_only(definition):
    errors = _errors(_extended_schema(_load_schema()), definition)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message[:200]}" for e in errors)


def test_every_strict_schema_error_is_a_documented_gap(definition):
    errors = _errors(_load_schema(), definition)
    unexplained = [e for e in errors if _gap_of(e) is None]
    assert not unexplained, "\n".join(f"{list(e.absolute_path)} ({e.validator}): {e.message[:200]}" for e in unexplained)


def test_every_documented_gap_still_occurs():
    # Across the dev definition: a gap the schema has closed must leave the list.
    definition = json.loads(generated_definition_text("dev"))
    seen = {gap for e in _errors(_load_schema(), definition) for gap in _gaps_of(e)}
    assert set(KNOWN_GAPS) <= seen, [gap.reason for gap in KNOWN_GAPS if gap not in seen]


def test_extended_schema_still_rejects_what_the_service_rejects(dev_definition):
    broken = copy.deepcopy(dev_definition)
    processing, training = (next(s for s in broken["Steps"] if s["Type"] == kind) for kind in ("Processing", "Training"))
    processing["Arguments"]["ProcessingResources"]["ClusterConfig"]["InstanceCount"] = "two"
    training["Arguments"]["HyperParameters"]["epochs"] = {"Std:Unknown": []}
    errors = _errors(_extended_schema(_load_schema()), broken)
    assert {tuple(e.absolute_path)[-1] for e in errors} == {"InstanceCount", "epochs"}
