"""Every job of the generated definition encrypts what it can with the environment's key: the ML
storage volume wherever SageMaker accepts a key for the instance type, traffic between a job's
instances, and the pipeline's model gets no network."""

from __future__ import annotations

import json

import pytest
from definition_helpers import all_steps, step_named
from sagemaker.utils import instance_supports_kms

from pipeline_definition import PipelineDefinitionSettings, definition_json, job_encryption
from pipeline_definition.steps import evaluate, fingerprint, prepare, register, seal, train
from stacks.config import load_environment

KEY_PLACEHOLDER = "${DataKeyArn}"
PROCESSING_STEPS = (fingerprint.STEP_NAME, prepare.STEP_NAME, seal.STEP_NAME, evaluate.STEP_NAME)


def definition_with(environment: str, **pipeline_defaults) -> dict:
    config = load_environment(environment)
    config = config.model_copy(update={"pipeline": config.pipeline.model_copy(update=pipeline_defaults)})
    return json.loads(definition_json(PipelineDefinitionSettings.from_environment(config)))


def training_resources(definition: dict) -> dict:
    return step_named(definition, train.STEP_NAME)["Arguments"]["ResourceConfig"]


@pytest.mark.parametrize("step_name", PROCESSING_STEPS)
def test_processing_volumes_use_the_environment_key(definition, step_name):
    cluster = step_named(definition, step_name)["Arguments"]["ProcessingResources"]["ClusterConfig"]
    assert cluster["VolumeKmsKeyId"] == KEY_PLACEHOLDER


@pytest.mark.parametrize("step_name", PROCESSING_STEPS)
def test_processing_jobs_encrypt_traffic_between_their_instances(definition, step_name):
    network = step_named(definition, step_name)["Arguments"]["NetworkConfig"]
    assert network["EnableInterContainerTrafficEncryption"] is True


def test_training_encrypts_traffic_between_its_instances(definition):
    # On in every environment: TrainingInstanceCount is a run-time parameter (prod's default is 2).
    assert step_named(definition, train.STEP_NAME)["Arguments"]["EnableInterContainerTrafficEncryption"] is True


def test_training_volume_key_follows_the_default_instance_type(definition, environment_name):
    """g4dn and g5 (every environment's default) train on NVMe instance storage, encrypted in
    hardware; SageMaker refuses a VolumeKmsKeyId for it, so the definition carries none."""
    default_type = load_environment(environment_name).pipeline.training_instance_type
    resources = training_resources(definition)
    if instance_supports_kms(default_type):
        assert resources["VolumeKmsKeyId"] == KEY_PLACEHOLDER
    else:
        assert "VolumeKmsKeyId" not in resources


@pytest.mark.parametrize("instance_type", ["ml.p3.2xlarge", "ml.p3.16xlarge"])
def test_training_on_an_ebs_instance_type_gets_the_environment_key(instance_type):
    assert training_resources(definition_with("prod", training_instance_type=instance_type))["VolumeKmsKeyId"] == KEY_PLACEHOLDER


@pytest.mark.parametrize(
    ("instance_type", "takes_a_key"),
    [("ml.c5.2xlarge", True), ("ml.p3.2xlarge", True), ("ml.g4dn.xlarge", False), ("ml.g5.2xlarge", False),
     ("ml.p4d.24xlarge", False), ("ml.c5d.xlarge", False)],
)
def test_volume_key_only_where_sagemaker_accepts_one(instance_type, takes_a_key):
    assert (job_encryption.volume_kms_key("arn:key", instance_type) == "arn:key") is takes_a_key


def test_a_processing_default_with_instance_storage_gets_no_volume_key():
    definition = definition_with("dev", processing_instance_type="ml.c5d.2xlarge")
    for step_name in PROCESSING_STEPS:
        assert "VolumeKmsKeyId" not in step_named(definition, step_name)["Arguments"]["ProcessingResources"]["ClusterConfig"]


def test_the_pipelines_model_is_network_isolated(definition):
    create_model = step_named(definition, f"{register.CREATE_MODEL_STEP_NAME}-CreateModel")
    assert create_model["Arguments"]["EnableNetworkIsolation"] is True


def test_every_job_step_is_covered(definition):
    jobs = {step["Name"] for step in all_steps(definition) if step["Type"] in ("Processing", "Training")}
    assert jobs == {*PROCESSING_STEPS, train.STEP_NAME}
