"""Helpers shared by the pipeline-definition tests (imported as a plain module: pytest puts
this folder on sys.path)."""

from __future__ import annotations

import functools


@functools.lru_cache(maxsize=None)
def generated_definition_text(environment: str) -> str:
    """The definition JSON (with deploy-time placeholders) of `environment`."""
    from pipeline_definition import PipelineDefinitionSettings, definition_json
    from stacks.config import load_environment

    return definition_json(PipelineDefinitionSettings.from_environment(load_environment(environment)))


def all_steps(definition: dict) -> list[dict]:
    """Every step, including those inside condition branches (nested ones too)."""
    steps = []
    pending = list(definition["Steps"])
    while pending:
        step = pending.pop(0)
        steps.append(step)
        if step["Type"] == "Condition":
            pending[:0] = [*step["Arguments"].get("IfSteps", []), *step["Arguments"].get("ElseSteps", [])]
    return steps


def step_named(definition: dict, name: str) -> dict:
    for step in all_steps(definition):
        if step["Name"] == name:
            return step
    raise KeyError(f"no step named {name}; steps: {[s['Name'] for s in all_steps(definition)]}")
