"""How a Lambda handler folder (stacks/lambdas/<name>/: boto3 + the standard library) becomes
function code, the same way for every handler."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import aws_lambda as lambda_

LAMBDAS_DIRECTORY = Path(__file__).resolve().parent.parent / "lambdas"
# The newest Python runtime aws-cdk-lib knows; every handler runs on it.
HANDLER_RUNTIME = lambda_.Runtime.PYTHON_3_14


def handler_directory(name: str) -> Path:
    return LAMBDAS_DIRECTORY / name


def handler_code(name: str) -> lambda_.Code:
    """The folder's files as an asset. Excluding bytecode caches keeps the asset hash (and so
    the template) the same on every machine."""
    return lambda_.Code.from_asset(str(handler_directory(name)), exclude=["__pycache__", "*.pyc"])
