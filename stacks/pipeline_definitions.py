"""The selected environments' SageMaker Pipeline definitions, generated on a worker thread while
node starts the CDK's template validation engine, so that neither waits for the other.

Synthesis spends its longest single stretch in node: the built-in CloudFormation validation
plugin compiles a WebAssembly rule engine (seconds, and as long in a bare app). Python sits
blocked on the jsii pipe meanwhile, with the GIL released; importing the SageMaker SDK and
generating the definitions (about as long, and pure Python) fits into that wait, and so does
importing the CDK construct libraries the stacks use. The worker makes no jsii call: the jsii
kernel is one pipe without a lock, so only the main thread talks to node.
"""

from __future__ import annotations

import importlib
import os
from concurrent.futures import ThreadPoolExecutor

import aws_cdk as cdk

from stacks.config import EnvironmentConfig

# CDK's documented switch (`CDK_VALIDATION=false`, what `cdk synth --no-validation` relies on):
# with it, no validation engine is started here either.
VALIDATION_SWITCH = "CDK_VALIDATION"

# The aws_cdk modules the stacks import. Importing one runs only Python (the classes' generated
# code and type hints, about 0.3 s of CPU for these; no call to node), so the worker can do it
# while node is busy instead of the main thread after it. One missing here is imported where it
# is used, as before.
CONSTRUCT_LIBRARIES = (
    "aws_applicationautoscaling", "aws_athena", "aws_cloudwatch", "aws_events", "aws_events_targets",
    "aws_iam", "aws_kms", "aws_lambda", "aws_lambda_event_sources", "aws_logs", "aws_s3", "aws_s3_assets",
    "aws_sagemaker", "aws_sqs", "custom_resources",
)


def definition_template(config: EnvironmentConfig) -> str:
    """The compact definition JSON with `${...}` placeholders, as the pipeline stack substitutes it."""
    from pipeline_definition import PipelineDefinitionSettings, definition_json

    return definition_json(PipelineDefinitionSettings.from_environment(config), compact=True)


def generate_while_validation_engine_starts(app: cdk.App, configs: list[EnvironmentConfig]) -> dict[str, str]:
    """Each environment's `definition_template`, by name; the app's validation plugin started and
    the construct libraries imported."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pipeline-definitions") as worker:
        definitions = worker.submit(_definitions_and_libraries, configs)
        start_validation_engine(app)
        return definitions.result()


def _definitions_and_libraries(configs: list[EnvironmentConfig]) -> dict[str, str]:
    definitions = {config.name: definition_template(config) for config in configs}
    for library in CONSTRUCT_LIBRARIES:
        importlib.import_module(f"aws_cdk.{library}")
    return definitions


def start_validation_engine(app: cdk.App) -> None:
    """Registers the validation plugin that synth would otherwise create at its end.

    A plugin registered at the app replaces the built-in instance; without props it is the same
    one (the CDK's default rules, no others), so the report and its outcome do not change. Only
    for an App that keeps `builtin_cloud_formation_validation` at its default (app.py's does).
    """
    if os.environ.get(VALIDATION_SWITCH) == "false":
        return
    cdk.Validations.of(app).add_plugins(cdk.CloudFormationValidatePlugin())
