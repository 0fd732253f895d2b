"""Composes the stacks of every configured environment into a CDK app.

Kept apart from `app.py` so that tests build exactly what `cdk synth` builds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import aws_cdk as cdk

from stacks.config import (
    ENVIRONMENTS_CONTEXT_KEY,
    ConfigError,
    EnvironmentConfig,
    parse_all_environments,
    promotion_source,
    promotion_targets,
)
from stacks.pipeline_definitions import definition_template as generate_definition_template
from stacks.pipeline_definitions import generate_while_validation_engine_starts

if TYPE_CHECKING:
    from stacks.components.promotion_access import PromotionSource, PromotionTarget


def all_environments(app: cdk.App) -> dict[str, EnvironmentConfig]:
    return parse_all_environments(app.node.try_get_context(ENVIRONMENTS_CONTEXT_KEY))


def selected_environments(app: cdk.App, configs: dict[str, EnvironmentConfig]) -> list[EnvironmentConfig]:
    selected = app.node.try_get_context("env")
    if selected is not None and selected not in configs:
        raise ConfigError(f"unknown environment '{selected}' (-c env=...); known: {', '.join(sorted(configs))}")
    return [configs[selected]] if selected is not None else list(configs.values())


def as_promotion_target(config: EnvironmentConfig) -> PromotionTarget:
    from stacks.components.promotion_access import PromotionTarget

    return PromotionTarget(
        account=config.account,
        serving_model_role_arn=config.role_arn(config.serving_model_role_name),
        deployer_role_arn=config.role_arn(config.approval_deployer_role_name),
        promotion_role_arn=config.role_arn(config.model_promotion_role_name),
        deployer_reads_baselines=config.serving.monitoring is not None,
    )


def as_promotion_source(config: EnvironmentConfig) -> PromotionSource:
    from stacks.components.promotion_access import PromotionSource

    return PromotionSource(environment_name=config.name, account=config.account, region=config.region,
                           model_package_group_name=config.model_package_group_name)


def build_environment(
    app: cdk.App,
    config: EnvironmentConfig,
    configs: dict[str, EnvironmentConfig] | None = None,
    definition_template: str | None = None,
) -> dict[str, cdk.Stack]:
    """The environment's stacks. One that promotes from another has no pipeline: its models are
    the source's, promoted version by version (docs/serving.md#promotion-across-accounts).

    `definition_template`: the environment's generated pipeline definition, if already made.
    """
    # Imported here: the stack modules import the SageMaker SDK, and build_app lets a worker
    # thread import it first, while node is busy (stacks/pipeline_definitions.py).
    from stacks.foundation_stack import FoundationStack
    from stacks.pipeline_stack import PipelineStack
    from stacks.serving_stack import ServingStack

    configs = configs if configs is not None else {config.name: config}
    env = cdk.Environment(account=config.account, region=config.region)
    source = promotion_source(config, configs)
    foundation = FoundationStack(
        app, config.stack_name("foundation"), config=config, env=env,
        promotion_targets=tuple(as_promotion_target(target) for target in promotion_targets(config, configs)),
        description=f"Review classifier ({config.name}): storage, KMS, Feature Store, model registry, roles",
    )
    stacks: dict[str, cdk.Stack] = {"foundation": foundation}
    if source is None:
        stacks["pipeline"] = PipelineStack(
            app, config.stack_name("pipeline"), config=config, shared=foundation.shared, env=env,
            definition_template=(
                generate_definition_template(config) if definition_template is None else definition_template
            ),
            description=f"Review classifier ({config.name}): SageMaker training pipeline",
        )
    stacks["serving"] = ServingStack(
        app, config.stack_name("serving"), config=config, shared=foundation.shared, env=env,
        promotion_source=as_promotion_source(source) if source is not None else None,
        description=f"Review classifier ({config.name}): endpoint that follows model approvals",
    )
    for stack in stacks.values():
        tags = cdk.Tags.of(stack)
        for key, value in config.tags.items():
            tags.add(key, value)
    return stacks


def build_app(app: cdk.App) -> dict[str, dict[str, cdk.Stack]]:
    """Add every selected environment's stacks to `app`; returns them by environment name."""
    configs = all_environments(app)
    selected = selected_environments(app, configs)
    training = [config for config in selected if promotion_source(config, configs) is None]
    definitions = generate_while_validation_engine_starts(app, training)
    return {
        config.name: build_environment(app, config, configs, definitions.get(config.name))
        for config in selected
    }
