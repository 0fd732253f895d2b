"""Composes the stacks of every configured environment into a CDK app.

Kept apart from `app.py` so that tests build exactly what `cdk synth` builds.
"""

from __future__ import annotations

import aws_cdk as cdk

from stacks.config import ENVIRONMENTS_CONTEXT_KEY, EnvironmentConfig, parse_environments
from stacks.pipeline_definitions import definition_template as generate_definition_template
from stacks.pipeline_definitions import generate_while_validation_engine_starts


def selected_environments(app: cdk.App) -> list[EnvironmentConfig]:
    selected = app.node.try_get_context("env")
    return parse_environments(app.node.try_get_context(ENVIRONMENTS_CONTEXT_KEY), selected=selected)


def build_environment(
    app: cdk.App, config: EnvironmentConfig, definition_template: str | None = None,
) -> dict[str, cdk.Stack]:
    """`definition_template`: the environment's generated pipeline definition, if already made."""
    # Imported here: the stack modules import the SageMaker SDK, and build_app lets a worker
    # thread import it first, while node is busy (stacks/pipeline_definitions.py).
    from stacks.foundation_stack import FoundationStack
    from stacks.pipeline_stack import PipelineStack
    from stacks.serving_stack import ServingStack

    env = cdk.Environment(account=config.account, region=config.region)
    foundation = FoundationStack(
        app, config.stack_name("foundation"), config=config, env=env,
        description=f"Review classifier ({config.name}): storage, KMS, Feature Store, model registry, roles",
    )
    pipeline = PipelineStack(
        app, config.stack_name("pipeline"), config=config, shared=foundation.shared, env=env,
        definition_template=generate_definition_template(config) if definition_template is None else definition_template,
        description=f"Review classifier ({config.name}): SageMaker training pipeline",
    )
    serving = ServingStack(
        app, config.stack_name("serving"), config=config, shared=foundation.shared, env=env,
        description=f"Review classifier ({config.name}): endpoint that follows model approvals",
    )
    for stack in (foundation, pipeline, serving):
        tags = cdk.Tags.of(stack)
        for key, value in config.tags.items():
            tags.add(key, value)
    return {"foundation": foundation, "pipeline": pipeline, "serving": serving}


def build_app(app: cdk.App) -> dict[str, dict[str, cdk.Stack]]:
    """Add every selected environment's stacks to `app`; returns them by environment name."""
    configs = selected_environments(app)
    definitions = generate_while_validation_engine_starts(app, configs)
    return {config.name: build_environment(app, config, definitions[config.name]) for config in configs}
