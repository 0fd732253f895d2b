"""The Model Monitor baselines of the trained model, computed by SageMaker's own analyzer
(QualityCheckStep, the model-monitor image) from the datasets evaluate.py writes beside
evaluation.json (container_code/monitoring_baseline.py):

- data quality: statistics and constraints of the monitored features of the test split's
  reviews (container_code/record_features.py), the same columns the monitoring schedule's
  record preprocessor makes of captured requests;
- model quality: multiclass metrics of the predictions against the test labels.

Each step computes a new baseline and checks nothing (SkipCheck): a new model is not drifting
from itself, and a drift check against the previous package's baseline belongs to the
monitoring schedule. RegisterNewBaseline makes the calculated files the package's
DriftCheckBaselines (steps/register.py).
"""

from __future__ import annotations

from sagemaker.model_monitor.dataset_format import DatasetFormat
from sagemaker.workflow.check_job_config import CheckJobConfig
from sagemaker.workflow.functions import Join
from sagemaker.workflow.quality_check_step import DataQualityCheckConfig, ModelQualityCheckConfig, QualityCheckStep
from sagemaker.workflow.steps import CacheConfig, ProcessingStep

from pipeline_definition import images, job_encryption
from pipeline_definition.locations import BASELINES_PREFIX, execution_s3_uri
from pipeline_definition.settings import PipelineDefinitionSettings
from pipeline_definition.steps import evaluate

DATA_QUALITY_STEP_NAME = "DataQualityBaseline"
MODEL_QUALITY_STEP_NAME = "ModelQualityBaseline"
# Where evaluate.py writes each dataset under its output (container_code/monitoring_baseline.py).
DATA_QUALITY_DATASET = "data-quality"
MODEL_QUALITY_DATASET = "model-quality"
PROBLEM_TYPE = "MulticlassClassification"
GROUND_TRUTH_ATTRIBUTE = "label"
INFERENCE_ATTRIBUTE = "predicted_label"


def _check_job(settings: PipelineDefinitionSettings, session, base_job_name: str) -> CheckJobConfig:
    deploy_time = settings.deploy_time
    instance_type = settings.defaults.processing_instance_type
    return CheckJobConfig(
        role=deploy_time.pipeline_role_arn,
        instance_count=1,
        instance_type=instance_type,
        volume_size_in_gb=settings.processing_volume_size_gb,
        volume_kms_key=job_encryption.volume_kms_key(deploy_time.kms_key_arn, instance_type),
        output_kms_key=deploy_time.kms_key_arn,
        max_runtime_in_seconds=settings.processing_max_runtime_seconds,
        # Without one the SDK names the job after the image and the clock.
        base_job_name=base_job_name,
        network_config=job_encryption.processing_network_config(),
        sagemaker_session=session,
    )


def _evaluation_dataset(evaluate_step: ProcessingStep, folder: str) -> Join:
    output = evaluate_step.properties.ProcessingOutputConfig.Outputs[evaluate.OUTPUT_NAME].S3Output.S3Uri
    return Join(on="/", values=[output, folder])


def _baseline_step(name: str, description: str, config, settings, session, base_job_name: str) -> QualityCheckStep:
    return QualityCheckStep(
        name=name,
        description=description,
        quality_check_config=config,
        check_job_config=_check_job(settings, session, base_job_name),
        skip_check=True,
        register_new_baseline=True,
        model_package_group_name=settings.deploy_time.model_package_group_name,
        cache_config=CacheConfig(enable_caching=True, expire_after=settings.cache_expire_after),
    )


def build_data_quality_step(settings: PipelineDefinitionSettings, evaluate_step: ProcessingStep, session) -> QualityCheckStep:
    config = DataQualityCheckConfig(
        baseline_dataset=_evaluation_dataset(evaluate_step, DATA_QUALITY_DATASET),
        dataset_format=DatasetFormat.json(lines=True),
        output_s3_uri=execution_s3_uri(settings.deploy_time.artifacts_bucket_name, BASELINES_PREFIX, "data-quality"),
    )
    return _baseline_step(DATA_QUALITY_STEP_NAME, "Statistics and constraints of the test reviews' monitored features",
                          config, settings, session, "data-quality-baseline")


def build_model_quality_step(settings: PipelineDefinitionSettings, evaluate_step: ProcessingStep, session) -> QualityCheckStep:
    config = ModelQualityCheckConfig(
        baseline_dataset=_evaluation_dataset(evaluate_step, MODEL_QUALITY_DATASET),
        dataset_format=DatasetFormat.json(lines=True),
        output_s3_uri=execution_s3_uri(settings.deploy_time.artifacts_bucket_name, BASELINES_PREFIX, "model-quality"),
        problem_type=PROBLEM_TYPE,
        inference_attribute=INFERENCE_ATTRIBUTE,
        ground_truth_attribute=GROUND_TRUTH_ATTRIBUTE,
    )
    return _baseline_step(MODEL_QUALITY_STEP_NAME, "Multiclass metrics and constraints of the test predictions",
                          config, settings, session, "model-quality-baseline")
