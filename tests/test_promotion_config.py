"""Where each environment's models come from (`model_source` in cdk.json): validated as a whole,
errors naming the environment and the key."""

from __future__ import annotations

import copy
import json

import pytest

from stacks.config import (
    CDK_JSON,
    ENVIRONMENTS_CONTEXT_KEY,
    ConfigError,
    load_all_environments,
    parse_all_environments,
    parse_environments,
    promotion_source,
    promotion_targets,
)

CONTEXT = json.loads(CDK_JSON.read_text())["context"]


def environments(**sources: str | None) -> dict:
    raw = copy.deepcopy(CONTEXT[ENVIRONMENTS_CONTEXT_KEY])
    for name, source in sources.items():
        raw[name].pop("model_source", None)
        if source is not None:
            raw[name]["model_source"] = {"promote_from": source}
            raw[name].pop("retraining", None)  # refused where there is no pipeline to start
    return raw


def test_cdk_json_trains_in_dev_and_staging_and_promotes_staging_to_prod():
    configs = parse_all_environments(CONTEXT[ENVIRONMENTS_CONTEXT_KEY])
    assert [name for name, config in configs.items() if config.trains] == ["dev", "staging"]
    assert promotion_source(configs["prod"], configs) is configs["staging"]
    assert promotion_source(configs["dev"], configs) is None  # it trains its own
    assert promotion_targets(configs["staging"], configs) == (configs["prod"],)
    assert promotion_targets(configs["prod"], configs) == () == promotion_targets(configs["dev"], configs)


def test_staging_may_promote_from_dev_when_prod_does_not_promote_from_staging():
    configs = parse_all_environments(environments(staging="dev", prod=None))
    assert promotion_source(configs["staging"], configs).name == "dev"
    assert promotion_targets(configs["dev"], configs) == (configs["staging"],)


def test_a_chain_of_promotions_is_refused_by_key():
    # The artifact stays in the bucket of the environment that trained it: one hop.
    with pytest.raises(ConfigError, match=r"environments\.prod\.model_source\.promote_from: 'staging' promotes from "
                                          r"'dev' itself; promote from an environment that trains"):
        parse_environments(environments(staging="dev", prod="staging"))


def test_a_missing_source_is_refused_by_key():
    with pytest.raises(ConfigError, match=r"environments\.prod\.model_source\.promote_from: no environment 'qa' "
                                          r"to promote from; known: dev, prod, staging"):
        parse_environments(environments(prod="qa"))


@pytest.mark.parametrize(("sources", "key", "cycle"), [
    ({"prod": "prod"}, "prod", "prod -> prod"),
    ({"staging": "prod", "prod": "staging"}, "staging", "staging -> prod -> staging"),
    ({"dev": "prod", "staging": "dev", "prod": "staging"}, "dev", "dev -> prod -> staging -> dev"),
])
def test_a_cycle_is_refused_by_key(sources, key, cycle):
    with pytest.raises(ConfigError, match=rf"environments\.{key}\.model_source\.promote_from: promotions form a "
                                          rf"cycle \({cycle}\); one environment in it must train"):
        parse_environments(environments(**sources))


def test_a_cycle_is_refused_even_when_synth_selects_another_environment():
    with pytest.raises(ConfigError, match="cycle"):
        parse_environments(environments(staging="prod", prod="staging"), selected="dev")


def test_source_in_another_region_is_refused():
    raw = environments()
    raw["staging"]["region"] = "eu-west-1"
    with pytest.raises(ConfigError, match=r"environments\.prod\.model_source\.promote_from: 'staging' is in eu-west-1"):
        parse_environments(raw)


def test_unknown_model_source_key_is_refused():
    raw = environments()
    raw["prod"]["model_source"] = {"promote_form": "staging"}
    with pytest.raises(ConfigError, match=r"environments\.prod\.model_source\.promote_form: Extra inputs"):
        parse_environments(raw)


def test_an_environment_without_model_source_trains():
    configs = parse_all_environments(environments(prod=None))
    assert all(config.trains for config in configs.values())


def test_retraining_in_an_environment_that_promotes_is_refused_by_key():
    # It has no pipeline to start: its source is where retraining belongs.
    raw = environments()
    raw["prod"]["retraining"] = {"schedule": "cron(0 3 ? * SUN *)"}
    with pytest.raises(ConfigError, match=r"environments\.prod\.retraining: an environment that promotes from "
                                          r"'staging' has no pipeline to retrain; configure retraining in 'staging'"):
        parse_environments(raw)


def test_every_environment_is_read_from_the_cdk_json_given(tmp_path):
    document = json.loads(CDK_JSON.read_text())
    document["context"][ENVIRONMENTS_CONTEXT_KEY]["dev"]["account"] = "999999999999"
    cdk_json = tmp_path / "cdk.json"
    cdk_json.write_text(json.dumps(document))
    configs = load_all_environments(cdk_json)
    assert set(configs) == set(CONTEXT[ENVIRONMENTS_CONTEXT_KEY]) and configs["dev"].account == "999999999999"
    assert promotion_source(configs["prod"], configs) is configs["staging"]
