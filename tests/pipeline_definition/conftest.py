"""Fixtures of the pipeline-definition tests: each environment's definition, generated once
per session (generation takes one to two seconds)."""

from __future__ import annotations

import json

import pytest
from definition_helpers import generated_definition_text


@pytest.fixture(scope="session", autouse=True)
def fresh_definitions():
    # The cache lives in the module, so it would outlive a pytest session run in a process that
    # runs several (mutmut runs one per mutant): each session generates its definitions anew.
    generated_definition_text.cache_clear()


@pytest.fixture
def definition_text(environment_name) -> str:
    return generated_definition_text(environment_name)


@pytest.fixture
def definition(definition_text) -> dict:
    return json.loads(definition_text)


@pytest.fixture
def dev_definition() -> dict:
    return json.loads(generated_definition_text("dev"))
