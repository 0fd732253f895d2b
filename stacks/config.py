"""Typed, validated per-environment configuration, loaded from `cdk.json` context.

Everything downstream of `app.py` (and `python -m pipeline_definition`) receives these
objects, never raw dicts, so a typo or a bad value fails synth once, at the edge, with a
message that names the environment and the key.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Literal

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

    @model_validator(mode="after")
    def _one_serving_mode(self) -> "ServingConfig":
        if (self.serverless is None) == (self.instance_type is None):
            raise ValueError("set exactly one of instance_type (real-time) or serverless")
        if self.serverless is not None and (self.auto_scaling or self.traffic_shifting):
            raise ValueError("auto_scaling and traffic_shifting apply to real-time endpoints only")
        if self.serverless is not None and self.data_capture_sampling_percent is not None:
            raise ValueError("serverless endpoints do not support data capture: remove data_capture_sampling_percent")
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


class EnvironmentConfig(_Frozen):
    """One deployment environment (dev, staging or prod)."""

    name: str
    account: str = Field(pattern=r"^\d{12}$")
    region: str = Field(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
    removal_policy: Literal["destroy", "retain"]
    log_retention_days: Literal[1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731]
    tags: dict[str, str] = Field(default_factory=dict)
    feature_store: FeatureStoreConfig = FeatureStoreConfig()
    pipeline: PipelineConfig
    serving: ServingConfig

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


def parse_environments(context_value: object, selected: str | None = None) -> list[EnvironmentConfig]:
    """Validate the `environments` context value; `selected` keeps only that environment."""
    if not isinstance(context_value, dict) or not context_value:
        raise ConfigError(f"context key '{ENVIRONMENTS_CONTEXT_KEY}' must be a non-empty object in cdk.json")
    if selected is not None and selected not in context_value:
        known = ", ".join(sorted(context_value))
        raise ConfigError(f"unknown environment '{selected}' (-c env=...); known: {known}")
    names = [selected] if selected is not None else list(context_value)
    return [parse_environment(name, context_value[name]) for name in names]


def load_environment(name: str, cdk_json: Path = CDK_JSON) -> EnvironmentConfig:
    """Read one environment straight from cdk.json (for tools that run outside the CDK app)."""
    context = json.loads(cdk_json.read_text())["context"]
    return parse_environments(context.get(ENVIRONMENTS_CONTEXT_KEY), selected=name)[0]
