"""IAM policy evaluation for tests, as AWS describes it for one account: an explicit Deny in any
applicable policy wins, then an Allow in the caller's identity policies or in the resource's
policy allows, and anything else is denied implicitly. Statements are matched on Action /
NotAction, Resource / NotResource (IAM wildcards), the resource policy's Principal, and their
Condition blocks, evaluated against the request context a test supplies.

It covers the condition operators the project's policies use; any other operator is an error,
so a policy that grows one fails its test instead of being half understood. The policies come
from the synthesized templates, resolved by local_pipeline.cloudformation.Deployment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

ALLOWED = "allowed"
EXPLICITLY_DENIED = "explicitly denied"
IMPLICITLY_DENIED = "implicitly denied"


@dataclass(frozen=True)
class Request:
    """One API call: who makes it, the IAM action, the resource ARN and the request context
    (condition keys present in the request; a key left out is absent)."""

    principal_arn: str
    action: str
    resource: str
    context: Mapping[str, str | list[str]] = field(default_factory=dict)


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def _wildcard(pattern: str, *, ignore_case: bool = False) -> re.Pattern:
    """IAM's wildcards: `*` any run of characters (slashes included), `?` one character."""
    regex = "".join(".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern)
    return re.compile(f"^{regex}$", re.IGNORECASE if ignore_case else 0)


def _matches_any(patterns: Iterable[str], value: str, *, ignore_case: bool = False) -> bool:
    return any(_wildcard(str(pattern), ignore_case=ignore_case).match(value) for pattern in patterns)


def _compare(operator: str, expected: list, actual: str) -> bool:
    """Whether one present context value satisfies the (positive) operator."""
    if operator == "StringEquals":
        return actual in [str(value) for value in expected]
    if operator == "StringEqualsIgnoreCase":
        return actual.lower() in [str(value).lower() for value in expected]
    if operator in ("StringLike", "ArnLike", "ArnEquals"):
        return _matches_any(expected, actual)
    if operator == "Bool":
        return actual.lower() in [str(value).lower() for value in expected]
    numeric = {"NumericEquals": float.__eq__, "NumericLessThan": float.__lt__, "NumericLessThanEquals": float.__le__,
               "NumericGreaterThan": float.__gt__, "NumericGreaterThanEquals": float.__ge__}
    if operator in numeric:
        return any(numeric[operator](float(actual), float(value)) for value in expected)
    raise ValueError(f"condition operator {operator} is not evaluated here")


_NEGATED = {"StringNotEquals": "StringEquals", "StringNotLike": "StringLike", "ArnNotEquals": "ArnEquals",
            "ArnNotLike": "ArnLike", "NumericNotEquals": "NumericEquals", "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase"}


def _condition_holds(operator: str, key: str, expected: Any, context: Mapping[str, Any]) -> bool:
    expected = _as_list(expected)
    present = key in context
    if operator == "Null":
        # "true": the key must be absent; "false": present.
        return (not present) == (str(expected[0]).lower() == "true")
    if_exists = operator.endswith("IfExists")
    base = operator.removesuffix("IfExists")
    if not present:
        # A missing key fails a condition, except that IfExists passes and a negated operator
        # ("not equal to anything listed") holds.
        return if_exists or base in _NEGATED
    actual_values = [str(value) for value in _as_list(context[key])]
    if base in _NEGATED:
        return not any(_compare(_NEGATED[base], expected, actual) for actual in actual_values)
    return any(_compare(base, expected, actual) for actual in actual_values)


def conditions_hold(conditions: Mapping[str, Mapping[str, Any]], context: Mapping[str, Any]) -> bool:
    return all(
        _condition_holds(operator, key, expected, context)
        for operator, keys in conditions.items()
        for key, expected in keys.items()
    )


def _principal_matches(principal: Any, principal_arn: str) -> bool:
    if principal == "*":
        return True
    if not isinstance(principal, Mapping):
        return False
    for arn in _as_list(principal.get("AWS", [])):
        account_root = re.sub(r":(role|user|assumed-role)/.*$", ":root", principal_arn)
        if arn in ("*", principal_arn, account_root):
            return True
    return False


def _applies(statement: Mapping[str, Any], request: Request, *, resource_policy: bool) -> bool:
    if "Action" in statement:
        if not _matches_any(_as_list(statement["Action"]), request.action, ignore_case=True):
            return False
    elif _matches_any(_as_list(statement["NotAction"]), request.action, ignore_case=True):
        return False
    if "Resource" in statement:
        if not _matches_any(_as_list(statement["Resource"]), request.resource):
            return False
    elif "NotResource" in statement and _matches_any(_as_list(statement["NotResource"]), request.resource):
        return False
    if resource_policy and not _principal_matches(statement.get("Principal"), request.principal_arn):
        return False
    return conditions_hold(statement.get("Condition", {}), request.context)


def _statements(documents: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [statement for document in documents for statement in _as_list(document.get("Statement", []))]


def evaluate(request: Request, identity_policies: Iterable[Mapping[str, Any]],
             resource_policies: Iterable[Mapping[str, Any]] = ()) -> str:
    """ALLOWED, EXPLICITLY_DENIED or IMPLICITLY_DENIED (caller and resource in one account)."""
    identity = [s for s in _statements(identity_policies) if _applies(s, request, resource_policy=False)]
    resource = [s for s in _statements(resource_policies) if _applies(s, request, resource_policy=True)]
    applicable = identity + resource
    if any(statement["Effect"] == "Deny" for statement in applicable):
        return EXPLICITLY_DENIED
    if any(statement["Effect"] == "Allow" for statement in applicable):
        return ALLOWED
    return IMPLICITLY_DENIED


def evaluate_cross_account(request: Request, identity_policies: Iterable[Mapping[str, Any]],
                           resource_policies: Iterable[Mapping[str, Any]]) -> str:
    """Caller and resource in different accounts: the caller's identity policies *and* the
    resource's policy must each allow the request; an explicit Deny in either wins."""
    identity = evaluate(request, identity_policies)
    resource = evaluate(request, (), resource_policies)
    if EXPLICITLY_DENIED in (identity, resource):
        return EXPLICITLY_DENIED
    return ALLOWED if identity == resource == ALLOWED else IMPLICITLY_DENIED
