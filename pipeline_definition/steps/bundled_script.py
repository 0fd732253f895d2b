"""Runs a script from the code bundle in a processing container: the bundle arrives as a
processing input, a fixed shell line unpacks it and hands the arguments to `python3`.

This avoids the SDK's ScriptProcessor/FrameworkProcessor, which upload code at definition
time; the bundle is already in S3 as a content-addressed CDK asset.
"""

from __future__ import annotations

from sagemaker.processing import ProcessingInput

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
