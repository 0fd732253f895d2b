"""Serving settings that SageMaker would refuse are refused at synth, naming the key."""

from __future__ import annotations

import copy
import json

import pytest

from stacks.config import CDK_JSON, ConfigError, parse_environments


def raw_environments() -> dict:
    return copy.deepcopy(json.loads(CDK_JSON.read_text())["context"]["environments"])


def test_serverless_endpoint_refuses_data_capture():
    environments = raw_environments()
    environments["dev"]["serving"]["data_capture_sampling_percent"] = 10
    with pytest.raises(ConfigError, match=r"environments\.dev\.serving.*serverless endpoints do not support data capture"):
        parse_environments(environments, selected="dev")


def test_real_time_endpoint_requires_a_data_capture_sampling_percentage():
    environments = raw_environments()
    del environments["prod"]["serving"]["data_capture_sampling_percent"]
    with pytest.raises(ConfigError, match=r"environments\.prod\.serving.*set data_capture_sampling_percent"):
        parse_environments(environments, selected="prod")


@pytest.mark.parametrize("setting", ["auto_scaling", "traffic_shifting"])
def test_serverless_endpoint_refuses_real_time_only_settings(setting):
    environments = raw_environments()
    environments["dev"]["serving"][setting] = environments["prod"]["serving"][setting]
    with pytest.raises(ConfigError, match="apply to real-time endpoints only"):
        parse_environments(environments, selected="dev")


def test_shipped_environments_pick_their_serving_mode():
    by_name = {config.name: config.serving for config in parse_environments(raw_environments())}
    assert by_name["dev"].is_serverless and by_name["dev"].data_capture_sampling_percent is None
    assert by_name["staging"].traffic_shifting.type == "LINEAR"
    assert by_name["prod"].traffic_shifting.type == "CANARY"


def test_4xx_share_threshold_must_be_below_the_first_traffic_step():
    # Old and new fleets share the alarm's metrics: a new model failing every request shows as
    # about step_percent of 4XX while it takes its first step of traffic.
    environments = raw_environments()
    environments["prod"]["serving"]["error_4xx_share_alarm_threshold_percent"] = 10  # prod's canary step is 10 %
    with pytest.raises(ConfigError, match=r"environments\.prod\.serving.*must be below traffic_shifting\.step_percent \(10\)"):
        parse_environments(environments, selected="prod")


@pytest.mark.parametrize("value", [0, 101])
def test_4xx_share_threshold_is_a_percentage(value):
    environments = raw_environments()
    environments["dev"]["serving"]["error_4xx_share_alarm_threshold_percent"] = value
    with pytest.raises(ConfigError, match=r"environments\.dev\.serving\.error_4xx_share_alarm_threshold_percent"):
        parse_environments(environments, selected="dev")
