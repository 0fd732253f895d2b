"""One way to suppress a cdk-nag finding: always with a written reason, and for wildcard
findings (AwsSolutions-IAM5) always naming exactly which wildcard is accepted."""

from __future__ import annotations

from typing import Sequence

from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import IConstruct

MIN_REASON_LENGTH = 10  # cdk-nag itself rejects shorter reasons


def suppress(
    construct: IConstruct,
    rule_id: str,
    reason: str,
    *,
    applies_to: Sequence[str] = (),
    apply_to_children: bool = False,
) -> None:
    """Suppress `rule_id` on `construct`; `applies_to` limits an IAM5 suppression to the listed findings."""
    if len(reason.strip()) < MIN_REASON_LENGTH:
        raise ValueError(f"suppression of {rule_id} needs a reason of at least {MIN_REASON_LENGTH} characters")
    if rule_id == "AwsSolutions-IAM5" and not applies_to:
        raise ValueError("an AwsSolutions-IAM5 suppression must name the wildcards it accepts (applies_to)")
    NagSuppressions.add_resource_suppressions(
        construct,
        [NagPackSuppression(id=rule_id, reason=reason, applies_to=list(applies_to) or None)],
        apply_to_children=apply_to_children,
    )
