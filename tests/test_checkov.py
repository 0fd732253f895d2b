"""checkov (a policy scanner) finds no failed check in the synthesized templates of any
environment, and every check it skips is skipped in the template with a specific reason
(`Metadata.checkov.skip`, written by stacks/checkov_skips.py).

checkov runs from its own virtual env, `.venv-checkov` (`make setup-checkov`; `make test` builds
it): it pins an older boto3 than the app. It runs once per session over all nine templates.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CHECKOV = PROJECT_ROOT / ".venv-checkov" / "bin" / "checkov"
PINNED_REQUIREMENTS = PROJECT_ROOT / "requirements-checkov.txt"
MISSING_ENV = "checkov's own virtual env is missing: `make setup-checkov` builds .venv-checkov (make test does)"
# What checkov writes for a skip without a comment, and other non-reasons.
PLACEHOLDER_REASONS = {"no comment provided", "todo", "tbd", "n/a", "none", "suppressed", "not needed", "ignore"}
MIN_REASON_WORDS = 5


def pinned_version() -> str:
    for line in PINNED_REQUIREMENTS.read_text().splitlines():
        if line.startswith("checkov=="):
            return line.split("==", 1)[1].strip()
    raise AssertionError(f"{PINNED_REQUIREMENTS.name} pins no checkov version")


def run_checkov(template_paths: list[Path]) -> list[dict]:
    """checkov's JSON report(s) for the templates: one report per framework it ran."""
    command = [str(CHECKOV), "--framework", "cloudformation", "--skip-download", "--output", "json"]
    for path in template_paths:
        command += ["--file", str(path)]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=PROJECT_ROOT)
    # Exit status 1 means "failed checks", which the tests below report one by one.
    assert completed.returncode in (0, 1), completed.stderr[-4000:]
    report = json.loads(completed.stdout)
    return report if isinstance(report, list) else [report]


def checks(reports: list[dict], kind: str) -> list[dict]:
    return [check for report in reports for check in report.get("results", {}).get(kind, [])]


def describe(check: dict) -> str:
    return f"{check['check_id']} {Path(check['file_path']).name} {check['resource']}: {check['check_name']}"


@pytest.fixture(scope="session")
def checkov_reports(synthesized_app) -> list[dict]:
    if not CHECKOV.exists():
        pytest.skip(MISSING_ENV)
    return run_checkov([synthesized_app.template_path(*key) for key in sorted(synthesized_app.stacks)])


def test_checkov_is_the_pinned_version():
    if not CHECKOV.exists():
        pytest.skip(MISSING_ENV)
    version = subprocess.run([str(CHECKOV), "--version"], capture_output=True, text=True, timeout=120).stdout.strip()
    assert version == pinned_version(), f"checkov {version} is not the pinned {pinned_version()}: run `make setup-checkov`"


def test_every_template_was_scanned(synthesized_app, checkov_reports):
    scanned = {Path(check["file_path"]).name for kind in ("passed_checks", "failed_checks", "skipped_checks")
               for check in checks(checkov_reports, kind)}
    expected = {synthesized_app.template_path(*key).name for key in synthesized_app.stacks}
    assert scanned == expected
    assert not [error for report in checkov_reports for error in report.get("results", {}).get("parsing_errors", [])]


def test_no_failed_checks(checkov_reports):
    failed = checks(checkov_reports, "failed_checks")
    by_check = Counter(check["check_id"] for check in failed)
    assert not failed, f"{len(failed)} failed checkov checks {dict(by_check)}:\n" + "\n".join(map(describe, failed))


def test_every_skip_has_a_specific_reason(checkov_reports):
    for check in checks(checkov_reports, "skipped_checks"):
        reason = (check["check_result"].get("suppress_comment") or "").strip()
        assert reason.lower().rstrip(".") not in PLACEHOLDER_REASONS, f"{describe(check)}: {reason!r}"
        assert len(reason.split()) >= MIN_REASON_WORDS, f"{describe(check)}: reason too short: {reason!r}"
        assert check["check_id"] not in reason and check["check_name"] not in reason, describe(check)


def test_skips_in_the_templates_are_exactly_what_checkov_skipped(synthesized_app, checkov_reports):
    # A skip checkov did not apply (a mistyped id, a check that no longer exists) is dead text.
    in_templates = set()
    for key in synthesized_app.stacks:
        for logical_id, resource in synthesized_app.template_json(*key).get("Resources", {}).items():
            for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
                in_templates.add((synthesized_app.template_path(*key).name, logical_id, skip["id"]))
    applied = {(Path(check["file_path"]).name, check["resource"].split(".", 1)[1], check["check_id"])
               for check in checks(checkov_reports, "skipped_checks")}
    assert in_templates == applied


def test_harness_reports_failures_and_unexplained_skips(tmp_path):
    """The checks above pass only because nothing is wrong, not because checkov did not run."""
    if not CHECKOV.exists():
        pytest.skip(MISSING_ENV)
    template = {
        "Resources": {
            "PlainQueue": {"Type": "AWS::SQS::Queue", "Properties": {"SqsManagedSseEnabled": True}},
            "PlainLogGroup": {
                "Type": "AWS::Logs::LogGroup", "Properties": {"RetentionInDays": 7},
                "Metadata": {"checkov": {"skip": [{"id": "CKV_AWS_158"}]}},
            },
        }
    }
    path = tmp_path / "noncompliant.template.json"
    path.write_text(json.dumps(template))
    reports = run_checkov([path])
    assert "CKV_AWS_27" in {check["check_id"] for check in checks(reports, "failed_checks")}
    [skipped] = checks(reports, "skipped_checks")
    assert skipped["check_result"]["suppress_comment"].strip().lower() in PLACEHOLDER_REASONS
