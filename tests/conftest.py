"""Fixtures shared by the whole suite: an offline AWS environment, moto's server on
127.0.0.1, container_code/ on the import path (its scripts import each other flatly), and the
CDK app synthesized once per test session.

CDK fixtures (the app is built exactly as app.py builds it, with cdk-nag's AwsSolutionsChecks
applied before the one synthesis; asset staging goes to a temporary outdir):

- `synthesized_app` (session): a `SynthesizedApp` with `.stacks[(env, component)]` (the
  cdk.Stack objects), `.template(env, component)` (a cached `aws_cdk.assertions.Template`),
  `.template_json(env, component)` (the template as a dict), `.template_path(env, component)`
  (the synthesized JSON file, for cfn-lint) and `.nag_findings(env, component)` (unsuppressed
  AwsSolutions errors and warnings).
- `stack_key`: a test that asks for it is parametrized over every (env, component) pair,
  with ids like `dev-pipeline`, so `-k pipeline` or `-k dev-serving` selects one stack.
- `environment_name`: a test that asks for it is parametrized over the environments in cdk.json;
  `training_environment_name` over those that train (have a pipeline stack).
- `local_time_zone`: a test that asks for it runs twice, the process in UTC and in a non-UTC zone
  (America/St_Johns), so that nothing passes only because the machine runs in UTC.
- `stack_template(stack_key)`, `stack_template_json(stack_key)`: shortcuts for that pair.

Components are "foundation", "pipeline" and "serving"; environments are cdk.json's.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONTAINER_CODE = PROJECT_ROOT / "container_code"
if str(CONTAINER_CODE) not in sys.path:
    sys.path.insert(0, str(CONTAINER_CODE))
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

TEST_REGION = "us-east-1"


@pytest.fixture(scope="session", autouse=True)
def offline_aws_environment():
    """Fake credentials and offline switches, so nothing can reach a real account or hub."""
    saved = dict(os.environ)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        os.environ.pop(name, None)
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": TEST_REGION,
            "AWS_REGION": TEST_REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "SAGEMAKER_SUPPRESS_V2_WARNING": "1",
            "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        }
    )
    yield
    os.environ.clear()
    os.environ.update(saved)


# A zone far from UTC with a half-hour offset and daylight saving time: a test that passes only
# because the machine runs in UTC fails under it.
NON_UTC_ZONE = "America/St_Johns"


@pytest.fixture(params=["UTC", NON_UTC_ZONE])
def local_time_zone(request):
    """Runs the test once with the process in UTC and once in a non-UTC zone (TZ + tzset)."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = request.param
    time.tzset()
    yield request.param
    if saved is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = saved
    time.tzset()


@pytest.fixture(scope="session")
def moto_server(offline_aws_environment):
    """moto's server on 127.0.0.1 (a real HTTP endpoint that answers as AWS would)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def moto_endpoint(moto_server):
    """moto's endpoint URL, with every service's state reset before the test."""
    request = urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=10).close()
    return moto_server


# --- The CDK app, synthesized once per session -------------------------------------------

CDK_JSON = PROJECT_ROOT / "cdk.json"
COMPONENTS = ("foundation", "pipeline", "serving")
_RAW_ENVIRONMENTS = json.loads(CDK_JSON.read_text())["context"]["environments"]
ENVIRONMENTS = tuple(_RAW_ENVIRONMENTS)
# An environment that promotes models from another one has no pipeline stack.
TRAINING_ENVIRONMENTS = tuple(
    env for env, raw in _RAW_ENVIRONMENTS.items() if not (raw.get("model_source") or {}).get("promote_from")
)
STACK_KEYS = tuple(
    (env, component) for env in ENVIRONMENTS for component in COMPONENTS
    if component != "pipeline" or env in TRAINING_ENVIRONMENTS
)
NAG_PACK_PREFIX = "AwsSolutions-"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Parametrize at collection time from cdk.json alone, so collecting does not synthesize.
    if "stack_key" in metafunc.fixturenames:
        metafunc.parametrize("stack_key", STACK_KEYS, ids=[f"{env}-{component}" for env, component in STACK_KEYS])
    if "environment_name" in metafunc.fixturenames:
        metafunc.parametrize("environment_name", ENVIRONMENTS)
    if "training_environment_name" in metafunc.fixturenames:
        metafunc.parametrize("training_environment_name", TRAINING_ENVIRONMENTS)


@dataclass
class SynthesizedApp:
    """The app's stacks and what one synthesis produced; templates are parsed once each."""

    stacks: dict[tuple[str, str], Any]
    assembly: Any
    _templates: dict[tuple[str, str], Any] = field(default_factory=dict)
    _template_json: dict[tuple[str, str], dict] = field(default_factory=dict)

    def _artifact(self, env: str, component: str):
        return self.assembly.get_stack_artifact(self.stacks[(env, component)].artifact_id)

    def template_path(self, env: str, component: str) -> Path:
        return Path(self._artifact(env, component).template_full_path)

    def template_json(self, env: str, component: str) -> dict:
        key = (env, component)
        if key not in self._template_json:
            self._template_json[key] = json.loads(self.template_path(env, component).read_text())
        return self._template_json[key]

    def template(self, env: str, component: str):
        """An assertions Template built from the synthesized JSON (no second synthesis)."""
        from aws_cdk.assertions import Template

        key = (env, component)
        if key not in self._templates:
            self._templates[key] = Template.from_json(self.template_json(env, component))
        return self._templates[key]

    def nag_findings(self, env: str, component: str) -> list[str]:
        """Unsuppressed cdk-nag AwsSolutions errors and warnings, as `<path>: <finding>` lines."""
        findings = []
        for message in self._artifact(env, component).messages:
            text = str(message.entry.data)
            if message.level.name in ("ERROR", "WARNING") and text.startswith(NAG_PACK_PREFIX):
                findings.append(f"{message.id}: {text.splitlines()[0]}")
        return findings


@pytest.fixture(scope="session")
def synthesized_app(offline_aws_environment, tmp_path_factory) -> SynthesizedApp:
    import aws_cdk as cdk
    from cdk_nag import AwsSolutionsChecks

    from stacks.app_builder import build_app

    context = json.loads(CDK_JSON.read_text())["context"]
    app = cdk.App(context=context, outdir=str(tmp_path_factory.mktemp("cdk.out")))
    stacks_by_env = build_app(app)
    # Aspects run during synthesis: added here, before it, they see every construct.
    cdk.Aspects.of(app).add(AwsSolutionsChecks(reports=False))
    assembly = app.synth()
    stacks = {
        (env, component): stack
        for env, by_component in stacks_by_env.items()
        for component, stack in by_component.items()
    }
    return SynthesizedApp(stacks=stacks, assembly=assembly)


@pytest.fixture
def stack_template(synthesized_app: SynthesizedApp, stack_key: tuple[str, str]):
    return synthesized_app.template(*stack_key)


@pytest.fixture
def stack_template_json(synthesized_app: SynthesizedApp, stack_key: tuple[str, str]) -> dict:
    return synthesized_app.template_json(*stack_key)
