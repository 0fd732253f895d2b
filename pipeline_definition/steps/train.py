"""The train step: fine-tune the BERT-family model on the prepared splits, with metric
definitions, Debugger hooks and rules, and the profiler."""

from __future__ import annotations

import re

from sagemaker.debugger import (
    CollectionConfig,
    DebuggerHookConfig,
    ProfilerConfig,
    ProfilerRule,
    Rule,
    rule_configs,
)
from sagemaker.huggingface import HuggingFace
from sagemaker.inputs import TrainingInput
from sagemaker.workflow.functions import Join
from sagemaker.workflow.steps import CacheConfig, ProcessingStep, TrainingStep

from pipeline_definition import images, job_encryption
from pipeline_definition.locations import s3_uri
from pipeline_definition.parameters import PipelineParameters
from pipeline_definition.settings import PipelineDefinitionSettings

STEP_NAME = "TrainModel"
ENTRY_POINT = "train.py"
METRIC_NAMES = ("train_loss", "validation_loss", "validation_accuracy")
# Matches a number as Python's float formatting writes it (fixed or scientific notation).
_NUMBER = r"[-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?"
# The log line format of reviews.format_metric_line: "[metric] <name>=<value> epoch=.. step=..".
_METRIC_PREFIX = re.escape("[metric]")


def metric_definitions() -> list[dict[str, str]]:
    return [{"Name": name, "Regex": rf"{_METRIC_PREFIX} {name}=({_NUMBER})"} for name in METRIC_NAMES]


def hyperparameters(params: PipelineParameters) -> dict:
    """train.py's arguments (the training toolkit passes them as --name value). No sequence
    length: the prepared input_ids already have it. The SDK turns each parameter into a
    Std:Join, so a run-time override reaches the script as a string."""
    return {
        "model-name-or-path": params.model_name_or_path,
        "epochs": params.epochs,
        "learning-rate": params.learning_rate,
        "train-batch-size": params.train_batch_size,
        "seed": params.random_seed,
        "class-weighting": params.class_weighting,
    }


# Shared by the hook and the rules that read them, so that each collection is saved once
# (a rule's built-in default would add a second "losses" with another interval).
LOSSES = CollectionConfig(name="losses", parameters={"save_interval": "50"})
GRADIENTS = CollectionConfig(name="gradients", parameters={"save_interval": "500"})
METRICS = CollectionConfig(name="metrics", parameters={"save_interval": "50"})


def debugger_hook_config(artifacts_bucket: str) -> DebuggerHookConfig:
    # A fixed prefix, not the execution id: DebugHookConfig is part of the step's cache key.
    # The service adds the training job's name below it.
    return DebuggerHookConfig(
        s3_output_path=s3_uri(artifacts_bucket, "debugger"),
        collection_configs=[LOSSES, GRADIENTS, METRICS],
    )


def profiler_config(artifacts_bucket: str) -> ProfilerConfig:
    return ProfilerConfig(
        s3_output_path=s3_uri(artifacts_bucket, "profiler"),
        system_monitor_interval_millis=500,
    )


def rules() -> list:
    return [
        ProfilerRule.sagemaker(rule_configs.ProfilerReport()),
        Rule.sagemaker(rule_configs.loss_not_decreasing(), collections_to_save=[LOSSES]),
        Rule.sagemaker(rule_configs.overtraining(), collections_to_save=[LOSSES]),
        Rule.sagemaker(rule_configs.vanishing_gradient(), collections_to_save=[GRADIENTS]),
    ]


def checkpoint_s3_uri(deploy_time, params: PipelineParameters, prepare_step: ProcessingStep) -> Join:
    """Where SageMaker syncs /opt/ml/checkpoints, so a spot-interrupted job resumes.

    Keyed by what the training result depends on (the prepare job that produced the data, the
    code bundle, the hyperparameters) rather than by the execution id: CheckpointConfig is part
    of the training step's cache key, so an execution id would defeat caching, while a fixed
    prefix would let a run resume from another configuration's weights.
    """
    code_bundle_key = deploy_time.code_bundle_s3_uri.rsplit("/", 1)[-1]
    return Join(
        on="/",
        values=[
            "s3:/", deploy_time.artifacts_bucket_name, "checkpoints",
            prepare_step.properties.ProcessingJobName, code_bundle_key,
            *hyperparameters(params).values(),
        ],
    )


def build_train_step(
    settings: PipelineDefinitionSettings, params: PipelineParameters, prepare_step: ProcessingStep, session
) -> TrainingStep:
    deploy_time = settings.deploy_time
    defaults = settings.defaults
    estimator = HuggingFace(
        entry_point=ENTRY_POINT,
        # An S3 source_dir is used as it is: the SDK uploads nothing.
        source_dir=deploy_time.code_bundle_s3_uri,
        # Explicit so that the SDK never asks for its default bucket.
        code_location=s3_uri(deploy_time.artifacts_bucket_name, "code"),
        # A fixed prefix: with an output_path that is a pipeline variable the SDK asks for its
        # default bucket. Each run still writes apart, under <prefix>/<training job name>/.
        output_path=s3_uri(deploy_time.artifacts_bucket_name, "training"),
        role=deploy_time.pipeline_role_arn,
        # A parameter cannot choose the image, so it is the one for the environment's
        # default training instance type.
        image_uri=images.training_image_uri(settings.region, defaults.training_instance_type),
        transformers_version=images.TRAINING_TRANSFORMERS_VERSION,
        pytorch_version=images.TRAINING_PYTORCH_VERSION,
        py_version=images.TRAINING_PY_VERSION,
        instance_type=params.training_instance_type,
        instance_count=params.training_instance_count,
        volume_size=settings.training_volume_size_gb,
        max_run=settings.training_max_runtime_seconds,
        use_spot_instances=defaults.use_spot_instances,
        max_wait=settings.training_max_runtime_seconds if defaults.use_spot_instances else None,
        checkpoint_s3_uri=checkpoint_s3_uri(deploy_time, params, prepare_step),
        output_kms_key=deploy_time.kms_key_arn,
        volume_kms_key=job_encryption.volume_kms_key(deploy_time.kms_key_arn, defaults.training_instance_type),
        encrypt_inter_container_traffic=job_encryption.ENCRYPT_INTER_CONTAINER_TRAFFIC,
        hyperparameters=hyperparameters(params),
        metric_definitions=metric_definitions(),
        debugger_hook_config=debugger_hook_config(deploy_time.artifacts_bucket_name),
        profiler_config=profiler_config(deploy_time.artifacts_bucket_name),
        rules=rules(),
        base_job_name="train-review-classifier",
        sagemaker_session=session,
    )
    prepared = prepare_step.properties.ProcessingOutputConfig.Outputs
    step_args = estimator.fit(
        inputs={
            "train": TrainingInput(prepared["train"].S3Output.S3Uri),
            "validation": TrainingInput(prepared["validation"].S3Output.S3Uri),
        }
    )
    return TrainingStep(
        name=STEP_NAME,
        description="Fine-tune the classifier on the prepared train and validation splits",
        step_args=step_args,
        cache_config=CacheConfig(enable_caching=True, expire_after=settings.cache_expire_after),
    )
