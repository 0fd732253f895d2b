"""The quality gate and what follows it. If the evaluated model reaches, on accuracy, macro-F1
and every class's recall, both the environment's floor (a constant of the definition) and the
run's parameter (MinAccuracy, MinMacroF1, MinClassRecall: they can only raise a threshold), and
no version of the model package group already holds the sealed artifact, register it with the
environment's approval status and create a SageMaker model; an artifact that is already
registered ends the run without a second version. Below a threshold, the run fails with a
message that names what was missed: a class whose recall is too low first (the sign of a model
that ignores it), then macro-F1, then accuracy and which of its thresholds.

One condition step per check, chained, because a Fail step's message can only be a Join of
strings, parameters and JsonGet values: nothing in a definition can choose a class name at run
time, so each class gets its own condition and Fail step.
"""

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

CONDITION_STEP_NAME = "CheckModelQuality"
MACRO_F1_CONDITION_STEP_NAME = "CheckMacroF1"
MACRO_F1_FAIL_STEP_NAME = "MacroF1BelowThreshold"
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


def class_recall_condition_step_name(class_name: str) -> str:
    return f"Check{class_name.capitalize()}Recall"


def class_recall_fail_step_name(class_name: str) -> str:
    return f"{class_name.capitalize()}RecallBelowThreshold"


def evaluated(evaluate_step: ProcessingStep, report: PropertyFile, json_path: str) -> JsonGet:
    return JsonGet(step_name=evaluate_step.name, property_file=report, json_path=json_path)


def evaluated_accuracy(evaluate_step: ProcessingStep, report: PropertyFile) -> JsonGet:
    return evaluated(evaluate_step, report, evaluate.ACCURACY_JSON_PATH)


def at_least(value: JsonGet, floor: float, run_threshold: PipelineVariable) -> list[ConditionGreaterThanOrEqualTo]:
    """Both must hold: the floor is a constant here, so a run's parameter cannot lower it."""
    return [ConditionGreaterThanOrEqualTo(left=value, right=floor),
            ConditionGreaterThanOrEqualTo(left=value, right=run_threshold)]


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


def _fail_with_the_missed_accuracy_threshold(
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
        description="Tell which accuracy threshold the model missed",
        conditions=[ConditionGreaterThanOrEqualTo(left=accuracy, right=floor)],
        if_steps=[below_min_accuracy],
        else_steps=[below_floor],
    )


def _check_or_fail(name: str, description: str, conditions: list, fail: FailStep, next_step: ConditionStep) -> ConditionStep:
    return ConditionStep(name=name, description=description, conditions=conditions,
                         if_steps=[next_step], else_steps=[fail])


def _fail_with_what_was_missed(
    settings: PipelineDefinitionSettings, params: PipelineParameters, evaluate_step: ProcessingStep, report: PropertyFile
) -> ConditionStep:
    """The diagnosis chain, built from its end: class recalls, then macro-F1, then accuracy."""
    defaults = settings.defaults
    macro_f1 = evaluated(evaluate_step, report, evaluate.MACRO_F1_JSON_PATH)
    diagnosis = _check_or_fail(
        MACRO_F1_CONDITION_STEP_NAME,
        "Is macro-F1 what the model missed?",
        at_least(macro_f1, defaults.min_macro_f1, params.min_macro_f1),
        FailStep(
            name=MACRO_F1_FAIL_STEP_NAME,
            description="The model misses the macro-F1 floor or this run's MinMacroF1",
            error_message=Join(on=" ", values=[
                "Evaluated macro-F1", macro_f1,
                f"is below {settings.environment}'s floor {defaults.min_macro_f1} or this run's MinMacroF1",
                params.min_macro_f1]),
        ),
        _fail_with_the_missed_accuracy_threshold(settings, params, evaluated_accuracy(evaluate_step, report)),
    )
    for class_name in reversed(evaluate.CLASS_NAMES):
        recall = evaluated(evaluate_step, report, evaluate.class_recall_json_path(class_name))
        diagnosis = _check_or_fail(
            class_recall_condition_step_name(class_name),
            f"Is the recall of class {class_name} what the model missed?",
            at_least(recall, defaults.min_class_recall, params.min_class_recall),
            FailStep(
                name=class_recall_fail_step_name(class_name),
                description=f"The model misses too many {class_name} reviews",
                error_message=Join(on=" ", values=[
                    f"Evaluated recall of class {class_name}", recall,
                    f"is below {settings.environment}'s minimum class recall {defaults.min_class_recall} "
                    "or this run's MinClassRecall", params.min_class_recall]),
            ),
            diagnosis,
        )
    return diagnosis


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
    defaults = settings.defaults
    conditions = [
        *at_least(evaluated_accuracy(evaluate_step, report), defaults.min_accuracy, params.min_accuracy),
        *at_least(evaluated(evaluate_step, report, evaluate.MACRO_F1_JSON_PATH), defaults.min_macro_f1, params.min_macro_f1),
    ]
    for class_name in evaluate.CLASS_NAMES:
        recall = evaluated(evaluate_step, report, evaluate.class_recall_json_path(class_name))
        conditions += at_least(recall, defaults.min_class_recall, params.min_class_recall)
    return ConditionStep(
        name=CONDITION_STEP_NAME,
        description="Register the model only if its test accuracy, macro-F1 and every class's recall "
                    "reach the environment's floors and this run's thresholds",
        conditions=conditions,
        if_steps=[_register_unless_registered(settings, seal_step, seal_report, evaluate_step, session, baselines)],
        else_steps=[_fail_with_what_was_missed(settings, params, evaluate_step, report)],
    )
