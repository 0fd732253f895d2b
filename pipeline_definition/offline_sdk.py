"""Everything that keeps the SageMaker SDK offline while it builds a definition: a session
that needs no credentials, reads no SDK config file, refuses default-bucket and account
lookups, and sends no telemetry; and what keeps it fast: botocore's data files parsed once
per process."""

from __future__ import annotations

import contextlib
import functools
from typing import Iterator

import boto3
import botocore.loaders
import botocore.regions
import botocore.session
from sagemaker import utils as sagemaker_utils
from sagemaker.telemetry import telemetry_logging
from sagemaker.workflow.pipeline_context import PipelineSession


class NetworkAccessError(RuntimeError):
    """The SDK tried to do something that needs AWS while generating a definition."""


class OfflinePipelineSession(PipelineSession):
    """A PipelineSession that fails loudly instead of calling AWS."""

    def __init__(self, region: str) -> None:
        super().__init__(boto_session=_boto_session(region))

    def _initialize(self, boto_session, *_clients, **_config) -> None:
        # Session._initialize, less what a session that never calls AWS does not need and what
        # costs most of its time: six botocore clients (~700 operation models) and three schema
        # validations of the SDK config. No client: a step that tried to call AWS fails at once.
        # No config: none is read from ~/.config/sagemaker or S3, which would make generation
        # depend on the machine. tests/pipeline_definition/test_offline_generation.py checks that
        # this still sets every attribute the SDK's own _initialize sets.
        self.boto_session = boto_session
        self._region_name = boto_session.region_name
        self.sagemaker_client = None
        self.sagemaker_runtime_client = None
        self.sagemaker_featurestore_runtime_client = None
        self.sagemaker_metrics_client = None
        self.s3_client = None
        self.s3_resource = None
        self.local_mode = False
        self.sagemaker_config = {}

    def default_bucket(self) -> str:
        raise NetworkAccessError(
            "the pipeline definition asked for the SDK's default bucket: give every S3 location "
            "(output_path, code_location, processing output destinations) explicitly"
        )

    def account_id(self) -> str:
        raise NetworkAccessError("the pipeline definition asked for the AWS account id (an STS call)")


@functools.cache
def _data_loader() -> botocore.loaders.Loader:
    # A loader keeps every JSON file it parses (service models, endpoints.json); each
    # botocore session otherwise builds a loader of its own and parses them again.
    return botocore.loaders.create_loader()


@functools.cache
def _boto_session(region: str) -> boto3.Session:
    # One per region for the process, on the shared loader. An explicit region and no profile:
    # botocore reads no credentials until a request is signed, and none is ever made.
    botocore_session = botocore.session.get_session()
    botocore_session.register_component("data_loader", _data_loader())
    return boto3.Session(botocore_session=botocore_session, region_name=region)


@functools.cache
def _endpoint_resolver() -> botocore.regions.EndpointResolver:
    return botocore.regions.EndpointResolver(_data_loader().load_data("endpoints"))


def share_endpoint_data() -> None:
    """Makes the SDK's image look-ups read botocore's endpoint data once per process.

    `image_uris.retrieve` asks `sagemaker.utils._botocore_resolver()` for a region's ECR host,
    and that builds a new loader and parses endpoints.json on every call: about 20 calls per
    environment, 3.5 s of a 3-environment synth. The resolver answers from static data, so one
    serves every call. tests/pipeline_definition/test_offline_generation.py fails if the SDK
    renames or stops using this private function.
    """
    sagemaker_utils._botocore_resolver = _endpoint_resolver


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

