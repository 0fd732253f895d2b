"""Reading synthesized CloudFormation templates in tests: resources by type, the statements a
role holds, and the conditions a template declares, evaluated for given parameter values."""

from __future__ import annotations

from typing import Any


def as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def resources_of_type(template: dict, resource_type: str) -> dict[str, dict]:
    return {key: value for key, value in template["Resources"].items() if value["Type"] == resource_type}


def only(template: dict, resource_type: str, logical_id_prefix: str = "") -> tuple[str, dict]:
    found = {key: value for key, value in resources_of_type(template, resource_type).items()
             if key.startswith(logical_id_prefix)}
    assert len(found) == 1, f"expected one {resource_type} {logical_id_prefix}*, found {sorted(found)}"
    return next(iter(found.items()))


def role_statements(template: dict, role_logical_id_prefix: str) -> list[dict]:
    """Every statement of every AWS::IAM::Policy attached to the one role with that logical id prefix."""
    role_logical_id, _ = only(template, "AWS::IAM::Role", role_logical_id_prefix)
    statements = []
    for policy in resources_of_type(template, "AWS::IAM::Policy").values():
        if {"Ref": role_logical_id} in policy["Properties"]["Roles"]:
            statements.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    assert statements, f"no policy attached to {role_logical_id}"
    return statements


def actions_of(statements: list[dict]) -> set[str]:
    return {action for statement in statements for action in as_list(statement["Action"])}


def evaluate_condition(expression: Any, parameters: dict[str, str]) -> Any:
    """Evaluates the intrinsic functions a condition may use here (Not, Equals, Ref)."""
    if isinstance(expression, dict):
        (function, argument), = expression.items()
        if function == "Ref":
            return parameters[argument]
        if function == "Fn::Not":
            return not evaluate_condition(argument[0], parameters)
        if function == "Fn::Equals":
            left, right = (evaluate_condition(item, parameters) for item in argument)
            return left == right
        raise AssertionError(f"unexpected function {function} in a condition")
    return expression


def deployed_resource_types(template: dict, parameters: dict[str, str]) -> set[str]:
    """The types of the resources CloudFormation creates when the parameters resolve to these values."""
    conditions = {
        name: evaluate_condition(expression, parameters) for name, expression in template.get("Conditions", {}).items()
    }
    return {
        resource["Type"] for resource in template["Resources"].values()
        if conditions.get(resource.get("Condition"), True)
    }
