"""The quality gate and what follows it. If the evaluated accuracy reaches both the
environment's floor (a constant of the definition) and the run's MinAccuracy (which can only
raise the threshold), and no version of the model package group already holds the sealed
artifact, register it with the environment's approval status and create a SageMaker model;
an artifact that is already registered ends the run without a second version. Below a
threshold, the run fails with a message that states the accuracy and the threshold it missed."""

from __future__ import annotations

from sagemaker.model import Model
from sagemaker.drift_check_baselines import DriftCheckBaselines
from sagemaker.model_metrics import MetricsSource, ModelMetrics
from sagemaker.workflow.condition_step import ConditionStep
from sagemaker.workflow.conditions import ConditionEquals, ConditionGreaterThanOrEqualTo
from sagemaker.workflow.entities import PipelineVariable
from sagemaker.workflow.fail_step import FailStep
from sagemaker.workflow.functions import Join, JsonGet
from sagemaker.workflow.model_step import ModelStep
from sagemaker.workflow.properties import PropertyFile
from sagemaker.workflow.quality_check_step import QualityCheckStep
from sagemaker.workflow.steps import ProcessingStep

from pipeline_definition import images
from pipeline_definition.parameters import PipelineParameters
from pipeline_definition.settings import PipelineDefinitionSettings
from pipeline_definition.steps import evaluate, seal

CONDITION_STEP_NAME = "CheckAccuracy"
# Which threshold a model below the gate missed (each has its own Fail step and message).
FLOOR_CONDITION_STEP_NAME = "CheckAccuracyFloor"
NOT_REGISTERED_CONDITION_STEP_NAME = "CheckNotYetRegistered"
# ModelStep appends the kind: these become "Register-RegisterModel" and "Create-CreateModel".
REGISTER_STEP_NAME = "Register"
CREATE_MODEL_STEP_NAME = "Create"
FAIL_STEP_NAME = "AccuracyBelowThreshold"
FLOOR_FAIL_STEP_NAME = "AccuracyBelowFloor"
CONTENT_TYPES = ["application/json", "application/jsonlines"]
# The training script stores the serving code under code/ in model.tar.gz.
INFERENCE_ENVIRONMENT = {
    "SAGEMAKER_PROGRAM": "inference.py",
    "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
    "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
}


def evaluated_accuracy(evaluate_step: ProcessingStep, report: PropertyFile) -> JsonGet:
    return JsonGet(step_name=evaluate_step.name, property_file=report, json_path=evaluate.ACCURACY_JSON_PATH)


def serving_model(settings: PipelineDefinitionSettings, model_data_url: PipelineVariable, session) -> Model:
    # A plain Model (not PyTorchModel/HuggingFaceModel with an entry point): those repack the
    # artifact, which reads S3 while the definition is built.
    return Model(
        image_uri=images.inference_image_uri(settings.region, settings.inference_instance_types[0]),
        model_data=model_data_url,
        role=settings.deploy_time.pipeline_role_arn,
        env=dict(INFERENCE_ENVIRONMENT),
        # Like the endpoint's model (stacks/components/approved_model_endpoint.py): the artifact
        # and the image hold everything the container needs.
        enable_network_isolation=True,
        sagemaker_session=session,
    )


def _json_source(s3_uri) -> MetricsSource:
    return MetricsSource(s3_uri=s3_uri, content_type="application/json")


def model_metrics(evaluate_step: ProcessingStep, baselines: tuple[QualityCheckStep, QualityCheckStep]) -> ModelMetrics:
    """evaluation.json as the model's statistics, and the baselines the pipeline calculated."""
    report_prefix = evaluate_step.properties.ProcessingOutputConfig.Outputs[evaluate.OUTPUT_NAME].S3Output.S3Uri
    data_quality, model_quality = baselines
    return ModelMetrics(
        model_statistics=_json_source(Join(on="/", values=[report_prefix, evaluate.REPORT_FILE_NAME])),
        model_constraints=_json_source(model_quality.properties.CalculatedBaselineConstraints),
        model_data_statistics=_json_source(data_quality.properties.CalculatedBaselineStatistics),
        model_data_constraints=_json_source(data_quality.properties.CalculatedBaselineConstraints),
    )


def drift_check_baselines(baselines: tuple[QualityCheckStep, QualityCheckStep]) -> DriftCheckBaselines:
    """What the monitoring schedules of this package compare with (stacks/components/model_monitoring.py)."""
    data_quality, model_quality = baselines
    return DriftCheckBaselines(
        model_statistics=_json_source(model_quality.properties.BaselineUsedForDriftCheckStatistics),
        model_constraints=_json_source(model_quality.properties.BaselineUsedForDriftCheckConstraints),
        model_data_statistics=_json_source(data_quality.properties.BaselineUsedForDriftCheckStatistics),
        model_data_constraints=_json_source(data_quality.properties.BaselineUsedForDriftCheckConstraints),
    )


def _register_unless_registered(
    settings: PipelineDefinitionSettings,
    seal_step: ProcessingStep,
    seal_report: PropertyFile,
    evaluate_step: ProcessingStep,
    session,
    baselines: tuple[QualityCheckStep, QualityCheckStep],
) -> ConditionStep:
    model = serving_model(settings, seal.sealed_model_data_url(seal_step, seal_report), session)
    register_step = ModelStep(
        name=REGISTER_STEP_NAME,
        description="Register the sealed model in the environment's model package group",
        step_args=model.register(
            content_types=CONTENT_TYPES,
            response_types=CONTENT_TYPES,
            inference_instances=list(settings.inference_instance_types),
            transform_instances=list(settings.inference_instance_types),
            model_package_group_name=settings.deploy_time.model_package_group_name,
            # From the environment's config, never a run-time parameter: the pipeline role may
            # create versions with this status only.
            approval_status=settings.defaults.model_approval_status,
            model_metrics=model_metrics(evaluate_step, baselines),
            drift_check_baselines=drift_check_baselines(baselines),
            description=f"Review sentiment classifier trained by {settings.pipeline_name}",
        ),
    )
    create_model_step = ModelStep(
        name=CREATE_MODEL_STEP_NAME,
        description="Create a SageMaker model from the sealed artifact",
        step_args=model.create(instance_type=settings.inference_instance_types[0]),
    )
    return ConditionStep(
        name=NOT_REGISTERED_CONDITION_STEP_NAME,
        description="Register only an artifact that no version of the group holds yet "
                    "(a re-run of cached steps seals the same artifact)",
        conditions=[ConditionEquals(left=seal.registered_versions(seal_step, seal_report), right=0)],
        if_steps=[register_step, create_model_step],
        else_steps=[],
    )


def _fail_with_the_missed_threshold(
    settings: PipelineDefinitionSettings, params: PipelineParameters, accuracy: JsonGet
) -> ConditionStep:
    floor = settings.defaults.min_accuracy
    below_min_accuracy = FailStep(
        name=FAIL_STEP_NAME,
        description="The model misses this run's MinAccuracy",
        error_message=Join(on=" ", values=["Evaluated accuracy", accuracy, "is below the minimum accuracy", params.min_accuracy]),
    )
    below_floor = FailStep(
        name=FLOOR_FAIL_STEP_NAME,
        description="The model misses the environment's accuracy floor",
        error_message=Join(on=" ", values=["Evaluated accuracy", accuracy, f"is below {settings.environment}'s accuracy floor {floor}"]),
    )
    return ConditionStep(
        name=FLOOR_CONDITION_STEP_NAME,
        description="Tell which threshold the model missed",
        conditions=[ConditionGreaterThanOrEqualTo(left=accuracy, right=floor)],
        if_steps=[below_min_accuracy],
        else_steps=[below_floor],
    )


def build_condition_step(
    settings: PipelineDefinitionSettings,
    params: PipelineParameters,
    seal_step: ProcessingStep,
    seal_report: PropertyFile,
    evaluate_step: ProcessingStep,
    report: PropertyFile,
    session,
    *,
    baselines: tuple[QualityCheckStep, QualityCheckStep],
) -> ConditionStep:
    accuracy = evaluated_accuracy(evaluate_step, report)
    return ConditionStep(
        name=CONDITION_STEP_NAME,
        description="Register the model only if its test accuracy reaches the environment's floor "
                    "and MinAccuracy",
        # Both must hold: the floor is a constant here, so a run's MinAccuracy cannot lower it.
        conditions=[
            ConditionGreaterThanOrEqualTo(left=accuracy, right=settings.defaults.min_accuracy),
            ConditionGreaterThanOrEqualTo(left=accuracy, right=params.min_accuracy),
        ],
        if_steps=[_register_unless_registered(settings, seal_step, seal_report, evaluate_step, session, baselines)],
        else_steps=[_fail_with_the_missed_threshold(settings, params, accuracy)],
    )
