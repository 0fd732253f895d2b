"""stacks/pipeline_definitions.py: the definitions come back as the pipeline stack would have
generated them, and the validation plugin registered early reports as the built-in one would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import aws_cdk as cdk

from stacks.config import CDK_JSON, ENVIRONMENTS_CONTEXT_KEY, parse_environments
from stacks.pipeline_definitions import (
    VALIDATION_SWITCH,
    definition_template,
    generate_while_validation_engine_starts,
    start_validation_engine,
)

PROJECT_ROOT = CDK_JSON.parent
VALIDATION_REPORT = "validation-report.json"


def _synth_empty_stack(outdir: Path, *, register_early: bool) -> Path:
    # A stack without resources: the CDK's default rules report it (F0001, a warning).
    app = cdk.App(outdir=str(outdir))
    if register_early:
        start_validation_engine(app)
    cdk.Stack(app, "Empty", env=cdk.Environment(account="111111111111", region="us-east-1"))
    app.synth()
    return outdir / VALIDATION_REPORT


def _violations(report_path: Path) -> list[tuple[str, str, str]]:
    report = json.loads(report_path.read_text())
    return sorted(
        (plugin["pluginName"], violation["ruleName"], violation["severity"])
        for plugin in report["pluginReports"]
        for violation in plugin["violations"]
    )


def test_early_registered_plugin_reports_what_the_built_in_one_reports(tmp_path):
    built_in = _violations(_synth_empty_stack(tmp_path / "built-in", register_early=False))
    early = _violations(_synth_empty_stack(tmp_path / "early", register_early=True))
    assert built_in, "the empty stack should have drawn a finding from the default rules"
    assert early == built_in


def test_switched_off_validation_stays_off(tmp_path):
    # In a process of its own: node reads the switch from the environment it was started with.
    script = (
        "import sys, aws_cdk as cdk; from stacks.pipeline_definitions import start_validation_engine; "
        "app = cdk.App(outdir=sys.argv[1]); start_validation_engine(app); cdk.Stack(app, 'Empty'); app.synth()"
    )
    env = {**os.environ, VALIDATION_SWITCH: "false", "PYTHONPATH": str(PROJECT_ROOT)}
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path)], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "manifest.json").exists() and not (tmp_path / VALIDATION_REPORT).exists()


def test_definitions_by_environment_are_the_generated_ones(tmp_path):
    context = json.loads(CDK_JSON.read_text())["context"]
    configs = parse_environments(context[ENVIRONMENTS_CONTEXT_KEY])
    definitions = generate_while_validation_engine_starts(cdk.App(outdir=str(tmp_path)), configs)
    assert list(definitions) == [config.name for config in configs]
    for config in configs:
        assert definitions[config.name] == definition_template(config)
        assert json.loads(definitions[config.name])["Steps"]
