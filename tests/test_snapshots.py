"""A syrupy snapshot of every stack of every environment, one JSON file per stack, so that any
template change shows up as a reviewable diff.

Update one stack's snapshot after an intended change:
    .venv/bin/python -m pytest tests/test_snapshots.py -k dev-pipeline --snapshot-update
Each (env, component) pair has its own file under tests/__snapshots__/test_snapshots/, so
updating the pipeline snapshots never touches the serving or foundation ones.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from syrupy.extensions.json import JSONSnapshotExtension

# Everything in a template that changes with file contents rather than with the code of the
# stacks: CDK asset hashes (SHA-256, in S3 keys, asset paths and metadata).
VOLATILE_PATTERNS = {
    "<asset-hash>": re.compile(r"(?<![0-9a-fA-F])[0-9a-f]{64}(?![0-9a-fA-F])"),
}


def mask_volatile(template: dict) -> dict:
    text = json.dumps(template, sort_keys=True)
    for placeholder, pattern in VOLATILE_PATTERNS.items():
        text = pattern.sub(placeholder, text)
    return json.loads(text)


@pytest.fixture
def snapshot_json(snapshot):
    return snapshot.use_extension(JSONSnapshotExtension)


def test_stack_template_matches_snapshot(synthesized_app, stack_key, snapshot_json):
    assert mask_volatile(synthesized_app.template_json(*stack_key)) == snapshot_json


def test_masking_hides_asset_hashes_only():
    digest = "0123456789abcdef" * 4
    template = {"S3Key": f"{digest}.zip", "Path": f"asset.{digest}", "LogicalId": "DataBucketB1B922FA",
                "Longer": "a" * 65}
    assert mask_volatile(template) == {
        "S3Key": "<asset-hash>.zip", "Path": "asset.<asset-hash>", "LogicalId": "DataBucketB1B922FA",
        "Longer": "a" * 65,
    }


def test_synthesized_templates_carry_no_machine_specific_paths(synthesized_app, stack_key):
    # The same commit must give the same snapshot on any machine.
    text = json.dumps(synthesized_app.template_json(*stack_key))
    assert str(synthesized_app.template_path(*stack_key).parent) not in text
    assert "/work/" not in text and "/tmp/" not in text


def test_every_stack_of_the_app_is_snapshotted(synthesized_app):
    # The parametrization comes from cdk.json alone; a stack the app adds must not slip past it.
    environments = json.loads((Path(__file__).parent.parent / "cdk.json").read_text())["context"]["environments"]
    expected = {(env, component) for env in environments for component in ("foundation", "pipeline", "serving")
                # an environment that promotes another's models has no pipeline
                if component != "pipeline" or not environments[env].get("model_source", {}).get("promote_from")}
    assert set(synthesized_app.stacks) == expected
    assert len(synthesized_app.assembly.stacks) == len(expected)
