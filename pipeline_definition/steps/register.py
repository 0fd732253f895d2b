"""The quality gate and what follows it: if the evaluated accuracy reaches the threshold,
register the model in the environment's model package group and create a SageMaker model;
otherwise fail the execution with a message that states both numbers."""

from __future__ import annotations

from sagemaker.model import Model
from sagemaker.model_metrics import MetricsSource, ModelMetrics
from sagemaker.workflow.condition_step import ConditionStep
from sagemaker.workflow.conditions import ConditionGreaterThanOrEqualTo
from sagemaker.workflow.fail_step import FailStep
from sagemaker.workflow.functions import Join, JsonGet
from sagemaker.workflow.model_step import ModelStep
from sagemaker.workflow.properties import PropertyFile
from sagemaker.workflow.steps import ProcessingStep, TrainingStep

from pipeline_definition import images
from pipeline_definition.parameters import PipelineParameters
from pipeline_definition.settings import PipelineDefinitionSettings
from pipeline_definition.steps import evaluate

CONDITION_STEP_NAME = "CheckAccuracy"
# ModelStep appends the kind: these become "Register-RegisterModel" and "Create-CreateModel".
REGISTER_STEP_NAME = "Register"
CREATE_MODEL_STEP_NAME = "Create"
FAIL_STEP_NAME = "AccuracyBelowThreshold"
CONTENT_TYPES = ["application/json", "application/jsonlines"]
# The training script stores the serving code under code/ in model.tar.gz.
INFERENCE_ENVIRONMENT = {
    "SAGEMAKER_PROGRAM": "inference.py",
    "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
    "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
}


def evaluated_accuracy(evaluate_step: ProcessingStep, report: PropertyFile) -> JsonGet:
    return JsonGet(step_name=evaluate_step.name, property_file=report, json_path=evaluate.ACCURACY_JSON_PATH)


def serving_model(settings: PipelineDefinitionSettings, train_step: TrainingStep, session) -> Model:
    # A plain Model (not PyTorchModel/HuggingFaceModel with an entry point): those repack the
    # artifact, which reads S3 while the definition is built.
    return Model(
        image_uri=images.inference_image_uri(settings.region, settings.inference_instance_types[0]),
        model_data=train_step.properties.ModelArtifacts.S3ModelArtifacts,
        role=settings.deploy_time.pipeline_role_arn,
        env=dict(INFERENCE_ENVIRONMENT),
        # Like the endpoint's model (stacks/components/approved_model_endpoint.py): the artifact
        # and the image hold everything the container needs.
        enable_network_isolation=True,
        sagemaker_session=session,
    )


def model_metrics(evaluate_step: ProcessingStep) -> ModelMetrics:
    report_prefix = evaluate_step.properties.ProcessingOutputConfig.Outputs[evaluate.OUTPUT_NAME].S3Output.S3Uri
    return ModelMetrics(
        model_statistics=MetricsSource(
            s3_uri=Join(on="/", values=[report_prefix, evaluate.REPORT_FILE_NAME]),
            content_type="application/json",
        )
    )


def build_condition_step(
    settings: PipelineDefinitionSettings,
    params: PipelineParameters,
    train_step: TrainingStep,
    evaluate_step: ProcessingStep,
    report: PropertyFile,
    session,
) -> ConditionStep:
    model = serving_model(settings, train_step, session)
    register_step = ModelStep(
        name=REGISTER_STEP_NAME,
        description="Register the model in the environment's model package group",
        step_args=model.register(
            content_types=CONTENT_TYPES,
            response_types=CONTENT_TYPES,
            inference_instances=list(settings.inference_instance_types),
            transform_instances=list(settings.inference_instance_types),
            model_package_group_name=settings.deploy_time.model_package_group_name,
            approval_status=params.model_approval_status,
            model_metrics=model_metrics(evaluate_step),
            description=f"Review sentiment classifier trained by {settings.pipeline_name}",
        ),
    )
    create_model_step = ModelStep(
        name=CREATE_MODEL_STEP_NAME,
        description="Create a SageMaker model from the trained artifact",
        step_args=model.create(instance_type=settings.inference_instance_types[0]),
    )
    accuracy = evaluated_accuracy(evaluate_step, report)
    fail_step = FailStep(
        name=FAIL_STEP_NAME,
        description="The model is not good enough to register",
        error_message=Join(
            on=" ",
            values=["Evaluated accuracy", accuracy, "is below the minimum accuracy", params.min_accuracy],
        ),
    )
    return ConditionStep(
        name=CONDITION_STEP_NAME,
        description="Register the model only if its test accuracy reaches MinAccuracy",
        conditions=[ConditionGreaterThanOrEqualTo(left=accuracy, right=params.min_accuracy)],
        if_steps=[register_step, create_model_step],
        else_steps=[fail_step],
    )
