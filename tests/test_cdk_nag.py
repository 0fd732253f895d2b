"""cdk-nag's AwsSolutions pack finds nothing unsuppressed in any stack, and every suppression
says why (and, for wildcard permissions, exactly which wildcard it accepts)."""

from __future__ import annotations

import pytest

MIN_REASON_LENGTH = 10  # cdk-nag's own minimum
PLACEHOLDER_REASONS = {"todo", "tbd", "n/a", "none", "fix later", "suppressed", "not needed", "ignore"}


def suppressions(template: dict) -> list[tuple[str, dict]]:
    """(where, suppression) for the stack-level and every resource-level cdk-nag suppression."""
    found = [("stack", rule) for rule in template.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])]
    for logical_id, resource in template.get("Resources", {}).items():
        for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", []):
            found.append((logical_id, rule))
    return found


def test_no_unsuppressed_findings(synthesized_app, stack_key):
    findings = synthesized_app.nag_findings(*stack_key)
    assert not findings, "unsuppressed cdk-nag findings:\n" + "\n".join(findings)


def test_every_suppression_has_a_real_reason(synthesized_app, stack_key):
    for where, rule in suppressions(synthesized_app.template_json(*stack_key)):
        reason = rule.get("reason", "").strip()
        assert len(reason) >= MIN_REASON_LENGTH, f"{where}: {rule['id']} reason too short: {reason!r}"
        assert len(reason.split()) >= 3, f"{where}: {rule['id']} reason is not a sentence: {reason!r}"
        assert reason.lower().rstrip(".") not in PLACEHOLDER_REASONS, f"{where}: {rule['id']}: {reason!r}"
        assert rule["id"] not in reason, f"{where}: the reason restates the rule id: {reason!r}"


def test_wildcard_suppressions_name_their_wildcards(synthesized_app, stack_key):
    for where, rule in suppressions(synthesized_app.template_json(*stack_key)):
        if rule["id"] == "AwsSolutions-IAM5":
            assert rule.get("applies_to"), f"{where}: blanket AwsSolutions-IAM5 suppression; list the wildcards"


def test_harness_reports_findings_of_a_noncompliant_stack(offline_aws_environment, tmp_path):
    """The checks above pass only because nothing is wrong, not because nag did not run."""
    import aws_cdk as cdk
    from aws_cdk import aws_s3 as s3
    from cdk_nag import AwsSolutionsChecks

    app = cdk.App(outdir=str(tmp_path))
    stack = cdk.Stack(app, "Noncompliant")
    s3.Bucket(stack, "PlainBucket")
    cdk.Aspects.of(app).add(AwsSolutionsChecks(reports=False))
    messages = app.synth().get_stack_artifact(stack.artifact_id).messages
    rules = {str(message.entry.data).split(":")[0] for message in messages}
    assert {"AwsSolutions-S1", "AwsSolutions-S10"} <= rules
