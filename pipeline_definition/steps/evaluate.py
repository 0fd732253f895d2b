"""The evaluate step: score the sealed model artifact (the copy that registration and serving
use) on the test split and publish evaluation.json, which the quality gate reads through a
PropertyFile."""

from __future__ import annotations

from sagemaker.processing import ProcessingInput, ProcessingOutput
from sagemaker.workflow.entities import PipelineVariable
from sagemaker.workflow.properties import PropertyFile
from sagemaker.workflow.steps import CacheConfig, ProcessingStep

from pipeline_definition.locations import execution_s3_uri
from pipeline_definition.parameters import PipelineParameters
from pipeline_definition.settings import PipelineDefinitionSettings
from pipeline_definition.steps import bundled_script

STEP_NAME = "EvaluateModel"
SCRIPT = "evaluate.py"
MODEL_DIR = "/opt/ml/processing/input/model"
TEST_DATA_DIR = "/opt/ml/processing/input/test"
OUTPUT_DIR = "/opt/ml/processing/evaluation"
OUTPUT_NAME = "evaluation"
REPORT_FILE_NAME = "evaluation.json"
PROPERTY_FILE_NAME = "EvaluationReport"
# Where evaluate.py writes the gated metrics in evaluation.json (see docs/model.md).
METRICS_JSON_PATH = "multiclass_classification_metrics"
ACCURACY_JSON_PATH = f"{METRICS_JSON_PATH}.accuracy.value"
MACRO_F1_JSON_PATH = f"{METRICS_JSON_PATH}.macro_f1.value"
# The classifier's labels in label-id order (container_code/reviews.py LABEL_NAMES; a test
# keeps the two equal: this package does not import the container code).
CLASS_NAMES: tuple[str, ...] = ("negative", "neutral", "positive")


def class_recall_json_path(class_name: str) -> str:
    return f"{METRICS_JSON_PATH}.{class_name}_recall.value"


def evaluation_report() -> PropertyFile:
    return PropertyFile(name=PROPERTY_FILE_NAME, output_name=OUTPUT_NAME, path=REPORT_FILE_NAME)


def evaluate_arguments() -> list[str]:
    # --model-archive may name the folder holding model.tar.gz; evaluate.py unpacks it.
    return ["--model-archive", MODEL_DIR, "--test-dir", TEST_DATA_DIR, "--output-dir", OUTPUT_DIR]


def build_evaluate_step(
    settings: PipelineDefinitionSettings,
    params: PipelineParameters,
    prepare_step: ProcessingStep,
    model_data_url: PipelineVariable,
    report: PropertyFile,
    session,
) -> ProcessingStep:
    step_args = bundled_script.run_args(
        settings,
        script_name=SCRIPT,
        instance_type=params.processing_instance_type,
        # The test split is small: one host is enough and keeps the report in one file.
        instance_count=1,
        base_job_name="evaluate-review-classifier",
        session=session,
        inputs=[
            ProcessingInput(input_name="model", source=model_data_url, destination=MODEL_DIR),
            ProcessingInput(
                input_name="test",
                source=prepare_step.properties.ProcessingOutputConfig.Outputs["test"].S3Output.S3Uri,
                destination=TEST_DATA_DIR,
            ),
        ],
        outputs=[ProcessingOutput(
            output_name=OUTPUT_NAME,
            source=OUTPUT_DIR,
            destination=execution_s3_uri(settings.deploy_time.artifacts_bucket_name, "evaluation"),
        )],
        arguments=evaluate_arguments(),
    )
    return ProcessingStep(
        name=STEP_NAME,
        description="Score the trained model on the test split; write evaluation.json",
        step_args=step_args,
        property_files=[report],
        # Its inputs name the sealed artifact by its content digest, so the same trained bytes
        # give a cache hit here.
        cache_config=CacheConfig(enable_caching=True, expire_after=settings.cache_expire_after),
    )
