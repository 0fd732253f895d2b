"""Generation makes no network call, needs no credentials, and is deterministic; the SDK
private attributes it relies on (the telemetry sender, Session._initialize, the endpoint
resolver behind image look-ups) are checked here so an SDK upgrade that changes them fails
loudly."""

from __future__ import annotations

import inspect
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from definition_helpers import generated_definition_text

from pipeline_definition import PipelineDefinitionSettings, definition_json, offline_sdk
from stacks.config import load_environment

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CREDENTIAL_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")

# Put first on the path of a subprocess, it forbids every outgoing connection and DNS lookup.
NO_NETWORK_SITECUSTOMIZE = '''
import socket

def _forbidden(*args, **kwargs):
    raise OSError("network access attempted while generating a pipeline definition")

socket.socket.connect = _forbidden
socket.socket.connect_ex = _forbidden
socket.create_connection = _forbidden
socket.getaddrinfo = _forbidden
'''


def _offline_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    (tmp_path / "sitecustomize.py").write_text(NO_NETWORK_SITECUSTOMIZE)
    env = {k: v for k, v in os.environ.items() if k not in CREDENTIAL_VARIABLES}
    env.update(
        PYTHONPATH=os.pathsep.join([str(tmp_path), str(PROJECT_ROOT)]),
        HOME=str(tmp_path),  # no ~/.aws or ~/.config/sagemaker to read
        AWS_CONFIG_FILE=str(tmp_path / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-aws-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
        **extra,
    )
    env.pop("AWS_DEFAULT_REGION", None)
    env.pop("AWS_REGION", None)
    return env


def _run_cli(tmp_path: Path, *args: str, **extra_env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline_definition", *args],
        cwd=PROJECT_ROOT, env=_offline_env(tmp_path, **extra_env),
        capture_output=True, text=True, timeout=300,
    )


def test_cli_prints_the_definition_without_credentials_or_network(tmp_path):
    result = _run_cli(tmp_path, "--env", "dev")
    assert result.returncode == 0, result.stderr
    # stdout is the JSON alone: the SDK's own log lines go to stderr.
    assert json.loads(result.stdout)["Version"] == "2020-12-01"
    assert result.stdout == generated_definition_text("dev")
    assert "review-classifier-dev-training: definition generated in" in result.stderr


def test_cli_output_is_identical_across_hash_seeds(tmp_path):
    # The SDK orders some lists through sets; Python salts string hashes per process.
    outputs = {_run_cli(tmp_path, "--env", "staging", PYTHONHASHSEED=seed).stdout for seed in ("1", "2")}
    assert len(outputs) == 1 and json.loads(outputs.pop())


def test_cli_resolve_replaces_every_placeholder(tmp_path):
    result = _run_cli(tmp_path, "--env", "staging", "--resolve")
    assert result.returncode == 0, result.stderr
    assert "${" not in result.stdout
    assert "review-classifier-staging-data-222222222222" in result.stdout


def test_cli_refuses_an_environment_that_promotes_instead_of_training(tmp_path):
    result = _run_cli(tmp_path, "--env", "prod")
    assert result.returncode == 2 and result.stdout == ""
    assert "prod runs no pipeline: it serves model packages promoted from staging" in result.stderr
    assert "--env staging" in result.stderr


def test_cli_rejects_an_unknown_environment(tmp_path):
    result = _run_cli(tmp_path, "--env", "qa")
    assert result.returncode == 2
    assert "unknown environment 'qa'" in result.stderr and result.stdout == ""


def test_in_process_generation_opens_no_socket(monkeypatch):
    attempts = []

    def refuse(self, address, *args):
        attempts.append(address)
        raise OSError(f"connect to {address} refused by the test")

    def refuse_lookup(host, *args, **kwargs):
        attempts.append(host)
        raise OSError(f"name lookup of {host} refused by the test")

    # Name lookups first: without DNS a client fails there and never reaches connect().
    monkeypatch.setattr(socket, "getaddrinfo", refuse_lookup)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    for name in CREDENTIAL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    settings = PipelineDefinitionSettings.from_environment(load_environment("dev"))
    assert json.loads(definition_json(settings))["Steps"]
    assert attempts == []


def test_generation_is_byte_identical_when_repeated():
    settings = PipelineDefinitionSettings.from_environment(load_environment("prod"))
    assert definition_json(settings) == definition_json(settings) == generated_definition_text("prod")


def test_session_refuses_default_bucket_and_account_lookups():
    session = offline_sdk.OfflinePipelineSession("us-east-1")
    with pytest.raises(offline_sdk.NetworkAccessError, match="S3 location"):
        session.default_bucket()
    with pytest.raises(offline_sdk.NetworkAccessError, match="account id"):
        session.account_id()
    # No SDK config file was read (they could change the definition per machine).
    assert session.sagemaker_config == {}


def test_sdk_telemetry_sender_is_the_private_function_we_replace():
    # offline_sdk.telemetry_disabled relies on these two SDK internals; if an upgrade renames
    # the sender or stops looking it up as a module global, this fails before any network call.
    from sagemaker.telemetry import telemetry_logging

    assert callable(telemetry_logging._send_telemetry_request)
    wrapper = telemetry_logging._telemetry_emitter("feature", "func")(lambda self: None)
    assert "_send_telemetry_request" in wrapper.__code__.co_names
    assert "_send_telemetry_request" in inspect.getsource(telemetry_logging._telemetry_emitter)


def test_telemetry_is_disabled_only_inside_the_block():
    from sagemaker.telemetry import telemetry_logging

    original = telemetry_logging._send_telemetry_request
    with offline_sdk.telemetry_disabled():
        assert telemetry_logging._send_telemetry_request is not original
        telemetry_logging._send_telemetry_request(1, [1], None)  # a no-op: no network
    assert telemetry_logging._send_telemetry_request is original


def test_a_decorated_sdk_call_sends_no_telemetry_inside_the_block(monkeypatch):
    from sagemaker.telemetry import telemetry_logging

    requests_made = []
    monkeypatch.setattr(telemetry_logging, "_requests_helper", lambda url, timeout: requests_made.append(url))
    monkeypatch.setattr(telemetry_logging, "_get_accountId", lambda session: "111111111111")

    class Job:
        sagemaker_session = offline_sdk.OfflinePipelineSession("us-east-1")

        @telemetry_logging._telemetry_emitter(feature=telemetry_logging.Feature.ESTIMATOR_V2, func_name="job.run")
        def run(self):
            return "ran"

    with offline_sdk.telemetry_disabled():
        assert Job().run() == "ran"
    assert requests_made == []
    # Outside the block the same call would be reported: the test above is not vacuous.
    assert Job().run() == "ran"
    assert len(requests_made) == 1


def test_offline_session_sets_every_attribute_the_sdk_session_sets():
    # OfflinePipelineSession replaces the SDK's private Session._initialize (clients and config
    # validation cost more than a whole definition); if an upgrade makes _initialize set
    # something more, or stops calling it, this fails instead of a step finding it missing.
    import boto3
    from sagemaker.session import Session
    from sagemaker.workflow.pipeline_context import PipelineSession

    assert "self._initialize(" in inspect.getsource(Session.__init__)
    sdk_session = PipelineSession(boto_session=boto3.Session(region_name="us-east-1"), sagemaker_config={"SchemaVersion": "1.0"})
    offline_session = offline_sdk.OfflinePipelineSession("us-east-1")
    assert set(vars(offline_session)) == set(vars(sdk_session))
    assert offline_session.boto_region_name == "us-east-1"
    assert offline_session.sagemaker_client is None and offline_session.s3_client is None


def test_a_second_environment_parses_no_botocore_data_file(monkeypatch):
    # Sessions share one botocore loader, and share_endpoint_data replaces the SDK's private
    # sagemaker.utils._botocore_resolver, which built a loader and parsed endpoints.json on each
    # of the ~20 image look-ups per environment. If the SDK stops going through it, or a session
    # parses models again, files are read here.
    import botocore.loaders
    import sagemaker.utils

    assert sagemaker.utils._botocore_resolver is offline_sdk._endpoint_resolver
    definition_json(PipelineDefinitionSettings.from_environment(load_environment("dev")))
    parsed = []
    load_file = botocore.loaders.JSONFileLoader.load_file
    monkeypatch.setattr(
        botocore.loaders.JSONFileLoader, "load_file", lambda self, path: parsed.append(path) or load_file(self, path)
    )
    definition = definition_json(PipelineDefinitionSettings.from_environment(load_environment("prod")))
    assert parsed == []
    assert definition == generated_definition_text("prod")


def test_shared_endpoint_data_answers_as_a_fresh_loader_does():
    import botocore.loaders
    import botocore.regions

    fresh = botocore.regions.EndpointResolver(botocore.loaders.create_loader().load_data("endpoints"))
    for region in ("us-east-1", "eu-west-1", "cn-north-1", "us-gov-west-1", "il-central-1"):
        assert offline_sdk._endpoint_resolver().construct_endpoint("ecr", region) == fresh.construct_endpoint("ecr", region)
