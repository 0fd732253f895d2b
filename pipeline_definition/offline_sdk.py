"""Everything that keeps the SageMaker SDK offline while it builds a definition: a session
that needs no credentials, reads no SDK config file, refuses default-bucket and account
lookups, and sends no telemetry."""

from __future__ import annotations

import contextlib
from typing import Iterator

import boto3
from sagemaker.telemetry import telemetry_logging
from sagemaker.workflow.pipeline_context import PipelineSession


class NetworkAccessError(RuntimeError):
    """The SDK tried to do something that needs AWS while generating a definition."""


# The SDK's config schema accepts this minimal document; passing any config stops the
# session from reading ~/.config/sagemaker/config.yaml (or an S3 URI named by
# SAGEMAKER_USER_CONFIG_OVERRIDE), which would make generation depend on the machine.
_EMPTY_SDK_CONFIG = {"SchemaVersion": "1.0"}


class OfflinePipelineSession(PipelineSession):
    """A PipelineSession that fails loudly instead of calling AWS."""

    def __init__(self, region: str) -> None:
        # An explicit region and no profile: botocore reads no credentials until a request
        # is signed, and none is ever made.
        boto_session = boto3.Session(region_name=region)
        super().__init__(boto_session=boto_session, sagemaker_config=dict(_EMPTY_SDK_CONFIG))
        # Lookups validate a non-empty config every time; an empty one is skipped (speed).
        self.sagemaker_config = {}

    def default_bucket(self) -> str:
        raise NetworkAccessError(
            "the pipeline definition asked for the SDK's default bucket: give every S3 location "
            "(output_path, code_location, processing output destinations) explicitly"
        )

    def account_id(self) -> str:
        raise NetworkAccessError("the pipeline definition asked for the AWS account id (an STS call)")


def _no_telemetry(*_args, **_kwargs) -> None:
    """Replaces the SDK's telemetry sender: it would call STS and an HTTPS endpoint."""


@contextlib.contextmanager
def telemetry_disabled() -> Iterator[None]:
    """Within the block, decorated SDK calls (estimator.fit...) send no telemetry.

    The SDK's only opt-out is its config file, which makes every config lookup re-validate
    the config (definition() ~15x slower). This replaces the module-level sender that the
    decorator looks up at call time; tests/pipeline_definition/test_offline_generation.py fails if
    the SDK renames or stops using it.
    """
    original = telemetry_logging._send_telemetry_request
    telemetry_logging._send_telemetry_request = _no_telemetry
    try:
        yield
    finally:
        telemetry_logging._send_telemetry_request = original

