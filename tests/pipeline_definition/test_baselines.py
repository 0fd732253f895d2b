"""The baselining steps in the definition: SageMaker's analyzer image, reading exactly the datasets
evaluate.py writes (container_code/monitoring_baseline.py) with the attributes it writes, and the
registered package taking their results as DriftCheckBaselines and ModelMetrics."""

from __future__ import annotations

import json

from definition_helpers import all_steps, step_named

import monitoring_baseline
from pipeline_definition import images
from pipeline_definition.steps import baselines, evaluate


def _dataset_folder(step: dict) -> str:
    (dataset,) = step["Arguments"]["ProcessingInputs"]
    join = dataset["S3Input"]["S3Uri"]["Std:Join"]
    assert join["Values"][0] == {
        "Get": f"Steps.{evaluate.STEP_NAME}.ProcessingOutputConfig.Outputs['{evaluate.OUTPUT_NAME}'].S3Output.S3Uri"}
    return join["Values"][1]


def test_the_baselines_run_the_analyzer_on_what_evaluate_writes(definition, environment_name):
    from stacks.config import load_environment

    region = load_environment(environment_name).region
    data_quality = step_named(definition, baselines.DATA_QUALITY_STEP_NAME)
    model_quality = step_named(definition, baselines.MODEL_QUALITY_STEP_NAME)
    for step in (data_quality, model_quality):
        assert step["Arguments"]["AppSpecification"]["ImageUri"] == images.model_monitor_image_uri(region)
        assert (step["SkipCheck"], step["RegisterNewBaseline"]) == (True, True)
        assert json.loads(step["Arguments"]["Environment"]["dataset_format"]) == {"json": {"lines": True}}
        assert step["Arguments"]["ProcessingOutputConfig"]["KmsKeyId"] == "${DataKeyArn}"
    assert (data_quality["CheckType"], model_quality["CheckType"]) == ("DATA_QUALITY", "MODEL_QUALITY")
    assert _dataset_folder(data_quality) == monitoring_baseline.DATA_QUALITY_DIR
    assert _dataset_folder(model_quality) == monitoring_baseline.MODEL_QUALITY_DIR
    environment = model_quality["Arguments"]["Environment"]
    assert environment["problem_type"] == "MulticlassClassification"
    assert environment["inference_attribute"] == monitoring_baseline.INFERENCE_ATTRIBUTE
    assert environment["ground_truth_attribute"] == monitoring_baseline.GROUND_TRUTH_ATTRIBUTE


def test_the_registered_package_takes_the_calculated_baselines(dev_definition):
    (register,) = [step for step in all_steps(dev_definition) if step["Type"] == "RegisterModel"]
    drift = register["Arguments"]["DriftCheckBaselines"]
    metrics = register["Arguments"]["ModelMetrics"]
    for kind, step in (("ModelDataQuality", baselines.DATA_QUALITY_STEP_NAME),
                       ("ModelQuality", baselines.MODEL_QUALITY_STEP_NAME)):
        for document in ("Statistics", "Constraints"):
            assert drift[kind][document]["S3Uri"] == {"Get": f"Steps.{step}.BaselineUsedForDriftCheck{document}"}
    assert metrics["ModelDataQuality"]["Statistics"]["S3Uri"] == {
        "Get": f"Steps.{baselines.DATA_QUALITY_STEP_NAME}.CalculatedBaselineStatistics"}
    assert metrics["ModelQuality"]["Constraints"]["S3Uri"] == {
        "Get": f"Steps.{baselines.MODEL_QUALITY_STEP_NAME}.CalculatedBaselineConstraints"}


def test_no_quality_check_step_carries_a_null(definition):
    for step in all_steps(definition):
        if step["Type"] == "QualityCheck":
            assert None not in step.values()
