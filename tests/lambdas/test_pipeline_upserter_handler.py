"""The pipeline-upserter custom-resource handler against moto's server on 127.0.0.1, through
the fault proxy: the whole Create/Update/Delete lifecycle, and throttling/validation faults."""

from __future__ import annotations

import json
import logging
import uuid

import boto3
import pytest

from stacks.lambdas.pipeline_upserter import handler
from stacks.lambdas.pipeline_upserter.handler import PipelineUpsertError, on_event
from support.aws_fault_proxy import AwsFaultProxy

PIPELINE_NAME = "review-classifier-test-training"
ROLE_ARN = "arn:aws:iam::123456789012:role/pipeline-execution"
OTHER_ROLE_ARN = "arn:aws:iam::123456789012:role/other-pipeline-execution"
# Never logged: tests assert the definition stays out of the logs by looking for this.
DEFINITION_MARKER = "s3://secret-marker-bucket/prepare.py"


def definition(instance_type: str = "ml.m5.xlarge") -> str:
    return json.dumps(
        {
            "Version": "2020-12-01",
            "Metadata": {},
            "Parameters": [{"Name": "ProcessingInstanceType", "Type": "String", "DefaultValue": instance_type}],
            "Steps": [
                {
                    "Name": "Prepare",
                    "Type": "Processing",
                    "Arguments": {"AppSpecification": {"ContainerEntrypoint": ["python3", DEFINITION_MARKER]}},
                }
            ],
        }
    )


def properties(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:provider",
        "PipelineName": PIPELINE_NAME,
        "PipelineDefinition": definition(),
        "RoleArn": ROLE_ARN,
        "Description": "Trains the review classifier",
        "Tags": [{"Key": "project", "Value": "review-classifier"}, {"Key": "environment", "Value": "test"}],
        "RetainOnDelete": "false",
        "StartExecution": "false",
    }
    base.update(overrides)
    return base


def cfn_event(request_type: str, props: dict, *, physical_id: str | None = None,
              old_props: dict | None = None, request_id: str | None = None) -> dict:
    event = {
        "RequestType": request_type,
        "RequestId": request_id or str(uuid.uuid4()),
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/test/guid",
        "LogicalResourceId": "PipelineUpserter",
        "ResourceType": "Custom::SageMakerPipeline",
        "ResourceProperties": props,
    }
    if physical_id is not None:
        event["PhysicalResourceId"] = physical_id
    if old_props is not None:
        event["OldResourceProperties"] = old_props
    return event


@pytest.fixture
def proxy(moto_endpoint, monkeypatch):
    """The fault proxy in front of a freshly reset moto; the handler's client goes through it."""
    with AwsFaultProxy(moto_endpoint) as started:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", started.url)
        yield started


@pytest.fixture
def sagemaker(moto_endpoint):
    """A client straight to moto, to inspect state without showing up in the proxy's calls."""
    return boto3.client("sagemaker", endpoint_url=moto_endpoint, region_name="us-east-1")


def tags_of(sagemaker, pipeline_arn: str) -> dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in sagemaker.list_tags(ResourceArn=pipeline_arn)["Tags"]}


def pipeline_names(sagemaker) -> list[str]:
    return sorted(item["PipelineName"] for item in sagemaker.list_pipelines()["PipelineSummaries"])


def create(props: dict | None = None) -> dict:
    return on_event(cfn_event("Create", props or properties()))


# -- Create -----------------------------------------------------------------------------------


def test_create_makes_the_pipeline_with_definition_role_description_and_tags(proxy, sagemaker):
    response = create()

    described = sagemaker.describe_pipeline(PipelineName=PIPELINE_NAME)
    assert response["PhysicalResourceId"] == PIPELINE_NAME
    assert response["Data"]["PipelineArn"] == described["PipelineArn"]
    assert response["Data"]["Changed"] == "true"
    assert response["Data"]["ExecutionArn"] == ""
    assert json.loads(described["PipelineDefinition"]) == json.loads(definition())
    assert described["RoleArn"] == ROLE_ARN
    assert described["PipelineDescription"] == "Trains the review classifier"
    assert tags_of(sagemaker, described["PipelineArn"]) == {"project": "review-classifier", "environment": "test"}
    assert proxy.operations() == ["DescribePipeline", "CreatePipeline"]


def test_create_sends_a_deterministic_idempotency_token_derived_from_the_request(proxy, sagemaker):
    event = cfn_event("Create", properties(), request_id="11111111-2222-3333-4444-555555555555")
    on_event(event)

    token = next(call for call in proxy.calls if call.operation == "CreatePipeline").json_body()["ClientRequestToken"]
    assert token == handler.request_token(event["RequestId"], "CreatePipeline", PIPELINE_NAME)
    assert 32 <= len(token) <= 128
    assert token != handler.request_token("another-request-id", "CreatePipeline", PIPELINE_NAME)


def test_create_repeated_for_an_existing_identical_pipeline_changes_nothing(proxy, sagemaker):
    create()
    proxy.clear()

    response = create()

    assert response["Data"]["Changed"] == "false"
    assert proxy.operations() == ["DescribePipeline", "ListTags"]


# -- Update -----------------------------------------------------------------------------------


def test_update_changes_definition_role_and_description(proxy, sagemaker):
    create()
    proxy.clear()
    new_props = properties(PipelineDefinition=definition("ml.c5.2xlarge"), RoleArn=OTHER_ROLE_ARN,
                           Description="Trains it better")

    response = on_event(cfn_event("Update", new_props, physical_id=PIPELINE_NAME, old_props=properties()))

    described = sagemaker.describe_pipeline(PipelineName=PIPELINE_NAME)
    assert json.loads(described["PipelineDefinition"]) == json.loads(definition("ml.c5.2xlarge"))
    assert described["RoleArn"] == OTHER_ROLE_ARN
    assert described["PipelineDescription"] == "Trains it better"
    assert response["PhysicalResourceId"] == PIPELINE_NAME
    assert response["Data"]["Changed"] == "true"
    assert proxy.count("UpdatePipeline") == 1
    assert proxy.count("CreatePipeline") == 0


def test_update_with_no_change_makes_no_write_call(proxy, sagemaker):
    create()
    before = sagemaker.describe_pipeline(PipelineName=PIPELINE_NAME)
    proxy.clear()
    # Same definition, other key order and whitespace: still no change.
    reformatted = json.dumps(json.loads(definition()), indent=2, sort_keys=True)

    response = on_event(cfn_event("Update", properties(PipelineDefinition=reformatted),
                                  physical_id=PIPELINE_NAME, old_props=properties()))

    after = sagemaker.describe_pipeline(PipelineName=PIPELINE_NAME)
    assert response["Data"]["Changed"] == "false"
    assert proxy.operations() == ["DescribePipeline", "ListTags"]
    assert after["LastModifiedTime"] == before["LastModifiedTime"]
    assert after["PipelineDefinition"] == before["PipelineDefinition"]


def test_update_syncs_tags_without_updating_the_pipeline(proxy, sagemaker):
    arn = create()["Data"]["PipelineArn"]
    proxy.clear()
    new_tags = [{"Key": "project", "Value": "review-classifier"},  # unchanged
                {"Key": "environment", "Value": "staging"},       # changed
                {"Key": "owner", "Value": "ml-team"}]             # added; nothing else removed yet

    response = on_event(cfn_event("Update", properties(Tags=new_tags), physical_id=PIPELINE_NAME))

    assert tags_of(sagemaker, arn) == {"project": "review-classifier", "environment": "staging", "owner": "ml-team"}
    assert response["Data"]["Changed"] == "true"
    assert proxy.count("UpdatePipeline") == 0
    add_tags = next(call for call in proxy.calls if call.operation == "AddTags").json_body()
    assert sorted(tag["Key"] for tag in add_tags["Tags"]) == ["environment", "owner"]

    on_event(cfn_event("Update", properties(Tags=[{"Key": "owner", "Value": "ml-team"}]), physical_id=PIPELINE_NAME))

    assert tags_of(sagemaker, arn) == {"owner": "ml-team"}


def test_update_that_renames_the_pipeline_creates_the_new_one_and_the_following_delete_removes_the_old(
    proxy, sagemaker
):
    create()
    renamed = properties(PipelineName="review-classifier-test-training-v2")

    response = on_event(cfn_event("Update", renamed, physical_id=PIPELINE_NAME, old_props=properties()))

    assert response["PhysicalResourceId"] == "review-classifier-test-training-v2"
    assert response["Data"]["PipelineArn"].endswith(":pipeline/review-classifier-test-training-v2")
    assert pipeline_names(sagemaker) == [PIPELINE_NAME, "review-classifier-test-training-v2"]

    # CloudFormation's clean-up: Delete with the old physical id and the old properties.
    on_event(cfn_event("Delete", properties(), physical_id=PIPELINE_NAME))

    assert pipeline_names(sagemaker) == ["review-classifier-test-training-v2"]


def test_update_recreates_a_pipeline_deleted_outside_cloudformation(proxy, sagemaker):
    create()
    sagemaker.delete_pipeline(PipelineName=PIPELINE_NAME, ClientRequestToken="x" * 32)

    response = on_event(cfn_event("Update", properties(Description="again"), physical_id=PIPELINE_NAME))

    assert response["Data"]["Changed"] == "true"
    assert sagemaker.describe_pipeline(PipelineName=PIPELINE_NAME)["PipelineDescription"] == "again"


# -- Delete -----------------------------------------------------------------------------------


def test_delete_removes_the_pipeline(proxy, sagemaker):
    create()

    response = on_event(cfn_event("Delete", properties(), physical_id=PIPELINE_NAME))

    assert response["PhysicalResourceId"] == PIPELINE_NAME
    assert pipeline_names(sagemaker) == []


def test_delete_of_a_missing_pipeline_succeeds(proxy, sagemaker):
    response = on_event(cfn_event("Delete", properties(), physical_id=PIPELINE_NAME))

    assert response["PhysicalResourceId"] == PIPELINE_NAME
    # moto really answered the call (with its ValidationException "Could not find pipeline").
    assert [(call.operation, call.status, call.injected) for call in proxy.calls] == [("DeletePipeline", 400, False)]


def test_delete_treats_aws_resource_not_found_as_already_gone(proxy, sagemaker):
    proxy.inject("DeletePipeline", error_code="ResourceNotFound",
                 message=f"Pipeline 'arn:aws:sagemaker:us-east-1:123456789012:pipeline/{PIPELINE_NAME}' does not exist.")

    response = on_event(cfn_event("Delete", properties(), physical_id=PIPELINE_NAME))

    assert response["PhysicalResourceId"] == PIPELINE_NAME


def test_delete_keeps_the_pipeline_when_the_environment_retains_it(proxy, sagemaker):
    create(properties(RetainOnDelete="true"))
    proxy.clear()

    on_event(cfn_event("Delete", properties(RetainOnDelete="true"), physical_id=PIPELINE_NAME))

    assert pipeline_names(sagemaker) == [PIPELINE_NAME]
    assert proxy.calls == []


def test_delete_with_a_physical_id_that_is_no_pipeline_name_calls_nothing(proxy):
    response = on_event(cfn_event("Delete", properties(), physical_id="not a pipeline name!"))

    assert response["PhysicalResourceId"] == "not a pipeline name!"
    assert proxy.calls == []


def test_delete_reports_other_errors(proxy, sagemaker):
    create()
    proxy.inject("DeletePipeline", error_code="AccessDeniedException", message="not authorized to delete")

    with pytest.raises(PipelineUpsertError, match="DeletePipeline .*AccessDeniedException: not authorized to delete"):
        on_event(cfn_event("Delete", properties(), physical_id=PIPELINE_NAME))
    assert pipeline_names(sagemaker) == [PIPELINE_NAME]


# -- Starting an execution ----------------------------------------------------------------------


def test_start_execution_after_create_and_after_a_change_but_not_after_a_no_op(proxy, sagemaker):
    start = properties(StartExecution="true")
    created = on_event(cfn_event("Create", start))
    executions = sagemaker.list_pipeline_executions(PipelineName=PIPELINE_NAME)["PipelineExecutionSummaries"]
    assert [item["PipelineExecutionArn"] for item in executions] == [created["Data"]["ExecutionArn"]]

    on_event(cfn_event("Update", start, physical_id=PIPELINE_NAME))  # nothing changed
    assert len(sagemaker.list_pipeline_executions(PipelineName=PIPELINE_NAME)["PipelineExecutionSummaries"]) == 1

    changed = on_event(cfn_event("Update", properties(StartExecution="true", Description="new"), physical_id=PIPELINE_NAME))
    executions = sagemaker.list_pipeline_executions(PipelineName=PIPELINE_NAME)["PipelineExecutionSummaries"]
    assert len(executions) == 2
    assert changed["Data"]["ExecutionArn"] in {item["PipelineExecutionArn"] for item in executions}
    tokens = [call.json_body()["ClientRequestToken"] for call in proxy.calls if call.operation == "StartPipelineExecution"]
    assert len(tokens) == 2 and len(set(tokens)) == 2 and all(len(token) >= 32 for token in tokens)


def test_no_execution_is_started_when_the_option_is_off(proxy, sagemaker):
    create()
    on_event(cfn_event("Update", properties(Description="changed"), physical_id=PIPELINE_NAME))

    assert sagemaker.list_pipeline_executions(PipelineName=PIPELINE_NAME)["PipelineExecutionSummaries"] == []
    assert proxy.count("StartPipelineExecution") == 0


# -- Invalid input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad_definition", "message"),
    [
        ('{"Version": "2020-12-01", "Steps": [', "is not valid JSON: Expecting value at line 1 column 37"),
        ('["a", "list"]', "must be a JSON object with a 'Steps' list"),
        ('{"Version": "2020-12-01"}', "must be a JSON object with a 'Steps' list"),
    ],
)
def test_invalid_definition_fails_clearly_before_any_aws_call(proxy, sagemaker, bad_definition, message):
    with pytest.raises(PipelineUpsertError, match=f"PipelineDefinition of pipeline {PIPELINE_NAME} {message}"):
        create(properties(PipelineDefinition=bad_definition))

    assert proxy.calls == []
    assert pipeline_names(sagemaker) == []


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"RoleArn": ""}, "RoleArn is required"),
        ({"PipelineName": "bad_name"}, "'bad_name' is not a valid SageMaker pipeline name"),
        ({"RetainOnDelete": "yes"}, "RetainOnDelete must be 'true' or 'false'"),
        ({"StartExecution": "1"}, "StartExecution must be 'true' or 'false'"),
        ({"Tags": [{"Value": "no key"}]}, "Tags has an entry without a Key"),
    ],
)
def test_invalid_properties_fail_clearly_before_any_aws_call(proxy, overrides, message):
    with pytest.raises(PipelineUpsertError, match=message):
        create(properties(**overrides))
    assert proxy.calls == []


def test_unknown_request_type_fails(proxy):
    with pytest.raises(PipelineUpsertError, match="unknown RequestType 'Replace'"):
        on_event(cfn_event("Replace", properties()))


# -- Injected faults --------------------------------------------------------------------------------


def test_throttled_calls_are_retried_until_they_succeed(proxy, sagemaker):
    proxy.inject("DescribePipeline", times=1)
    proxy.inject("CreatePipeline", times=2)

    response = create()

    assert sagemaker.describe_pipeline(PipelineName=PIPELINE_NAME)["PipelineArn"] == response["Data"]["PipelineArn"]
    assert proxy.count("DescribePipeline") == 2
    assert proxy.count("CreatePipeline") == 3
    assert proxy.count("CreatePipeline", forwarded_only=True) == 1
    # Every retry of the same request carries the same idempotency token.
    tokens = {call.json_body()["ClientRequestToken"] for call in proxy.calls if call.operation == "CreatePipeline"}
    assert len(tokens) == 1


def test_throttling_beyond_the_retry_budget_is_reported_with_the_api_message(proxy, sagemaker, monkeypatch):
    # A smaller budget than the deployed one only keeps the test fast; the logic is the same.
    monkeypatch.setattr(handler, "MAX_ATTEMPTS", 2)
    proxy.inject("CreatePipeline", message="Rate exceeded for CreatePipeline", times=2)

    with pytest.raises(PipelineUpsertError,
                       match=f"CreatePipeline of pipeline {PIPELINE_NAME} failed: ThrottlingException: Rate exceeded for CreatePipeline"):
        create()
    assert proxy.count("CreatePipeline") == 2
    assert pipeline_names(sagemaker) == []


def test_validation_error_from_the_api_is_raised_with_its_message_and_not_retried(proxy, sagemaker):
    create()
    proxy.inject("UpdatePipeline", error_code="ValidationException",
                 message="Role arn:aws:iam::123456789012:role/other-pipeline-execution cannot be assumed by SageMaker")

    with pytest.raises(PipelineUpsertError) as raised:
        on_event(cfn_event("Update", properties(RoleArn=OTHER_ROLE_ARN), physical_id=PIPELINE_NAME))

    assert str(raised.value) == (
        f"UpdatePipeline of pipeline {PIPELINE_NAME} failed: ValidationException: "
        "Role arn:aws:iam::123456789012:role/other-pipeline-execution cannot be assumed by SageMaker"
    )
    assert proxy.count("UpdatePipeline") == 1
    assert sagemaker.describe_pipeline(PipelineName=PIPELINE_NAME)["RoleArn"] == ROLE_ARN


def test_a_validation_error_that_is_not_about_a_missing_pipeline_is_not_mistaken_for_one(proxy, sagemaker):
    proxy.inject("DescribePipeline", error_code="ValidationException", message="1 validation error detected")

    with pytest.raises(PipelineUpsertError, match="DescribePipeline .*ValidationException: 1 validation error detected"):
        create()
    assert proxy.count("CreatePipeline") == 0


def test_real_create_validation_error_from_moto_is_reported(proxy, sagemaker):
    # moto rejects a create whose name exists; the describe before it is faked as "missing",
    # so the create really reaches moto and its own message comes back.
    create()
    proxy.inject("DescribePipeline", error_code="ResourceNotFound", message="does not exist")

    with pytest.raises(PipelineUpsertError, match=r"CreatePipeline .*ValidationException: .*already exists"):
        create()


# -- Logging -----------------------------------------------------------------------------------------


def test_logs_say_what_happened_without_the_definition(proxy, caplog):
    with caplog.at_level(logging.INFO, logger=handler.LOGGER.name):
        create()
        on_event(cfn_event("Update", properties(), physical_id=PIPELINE_NAME))

    text = "\n".join(record.getMessage() for record in caplog.records)
    assert f"upsert of pipeline {PIPELINE_NAME} done: created=True pipeline_updated=False tags_updated=False" in text
    assert f"upsert of pipeline {PIPELINE_NAME} done: created=False pipeline_updated=False tags_updated=False" in text
    assert DEFINITION_MARKER not in text


# -- The project's own definition ----------------------------------------------------------------


@pytest.mark.slow
def test_the_projects_generated_definition_is_upserted_and_then_recognised_as_unchanged(proxy, sagemaker):
    """What the pipeline stack hands over, after CloudFormation's Fn::Sub, goes through unchanged."""
    from pipeline_definition import PipelineDefinitionSettings, definition_json
    from pipeline_definition.settings import PLACEHOLDER_NAMES
    from stacks.config import load_environment

    template = definition_json(PipelineDefinitionSettings.from_environment(load_environment("dev")))
    resolved = template
    for name in PLACEHOLDER_NAMES:
        resolved = resolved.replace("${" + name + "}", f"resolved-{name.lower()}")
    resolved = resolved.replace("${!", "${")  # Fn::Sub's escape for a literal "${"
    props = properties(PipelineDefinition=resolved)

    create(props)
    proxy.clear()
    response = on_event(cfn_event("Update", props, physical_id=PIPELINE_NAME))

    assert json.loads(sagemaker.describe_pipeline(PipelineName=PIPELINE_NAME)["PipelineDefinition"]) == json.loads(resolved)
    assert response["Data"]["Changed"] == "false"
    assert proxy.count("UpdatePipeline") == 0


# -- Connection-level failures (no HTTP answer at all) ---------------------------------------------


@pytest.fixture
def unreachable_sagemaker(moto_endpoint, monkeypatch):
    """The handler's endpoint is a closed port on 127.0.0.1: every call is refused before any
    HTTP answer, as when the network or the endpoint fails (botocore raises a BotoCoreError)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", f"http://127.0.0.1:{port}")
    # One attempt keeps the test fast; retries of a refused connection change nothing here.
    monkeypatch.setattr(handler, "MAX_ATTEMPTS", 1)


def test_a_delete_whose_connection_fails_is_reported_not_taken_for_success(unreachable_sagemaker):
    with pytest.raises(PipelineUpsertError, match=f"DeletePipeline of pipeline {PIPELINE_NAME} failed: EndpointConnectionError: "):
        on_event(cfn_event("Delete", properties(), physical_id=PIPELINE_NAME))


def test_an_upsert_whose_connection_fails_is_reported_not_taken_for_a_missing_pipeline(unreachable_sagemaker):
    with pytest.raises(PipelineUpsertError, match=f"DescribePipeline of pipeline {PIPELINE_NAME} failed: EndpointConnectionError: "):
        create()


# -- What a delete reports and sends ------------------------------------------------------------------


def test_a_delete_says_whether_it_deleted_or_found_the_pipeline_gone(proxy, sagemaker, caplog):
    create()
    with caplog.at_level(logging.INFO, logger=handler.LOGGER.name):
        on_event(cfn_event("Delete", properties(), physical_id=PIPELINE_NAME))
        on_event(cfn_event("Delete", properties(), physical_id=PIPELINE_NAME))
    lines = [record.getMessage() for record in caplog.records if record.getMessage().startswith("delete: pipeline")]
    assert lines == [f"delete: pipeline {PIPELINE_NAME} deleted", f"delete: pipeline {PIPELINE_NAME} was already gone"]


def test_a_delete_sends_the_idempotency_token_of_its_request(proxy, sagemaker):
    create()
    event = cfn_event("Delete", properties(), physical_id=PIPELINE_NAME, request_id="aaaaaaaa-2222-3333-4444-555555555555")
    on_event(event)
    on_event(cfn_event("Delete", properties(), physical_id=PIPELINE_NAME, request_id="bbbbbbbb-2222-3333-4444-555555555555"))

    tokens = [call.json_body()["ClientRequestToken"] for call in proxy.calls if call.operation == "DeletePipeline"]
    assert tokens[0] == handler.request_token(event["RequestId"], "DeletePipeline", PIPELINE_NAME)
    assert len(tokens) == 2 and tokens[0] != tokens[1]


def test_a_delete_without_a_request_id_fails_before_any_call(proxy):
    event = cfn_event("Delete", properties(), physical_id=PIPELINE_NAME)
    del event["RequestId"]
    with pytest.raises(PipelineUpsertError, match="^the event has no RequestId to derive an idempotency token from$"):
        on_event(event)
    assert proxy.calls == []


def test_a_delete_with_no_physical_id_or_a_retained_pipeline_answers_its_id_and_calls_nothing(proxy):
    event = cfn_event("Delete", properties())
    assert on_event(event) == {"PhysicalResourceId": ""}
    retained = on_event(cfn_event("Delete", properties(RetainOnDelete="true"), physical_id=PIPELINE_NAME))
    assert retained == {"PhysicalResourceId": PIPELINE_NAME}
    assert proxy.calls == []


def test_a_failed_delete_names_the_pipeline(proxy, sagemaker):
    proxy.inject("DeletePipeline", error_code="AccessDeniedException", message="no")
    with pytest.raises(PipelineUpsertError) as raised:
        on_event(cfn_event("Delete", properties(), physical_id=PIPELINE_NAME))
    assert str(raised.value) == f"DeletePipeline of pipeline {PIPELINE_NAME} failed: AccessDeniedException: no"


@pytest.mark.parametrize(
    ("operation", "tags"),
    [
        ("ListTags", [{"Key": "project", "Value": "review-classifier"}]),
        ("AddTags", [{"Key": "owner", "Value": "ml-team"}, {"Key": "project", "Value": "review-classifier"},
                     {"Key": "environment", "Value": "test"}]),
        ("DeleteTags", [{"Key": "project", "Value": "review-classifier"}]),
    ],
)
def test_a_failing_tag_call_fails_the_update_naming_the_call_and_the_pipeline(proxy, sagemaker, operation, tags):
    create()
    proxy.inject(operation, error_code="AccessDeniedException", message="not allowed")
    with pytest.raises(PipelineUpsertError) as raised:
        on_event(cfn_event("Update", properties(Tags=tags), physical_id=PIPELINE_NAME))
    assert str(raised.value) == f"{operation} of pipeline {PIPELINE_NAME} failed: AccessDeniedException: not allowed"


# -- What counts as a difference from the deployed pipeline ---------------------------------------


def test_a_deployed_definition_that_is_not_json_is_replaced(proxy, sagemaker):
    sagemaker.create_pipeline(PipelineName=PIPELINE_NAME, PipelineDefinition="{not json", RoleArn=ROLE_ARN,
                              PipelineDescription="Trains the review classifier")
    response = on_event(cfn_event("Update", properties(Tags=[]), physical_id=PIPELINE_NAME))
    assert response["Data"]["Changed"] == "true"
    assert proxy.count("UpdatePipeline") == 1
    assert json.loads(sagemaker.describe_pipeline(PipelineName=PIPELINE_NAME)["PipelineDefinition"]) == json.loads(definition())


def test_no_description_deployed_equals_an_empty_one(proxy, sagemaker):
    sagemaker.create_pipeline(PipelineName=PIPELINE_NAME, PipelineDefinition=definition(), RoleArn=ROLE_ARN,
                              Tags=[{"Key": "flag", "Value": ""}])
    response = on_event(cfn_event("Update", properties(Description="", Tags=[{"Key": "flag", "Value": ""}]),
                                  physical_id=PIPELINE_NAME))
    assert response["Data"]["Changed"] == "false"
    assert proxy.count("UpdatePipeline") == proxy.count("AddTags") == proxy.count("DeleteTags") == 0


def test_a_failing_execution_start_is_reported_with_its_operation(proxy, sagemaker):
    proxy.inject("StartPipelineExecution", error_code="ResourceLimitExceeded", message="too many executions")
    with pytest.raises(PipelineUpsertError) as raised:
        on_event(cfn_event("Create", properties(StartExecution="true")))
    assert str(raised.value) == (
        f"StartPipelineExecution of pipeline {PIPELINE_NAME} failed: ResourceLimitExceeded: too many executions")


def test_an_error_naming_the_pipeline_is_not_taken_for_a_missing_one_unless_it_says_so(proxy, sagemaker):
    proxy.inject("DescribePipeline", error_code="ValidationException",
                 message=f"Role of pipeline {PIPELINE_NAME} cannot be assumed")
    with pytest.raises(PipelineUpsertError, match="DescribePipeline .*ValidationException: Role of pipeline"):
        create()
    assert proxy.count("CreatePipeline") == 0


# -- Optional properties, the response, a rename ------------------------------------------------------


def test_optional_properties_left_out_mean_no_tags_no_retention_and_no_execution(proxy, sagemaker):
    props = properties(Tags="")
    del props["RetainOnDelete"], props["StartExecution"]
    response = on_event(cfn_event("Create", props))
    assert response["Data"] == {"PipelineArn": response["Data"]["PipelineArn"], "PipelineName": PIPELINE_NAME,
                                "Changed": "true", "ExecutionArn": ""}
    assert tags_of(sagemaker, response["Data"]["PipelineArn"]) == {}
    on_event(cfn_event("Delete", props, physical_id=PIPELINE_NAME))
    assert pipeline_names(sagemaker) == []


def test_a_tag_without_a_value_gets_an_empty_one(proxy, sagemaker):
    arn = create(properties(Tags=[{"Key": "flag"}]))["Data"]["PipelineArn"]
    assert tags_of(sagemaker, arn) == {"flag": ""}


def test_tags_that_are_not_a_list_are_refused_by_name(proxy):
    with pytest.raises(PipelineUpsertError, match=r"^resource property Tags must be a list of \{Key, Value\} objects$"):
        create(properties(Tags={"Key": "a", "Value": "b"}))
    assert proxy.calls == []


def test_an_upsert_without_a_request_id_creates_nothing(proxy):
    event = cfn_event("Create", properties())
    del event["RequestId"]
    with pytest.raises(PipelineUpsertError, match="^the event has no RequestId to derive an idempotency token from$"):
        on_event(event)
    assert proxy.operations() == ["DescribePipeline"]


def test_a_rename_is_logged_only_when_an_update_changes_the_name(proxy, caplog):
    renamed = properties(PipelineName="review-classifier-test-training-v2")
    with caplog.at_level(logging.INFO, logger=handler.LOGGER.name):
        on_event(cfn_event("Create", properties(), physical_id="something-else"))
        on_event(cfn_event("Update", properties(), physical_id=PIPELINE_NAME))
        on_event(cfn_event("Update", renamed, physical_id=PIPELINE_NAME))
    renames = [record.getMessage() for record in caplog.records if "renamed" in record.getMessage()]
    assert renames == [f"pipeline renamed from {PIPELINE_NAME} to review-classifier-test-training-v2: upserting the new one"]


def test_tags_are_read_over_every_page_of_list_tags(proxy, sagemaker):
    many = [{"Key": f"k{index:02d}", "Value": str(index)} for index in range(60)]
    sagemaker.create_pipeline(PipelineName=PIPELINE_NAME, PipelineDefinition=definition(), RoleArn=ROLE_ARN,
                              PipelineDescription="Trains the review classifier", Tags=many)
    response = on_event(cfn_event("Update", properties(Tags=many), physical_id=PIPELINE_NAME))
    assert proxy.count("ListTags") >= 2  # more than one page was read
    assert (response["Data"]["Changed"], proxy.count("AddTags"), proxy.count("DeleteTags")) == ("false", 0, 0)
