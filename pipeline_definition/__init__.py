"""Generates each environment's SageMaker Pipeline definition (SDK v2), offline and
deterministically: `definition_json(settings)`, or `python -m pipeline_definition --env dev`."""

from pipeline_definition.sdk_logging import keep_sdk_output_off_stdout

keep_sdk_output_off_stdout()  # before anything below imports the SDK

from pipeline_definition.offline_sdk import share_endpoint_data
from pipeline_definition.pipeline import build_pipeline, definition_json

share_endpoint_data()
from pipeline_definition.settings import DeployTimeValues, PipelineDefinitionSettings

__all__ = ["DeployTimeValues", "PipelineDefinitionSettings", "build_pipeline", "definition_json"]
