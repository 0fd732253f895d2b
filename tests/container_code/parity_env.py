"""Which image's parity env these tests run in: `make test` runs them again in .parity/<image>
with PARITY_IMAGE=<image> (see images.py). There, and only there, a test that needs a module
the image does not ship is skipped and says so; anywhere else a missing module is a set-up
error and fails."""

from __future__ import annotations

import os

import pytest

PARITY_IMAGE = os.environ.get("PARITY_IMAGE")


def skip_where_the_image_lacks(missing: ModuleNotFoundError, needed_by: str) -> None:
    """Call from `except ModuleNotFoundError as missing:`; re-raises outside a parity env."""
    __tracebackhide__ = True  # report the skip at the test, not here
    if PARITY_IMAGE is None:
        raise missing
    pytest.skip(f"{needed_by} needs {missing.name}, which the {PARITY_IMAGE} image does not ship")
