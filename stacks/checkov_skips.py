"""One way to skip a checkov check: on one resource, always with a specific reason, written into
the template where checkov reads it (`Metadata.checkov.skip`, each entry `{id, comment}`).

The cdk-nag counterpart is `stacks/nag_suppressions.suppress`; tests/test_checkov.py fails on any
failed check and on any skip without a real reason.
"""

from __future__ import annotations

import aws_cdk as cdk
from constructs import IConstruct

METADATA_KEY = "checkov"
MIN_REASON_WORDS = 5


def skip_checkov(construct: IConstruct, check_id: str, reason: str) -> None:
    """Skip `check_id` (e.g. CKV_AWS_117) on `construct`'s CloudFormation resource."""
    skip_checkovs(construct, {check_id: reason})


def skip_checkovs(construct: IConstruct, reasons: dict[str, str]) -> None:
    """Skip each check id in `reasons` on `construct`'s resource, in order, with its reason.

    One metadata read and write per resource, whatever the number of checks: each is a round
    trip to node through jsii.
    """
    for check_id, reason in reasons.items():
        if not check_id.startswith("CKV"):
            raise ValueError(f"{check_id!r} is not a checkov check id")
        if len(reason.split()) < MIN_REASON_WORDS:
            raise ValueError(f"skipping {check_id} needs a reason of at least {MIN_REASON_WORDS} words")
    resource = _cfn_resource(construct)
    metadata = resource.get_metadata(METADATA_KEY) or {}
    skips = [entry for entry in metadata.get("skip", []) if entry["id"] not in reasons]
    skips.extend({"id": check_id, "comment": reason} for check_id, reason in reasons.items())
    resource.add_metadata(METADATA_KEY, {**metadata, "skip": skips})


def _cfn_resource(construct: IConstruct) -> cdk.CfnResource:
    if isinstance(construct, cdk.CfnResource):
        return construct
    child = construct.node.default_child
    if not isinstance(child, cdk.CfnResource):
        raise TypeError(f"{construct.node.path} has no CloudFormation resource to carry a checkov skip")
    return child


# The three Lambda checks that are decided per function, each with its reason.
LAMBDA_RESERVED_CONCURRENCY = "CKV_AWS_115"
LAMBDA_DEAD_LETTER_QUEUE = "CKV_AWS_116"
LAMBDA_IN_VPC = "CKV_AWS_117"


def skip_lambda_checks(function: IConstruct, *, concurrency: str, dead_letter_queue: str, vpc: str) -> None:
    """Record why a function has no reserved concurrency, no dead-letter queue and no VPC."""
    skip_checkovs(function, {
        LAMBDA_RESERVED_CONCURRENCY: concurrency, LAMBDA_DEAD_LETTER_QUEUE: dead_letter_queue, LAMBDA_IN_VPC: vpc,
    })


def skip_cdk_provider_checks(
    function: IConstruct | None, *, where: str, what: str, runs_when: str, service: str, calls_on: str
) -> None:
    """The Lambda checks for a function the CDK itself adds behind a custom resource (`what`,
    found at `where`): CloudFormation alone invokes it, on `runs_when`, and it calls only
    `service` on `calls_on`. A missing function means the CDK moved it: fail, not skip."""
    if function is None:
        raise LookupError(f"{where}: {what} is not where it used to be")
    skip_lambda_checks(
        function,
        concurrency=f"{what} runs only when CloudFormation {runs_when}; reserving concurrency for it "
        "would only take from the account.",
        dead_letter_queue="CloudFormation invokes it as a custom resource and reports a failure as a "
        "failed stack operation; no one would read a dead-letter queue.",
        vpc=f"It calls only the {service} API on {calls_on} and reaches no private network resource; "
        f"a VPC would need NAT or an {service} endpoint and narrow nothing its role does not.",
    )
