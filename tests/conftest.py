"""Fixtures shared by the whole suite: an offline AWS environment, moto's server on
127.0.0.1, and container_code/ on the import path (its scripts import each other flatly)."""

from __future__ import annotations

import os
import sys
import urllib.request
from pathlib import Path

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
