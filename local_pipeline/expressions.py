"""Evaluates the expressions of a pipeline definition as SageMaker does when it runs a step:
`Get` of parameters, execution variables and step properties, `Std:Join` and `Std:JsonGet`.

Everything a definition can hold that this module does not know is an error that names it,
so a definition that would need more of the service than is emulated here fails loudly.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping


class ExpressionError(Exception):
    """A definition expression that cannot be evaluated (unknown reference, bad path...)."""


# One step of a property path: `.Name`, `['key']` or `[3]`.
_PATH_TOKEN = re.compile(r"\.?([A-Za-z0-9_]+)|\['([^']*)'\]|\[(\d+)\]")


def path_tokens(path: str) -> list[str | int]:
    tokens: list[str | int] = []
    position = 0
    while position < len(path):
        match = _PATH_TOKEN.match(path, position)
        if match is None or match.end() == position:
            raise ExpressionError(f"cannot parse property path {path!r} at {path[position:]!r}")
        name, key, index = match.groups()
        tokens.append(int(index) if index is not None else (name if name is not None else key))
        position = match.end()
    return tokens


def _find_named(items: list, key: str, path: str) -> Any:
    """`Outputs['train']`: the list item whose *Name field (OutputName, ChannelName...) is key."""
    for item in items:
        if isinstance(item, Mapping) and any(
            name.endswith("Name") and value == key for name, value in item.items()
        ):
            return item
    names = sorted({str(v) for item in items if isinstance(item, Mapping) for k, v in item.items() if k.endswith("Name")})
    raise ExpressionError(f"{path}: no item named {key!r} (there are {names})")


def follow_path(document: Any, tokens: list[str | int], path: str) -> Any:
    value = document
    for token in tokens:
        if isinstance(token, int):
            if not isinstance(value, list) or token >= len(value):
                raise ExpressionError(f"{path}: index [{token}] is out of range")
            value = value[token]
        elif isinstance(value, list):
            value = _find_named(value, token, path)
        elif isinstance(value, Mapping) and token in value:
            value = value[token]
        else:
            available = sorted(value) if isinstance(value, Mapping) else type(value).__name__
            raise ExpressionError(f"{path}: {token!r} does not exist (available: {available})")
    return value


def json_get(document: Any, path: str) -> Any:
    """Std:JsonGet's Path: dotted keys with optional [n] indexes (a JsonPath subset)."""
    tokens = path_tokens(path)
    try:
        return follow_path(document, tokens, path)
    except ExpressionError as error:
        raise ExpressionError(f"JsonGet {error}") from None


@dataclass
class EvaluationContext:
    """What a running execution knows: its parameters and variables, and the properties and
    property files of the steps that have finished."""

    parameters: Mapping[str, Any]
    execution_variables: Mapping[str, Any]
    step_properties: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    # (step name, property file name) -> parsed JSON, read lazily from the step's output.
    read_property_file: Callable[[str, str], Any] | None = None

    def get(self, reference: str) -> Any:
        head, _, rest = reference.partition(".")
        if head == "Parameters":
            if rest not in self.parameters:
                raise ExpressionError(f"Get {reference}: no parameter {rest!r} (declared: {sorted(self.parameters)})")
            return self.parameters[rest]
        if head == "Execution":
            if rest not in self.execution_variables:
                raise ExpressionError(f"Get {reference}: unknown execution variable {rest!r}")
            return self.execution_variables[rest]
        if head == "Steps":
            step_name, _, path = rest.partition(".")
            if step_name not in self.step_properties:
                raise ExpressionError(f"Get {reference}: step {step_name!r} has not run (or does not exist)")
            tokens = path_tokens(path)
            if tokens[:1] == ["PropertyFiles"] and len(tokens) == 2:
                if self.read_property_file is None:
                    raise ExpressionError(f"Get {reference}: property files are not available here")
                return self.read_property_file(step_name, str(tokens[1]))
            return follow_path(self.step_properties[step_name], tokens, f"Get {reference}")
        raise ExpressionError(f"Get {reference}: unknown reference kind {head!r}")


def _to_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def evaluate(value: Any, context: EvaluationContext) -> Any:
    """The value with every expression inside it replaced by its result."""
    if isinstance(value, list):
        return [evaluate(item, context) for item in value]
    if not isinstance(value, Mapping):
        return value
    if set(value) == {"Get"}:
        return context.get(value["Get"])
    if set(value) == {"Std:Join"}:
        join = value["Std:Join"]
        return str(join["On"]).join(_to_text(evaluate(item, context)) for item in join["Values"])
    if set(value) == {"Std:JsonGet"}:
        spec = value["Std:JsonGet"]
        document = evaluate(spec["PropertyFile"], context)
        return json_get(document, spec["Path"])
    unknown = [key for key in value if ":" in key and key.split(":")[0] in ("Std", "Fn")]
    if unknown:
        raise ExpressionError(f"unsupported function {unknown[0]!r} in the definition")
    return {key: evaluate(item, context) for key, item in value.items()}


def step_references(value: Any) -> set[str]:
    """Names of the steps whose properties or property files `value` reads."""
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= step_references(item)
    elif isinstance(value, Mapping):
        reference = value.get("Get")
        if isinstance(reference, str) and reference.startswith("Steps."):
            found.add(reference.split(".")[1])
        for item in value.values():
            found |= step_references(item)
    return found
