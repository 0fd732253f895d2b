"""Runs a script from the code bundle in a processing container: the bundle arrives as a
processing input, a fixed shell line unpacks it and hands the arguments to `python3`.

This avoids the SDK's ScriptProcessor/FrameworkProcessor, which upload code at definition
time; the bundle is already in S3 as a content-addressed CDK asset.
"""

from __future__ import annotations

from sagemaker.processing import ProcessingInput, ProcessingOutput, Processor

from pipeline_definition import images, job_encryption
from pipeline_definition.settings import PipelineDefinitionSettings

CODE_INPUT_NAME = "code"
CODE_INPUT_DIR = "/opt/ml/processing/input/code"
CODE_WORK_DIR = "/opt/ml/processing/code"

# No "${": the definition passes through CloudFormation Fn::Sub, which would treat it as a
# variable. "$@" is the script name followed by its arguments.
_RUNNER = (
    "set -euo pipefail; "
    f"mkdir -p {CODE_WORK_DIR}; "
    f'for bundle in {CODE_INPUT_DIR}/*; do tar -xzf "$bundle" -C {CODE_WORK_DIR}; done; '
    f"cd {CODE_WORK_DIR}; "
    'exec python3 "$@"'
)


def entrypoint(script_name: str) -> list[str]:
    """Container entrypoint that runs `python3 <script_name> <job arguments>`."""
    return ["bash", "-c", _RUNNER, "run-bundled-script", script_name]


def code_input(code_bundle_s3_uri: str) -> ProcessingInput:
    return ProcessingInput(
        input_name=CODE_INPUT_NAME,
        source=code_bundle_s3_uri,
        destination=CODE_INPUT_DIR,
    )


def processor(
    settings: PipelineDefinitionSettings,
    *,
    script_name: str,
    instance_type,
    instance_count,
    base_job_name: str,
    session,
    env: dict[str, str] | None = None,
) -> Processor:
    """A processing job in the environment's processing image that runs one bundled script,
    with the environment's role, KMS key (outputs and volume), volume and runtime limits."""
    deploy_time = settings.deploy_time
    return Processor(
        role=deploy_time.pipeline_role_arn,
        image_uri=images.processing_image_uri(settings.region),
        instance_count=instance_count,
        instance_type=instance_type,
        entrypoint=entrypoint(script_name),
        volume_size_in_gb=settings.processing_volume_size_gb,
        output_kms_key=deploy_time.kms_key_arn,
        volume_kms_key=job_encryption.volume_kms_key(
            deploy_time.kms_key_arn, settings.defaults.processing_instance_type
        ),
        network_config=job_encryption.processing_network_config(),
        max_runtime_in_seconds=settings.processing_max_runtime_seconds,
        base_job_name=base_job_name,
        env=env,
        sagemaker_session=session,
    )


def run_args(
    settings: PipelineDefinitionSettings,
    *,
    inputs: list[ProcessingInput],
    outputs: list[ProcessingOutput],
    arguments: list,
    **processor_options,
):
    """A ProcessingStep's arguments: `processor(settings, **processor_options)` run with
    `arguments`, the code bundle as its first input, then `inputs`."""
    return processor(settings, **processor_options).run(
        inputs=[code_input(settings.deploy_time.code_bundle_s3_uri), *inputs],
        outputs=outputs,
        arguments=arguments,
    )
