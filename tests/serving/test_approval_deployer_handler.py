"""The approval deployer's handler against moto's server on 127.0.0.1.

Each test creates the stand-in of the `dev` serving stack in moto's CloudFormation
(tests/support/approval_deployer_world.py): the same SSM-typed `ApprovedModelPackageArn`
parameter (defaulting to the approved-package SSM parameter, which the foundation stack creates
with `none`), the SSM-typed `BootstrapVersion`, one more parameter that must keep its value
through every update, the `HasApprovedModel` condition, and under it a SageMaker model built from
the package, an endpoint config and an endpoint - real moto resources, which the deployer's checks
read back. Model package groups, packages and approvals are real moto SageMaker calls; events are
shaped like the documented EventBridge events, wrapped in SQS records as they arrive through the
queue; the dead-letter queue is a moto SQS queue.

Where moto's CloudFormation falls short of CloudFormation (re-resolving SSM parameters into the
resources on update, a stack that is still busy, a rollback), tests/support/moto_cloudformation.py
does to moto's backend what CloudFormation would; failures moto cannot produce (throttling,
CloudFormation's error texts) come from the fault proxy (tests/support/aws_fault_proxy.py) as real
HTTP answers. The handler runs as its own role, with moto's IAM enforcement on, in
tests/serving/test_approval_deployer_iam.py.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import socket

import boto3
import pytest

from stacks.lambdas.approval_deployer import handler as deployer
from support.approval_deployer_world import (
    ACCOUNT,
    APPROVED_PACKAGE_PARAMETER,
    GROUP,
    PARAMETER,
    REGION,
    SETTINGS,
    STACK_NAME,
    STAND_IN_TEMPLATE,
    UPDATE_ROLE_ARN,
    World,
    approve,
    promote_and_roll_back,
    sqs_batch,
    stand_in_template,
)
from support.aws_fault_proxy import AwsFaultProxy
from support.moto_cloudformation import moto_stack, roll_back_update, set_stack_status, ssm_parameters_resolved_on_update


@pytest.fixture(autouse=True)
def in_the_dev_account(monkeypatch):
    """moto answers in the `dev` account, whose ids the stand-in's ARNs carry."""
    monkeypatch.setenv("MOTO_ACCOUNT_ID", ACCOUNT)


@pytest.fixture(autouse=True)
def cloudformation_resolves_ssm_parameters(monkeypatch):
    ssm_parameters_resolved_on_update(monkeypatch)


@pytest.fixture
def world(moto_endpoint) -> World:
    return World(moto_endpoint)


# --- Approve ------------------------------------------------------------------------------------

def test_approval_declares_the_package_and_updates_the_stack_once(world):
    world.create_stack()
    arn = world.registry.register()
    assert world.served() == "none"

    result = approve(world, arn)

    assert result == {"batchItemFailures": []}
    assert world.update_stack_calls == 1
    assert world.declared() == arn
    # SSM refuses any other type name; moto stores what it is sent.
    assert world.clients.ssm.get_parameter(Name=APPROVED_PACKAGE_PARAMETER)["Parameter"]["Type"] == "String"
    assert world.stack_parameters() == {PARAMETER: arn, "BootstrapVersion": "21", "DataCaptureSamplingPercent": "50"}
    assert world.served() == arn
    assert world.metric(deployer.NO_APPROVED_PACKAGE_METRIC) == {"SampleCount": 1, "Sum": 0, "Minimum": 0, "Maximum": 0}


def test_the_update_passes_only_the_approval_update_role_and_re_reads_the_parameter(world):
    world.create_stack()
    approve(world, world.registry.register())

    (request,) = world.update_requests
    assert request["RoleARN"] == UPDATE_ROLE_ARN
    assert request["UsePreviousTemplate"] is True
    # The serving stack holds IAM roles: CloudFormation refuses an update of it that does not
    # acknowledge them (moto does not check).
    assert request["Capabilities"] == ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"]
    assert request["Parameters"] == [
        {"ParameterKey": "BootstrapVersion", "UsePreviousValue": True},
        {"ParameterKey": "DataCaptureSamplingPercent", "UsePreviousValue": True},
        {"ParameterKey": PARAMETER, "ParameterValue": APPROVED_PACKAGE_PARAMETER},
    ]


def test_same_event_twice_updates_once(world):
    world.create_stack()
    arn = world.registry.register()
    event = world.registry.decide(arn, "Approved")

    assert world.run(event) == {"batchItemFailures": []}
    assert world.run(event) == {"batchItemFailures": []}
    assert world.run(event, event) == {"batchItemFailures": []}

    assert world.update_stack_calls == 1
    assert world.stack_updates() == 1
    assert world.served() == arn


def test_each_message_logs_what_became_of_it_updated_then_unchanged(world, caplog):
    # The outcome is what an operator reads in the function's log for each message.
    world.create_stack()
    event = world.registry.decide(world.registry.register(), "Approved")

    with caplog.at_level(logging.INFO, logger=deployer.LOGGER.name):
        world.run(event)
        world.run(event)

    outcomes = [r.getMessage().rsplit(": ", 1)[1] for r in caplog.records if r.getMessage().startswith("Message ")]
    assert outcomes == [deployer.Outcome.UPDATED.value, deployer.Outcome.UNCHANGED.value] == ["updated", "unchanged"]


def test_approving_moves_to_the_latest_approved_even_from_an_older_event(world):
    world.create_stack()
    first, second = world.registry.register(), world.registry.register()
    first_event = world.registry.decide(first, "Approved")
    world.registry.decide(second, "Approved")

    world.run(first_event)  # arrives late: the registry, not the event, says what to serve

    assert world.served() == second
    assert world.declared() == second


# --- Pending ------------------------------------------------------------------------------------

def test_pending_manual_approval_never_deploys(world, caplog):
    world.create_stack()
    arn = world.registry.register()
    event = world.registry.event(arn)
    assert event["detail"]["ModelApprovalStatus"] == "PendingManualApproval"

    with caplog.at_level(logging.INFO):
        result = world.run(event)

    assert result == {"batchItemFailures": []}
    assert world.update_stack_calls == 0
    assert world.served() == "none"
    assert world.declared() == "none"
    assert "only Approved and Rejected decisions deploy" in caplog.text


def test_pending_package_is_not_deployed_even_when_another_approval_triggers(world):
    world.create_stack()
    approved, pending = world.registry.register(), world.registry.register()  # pending is newer

    approve(world, approved)

    assert world.served() == approved
    assert world.registry.status(pending)[0] == "PendingManualApproval"


# --- Reject -------------------------------------------------------------------------------------

def test_rejecting_the_serving_package_rolls_back_to_the_previous_approved(world):
    world.create_stack()
    previous, serving = world.registry.register(), world.registry.register()
    approve(world, previous)
    approve(world, serving)
    assert world.served() == serving

    result = world.run(world.registry.decide(serving, "Rejected"))

    assert result == {"batchItemFailures": []}
    assert world.served() == previous
    assert world.declared() == previous
    assert world.update_stack_calls == 3


def test_rejecting_a_package_that_is_not_serving_changes_nothing(world):
    world.create_stack()
    serving, other = world.registry.register(), world.registry.register()
    approve(world, serving)
    calls = world.update_stack_calls

    world.run(world.registry.decide(other, "Rejected"))

    assert world.update_stack_calls == calls
    assert world.served() == serving


def test_rejecting_the_last_approved_keeps_serving_and_raises_the_alarm(world, caplog):
    world.create_stack()
    only_one = world.registry.register()
    approve(world, only_one)
    calls = world.update_stack_calls

    with caplog.at_level(logging.INFO):
        result = world.run(world.registry.decide(only_one, "Rejected"))

    assert result == {"batchItemFailures": []}
    assert world.update_stack_calls == calls  # no change
    assert world.served() == only_one  # the endpoint keeps serving
    assert world.declared() == only_one
    assert world.metric(deployer.NO_APPROVED_PACKAGE_METRIC)["Maximum"] == 1
    error_lines = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("NO APPROVED MODEL PACKAGE LEFT" in line and only_one in line for line in error_lines)


def test_rejection_with_nothing_ever_deployed_is_quiet(world):
    world.create_stack()
    arn = world.registry.register()

    world.run(world.registry.decide(arn, "Rejected"))

    assert world.update_stack_calls == 0
    assert world.served() == "none"
    assert world.metric(deployer.NO_APPROVED_PACKAGE_METRIC) == {}


# --- Not ours, or not readable ------------------------------------------------------------------

def test_event_for_another_group_is_ignored(world, caplog):
    world.create_stack()
    world.clients.sagemaker.create_model_package_group(ModelPackageGroupName="someone-elses-models")
    foreign = world.registry.register(group="someone-elses-models")

    with caplog.at_level(logging.INFO):
        result = world.run(world.registry.decide(foreign, "Approved"))

    assert result == {"batchItemFailures": []}
    assert world.update_stack_calls == 0
    assert world.served() == "none"
    assert "belongs to group someone-elses-models" in caplog.text


def test_a_newer_approved_version_of_another_group_is_never_deployed(world):
    world.create_stack()
    ours = world.registry.register()
    world.clients.sagemaker.create_model_package_group(ModelPackageGroupName="someone-elses-models")
    event = world.registry.decide(ours, "Approved")
    world.registry.decide(world.registry.register(group="someone-elses-models"), "Approved")  # newer

    assert world.run(event) == {"batchItemFailures": []}

    assert world.served() == ours
    assert world.declared() == ours


def test_the_registry_is_asked_for_the_newest_approved_version_of_the_group(world):
    """moto lists versioned packages whatever the request says; SageMaker lists only unversioned
    ones unless ModelPackageType says otherwise, and sorts as asked: the request must say it all."""
    world.create_stack()
    requests = []
    world.clients.sagemaker.meta.events.register(
        "provide-client-params.sagemaker.ListModelPackages", lambda params, **_: requests.append(dict(params)))

    approve(world, world.registry.register())

    assert requests == [{"ModelPackageGroupName": GROUP, "ModelApprovalStatus": "Approved", "ModelPackageType": "Versioned",
                         "SortBy": "CreationTime", "SortOrder": "Descending", "MaxResults": 1}]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("{not json", "MalformedEvent: not JSON: Expecting property name enclosed in double quotes"),
        (json.dumps(["a", "list"]), "MalformedEvent: expected a JSON object, got list"),
        (json.dumps({"source": "aws.sagemaker", "detail-type": "SageMaker Endpoint State Change", "detail": {}}),
         "MalformedEvent: unexpected source='aws.sagemaker' detail-type='SageMaker Endpoint State Change'"),
        (json.dumps({"source": "aws.sagemaker", "detail-type": "SageMaker Model Package State Change"}),
         "MalformedEvent: event has no 'detail' object"),
        (json.dumps({"source": "aws.sagemaker", "detail-type": "SageMaker Model Package State Change",
                     "detail": {"ModelPackageGroupName": GROUP, "ModelApprovalStatus": "Approved"}}),
         "MalformedEvent: event detail has no ModelPackageArn"),
        (json.dumps({"source": "aws.sagemaker", "detail-type": "SageMaker Model Package State Change",
                     "detail": {"ModelPackageArn": "", "ModelPackageGroupName": GROUP, "ModelApprovalStatus": "Approved"}}),
         "MalformedEvent: event detail has no ModelPackageArn"),
    ],
    ids=["not-json", "not-an-object", "other-detail-type", "no-detail", "no-package-arn", "empty-package-arn"],
)
def test_malformed_event_is_dead_lettered_at_once(world, caplog, body, reason):
    world.create_stack()
    arn = world.registry.register()
    good = world.registry.decide(arn, "Approved")

    with caplog.at_level(logging.INFO):
        result = world.run(body, good)  # the good message in the same batch is still processed

    assert result == {"batchItemFailures": []}  # retrying cannot fix it: not sent back
    ((dead_body, attributes),) = world.dead_letters()
    assert dead_body == body
    assert attributes["SourceMessageId"] == "message-0"
    assert attributes["FailureReason"].startswith(reason)  # what the operator reads on the dead letter
    assert world.metric(deployer.PROMOTION_FAILURES_METRIC)["Sum"] == 1
    assert any(r.levelno == logging.ERROR and "DEAD-LETTERED" in r.getMessage() for r in caplog.records)
    assert world.served() == arn


# --- Transient: retried through the queue -------------------------------------------------------

def test_update_already_in_progress_is_retried_later_not_lost(world, caplog):
    world.create_stack()
    arn = world.registry.register()
    event = world.registry.decide(arn, "Approved")
    set_stack_status(STACK_NAME, "UPDATE_IN_PROGRESS")  # e.g. a `cdk deploy` is running

    with caplog.at_level(logging.INFO):
        first_delivery = world.run(event)

    assert first_delivery == {"batchItemFailures": [{"itemIdentifier": "message-0"}]}  # back to the queue
    assert f"Message message-0 retried later: RetryLater: stack {STACK_NAME} is UPDATE_IN_PROGRESS; will retry" in caplog.text
    assert world.update_stack_calls == 0
    assert world.served() == "none"
    assert world.dead_letters() == []

    set_stack_status(STACK_NAME, "UPDATE_COMPLETE")  # that deployment finished; SQS redelivers
    second_delivery = world.run(event)

    assert second_delivery == {"batchItemFailures": []}
    assert world.update_stack_calls == 1
    assert world.served() == arn


def test_update_that_races_another_operation_is_retried(moto_endpoint):
    """The stack was idle at DescribeStacks but another operation won the race: CloudFormation
    answers UpdateStack with this ValidationError (injected by the fault proxy)."""
    with AwsFaultProxy(moto_endpoint) as proxy:
        world = World(proxy.url)
        world.create_stack()
        arn = world.registry.register()
        event = world.registry.decide(arn, "Approved")
        proxy.inject(
            "UpdateStack", error_code="ValidationError", times=1,
            message=f"Stack:arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{STACK_NAME}/x is in "
                    "UPDATE_IN_PROGRESS state and can not be updated.",
        )

        assert world.run(event) == {"batchItemFailures": [{"itemIdentifier": "message-0"}]}
        assert world.served() == "none"
        assert world.run(event) == {"batchItemFailures": []}
        assert world.served() == arn
        assert proxy.count("UpdateStack") == 2 and proxy.count("UpdateStack", forwarded_only=True) == 1
        (update,) = [c for c in proxy.calls if c.operation == "UpdateStack" and not c.injected]
        assert b"UsePreviousTemplate=true" in update.body
        assert world.dead_letters() == []


@pytest.mark.parametrize(
    ("operation", "error_code", "status"),
    [
        ("UpdateStack", "Throttling", 400),  # past the client's own three attempts
        ("DescribeStacks", "InternalFailure", 500),
        ("ListModelPackages", "ThrottlingException", 400),
        # A server-side failure under a code the list does not name: its status says "retry".
        ("DescribeStacks", "InternalServiceError", 500),
    ],
)
def test_throttling_and_server_errors_are_retried_not_dead_lettered(moto_endpoint, operation, error_code, status):
    with AwsFaultProxy(moto_endpoint) as proxy:
        world = World(proxy.url)
        world.create_stack()
        event = world.registry.decide(world.registry.register(), "Approved")
        proxy.inject(operation, error_code=error_code, message="try again", status=status, times=3)

        assert world.run(event) == {"batchItemFailures": [{"itemIdentifier": "message-0"}]}
        assert world.dead_letters() == []
        assert world.metric(deployer.PROMOTION_FAILURES_METRIC) == {}


def test_update_already_requested_for_the_event_is_not_repeated(moto_endpoint, caplog):
    """An earlier delivery of this event started the update but its reply was lost, and that
    update has since rolled back: CloudFormation refuses the reused request token."""
    with AwsFaultProxy(moto_endpoint) as proxy:
        world = World(proxy.url)
        world.create_stack()
        arn = world.registry.register()
        event = world.registry.decide(arn, "Approved")
        proxy.inject("UpdateStack", error_code="TokenAlreadyExistsException",
                     message="Another Stack Operation has been already initiated with this request token")

        with caplog.at_level(logging.INFO):
            result = world.run(event)

        assert result == {"batchItemFailures": []}
        assert "already requested" in caplog.text
        assert world.served() == "none"
        assert world.metric(deployer.NOT_SERVING_METRIC) == {}  # no deployment started
    assert [r.getMessage() for r in caplog.records if r.getMessage().startswith("Message ")] == ["Message message-0: unchanged"]


def test_a_lost_connection_to_cloudformation_is_retried_not_dead_lettered(world):
    """CloudFormation cannot be reached (past the client's own three attempts): the approval goes
    back to the queue; the dead-letter queue and the metrics, still reachable, see nothing."""
    world.create_stack()
    event = world.registry.decide(world.registry.register(), "Approved")
    with socket.socket() as closed:  # a port of 127.0.0.1 nothing listens on once closed
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    unreachable = boto3.client("cloudformation", endpoint_url=f"http://127.0.0.1:{port}", region_name=REGION,
                               config=deployer.CLIENT_CONFIG)
    clients = dataclasses.replace(world.clients, cloudformation=unreachable)

    result = deployer.handler(sqs_batch(event), None, clients=clients, settings=world.settings)

    assert result == {"batchItemFailures": [{"itemIdentifier": "message-0"}]}
    assert world.dead_letters() == []
    assert world.metric(deployer.PROMOTION_FAILURES_METRIC) == {}
    assert world.served() == "none"


def test_an_update_cloudformation_finds_nothing_to_do_in_is_unchanged_not_dead_lettered(moto_endpoint, caplog):
    """CloudFormation answers an update that would change no resource with a ValidationError
    (injected: moto updates anyway). Nothing failed: the message is done, no alarm, no dead letter."""
    with AwsFaultProxy(moto_endpoint) as proxy:
        world = World(proxy.url)
        world.create_stack()
        arn = world.registry.register()
        event = world.registry.decide(arn, "Approved")
        proxy.inject("UpdateStack", error_code="ValidationError", message="No updates are to be performed.")

        with caplog.at_level(logging.INFO):
            result = world.run(event)

        assert result == {"batchItemFailures": []}
        assert world.dead_letters() == []
        assert world.metric(deployer.PROMOTION_FAILURES_METRIC) == {}
        assert world.metric(deployer.NOT_SERVING_METRIC) == {}  # no deployment started
        assert world.declared() == arn
    assert [r.getMessage() for r in caplog.records if r.getMessage().startswith("Message ")] == ["Message message-0: unchanged"]


# --- Permanent: dead-lettered at once, alarm within minutes --------------------------------------

@pytest.mark.parametrize(
    "status",
    ["UPDATE_ROLLBACK_FAILED", "ROLLBACK_COMPLETE", "UPDATE_FAILED", "DELETE_FAILED", "DELETE_IN_PROGRESS",
     "REVIEW_IN_PROGRESS"],
)
def test_stack_state_no_retry_can_fix_dead_letters_the_approval_at_once(world, status, caplog):
    world.create_stack()
    event = world.registry.decide(world.registry.register(), "Approved")
    set_stack_status(STACK_NAME, status)

    with caplog.at_level(logging.INFO):
        result = world.run(event)

    assert result == {"batchItemFailures": []}  # not back to the queue for 36 x 10 minutes
    ((dead_body, attributes),) = world.dead_letters()
    assert json.loads(dead_body) == event
    assert attributes["FailureReason"] == (f"PermanentFailure: stack {STACK_NAME} is {status}: no update can start "
                                           "from it; it needs a person (see the stack events)")
    assert world.metric(deployer.PROMOTION_FAILURES_METRIC)["Sum"] == 1
    assert world.update_stack_calls == 0


def test_missing_stack_dead_letters_the_approval_at_once(world):
    world.create_stack()
    event = world.registry.decide(world.registry.register(), "Approved")
    world.clients.cloudformation.delete_stack(StackName=STACK_NAME)

    assert world.run(event) == {"batchItemFailures": []}
    ((_, attributes),) = world.dead_letters()
    assert f"stack {STACK_NAME} does not exist" in attributes["FailureReason"]
    assert world.metric(deployer.PROMOTION_FAILURES_METRIC)["Sum"] == 1


def test_a_stack_without_the_approved_package_parameter_dead_letters_the_approval_at_once(world):
    """A stack deployed from a template that declares no parameters at all (CloudFormation then
    answers no Parameters)."""
    world.clients.sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
    world.clients.cloudformation.create_stack(StackName=STACK_NAME, TemplateBody=json.dumps(
        {"Resources": {"Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"}}}))
    event = world.registry.decide(world.registry.register(), "Approved")

    assert world.run(event) == {"batchItemFailures": []}
    ((_, attributes),) = world.dead_letters()
    assert attributes["FailureReason"] == f"PermanentFailure: stack {STACK_NAME} has no parameter {PARAMETER}"
    assert world.update_stack_calls == 0


def test_a_missing_approved_package_parameter_dead_letters_the_approval_at_once(world):
    world.create_stack()
    event = world.registry.decide(world.registry.register(), "Approved")
    world.clients.ssm.delete_parameter(Name=APPROVED_PACKAGE_PARAMETER)  # the foundation stack was deleted

    assert world.run(event) == {"batchItemFailures": []}
    ((_, attributes),) = world.dead_letters()
    assert attributes["FailureReason"] == (f"PermanentFailure: SSM parameter {APPROVED_PACKAGE_PARAMETER} does not exist "
                                           "(the foundation stack creates it)")
    assert world.update_stack_calls == 0


@pytest.mark.parametrize(
    ("operation", "error_code", "message", "status"),
    [
        ("UpdateStack", "AccessDenied", "not authorized to perform: cloudformation:UpdateStack", 403),
        # CloudFormation re-resolves the SSM-typed BootstrapVersion with the caller's credentials
        # (aws-cdk issue 20959): before the fix, the first approval would retry for six hours.
        ("UpdateStack", "ValidationError", "AccessDenied. User doesn't have permission to call ssm:GetParameters", 400),
        ("UpdateStack", "ValidationError", "Unable to fetch parameters [/review-classifier-test/x] from parameter store", 400),
        # The parameter's AllowedPattern refuses an ARN that is not a version of this group.
        ("PutParameter", "ParameterPatternMismatchException", "Parameter value failed to satisfy the pattern", 400),
        ("ListModelPackages", "AccessDeniedException", "not authorized to perform: sagemaker:ListModelPackages", 400),
    ],
    ids=["access-denied", "bootstrap-version-unreadable", "parameter-unreadable", "invalid-arn", "registry-denied"],
)
def test_permanent_errors_dead_letter_the_approval_at_once(moto_endpoint, operation, error_code, message, status):
    with AwsFaultProxy(moto_endpoint) as proxy:
        world = World(proxy.url)
        world.create_stack()
        event = world.registry.decide(world.registry.register(), "Approved")
        proxy.clear()
        proxy.inject(operation, error_code=error_code, message=message, status=status)

        result = world.run(event)

        assert result == {"batchItemFailures": []}
        assert proxy.count(operation) == 1  # not even the client retried it
        ((dead_body, attributes),) = world.dead_letters()
        assert json.loads(dead_body) == event
        assert attributes["FailureReason"] == f"{error_code}: {message}"
        assert world.metric(deployer.PROMOTION_FAILURES_METRIC)["Sum"] == 1


def test_approval_stays_in_the_queue_when_the_dead_letter_queue_refuses_it(moto_endpoint):
    with AwsFaultProxy(moto_endpoint) as proxy:
        world = World(proxy.url)
        world.create_stack()
        event = world.registry.decide(world.registry.register(), "Approved")
        proxy.inject("UpdateStack", error_code="AccessDenied", message="denied", status=403)
        proxy.inject("SendMessage", error_code="AccessDenied", message="denied", status=403)

        assert world.run(event) == {"batchItemFailures": [{"itemIdentifier": "message-0"}]}
        assert world.metric(deployer.PROMOTION_FAILURES_METRIC)["Sum"] == 1  # the alarm still fires


# --- A promotion CloudFormation rolled back -------------------------------------------------------

@pytest.mark.parametrize("trigger", ["stack-status-change", "scheduled-check", "next-approval-event"])
def test_rolled_back_promotion_is_rejected_with_the_reason_and_never_redeployed(world, trigger, caplog):
    world.create_stack()
    serving, failing = promote_and_roll_back(world)
    calls = world.update_stack_calls
    other = world.registry.register()

    with caplog.at_level(logging.INFO):
        if trigger == "stack-status-change":
            result = world.stack_status_changed("UPDATE_ROLLBACK_COMPLETE")
        elif trigger == "scheduled-check":
            result = world.check()
        else:  # before the fix, this event deployed the failed package again
            result = world.run(world.registry.decide(other, "Rejected"))

    assert result == {"batchItemFailures": []}
    status, description = world.registry.status(failing)
    assert status == "Rejected"
    assert "CloudFormation rolled back its promotion" in description
    assert "invocation-5xx-errors went into ALARM" in description
    assert world.declared() == serving  # a `cdk deploy` now deploys what serves, not the failed one
    assert world.update_stack_calls == calls
    assert world.served() == serving
    assert world.metric(deployer.PROMOTION_FAILURES_METRIC)["Sum"] == 1
    assert any("PROMOTION ROLLED BACK" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)

    # Its own Rejected event, and any later one, leave it alone.
    world.run(world.registry.event(failing))
    world.run(world.registry.decide(serving, "Approved"))
    assert world.update_stack_calls == calls
    assert world.metric(deployer.PROMOTION_FAILURES_METRIC)["Sum"] == 1


@pytest.mark.parametrize("recorded", ["two-failed-resources", "no-failed-resource", "no-reason"])
def test_the_rejection_says_why_cloudformation_rolled_back(world, recorded):
    """The reason is each failed resource's, else the rollback's own (a rollback trigger's alarm
    fails no resource), else none."""
    world.create_stack()
    _, failing = promote_and_roll_back(world)
    events = moto_stack(STACK_NAME).events
    (failed,) = [e for e in events if e.resource_status == "UPDATE_FAILED"]
    (rollback,) = [e for e in events if e.resource_status == "UPDATE_ROLLBACK_IN_PROGRESS"]
    if recorded == "two-failed-resources":
        model = copy.copy(failed)
        model.logical_resource_id, model.resource_type, model.resource_status_reason = (
            "Model", "AWS::SageMaker::Model", "the model failed")
        events.insert(events.index(failed), model)
        expected = {f"Endpoint: {failed.resource_status_reason}; Model: the model failed",
                    f"Model: the model failed; Endpoint: {failed.resource_status_reason}"}
    else:
        events.remove(failed)
        rollback.resource_status_reason = "Rollback triggered by alarm" if recorded == "no-failed-resource" else None
        expected = {"Rollback triggered by alarm" if recorded == "no-failed-resource" else "no reason given"}

    world.check()

    status, description = world.registry.status(failing)
    assert status == "Rejected"
    assert description in {f"Rejected by the approval deployer: CloudFormation rolled back its promotion on stack "
                           f"{STACK_NAME} ({reason})" for reason in expected}


def test_approving_it_again_is_a_new_human_decision(world):
    world.create_stack()
    _, failing = promote_and_roll_back(world)
    world.check()
    calls = world.update_stack_calls

    approve(world, failing)

    assert world.update_stack_calls == calls + 1
    assert world.served() == failing
    # A new event, a new request token: CloudFormation refuses a token it has seen, and would
    # leave the package undeployed.
    first, again = (r["ClientRequestToken"] for r in world.update_requests if r["ClientRequestToken"].startswith(
        f"promote-{failing.rsplit('/', 1)[-1]}-"))
    assert first != again


def test_a_check_while_a_rejected_package_deploys_again_does_not_reject_it_again(world):
    """A person approved the package again after its rollback; while that update runs, the old
    rollback is still the stack's last one, and it is not this update's."""
    world.create_stack()
    _, failing = promote_and_roll_back(world)
    world.check()  # rejected
    world.registry.decide(failing, "Approved")
    world.clients.ssm.put_parameter(Name=APPROVED_PACKAGE_PARAMETER, Value=failing, Type="String", Overwrite=True)
    set_stack_status(STACK_NAME, "UPDATE_IN_PROGRESS")

    world.check()

    assert world.registry.status(failing)[0] == "Approved"
    assert world.declared() == failing
    assert world.metric(deployer.PROMOTION_FAILURES_METRIC)["Sum"] == 1  # the first rollback only


def test_a_rolled_back_stack_with_no_package_declared_is_checked_not_marked(world, caplog):
    """An operator set the declaration to none after a rollback: no promotion to mark, and the
    check still says what is not serving."""
    world.create_stack()
    _, failing = promote_and_roll_back(world)
    world.clients.ssm.put_parameter(Name=APPROVED_PACKAGE_PARAMETER, Value="none", Type="String", Overwrite=True)

    with caplog.at_level(logging.INFO):
        assert world.check() == {"batchItemFailures": []}

    assert world.registry.status(failing)[0] == "Approved"
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert [m for m in errors if m.startswith(f"THE NEWEST APPROVED PACKAGE {failing} IS NOT SERVING")]
    assert not [m for m in errors if "Serving check failed" in m]


def test_a_rollback_whose_start_is_past_the_first_page_of_events_is_not_marked(world, caplog):
    """DescribeStackEvents answers the newest 100 events first: a large rollback can push its own
    start off that page. Without it nothing says whose rollback it was, so nothing is rejected."""
    world.create_stack()
    _, failing = promote_and_roll_back(world)
    events = moto_stack(STACK_NAME).events
    events.remove(next(e for e in events if e.resource_status == "UPDATE_ROLLBACK_IN_PROGRESS"))

    with caplog.at_level(logging.INFO):
        assert world.check() == {"batchItemFailures": []}

    assert world.registry.status(failing)[0] == "Approved"
    assert not [r for r in caplog.records if "Serving check failed" in r.getMessage()]
    assert world.metric(deployer.NOT_SERVING_METRIC)["Maximum"] == 1  # the newest approved one does not serve


def test_rollback_of_another_operation_does_not_reject_the_declared_package(world):
    """A `cdk deploy` (not a promotion's token) was rolled back: nothing says the package failed."""
    world.create_stack()
    serving, declared = world.registry.register(), world.registry.register()
    approve(world, serving)
    world.registry.decide(declared, "Approved")
    world.clients.ssm.put_parameter(Name=APPROVED_PACKAGE_PARAMETER, Value=declared, Type="String", Overwrite=True)
    world.clients.cloudformation.update_stack(
        StackName=STACK_NAME, ClientRequestToken="exec-cdk-deploy-1",
        TemplateBody=json.dumps(dict(STAND_IN_TEMPLATE, Description="a cdk deploy with other changes")),
        Parameters=[{"ParameterKey": key, "UsePreviousValue": True}
                    for key in (PARAMETER, "BootstrapVersion", "DataCaptureSamplingPercent")],
    )
    roll_back_update(STACK_NAME, ssm=world.clients.ssm, token="exec-cdk-deploy-1", failed_resource="Endpoint",
                     reason="something else", previous_ssm_values={APPROVED_PACKAGE_PARAMETER: serving})

    world.check()

    assert world.registry.status(declared)[0] == "Approved"
    assert world.declared() == declared
    assert world.metric(deployer.NOT_SERVING_METRIC)["Maximum"] == 1  # the alarm says so instead


# --- Checks: is the newest Approved package serving? ---------------------------------------------

def test_check_after_the_update_completes_verifies_what_the_endpoint_serves(world):
    world.create_stack()
    arn = world.registry.register()
    approve(world, arn)

    assert world.stack_status_changed("UPDATE_COMPLETE") == {"batchItemFailures": []}
    assert world.check() == {"batchItemFailures": []}

    assert world.metric(deployer.NOT_SERVING_METRIC) == {"SampleCount": 3, "Sum": 0, "Minimum": 0, "Maximum": 0}


def test_check_reports_an_endpoint_that_does_not_serve_the_stacks_endpoint_config(world, caplog):
    """The stack completed, but the endpoint runs another config (changed outside CloudFormation)."""
    world.create_stack()
    old, new = world.registry.register(), world.registry.register()
    approve(world, old)
    approve(world, new)
    sagemaker = world.clients.sagemaker
    sagemaker.create_model(ModelName="out-of-band", PrimaryContainer={"ModelPackageName": old},
                           ExecutionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/model-execution")
    sagemaker.create_endpoint_config(EndpointConfigName="out-of-band", ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": "out-of-band", "InitialInstanceCount": 1,
        "InstanceType": "ml.m5.large"}])
    resources = world.clients.cloudformation.describe_stack_resources(StackName=STACK_NAME)["StackResources"]
    (endpoint_arn,) = [r["PhysicalResourceId"] for r in resources if r.get("ResourceType") == "AWS::SageMaker::Endpoint"]
    endpoint_name = endpoint_arn.rsplit("/", 1)[-1]
    sagemaker.delete_endpoint(EndpointName=endpoint_name)
    sagemaker.create_endpoint(EndpointName=endpoint_name, EndpointConfigName="out-of-band")

    with caplog.at_level(logging.INFO):
        world.stack_status_changed("UPDATE_COMPLETE")

    assert world.metric(deployer.NOT_SERVING_METRIC)["Maximum"] == 1
    assert any("ENDPOINT DOES NOT SERVE THE APPROVED PACKAGE" in r.getMessage() and "out-of-band" in r.getMessage()
               for r in caplog.records if r.levelno == logging.ERROR)


def test_check_reports_a_missing_endpoint(world):
    world.create_stack()
    approve(world, world.registry.register())
    resources = world.clients.cloudformation.describe_stack_resources(StackName=STACK_NAME)["StackResources"]
    (endpoint_arn,) = [r["PhysicalResourceId"] for r in resources if r.get("ResourceType") == "AWS::SageMaker::Endpoint"]
    world.clients.sagemaker.delete_endpoint(EndpointName=endpoint_arn.rsplit("/", 1)[-1])

    world.check()

    assert world.metric(deployer.NOT_SERVING_METRIC)["Maximum"] == 1


def test_check_reports_an_approval_that_never_deployed(moto_endpoint):
    with AwsFaultProxy(moto_endpoint) as proxy:
        world = World(proxy.url)
        world.create_stack()
        proxy.inject("UpdateStack", error_code="AccessDenied", message="denied", status=403)
        approve(world, world.registry.register())  # dead-lettered

        assert world.check() == {"batchItemFailures": []}  # a check is never retried nor dead-lettered
        assert world.metric(deployer.NOT_SERVING_METRIC) == {"SampleCount": 1, "Sum": 1, "Minimum": 1, "Maximum": 1}
        assert len(world.dead_letters()) == 1


def test_check_names_the_approved_package_that_never_deployed_and_what_the_stack_serves(moto_endpoint, caplog):
    with AwsFaultProxy(moto_endpoint) as proxy:
        world = World(proxy.url)
        world.create_stack()
        proxy.inject("UpdateStack", error_code="AccessDenied", message="denied", status=403)
        arn = world.registry.register()
        approve(world, arn)  # dead-lettered

        with caplog.at_level(logging.INFO):
            world.check()

    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert [m for m in errors if m.startswith(f"THE NEWEST APPROVED PACKAGE {arn} IS NOT SERVING (scheduled check)")]
    assert not [m for m in errors if "Serving check failed" in m]  # a finding, not a failed check


def test_a_serving_check_says_what_started_it(world, caplog):
    world.create_stack()
    arn = world.registry.register()
    approve(world, arn)

    with caplog.at_level(logging.INFO):
        world.stack_status_changed("UPDATE_COMPLETE")
        world.check()

    served = [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"Serving {arn} as declared")]
    assert served == [f"Serving {arn} as declared (stack status UPDATE_COMPLETE)", f"Serving {arn} as declared (scheduled check)"]


def test_check_while_deploying_and_with_nothing_approved_is_not_an_alarm(world):
    world.create_stack()
    world.check()  # nothing approved yet
    set_stack_status(STACK_NAME, "UPDATE_IN_PROGRESS")
    world.check()

    assert world.metric(deployer.NOT_SERVING_METRIC) == {"SampleCount": 2, "Sum": 0, "Minimum": 0, "Maximum": 0}
    assert world.update_stack_calls == 0


def test_check_of_a_stuck_stack_raises_both_alarms_and_never_dead_letters(world):
    world.create_stack()
    set_stack_status(STACK_NAME, "UPDATE_ROLLBACK_FAILED")

    assert world.stack_status_changed("UPDATE_ROLLBACK_FAILED") == {"batchItemFailures": []}
    assert world.check() == {"batchItemFailures": []}  # later checks keep the not-serving alarm up

    assert world.metric(deployer.NOT_SERVING_METRIC) == {"SampleCount": 2, "Sum": 2, "Minimum": 1, "Maximum": 1}
    assert world.metric(deployer.PROMOTION_FAILURES_METRIC)["Sum"] == 1  # announced once, on the change
    assert world.dead_letters() == []


# --- No deploy takes a serving endpoint down --------------------------------------------------------

@pytest.mark.parametrize("previous_parameters", [True, False], ids=["previous-parameters", "no-previous-parameters"])
def test_a_later_deploy_keeps_serving_what_was_approved(world, previous_parameters):
    """`cdk deploy` sends UsePreviousValue for each existing parameter, or with
    --no-previous-parameters nothing, so CloudFormation takes each parameter's Default (sent here
    explicitly, as moto would otherwise keep the previous input)."""
    world.create_stack()
    arn = world.registry.register()
    approve(world, arn)

    template = dict(STAND_IN_TEMPLATE, Description="a later cdk deploy changes the template")
    parameters = [
        {"ParameterKey": key, "UsePreviousValue": True} if previous_parameters
        else {"ParameterKey": key, "ParameterValue": declaration["Default"]}
        for key, declaration in template["Parameters"].items()
    ]
    world.clients.cloudformation.update_stack(StackName=STACK_NAME, TemplateBody=json.dumps(template),
                                              Parameters=parameters)

    assert world.served() == arn
    assert world.stack_parameters()[PARAMETER] == arn


# --- Configuration --------------------------------------------------------------------------------

def test_settings_come_from_the_environment():
    environ = {
        "STACK_NAME": STACK_NAME, "PARAMETER_NAME": PARAMETER,
        "APPROVED_PACKAGE_PARAMETER_NAME": APPROVED_PACKAGE_PARAMETER, "CLOUDFORMATION_ROLE_ARN": UPDATE_ROLE_ARN,
        "DEAD_LETTER_QUEUE_URL": SETTINGS.dead_letter_queue_url, "MODEL_PACKAGE_GROUP_NAME": GROUP,
        "ENVIRONMENT_NAME": "dev", "METRIC_NAMESPACE": "ReviewClassifier/Serving",
    }
    assert deployer.Settings.from_environment(environ) == SETTINGS
    del environ["CLOUDFORMATION_ROLE_ARN"]
    with pytest.raises(RuntimeError, match="missing environment variables.*CLOUDFORMATION_ROLE_ARN"):
        deployer.Settings.from_environment(environ)


def test_request_token_names_the_promoted_version():
    arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{GROUP}/12"
    token = deployer.request_token("event-1", arn)
    assert token.startswith("promote-12-") and len(token) <= 128
    assert deployer.is_promotion_of(token, arn)
    assert not deployer.is_promotion_of(token, arn[:-1] + "3")
    assert not deployer.is_promotion_of("exec-cdk-deploy-1", arn)


# --- What a failed check says ------------------------------------------------------------------------
# The reason is the only thing an operator reads when the not-serving alarm fires.

def _physical_name(world: World, resource_type: str) -> str:
    resources = world.clients.cloudformation.describe_stack_resources(StackName=STACK_NAME)["StackResources"]
    (arn,) = [r["PhysicalResourceId"] for r in resources if r.get("ResourceType") == resource_type]
    return arn.rsplit("/", 1)[-1]


def _not_serving_reasons(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.ERROR and "ENDPOINT DOES NOT SERVE THE APPROVED PACKAGE" in r.getMessage()]


@pytest.mark.parametrize("error_code", ["moto", "ResourceNotFound"])
def test_a_missing_endpoint_is_reported_by_name_with_sagemakers_reason(moto_endpoint, caplog, error_code):
    with AwsFaultProxy(moto_endpoint) as proxy:
        world = World(proxy.url)
        world.create_stack()
        approve(world, world.registry.register())
        endpoint = _physical_name(world, "AWS::SageMaker::Endpoint")
        if error_code == "moto":  # SageMaker answers a ValidationException for an unknown endpoint
            world.clients.sagemaker.delete_endpoint(EndpointName=endpoint)
        else:
            proxy.inject("DescribeEndpoint", error_code=error_code, message="no such endpoint here")

        with caplog.at_level(logging.INFO):
            assert world.check() == {"batchItemFailures": []}

    (reason,) = _not_serving_reasons(caplog)
    assert f"endpoint {endpoint} does not exist (" in reason
    if error_code != "moto":
        assert reason.endswith("(no such endpoint here)")
    assert world.metric(deployer.NOT_SERVING_METRIC)["Maximum"] == 1


def test_an_endpoint_that_cannot_be_described_fails_the_check_not_the_endpoint(moto_endpoint, caplog):
    with AwsFaultProxy(moto_endpoint) as proxy:
        world = World(proxy.url)
        world.create_stack()
        approve(world, world.registry.register())
        proxy.inject("DescribeEndpoint", error_code="AccessDeniedException", message="denied", status=400)

        with caplog.at_level(logging.INFO):
            world.check()

    assert _not_serving_reasons(caplog) == []
    assert any("Serving check failed" in r.getMessage() and "AccessDeniedException" in r.getMessage()
               for r in caplog.records)
    assert world.metric(deployer.NOT_SERVING_METRIC)["Maximum"] == 1


@pytest.mark.parametrize("status, failure_reason", [("Failed", "the model container exited"), ("Creating", None)])
def test_an_endpoint_out_of_service_is_reported_with_its_status_and_failure_reason(world, caplog, status, failure_reason):
    from moto.sagemaker.models import sagemaker_backends

    world.create_stack()
    approve(world, world.registry.register())
    endpoint_name = _physical_name(world, "AWS::SageMaker::Endpoint")
    # What SageMaker answers for an endpoint whose update failed (moto's endpoints are always InService).
    endpoint = sagemaker_backends[ACCOUNT][REGION].endpoints[endpoint_name]
    endpoint.endpoint_status = status
    endpoint.failure_reason = failure_reason

    with caplog.at_level(logging.INFO):
        world.check()

    (reason,) = _not_serving_reasons(caplog)
    assert reason.endswith(f"endpoint {endpoint_name} is {status} ({failure_reason or ''})")
    assert world.metric(deployer.NOT_SERVING_METRIC)["Maximum"] == 1


def _rebuild_stacks_endpoint_config(world: World, **model: dict) -> None:
    """Delete the stack's endpoint config and recreate it, under the same name and outside
    CloudFormation, on a model "out-of-band" with the given containers."""
    sagemaker = world.clients.sagemaker
    config_name = _physical_name(world, "AWS::SageMaker::EndpointConfig")
    sagemaker.create_model(ModelName="out-of-band", ExecutionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/model-execution", **model)
    sagemaker.delete_endpoint_config(EndpointConfigName=config_name)
    sagemaker.create_endpoint_config(EndpointConfigName=config_name, ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": "out-of-band", "InitialInstanceCount": 1,
        "InstanceType": "ml.m5.large"}])


@pytest.mark.parametrize("built_from", ["older-package", "image"])
def test_an_endpoint_config_rebuilt_under_the_stacks_name_on_another_model_is_reported(world, caplog, built_from):
    """The endpoint runs the stack's endpoint config by name, but that config runs a model built
    from an older package, or from an image and no package at all."""
    world.create_stack()
    old, new = world.registry.register(), world.registry.register()
    approve(world, old)
    approve(world, new)
    container = {"ModelPackageName": old} if built_from == "older-package" else {"Image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/other:1"}
    _rebuild_stacks_endpoint_config(world, PrimaryContainer=container)

    with caplog.at_level(logging.INFO):
        world.check()

    (reason,) = _not_serving_reasons(caplog)
    built = f"['{old}']" if built_from == "older-package" else "no package"
    assert reason.endswith(f"variant AllTraffic of endpoint {_physical_name(world, 'AWS::SageMaker::Endpoint')} "
                           f"runs model out-of-band built from {built}, not {new}")
    assert world.metric(deployer.NOT_SERVING_METRIC)["Maximum"] == 1


def test_a_model_that_runs_the_package_as_one_of_its_containers_serves_it(world, caplog):
    """A model may list its containers (Containers) instead of naming a PrimaryContainer."""
    from moto.sagemaker.models import sagemaker_backends

    world.create_stack()
    arn = world.registry.register()
    approve(world, arn)
    _rebuild_stacks_endpoint_config(world, Containers=[{"ModelPackageName": arn}])
    # SageMaker's DescribeModel of such a model names no PrimaryContainer (moto answers {}).
    sagemaker_backends[ACCOUNT][REGION].describe_model("out-of-band").primary_container = None
    assert "PrimaryContainer" not in world.clients.sagemaker.describe_model(ModelName="out-of-band")

    with caplog.at_level(logging.INFO):
        assert world.check() == {"batchItemFailures": []}

    assert _not_serving_reasons(caplog) == []
    assert world.metric(deployer.NOT_SERVING_METRIC)["Maximum"] == 0


def test_a_record_without_body_or_message_id_is_dead_lettered_with_placeholders(world):
    """SQS refuses empty message bodies, so only a malformed invocation sends one; SQS refuses it
    too, so the dead letter says what was missing."""
    world.create_stack()
    result = deployer.handler({"Records": [{"receiptHandle": "handle"}]}, None, clients=world.clients, settings=world.settings)

    assert result == {"batchItemFailures": []}
    ((body, attributes),) = world.dead_letters()
    assert body == "<empty message>"
    assert attributes["SourceMessageId"] == "unknown"
    assert attributes["FailureReason"].startswith("MalformedEvent: not JSON")  # read as an empty body


@pytest.mark.parametrize("missing", ["Endpoint", "EndpointConfig"])
def test_a_stack_that_declares_the_package_without_an_endpoint_or_its_config_is_reported(world, caplog, missing):
    """A serving stack whose template lost one of the two: the approval deploys, and the check says
    which stack lacks them instead of failing on the half it finds."""
    template = stand_in_template(world.endpoint_name, APPROVED_PACKAGE_PARAMETER)
    del template["Resources"][missing]
    if missing == "EndpointConfig":  # the endpoint runs a config made outside the stack
        sagemaker = world.clients.sagemaker
        sagemaker.create_model(ModelName="outside", PrimaryContainer={"Image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/other:1"},
                               ExecutionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/model-execution")
        sagemaker.create_endpoint_config(EndpointConfigName="outside", ProductionVariants=[{
            "VariantName": "AllTraffic", "ModelName": "outside", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
        template["Resources"]["Endpoint"]["Properties"]["EndpointConfigName"] = "outside"
    world.create_stack(template=template)
    arn = world.registry.register()
    approve(world, arn)

    with caplog.at_level(logging.INFO):
        assert world.check() == {"batchItemFailures": []}

    (reason,) = _not_serving_reasons(caplog)
    assert reason.endswith(f"stack {STACK_NAME} declares {arn} but has no endpoint or endpoint config")
    assert not [r for r in caplog.records if "Serving check failed" in r.getMessage()]
    assert world.metric(deployer.NOT_SERVING_METRIC)["Maximum"] == 1


def test_a_model_described_without_a_containers_list_serves_its_primary_container(world, caplog):
    """SageMaker's DescribeModel of a model built on a PrimaryContainer names no Containers (moto
    answers an empty list, so the answer is made SageMaker's here)."""
    from moto.sagemaker.models import sagemaker_backends

    world.create_stack()
    arn = world.registry.register()
    approve(world, arn)
    model_name = _physical_name(world, "AWS::SageMaker::Model")
    sagemaker_backends[ACCOUNT][REGION].describe_model(model_name).containers = None
    assert "Containers" not in world.clients.sagemaker.describe_model(ModelName=model_name)

    with caplog.at_level(logging.INFO):
        assert world.check() == {"batchItemFailures": []}

    assert _not_serving_reasons(caplog) == []
    assert world.metric(deployer.NOT_SERVING_METRIC)["Maximum"] == 0
