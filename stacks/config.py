"""Typed, validated per-environment configuration, loaded from `cdk.json` context.

Everything downstream of `app.py` (and `python -m pipeline_definition`) receives these
objects, never raw dicts, so a typo or a bad value fails synth once, at the edge, with a
message that names the environment and the key.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CDK_JSON = PROJECT_ROOT / "cdk.json"
ENVIRONMENTS_CONTEXT_KEY = "environments"
ENVIRONMENT_NAMES = ("dev", "staging", "prod")

PENDING_MANUAL_APPROVAL = "PendingManualApproval"
# The only environments whose pipeline may register versions as Approved (and so deploy them
# with no person in the loop); every other one, staging and prod included, registers them
# PendingManualApproval.
SELF_APPROVING_ENVIRONMENTS = ("dev",)


class ConfigError(ValueError):
    """A missing or invalid configuration value; the message names environment and key."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeatureStoreConfig(_Frozen):
    online_store_enabled: bool = False


class PipelineConfig(_Frozen):
    """The training pipeline: defaults of its run-time parameters, and what no run can change
    (the approval status registration uses; the quality floors)."""

    processing_instance_type: str = Field(pattern=r"^ml\.[a-z0-9]+\.[a-z0-9]+$")
    processing_instance_count: int = Field(ge=1, le=20)
    training_instance_type: str = Field(pattern=r"^ml\.[a-z0-9]+\.[a-z0-9]+$")
    training_instance_count: int = Field(ge=1, le=20)
    model_name_or_path: str = Field(min_length=1)
    epochs: int = Field(ge=1, le=100)
    learning_rate: float = Field(gt=0, lt=1)
    train_batch_size: int = Field(ge=1, le=1024)
    max_seq_length: int = Field(ge=8, le=512)
    # The accuracy floor: a model below it is never registered. A run's MinAccuracy parameter
    # (default: this value) can raise the threshold, never lower it.
    min_accuracy: float = Field(ge=0, le=1)
    # Floors that accuracy alone cannot enforce: a model that ignores a class (never says
    # "neutral") can reach min_accuracy, not these. MinMacroF1 / MinClassRecall raise them per run.
    min_macro_f1: float = Field(ge=0, le=1)
    min_class_recall: float = Field(ge=0, le=1)
    # What the pipeline registers a model version as; the pipeline role may create versions
    # with this status only (an IAM condition). Not a run-time parameter.
    model_approval_status: Literal["PendingManualApproval", "Approved"]
    use_spot_instances: bool = False
    start_execution_after_upsert: bool = False


class ServerlessConfig(_Frozen):
    memory_size_mb: Literal[1024, 2048, 3072, 4096, 5120, 6144]
    max_concurrency: int = Field(ge=1, le=200)


class AutoScalingConfig(_Frozen):
    min_capacity: int = Field(ge=1)
    max_capacity: int = Field(ge=1)
    target_invocations_per_instance: int = Field(ge=1)

    @model_validator(mode="after")
    def _min_not_above_max(self) -> "AutoScalingConfig":
        if self.min_capacity > self.max_capacity:
            raise ValueError("min_capacity must not exceed max_capacity")
        return self


class TrafficShiftingConfig(_Frozen):
    """Blue/green traffic shifting of an endpoint update (SageMaker DeploymentConfig)."""

    type: Literal["ALL_AT_ONCE", "CANARY", "LINEAR"]
    step_percent: int = Field(default=10, ge=1, le=100)
    wait_interval_seconds: int = Field(default=300, ge=0, le=3600)
    termination_wait_seconds: int = Field(default=600, ge=0, le=3600)


# A SageMaker monitoring schedule's expression: hourly (`cron(0 * ? * * *)`) or daily at an hour
# (`cron(0 6 ? * * *)`); Model Monitor takes no other cron form.
_MONITORING_CRON = r"^cron\(0 (\*|[01]?\d|2[0-3]) \? \* \* \*\)$"


class MonitoringConfig(_Frozen):
    """Model Monitor schedules of a real-time endpoint (docs/serving.md#monitor-and-retrain)."""

    # Data quality of the captured requests (record_features.py's columns) against the served
    # package's data-quality baseline.
    data_quality_schedule: str = Field(default="cron(0 * ? * * *)", pattern=_MONITORING_CRON)
    # Model quality of captured predictions against the labels users upload (ground truth).
    model_quality_schedule: str = Field(default="cron(0 6 ? * * *)", pattern=_MONITORING_CRON)
    instance_type: str = Field(default="ml.m5.xlarge", pattern=r"^ml\.[a-z0-9]+\.[a-z0-9]+$")
    max_runtime_seconds: int = Field(default=1800, ge=60, le=3600)  # at most the schedule's hour
    # The alarm on data drift fires when this many features drift in one monitoring run.
    drifted_features_alarm_threshold: int = Field(default=1, ge=1, le=6)


class ServingConfig(_Frozen):
    """The endpoint: either serverless (costs nothing while idle) or real-time instances."""

    instance_type: str | None = Field(default=None, pattern=r"^ml\.[a-z0-9]+\.[a-z0-9]+$")
    initial_instance_count: int = Field(default=1, ge=1)
    serverless: ServerlessConfig | None = None
    auto_scaling: AutoScalingConfig | None = None
    traffic_shifting: TrafficShiftingConfig | None = None
    # Serverless endpoints support neither data capture nor deployment guardrails (docs/serving.md),
    # so a real-time endpoint must set a sampling percentage and a serverless one must not.
    data_capture_sampling_percent: int | None = Field(default=None, ge=1, le=100)
    # Captured requests are raw review text: they expire after this many days (a lifecycle rule on
    # the data bucket's capture prefix). Required in every environment, serverless included, so
    # that captures left by an earlier real-time configuration expire too; at most a year.
    data_capture_retention_days: int = Field(ge=1, le=365)
    latency_alarm_threshold_ms: int = Field(ge=1)
    error_5xx_alarm_threshold: int = Field(ge=1)
    # The image's toolkit answers a failing model with 400s, not 5XX (docs/serving.md): this share
    # of invocations answered 4XX, in percent, rolls a deployment back.
    error_4xx_share_alarm_threshold_percent: int = Field(ge=1, le=100)
    # Model Monitor schedules; absent: none (they read captured data, so real-time endpoints only).
    monitoring: MonitoringConfig | None = None

    @model_validator(mode="after")
    def _one_serving_mode(self) -> "ServingConfig":
        if (self.serverless is None) == (self.instance_type is None):
            raise ValueError("set exactly one of instance_type (real-time) or serverless")
        if self.serverless is not None and (self.auto_scaling or self.traffic_shifting):
            raise ValueError("auto_scaling and traffic_shifting apply to real-time endpoints only")
        if self.serverless is not None and self.data_capture_sampling_percent is not None:
            raise ValueError("serverless endpoints do not support data capture: remove data_capture_sampling_percent")
        if self.serverless is not None and self.monitoring is not None:
            raise ValueError("monitoring reads captured requests, which serverless endpoints do not capture: "
                             "remove monitoring")
        if self.serverless is None and self.data_capture_sampling_percent is None:
            raise ValueError("real-time endpoints capture data: set data_capture_sampling_percent (1-100)")
        shifting = self.traffic_shifting
        # Old and new fleets share the alarm's metrics (same endpoint and variant), so a new model
        # that fails every request shows as about step_percent of 4XX during the first step.
        if (shifting is not None and shifting.type != "ALL_AT_ONCE"
                and self.error_4xx_share_alarm_threshold_percent >= shifting.step_percent):
            raise ValueError(
                f"error_4xx_share_alarm_threshold_percent ({self.error_4xx_share_alarm_threshold_percent}) must be "
                f"below traffic_shifting.step_percent ({shifting.step_percent}), or a model that fails every "
                "request is caught only after all traffic has moved to it")
        return self

    @property
    def is_serverless(self) -> bool:
        return self.serverless is not None


class ModelSourceConfig(_Frozen):
    """Where an environment's models come from: its own training pipeline (the default), or
    model packages promoted from another environment's group (`promote_from`: its name)."""

    promote_from: str | None = Field(default=None, min_length=1)
class RetrainingConfig(_Frozen):
    """What starts the training pipeline besides a person: off unless set (docs/serving.md)."""

    on_drift: bool = False  # the endpoint's data-drift alarm (needs serving.monitoring)
    schedule: str | None = Field(default=None, pattern=r"^cron\(\S+ \S+ \S+ \S+ \S+ \S+\)$")  # EventBridge cron


class EnvironmentConfig(_Frozen):
    """One deployment environment (dev, staging or prod)."""

    name: str
    account: str = Field(pattern=r"^\d{12}$")
    region: str = Field(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
    removal_policy: Literal["destroy", "retain"]
    log_retention_days: Literal[1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731]
    tags: dict[str, str] = Field(default_factory=dict)
    feature_store: FeatureStoreConfig = FeatureStoreConfig()
    model_source: ModelSourceConfig = ModelSourceConfig()
    pipeline: PipelineConfig
    serving: ServingConfig
    retraining: RetrainingConfig = RetrainingConfig()

    @field_validator("name")
    @classmethod
    def _known_name(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z][a-z0-9-]{1,15}", value):
            raise ValueError("must be 2-16 lowercase letters, digits or hyphens")
        return value

    @field_validator("pipeline")
    @classmethod
    def _approval_by_a_person_outside_dev(cls, pipeline: PipelineConfig, info: ValidationInfo) -> PipelineConfig:
        environment = info.data.get("name")
        status = pipeline.model_approval_status
        if environment is not None and environment not in SELF_APPROVING_ENVIRONMENTS and status != PENDING_MANUAL_APPROVAL:
            # Raised as the nested field's own error, so the message names pipeline.model_approval_status.
            raise ValidationError.from_exception_data(type(pipeline).__name__, [InitErrorDetails(
                type=PydanticCustomError(
                    "approval_required",
                    "{environment} registers model versions as PendingManualApproval only (a person approves "
                    "every version); only {allowed} may register them as {status}",
                    {"environment": environment, "allowed": ", ".join(SELF_APPROVING_ENVIRONMENTS), "status": status},
                ),
                loc=("model_approval_status",),
                input=status,
            )])
        return pipeline

    @model_validator(mode="after")
    def _drift_needs_monitoring(self) -> "EnvironmentConfig":
        if self.retraining.on_drift and self.serving.monitoring is None:
            raise ValidationError.from_exception_data(type(self).__name__, [InitErrorDetails(
                type=PydanticCustomError("drift_needs_monitoring",
                                         "retraining on drift needs the drift alarm of serving.monitoring"),
                loc=("retraining", "on_drift"), input=True)])
        return self

    @model_validator(mode="after")
    def _retraining_needs_a_pipeline(self) -> "EnvironmentConfig":
        # An environment that promotes has no pipeline of its own to start: its source retrains.
        if self.model_source.promote_from is not None and (self.retraining.on_drift or self.retraining.schedule):
            raise ValidationError.from_exception_data(type(self).__name__, [InitErrorDetails(
                type=PydanticCustomError("retraining_needs_a_pipeline",
                                         "an environment that promotes from '{source}' has no pipeline to retrain; "
                                         "configure retraining in '{source}'", {"source": self.model_source.promote_from}),
                loc=("retraining",), input=self.retraining.model_dump())])
        return self

    @property
    def trains(self) -> bool:
        """True: its own pipeline trains and registers models; False: it serves promoted ones."""
        return self.model_source.promote_from is None

    @property
    def retain_on_delete(self) -> bool:
        return self.removal_policy == "retain"

    @property
    def resource_prefix(self) -> str:
        """Prefix of every physical name this environment needs (names are never random)."""
        return f"review-classifier-{self.name}"

    @property
    def feature_group_name(self) -> str:
        return f"{self.resource_prefix}-reviews"

    @property
    def model_package_group_name(self) -> str:
        return self.resource_prefix

    @property
    def pipeline_name(self) -> str:
        return f"{self.resource_prefix}-training"

    @property
    def endpoint_name(self) -> str:
        return self.resource_prefix

    @property
    def approved_model_package_parameter_name(self) -> str:
        """SSM parameter holding the ARN of the package the endpoint serves (written by the
        approval deployer, read by the serving stack on every deploy)."""
        return f"/{self.resource_prefix}/serving/approved-model-package-arn"

    @property
    def athena_workgroup_name(self) -> str:
        return self.resource_prefix

    @property
    def pipeline_execution_role_name(self) -> str:
        """Fixed, so the pipeline definition can carry a literal role ARN (no token lookup)."""
        return f"{self.resource_prefix}-pipeline-execution"

    @property
    def serving_model_role_name(self) -> str:
        """Fixed, so that the source environment of a promotion can name it in its policies."""
        return f"{self.resource_prefix}-serving-model"

    @property
    def approval_deployer_role_name(self) -> str:
        return f"{self.resource_prefix}-approval-deployer"

    @property
    def model_promotion_role_name(self) -> str:
        """The role a person assumes to run tools.promote_model into this environment."""
        return f"{self.resource_prefix}-model-promotion"

    def role_arn(self, role_name: str) -> str:
        return f"arn:aws:iam::{self.account}:role/{role_name}"

    def stack_name(self, component: str) -> str:
        return f"{self.resource_prefix}-{component}"


def _describe(error: ValidationError, environment: str) -> str:
    lines = []
    for problem in error.errors():
        key = ".".join(str(part) for part in problem["loc"]) or "(root)"
        lines.append(f"  {ENVIRONMENTS_CONTEXT_KEY}.{environment}.{key}: {problem['msg']}")
    return f"invalid configuration for environment '{environment}':\n" + "\n".join(lines)


def parse_environment(name: str, raw: object) -> EnvironmentConfig:
    """Validate one environment's raw context value."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{ENVIRONMENTS_CONTEXT_KEY}.{name}: expected an object, got {type(raw).__name__}")
    try:
        return EnvironmentConfig.model_validate({"name": name, **raw})
    except ValidationError as error:
        raise ConfigError(_describe(error, name)) from None


def _check_model_sources(configs: Mapping[str, EnvironmentConfig]) -> None:
    """Every `promote_from` names another environment that exists, in the same region, that
    trains: no cycle, and no chain (the artifact stays where it was trained: one hop)."""
    for config in configs.values():
        key = f"{ENVIRONMENTS_CONTEXT_KEY}.{config.name}.model_source.promote_from"
        source = config.model_source.promote_from
        if source is None:
            continue
        if source not in configs:
            known = ", ".join(sorted(configs))
            raise ConfigError(f"{key}: no environment '{source}' to promote from; known: {known}")
        if configs[source].region != config.region:
            # A SageMaker model reads its artifact from a bucket in the endpoint's own region.
            raise ConfigError(f"{key}: '{source}' is in {configs[source].region}, '{config.name}' in "
                              f"{config.region}; a promoted package is served from its source's bucket, in one region")
        chain = [config.name]
        while source is not None:
            if source in chain:
                cycle = " -> ".join([*chain, source])
                raise ConfigError(f"{key}: promotions form a cycle ({cycle}); one environment in it must train")
            chain.append(source)
            source = configs[source].model_source.promote_from
        source = config.model_source.promote_from
        if not configs[source].trains:
            # A promoted version's artifact stays in the bucket of the environment that trained it;
            # the policies grant one hop (docs/serving.md#promotion-across-accounts).
            raise ConfigError(f"{key}: '{source}' promotes from '{configs[source].model_source.promote_from}' itself; "
                              "promote from an environment that trains")


def parse_all_environments(context_value: object) -> dict[str, EnvironmentConfig]:
    """Validate every environment of the `environments` context value and how they promote."""
    if not isinstance(context_value, dict) or not context_value:
        raise ConfigError(f"context key '{ENVIRONMENTS_CONTEXT_KEY}' must be a non-empty object in cdk.json")
    configs = {name: parse_environment(name, raw) for name, raw in context_value.items()}
    _check_model_sources(configs)
    return configs


def parse_environments(context_value: object, selected: str | None = None) -> list[EnvironmentConfig]:
    """Validate the `environments` context value; `selected` keeps only that environment (all are
    validated: a promotion's two ends need each other's accounts and names)."""
    configs = parse_all_environments(context_value)
    if selected is not None and selected not in configs:
        known = ", ".join(sorted(configs))
        raise ConfigError(f"unknown environment '{selected}' (-c env=...); known: {known}")
    return [configs[selected]] if selected is not None else list(configs.values())


def promotion_source(config: EnvironmentConfig, configs: Mapping[str, EnvironmentConfig]) -> EnvironmentConfig | None:
    """The environment whose packages `config` serves, or None when it trains its own."""
    return None if config.trains else configs[config.model_source.promote_from]


def promotion_targets(config: EnvironmentConfig, configs: Mapping[str, EnvironmentConfig]) -> tuple[EnvironmentConfig, ...]:
    """The environments that promote packages out of `config`'s group."""
    return tuple(other for other in configs.values() if other.model_source.promote_from == config.name)


def load_environment(name: str, cdk_json: Path = CDK_JSON) -> EnvironmentConfig:
    """Read one environment straight from cdk.json (for tools that run outside the CDK app)."""
    return parse_environments(_environments_context(cdk_json), selected=name)[0]


def load_all_environments(cdk_json: Path = CDK_JSON) -> dict[str, EnvironmentConfig]:
    return parse_all_environments(_environments_context(cdk_json))


def _environments_context(cdk_json: Path) -> object:
    return json.loads(cdk_json.read_text())["context"].get(ENVIRONMENTS_CONTEXT_KEY)
