"""A syrupy snapshot of each environment's definition (one JSON file per environment), so a
reviewer sees every change to what the pipeline runs as a diff.

Update after an intended change:
    .venv/bin/python -m pytest tests/pipeline_definition/test_definition_snapshots.py --snapshot-update
"""

from __future__ import annotations

import pytest
from syrupy.extensions.json import JSONSnapshotExtension


@pytest.fixture
def snapshot_json(snapshot):
    return snapshot.use_extension(JSONSnapshotExtension)


def test_definition_matches_snapshot(definition, snapshot_json):
    # Placeholders, not deploy-time values: nothing here varies between machines.
    assert definition == snapshot_json
