"""The parity-env skip: it skips only where `make test` declared an image's env, and names the
missing module and the image; anywhere else the missing module fails the test."""

from __future__ import annotations

import pytest

import parity_env


def missing_module() -> ModuleNotFoundError:
    return ModuleNotFoundError("No module named 'a_serving_toolkit'", name="a_serving_toolkit")


def test_outside_a_parity_env_a_missing_module_is_raised(monkeypatch):
    monkeypatch.setattr(parity_env, "PARITY_IMAGE", None)
    with pytest.raises(ModuleNotFoundError, match="a_serving_toolkit"):
        parity_env.skip_where_the_image_lacks(missing_module(), "LocalEndpoint")


def test_in_a_parity_env_the_test_is_skipped_with_the_reason(monkeypatch):
    monkeypatch.setattr(parity_env, "PARITY_IMAGE", "inference")
    with pytest.raises(pytest.skip.Exception) as skipped:
        parity_env.skip_where_the_image_lacks(missing_module(), "LocalEndpoint")
    assert str(skipped.value) == "LocalEndpoint needs a_serving_toolkit, which the inference image does not ship"
