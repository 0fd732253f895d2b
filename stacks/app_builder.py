"""Composes the stacks of every configured environment into a CDK app.

Kept apart from `app.py` so that tests build exactly what `cdk synth` builds.
"""

from __future__ import annotations

import aws_cdk as cdk

from stacks.config import ENVIRONMENTS_CONTEXT_KEY, EnvironmentConfig, parse_environments
from stacks.foundation_stack import FoundationStack
from stacks.pipeline_stack import PipelineStack
from stacks.serving_stack import ServingStack


def selected_environments(app: cdk.App) -> list[EnvironmentConfig]:
    selected = app.node.try_get_context("env")
    return parse_environments(app.node.try_get_context(ENVIRONMENTS_CONTEXT_KEY), selected=selected)


def build_environment(app: cdk.App, config: EnvironmentConfig) -> dict[str, cdk.Stack]:
    env = cdk.Environment(account=config.account, region=config.region)
    foundation = FoundationStack(
        app, config.stack_name("foundation"), config=config, env=env,
        description=f"Review classifier ({config.name}): storage, KMS, Feature Store, model registry, roles",
    )
    pipeline = PipelineStack(
        app, config.stack_name("pipeline"), config=config, shared=foundation.shared, env=env,
        description=f"Review classifier ({config.name}): SageMaker training pipeline",
    )
    serving = ServingStack(
        app, config.stack_name("serving"), config=config, shared=foundation.shared, env=env,
        description=f"Review classifier ({config.name}): endpoint that follows model approvals",
    )
    for stack in (foundation, pipeline, serving):
        for key, value in config.tags.items():
            cdk.Tags.of(stack).add(key, value)
    return {"foundation": foundation, "pipeline": pipeline, "serving": serving}


def build_app(app: cdk.App) -> dict[str, dict[str, cdk.Stack]]:
    """Add every selected environment's stacks to `app`; returns them by environment name."""
    return {config.name: build_environment(app, config) for config in selected_environments(app)}
