"""Data protection in the synthesized templates of every environment: captured review text
expires, log groups, queues and Lambda environments use the environment's KMS key (whose policy
lets CloudWatch Logs and EventBridge use it, and no more), the served model's container has no
network, and every Lambda check that does not apply is skipped with its reason.

tests/test_checkov.py runs the policy scanner itself; these tests state the same guarantees
without it, so they hold where its virtual env is missing.
"""

from __future__ import annotations

import json

import pytest

from stacks.components.encrypted_buckets import DATA_CAPTURE_PREFIX
from stacks.config import load_environment

LAMBDA_CHECKS = {"CKV_AWS_115", "CKV_AWS_116", "CKV_AWS_117"}


def resources_of_type(template: dict, resource_type: str) -> dict[str, dict]:
    return {lid: r for lid, r in template.get("Resources", {}).items() if r["Type"] == resource_type}


def key_logical_id(foundation: dict) -> str:
    [logical_id] = resources_of_type(foundation, "AWS::KMS::Key")
    return logical_id


def skip_missing_stack(synthesized_app, environment_name: str, component: str) -> None:
    if (environment_name, component) not in synthesized_app.stacks:
        pytest.skip(f"{environment_name} has no {component} stack (it promotes models from another environment)")


def is_environment_key_arn(value, component: str, key_id: str) -> bool:
    """The environment key's ARN as the stack sees it: a GetAtt in the foundation stack, the
    foundation's export of that GetAtt elsewhere."""
    if component == "foundation":
        return value == {"Fn::GetAtt": [key_id, "Arn"]}
    return isinstance(value, dict) and set(value) == {"Fn::ImportValue"} and (
        f"GetAtt{key_id}Arn" in value["Fn::ImportValue"]
    )


def checkov_skips(resource: dict) -> dict[str, str]:
    return {skip["id"]: skip.get("comment", "") for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])}


def key_policy(synthesized_app, environment_name: str) -> list[dict]:
    foundation = synthesized_app.template_json(environment_name, "foundation")
    [key] = resources_of_type(foundation, "AWS::KMS::Key").values()
    return key["Properties"]["KeyPolicy"]["Statement"]


# --- Data capture expires ---------------------------------------------------------------------

def test_data_capture_expires_after_the_environment_retention(synthesized_app, environment_name):
    config = load_environment(environment_name)
    foundation = synthesized_app.template_json(environment_name, "foundation")
    [data_bucket] = [b for lid, b in resources_of_type(foundation, "AWS::S3::Bucket").items() if lid.startswith("StorageDataBucket")]
    rules = {rule["Id"]: rule for rule in data_bucket["Properties"]["LifecycleConfiguration"]["Rules"]}
    capture = rules["expire-data-capture"]
    assert capture["Prefix"] == f"{DATA_CAPTURE_PREFIX}/"
    assert capture["ExpirationInDays"] == config.serving.data_capture_retention_days
    # the version an expiry leaves behind goes a day later, not after the bucket's 90 days
    assert capture["NoncurrentVersionExpiration"] == {"NoncurrentDays": 1}
    assert capture["Status"] == "Enabled"


def test_endpoints_capture_under_the_expiring_prefix(synthesized_app, environment_name):
    config = load_environment(environment_name)
    serving = synthesized_app.template_json(environment_name, "serving")
    [endpoint_config] = resources_of_type(serving, "AWS::SageMaker::EndpointConfig").values()
    capture = endpoint_config["Properties"].get("DataCaptureConfig")
    if config.serving.is_serverless:
        assert capture is None
        return
    assert f"/{DATA_CAPTURE_PREFIX}/{config.endpoint_name}" in json.dumps(capture["DestinationS3Uri"])


# --- Log groups, queues and Lambda environments use the environment key ------------------------

@pytest.mark.parametrize("component", ["pipeline", "serving"])
def test_log_groups_are_encrypted_with_the_environment_key(synthesized_app, environment_name, component):
    skip_missing_stack(synthesized_app, environment_name, component)
    key_id = key_logical_id(synthesized_app.template_json(environment_name, "foundation"))
    log_groups = resources_of_type(synthesized_app.template_json(environment_name, component), "AWS::Logs::LogGroup")
    assert log_groups
    for logical_id, log_group in log_groups.items():
        assert is_environment_key_arn(log_group["Properties"].get("KmsKeyId"), component, key_id), logical_id


def test_key_policy_lets_cloudwatch_logs_use_the_key_for_this_accounts_log_groups_only(synthesized_app, environment_name):
    config = load_environment(environment_name)
    [statement] = [s for s in key_policy(synthesized_app, environment_name)
                   if s.get("Principal") == {"Service": f"logs.{config.region}.amazonaws.com"}]
    assert statement["Effect"] == "Allow"
    assert set(statement["Action"]) == {"kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"}
    [(operator, condition)] = statement["Condition"].items()
    assert operator == "ArnLike"
    [arn] = condition.values()
    assert list(condition) == ["kms:EncryptionContext:aws:logs:arn"]
    assert json.dumps(arn).endswith(f':logs:{config.region}:{config.account}:log-group:*"]]}}')


def test_queues_are_encrypted_with_the_environment_key(synthesized_app, environment_name):
    key_id = key_logical_id(synthesized_app.template_json(environment_name, "foundation"))
    queues = resources_of_type(synthesized_app.template_json(environment_name, "serving"), "AWS::SQS::Queue")
    assert len(queues) == 2  # the approval events queue and its dead-letter queue
    for logical_id, queue in queues.items():
        assert is_environment_key_arn(queue["Properties"].get("KmsMasterKeyId"), "serving", key_id), logical_id
        assert "SqsManagedSseEnabled" not in queue["Properties"], logical_id


def test_only_eventbridge_of_this_account_may_use_the_key_and_only_the_rules_may_send(synthesized_app, environment_name):
    config = load_environment(environment_name)
    [grant] = [s for s in key_policy(synthesized_app, environment_name)
               if s.get("Principal") == {"Service": "events.amazonaws.com"}]
    assert grant["Condition"] == {"StringEquals": {"aws:SourceAccount": config.account}}
    serving = synthesized_app.template_json(environment_name, "serving")
    # The approval deployer's rules send to its queue; the retraining trigger's invoke a function.
    rule_ids = sorted(rule for rule in resources_of_type(serving, "AWS::Events::Rule") if rule.startswith("ApprovalDeployer"))
    assert len(rule_ids) == 3  # approval decisions, this stack's status changes, the check schedule
    denies = [s for policy in resources_of_type(serving, "AWS::SQS::QueuePolicy").values()
              for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"
              and s.get("Principal") == {"Service": "events.amazonaws.com"}]
    [deny] = denies
    senders = sorted(arn["Fn::GetAtt"][0] for arn in deny["Condition"]["ArnNotEquals"]["aws:SourceArn"])
    assert senders == rule_ids


@pytest.mark.parametrize("component", ["pipeline", "serving"])
def test_lambda_environments_are_encrypted_with_the_environment_key(synthesized_app, environment_name, component):
    skip_missing_stack(synthesized_app, environment_name, component)
    key_id = key_logical_id(synthesized_app.template_json(environment_name, "foundation"))
    functions = resources_of_type(synthesized_app.template_json(environment_name, component), "AWS::Lambda::Function")
    with_environment = {lid: f for lid, f in functions.items() if f["Properties"].get("Environment")}
    assert with_environment
    for logical_id, function in with_environment.items():
        assert is_environment_key_arn(function["Properties"].get("KmsKeyArn"), component, key_id), logical_id


# --- The served model's container has no network -------------------------------------------------

def test_served_model_is_network_isolated_where_sagemaker_allows_it(synthesized_app, environment_name):
    config = load_environment(environment_name)
    [model] = resources_of_type(synthesized_app.template_json(environment_name, "serving"), "AWS::SageMaker::Model").values()
    if config.serving.is_serverless:
        # Serverless Inference refuses network isolation (a documented feature exclusion).
        assert model["Properties"]["EnableNetworkIsolation"] is False
        assert "serverless" in checkov_skips(model)["CKV_AWS_370"]
    else:
        assert model["Properties"]["EnableNetworkIsolation"] is True
        assert "CKV_AWS_370" not in checkov_skips(model)


# --- Checks that do not apply carry their reason -------------------------------------------------

def test_every_function_says_why_it_has_no_reserved_concurrency_dead_letter_queue_or_vpc(synthesized_app, stack_key):
    for logical_id, function in resources_of_type(synthesized_app.template_json(*stack_key), "AWS::Lambda::Function").items():
        properties = function["Properties"]
        decided = {
            "CKV_AWS_115": "ReservedConcurrentExecutions" in properties,
            "CKV_AWS_116": "DeadLetterConfig" in properties,
            "CKV_AWS_117": "VpcConfig" in properties,
        }
        skips = checkov_skips(function)
        for check, configured in decided.items():
            assert configured or len(skips.get(check, "").split()) >= 5, f"{logical_id}: {check} neither met nor explained"


def test_the_access_log_bucket_says_why_it_logs_nowhere(synthesized_app, environment_name):
    foundation = synthesized_app.template_json(environment_name, "foundation")
    [bucket] = [b for lid, b in resources_of_type(foundation, "AWS::S3::Bucket").items() if lid.startswith("StorageAccessLogsBucket")]
    assert "LoggingConfiguration" not in bucket["Properties"]
    assert "log destination" in checkov_skips(bucket)["CKV_AWS_18"]
