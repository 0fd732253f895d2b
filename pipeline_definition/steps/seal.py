"""The seal step: copy the trained model.tar.gz to its content-addressed, write-once key under
the artifacts bucket's immutable prefix, and publish seal.json (where the copy is, and whether
a version of the model package group already holds it). Evaluation, registration and the
SageMaker model all read the sealed copy, so what was evaluated is what is served."""

from __future__ import annotations

from sagemaker.processing import ProcessingInput, ProcessingOutput
from sagemaker.workflow.functions import JsonGet
from sagemaker.workflow.properties import PropertyFile
from sagemaker.workflow.steps import ProcessingStep, TrainingStep

from pipeline_definition.locations import IMMUTABLE_MODELS_PREFIX, execution_s3_uri
from pipeline_definition.parameters import PipelineParameters
from pipeline_definition.settings import PipelineDefinitionSettings
from pipeline_definition.steps import bundled_script

STEP_NAME = "SealModelArtifact"
SCRIPT = "seal_model.py"
MODEL_DIR = "/opt/ml/processing/input/model"
OUTPUT_DIR = "/opt/ml/processing/seal"
OUTPUT_NAME = "seal"
REPORT_FILE_NAME = "seal.json"
PROPERTY_FILE_NAME = "SealReport"
# Fields of seal.json (container_code/seal_model.py writes them).
MODEL_DATA_URL_JSON_PATH = "model_data_url"
REGISTERED_VERSIONS_JSON_PATH = "registered_versions"


def seal_report() -> PropertyFile:
    return PropertyFile(name=PROPERTY_FILE_NAME, output_name=OUTPUT_NAME, path=REPORT_FILE_NAME)


def sealed_model_data_url(seal_step: ProcessingStep, report: PropertyFile) -> JsonGet:
    return JsonGet(step_name=seal_step.name, property_file=report, json_path=MODEL_DATA_URL_JSON_PATH)


def registered_versions(seal_step: ProcessingStep, report: PropertyFile) -> JsonGet:
    return JsonGet(step_name=seal_step.name, property_file=report, json_path=REGISTERED_VERSIONS_JSON_PATH)


def seal_arguments(settings: PipelineDefinitionSettings) -> list[str]:
    deploy_time = settings.deploy_time
    return [
        "--model-archive", MODEL_DIR,
        "--bucket", deploy_time.artifacts_bucket_name,
        "--prefix", IMMUTABLE_MODELS_PREFIX,
        "--model-package-group", deploy_time.model_package_group_name,
        "--output-dir", OUTPUT_DIR,
    ]


def build_seal_step(
    settings: PipelineDefinitionSettings,
    params: PipelineParameters,
    train_step: TrainingStep,
    report: PropertyFile,
    session,
) -> ProcessingStep:
    step_args = bundled_script.run_args(
        settings,
        script_name=SCRIPT,
        instance_type=params.processing_instance_type,
        instance_count=1,
        base_job_name="seal-review-classifier",
        session=session,
        # The script calls S3 and the model registry itself.
        env={"AWS_DEFAULT_REGION": settings.region},
        inputs=[ProcessingInput(
            input_name="model", source=train_step.properties.ModelArtifacts.S3ModelArtifacts, destination=MODEL_DIR,
        )],
        outputs=[ProcessingOutput(
            output_name=OUTPUT_NAME,
            source=OUTPUT_DIR,
            destination=execution_s3_uri(settings.deploy_time.artifacts_bucket_name, "model-seals"),
        )],
        arguments=seal_arguments(settings),
    )
    return ProcessingStep(
        name=STEP_NAME,
        description="Copy the trained artifact to its write-once, content-addressed key; "
                    "report whether a model version already holds it",
        step_args=step_args,
        property_files=[report],
        # Never cached: whether the registry already holds the artifact must be asked anew on
        # every run, or a cached "not registered" would register a duplicate.
    )
