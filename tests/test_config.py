"""cdk.json's environments load into typed configs, and bad input fails naming environment and key."""

from __future__ import annotations

import copy
import json

import pytest

from stacks.config import (
    CDK_JSON,
    ENVIRONMENTS_CONTEXT_KEY,
    ConfigError,
    EnvironmentConfig,
    load_environment,
    parse_environments,
)

CONTEXT = json.loads(CDK_JSON.read_text())["context"]


def raw_environments() -> dict:
    return copy.deepcopy(CONTEXT[ENVIRONMENTS_CONTEXT_KEY])


def test_cdk_json_defines_the_three_environments():
    assert set(raw_environments()) == {"dev", "staging", "prod"}


def test_every_environment_loads(environment_name):
    config = load_environment(environment_name)
    assert isinstance(config, EnvironmentConfig)
    assert config.name == environment_name
    assert config.resource_prefix == f"review-classifier-{environment_name}"
    assert config.stack_name("foundation") == f"review-classifier-{environment_name}-foundation"


def test_derived_names_differ_between_environments():
    configs = parse_environments(raw_environments())
    for name in ("feature_group_name", "model_package_group_name", "pipeline_name",
                 "endpoint_name", "athena_workgroup_name", "pipeline_execution_role_name"):
        values = [getattr(config, name) for config in configs]
        assert len(set(values)) == len(values), name


def test_only_prod_is_retained_on_delete():
    retained = {config.name for config in parse_environments(raw_environments()) if config.retain_on_delete}
    assert retained == {"prod"}


def test_selecting_one_environment_returns_only_it():
    [config] = parse_environments(raw_environments(), selected="staging")
    assert config.name == "staging"


def test_unknown_environment_names_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown environment 'qa'.*dev, prod, staging"):
        parse_environments(raw_environments(), selected="qa")


def test_missing_environments_key_is_reported():
    with pytest.raises(ConfigError, match=r"'environments' must be a non-empty object"):
        parse_environments(None)


def test_missing_key_names_environment_and_key():
    environments = raw_environments()
    del environments["dev"]["pipeline"]["min_accuracy"]
    with pytest.raises(ConfigError) as error:
        parse_environments(environments)
    assert "environments.dev.pipeline.min_accuracy" in str(error.value)
    assert "Field required" in str(error.value)


@pytest.mark.parametrize(
    ("environment", "path", "bad_value"),
    [
        ("dev", ("pipeline", "min_accuracy"), 1.5),
        ("staging", ("pipeline", "min_macro_f1"), -0.1),
        ("prod", ("pipeline", "min_class_recall"), 1.2),
        ("staging", ("account",), "12345"),
        ("prod", ("region",), "Europe"),
        ("prod", ("removal_policy",), "keep"),
        ("dev", ("log_retention_days",), 10),
        ("staging", ("pipeline", "training_instance_type"), "g5.2xlarge"),
        ("dev", ("serving", "serverless", "memory_size_mb"), 1000),
        ("prod", ("serving", "data_capture_retention_days"), 0),
        ("staging", ("serving", "data_capture_retention_days"), 366),
        ("dev", ("serving", "data_capture_retention_days"), "a week"),
    ],
)
def test_bad_value_names_environment_and_key(environment, path, bad_value):
    environments = raw_environments()
    target = environments[environment]
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = bad_value
    with pytest.raises(ConfigError) as error:
        parse_environments(environments)
    assert f"environments.{environment}.{'.'.join(path)}" in str(error.value)


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_every_environment_must_say_how_long_captured_requests_are_kept(environment):
    # Serverless (dev) captures nothing, but captures of an earlier real-time setup must expire too.
    environments = raw_environments()
    del environments[environment]["serving"]["data_capture_retention_days"]
    with pytest.raises(ConfigError, match=rf"environments\.{environment}\.serving\.data_capture_retention_days: Field required"):
        parse_environments(environments)


def test_unknown_key_is_rejected_by_name():
    environments = raw_environments()
    environments["prod"]["pipeline"]["learning_rat"] = 0.1
    with pytest.raises(ConfigError, match=r"environments\.prod\.pipeline\.learning_rat"):
        parse_environments(environments)


def test_serving_mode_must_be_exactly_one():
    environments = raw_environments()
    environments["staging"]["serving"]["serverless"] = {"memory_size_mb": 2048, "max_concurrency": 1}
    with pytest.raises(ConfigError, match=r"environments\.staging\.serving.*exactly one"):
        parse_environments(environments)


def test_environment_that_is_not_an_object_is_reported():
    environments = raw_environments()
    environments["dev"] = "oops"
    with pytest.raises(ConfigError, match=r"environments\.dev: expected an object"):
        parse_environments(environments)


def test_config_is_immutable():
    config = load_environment("dev")
    with pytest.raises(Exception):
        config.region = "eu-west-1"  # type: ignore[misc]


def test_app_stops_synth_with_the_key_and_no_traceback(tmp_path):
    """What `cdk synth` shows: app.py exits non-zero with the message, not a stack trace."""
    import os
    import subprocess
    import sys

    from stacks.config import PROJECT_ROOT

    environments = raw_environments()
    environments["staging"]["pipeline"]["epochs"] = 0
    context = {**CONTEXT, ENVIRONMENTS_CONTEXT_KEY: environments}
    result = subprocess.run(
        [sys.executable, "app.py"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "CDK_CONTEXT_JSON": json.dumps(context), "CDK_OUTDIR": str(tmp_path)},
    )
    assert result.returncode == 1
    assert "environments.staging.pipeline.epochs" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("environment", ["staging", "prod"])
def test_staging_and_prod_register_pending_manual_approval_only(environment):
    environments = raw_environments()
    environments[environment]["pipeline"]["model_approval_status"] = "Approved"
    with pytest.raises(ConfigError) as error:
        parse_environments(environments)
    message = str(error.value)
    assert f"environments.{environment}.pipeline.model_approval_status:" in message
    assert "PendingManualApproval only" in message


def test_an_environment_added_later_needs_a_person_to_approve_too():
    environments = raw_environments()
    environments["qa"] = copy.deepcopy(environments["dev"])
    environments["qa"]["pipeline"]["model_approval_status"] = "Approved"
    with pytest.raises(ConfigError, match=r"environments\.qa\.pipeline\.model_approval_status: qa registers model "
                                          r"versions as PendingManualApproval only"):
        parse_environments(environments, selected="qa")


def test_dev_may_register_approved_versions():
    environments = raw_environments()
    environments["dev"]["pipeline"]["model_approval_status"] = "Approved"
    [dev] = parse_environments(environments, selected="dev")
    assert dev.pipeline.model_approval_status == "Approved"


@pytest.mark.parametrize("value", ["Rejected", "approved", None])
def test_approval_status_is_one_registration_can_use(value):
    environments = raw_environments()
    environments["dev"]["pipeline"]["model_approval_status"] = value
    with pytest.raises(ConfigError, match=r"environments\.dev\.pipeline\.model_approval_status: Input should be "
                                          r"'PendingManualApproval' or 'Approved'"):
        parse_environments(environments)


def test_every_environment_states_its_approval_status():
    environments = raw_environments()
    del environments["prod"]["pipeline"]["model_approval_status"]
    with pytest.raises(ConfigError, match=r"environments\.prod\.pipeline\.model_approval_status: Field required"):
        parse_environments(environments)
    assert {config.pipeline.model_approval_status for config in parse_environments(raw_environments())} == {"PendingManualApproval"}


@pytest.mark.parametrize("value", [{}, ["dev"], "dev"])
def test_an_empty_or_non_object_environments_value_is_reported(value):
    with pytest.raises(ConfigError, match=r"^context key 'environments' must be a non-empty object in cdk.json$"):
        parse_environments(value)


def test_every_problem_of_an_environment_is_listed_one_per_line():
    environments = raw_environments()
    environments["dev"]["pipeline"]["min_accuracy"] = 1.5
    environments["dev"]["log_retention_days"] = 10
    with pytest.raises(ConfigError) as error:
        parse_environments(environments)
    lines = str(error.value).splitlines()
    assert lines[0] == "invalid configuration for environment 'dev':"
    assert sorted(line.split(":")[0] for line in lines[1:]) == [
        "  environments.dev.log_retention_days", "  environments.dev.pipeline.min_accuracy"]


def test_an_environment_that_is_not_an_object_says_what_it_is():
    environments = raw_environments()
    environments["prod"] = ["not", "an", "object"]
    with pytest.raises(ConfigError, match=r"^environments\.prod: expected an object, got list$"):
        parse_environments(environments)
