"""The approval deployer's handler against moto's server on 127.0.0.1.

moto's CloudFormation cannot create SageMaker endpoints, so each test creates a small stand-in
serving stack: the same `ApprovedModelPackageArn` parameter and `HasApprovedModel` condition as
the real template, one more parameter (it must keep its value through every update), and an
SSM parameter - a resource moto's CloudFormation does create - whose value is the package the
stack serves ("none" without one), standing in for the endpoint. Model package groups, packages
and approvals are real moto SageMaker calls; events are shaped like the documented "SageMaker
Model Package State Change" event (detail = DescribeModelPackage), wrapped in SQS records as
EventBridge delivers them through the queue.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime, timezone

import boto3
import pytest

from stacks.lambdas.approval_deployer import handler as deployer
from support.aws_fault_proxy import AwsFaultProxy

REGION = "us-east-1"
MOTO_ACCOUNT = "123456789012"  # moto's default account
GROUP = "review-classifier-test"
STACK_NAME = "review-classifier-test-serving"
SERVED_MARKER = "/review-classifier-test/served-model-package"
PARAMETER = "ApprovedModelPackageArn"
SETTINGS = deployer.Settings(
    stack_name=STACK_NAME,
    parameter_name=PARAMETER,
    model_package_group_name=GROUP,
    environment_name="test",
    metric_namespace="ReviewClassifier/Serving",
)
STAND_IN_TEMPLATE = {
    "Parameters": {
        PARAMETER: {"Type": "String", "Default": ""},
        "DataCaptureSamplingPercent": {"Type": "String", "Default": "20"},
    },
    "Conditions": {"HasApprovedModel": {"Fn::Not": [{"Fn::Equals": [{"Ref": PARAMETER}, ""]}]}},
    "Resources": {
        "ServedModelMarker": {
            "Type": "AWS::SSM::Parameter",
            "Properties": {
                "Name": SERVED_MARKER,
                "Type": "String",
                "Value": {"Fn::If": ["HasApprovedModel", {"Ref": PARAMETER}, "none"]},
            },
        }
    },
}
INFERENCE_SPECIFICATION = {
    "Containers": [{
        "Image": "763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-inference:2.1.0-transformers4.37.0-cpu-py310-ubuntu22.04",
        "ModelDataUrl": "s3://review-classifier-test-artifacts/models/model.tar.gz",
    }],
    "SupportedContentTypes": ["application/json", "application/jsonlines"],
    "SupportedResponseMIMETypes": ["application/json", "application/jsonlines"],
}


class Registry:
    """The model package group in moto, and events shaped as SageMaker sends them."""

    def __init__(self, sagemaker) -> None:
        self.sagemaker = sagemaker

    def register(self, group: str = GROUP) -> str:
        return self.sagemaker.create_model_package(
            ModelPackageGroupName=group,
            ModelApprovalStatus="PendingManualApproval",
            InferenceSpecification=INFERENCE_SPECIFICATION,
        )["ModelPackageArn"]

    def decide(self, arn: str, status: str) -> dict:
        self.sagemaker.update_model_package(ModelPackageArn=arn, ModelApprovalStatus=status)
        return self.event(arn)

    def event(self, arn: str) -> dict:
        detail = self.sagemaker.describe_model_package(ModelPackageName=arn)
        detail.pop("ResponseMetadata")
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "SageMaker Model Package State Change",
            "source": "aws.sagemaker",
            "account": MOTO_ACCOUNT,
            "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": REGION,
            "resources": [arn],
            "detail": json.loads(json.dumps(detail, default=lambda value: value.isoformat())),
        }


def sqs_batch(*bodies: dict | str) -> dict:
    """What the Lambda receives from the queue: one record per EventBridge event."""
    return {"Records": [
        {
            "messageId": f"message-{index}",
            "receiptHandle": f"handle-{index}",
            "body": body if isinstance(body, str) else json.dumps(body),
            "attributes": {"ApproximateReceiveCount": "1"},
            "eventSource": "aws:sqs",
            "eventSourceARN": f"arn:aws:sqs:{REGION}:{MOTO_ACCOUNT}:approval-events",
            "awsRegion": REGION,
        }
        for index, body in enumerate(bodies)
    ]}


class World:
    """Clients on moto (optionally through the fault proxy) plus what the tests inspect."""

    def __init__(self, endpoint_url: str) -> None:
        self.endpoint_url = endpoint_url
        kwargs = {"endpoint_url": endpoint_url, "region_name": REGION}
        self.clients = deployer.Clients.create(**kwargs)
        self.ssm = boto3.client("ssm", **kwargs)
        self.registry = Registry(self.clients.sagemaker)
        self.update_stack_calls = 0
        self.clients.cloudformation.meta.events.register(
            "before-call.cloudformation.UpdateStack", self._count_update
        )

    def _count_update(self, **_) -> None:
        self.update_stack_calls += 1

    def create_stack(self, approved_arn: str = "") -> None:
        self.clients.sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
        self.clients.cloudformation.create_stack(
            StackName=STACK_NAME,
            TemplateBody=json.dumps(STAND_IN_TEMPLATE),
            Parameters=[
                {"ParameterKey": PARAMETER, "ParameterValue": approved_arn},
                {"ParameterKey": "DataCaptureSamplingPercent", "ParameterValue": "50"},
            ],
        )

    def run(self, *bodies: dict | str) -> dict:
        return deployer.handler(sqs_batch(*bodies), None, clients=self.clients, settings=SETTINGS)

    def stack_parameters(self) -> dict[str, str]:
        stack = self.clients.cloudformation.describe_stacks(StackName=STACK_NAME)["Stacks"][0]
        return {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}

    def served(self) -> str:
        return self.ssm.get_parameter(Name=SERVED_MARKER)["Parameter"]["Value"]

    def stack_updates(self) -> int:
        events = self.clients.cloudformation.describe_stack_events(StackName=STACK_NAME)["StackEvents"]
        return sum(1 for e in events if e["LogicalResourceId"] == STACK_NAME and e["ResourceStatus"] == "UPDATE_COMPLETE")

    def no_approved_package_datapoints(self) -> list[float]:
        response = self.clients.cloudwatch.get_metric_statistics(
            Namespace=SETTINGS.metric_namespace,
            MetricName=deployer.NO_APPROVED_PACKAGE_METRIC,
            Dimensions=[{"Name": "Environment", "Value": SETTINGS.environment_name}],
            StartTime=datetime(2000, 1, 1, tzinfo=timezone.utc),
            EndTime=datetime(2100, 1, 1, tzinfo=timezone.utc),
            Period=60,
            Statistics=["Maximum"],
        )
        return [point["Maximum"] for point in response["Datapoints"]]


@pytest.fixture
def world(moto_endpoint) -> World:
    return World(moto_endpoint)


def set_moto_stack_status(status: str) -> None:
    """moto completes stack operations at once; to show the deployer a stack that is still
    updating, set the status in moto's in-process backend (the server then answers
    DescribeStacks with it, exactly as CloudFormation does during an update)."""
    from moto.cloudformation.models import cloudformation_backends

    backend = cloudformation_backends[MOTO_ACCOUNT][REGION]
    (stack,) = [s for s in backend.stacks.values() if s.name == STACK_NAME]
    stack.status = status


# --- Approve ------------------------------------------------------------------------------------

def test_approval_updates_the_stack_once_with_the_approved_arn(world):
    world.create_stack()
    arn = world.registry.register()
    assert world.served() == "none"

    result = world.run(world.registry.decide(arn, "Approved"))

    assert result == {"batchItemFailures": []}
    assert world.update_stack_calls == 1
    assert world.stack_parameters() == {PARAMETER: arn, "DataCaptureSamplingPercent": "50"}  # the other kept
    assert world.served() == arn
    assert world.no_approved_package_datapoints() == [0.0]


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


def test_approving_moves_to_the_latest_approved_even_from_an_older_event(world):
    world.create_stack()
    first, second = world.registry.register(), world.registry.register()
    first_event = world.registry.decide(first, "Approved")
    world.registry.decide(second, "Approved")

    world.run(first_event)  # arrives late: the registry, not the event, says what to serve

    assert world.served() == second


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
    assert "only Approved and Rejected decisions deploy" in caplog.text


def test_pending_package_is_not_deployed_even_when_another_approval_triggers(world):
    world.create_stack()
    approved, pending = world.registry.register(), world.registry.register()  # pending is newer

    world.run(world.registry.decide(approved, "Approved"))

    assert world.served() == approved
    assert world.registry.event(pending)["detail"]["ModelApprovalStatus"] == "PendingManualApproval"


# --- Reject -------------------------------------------------------------------------------------

def test_rejecting_the_serving_package_rolls_back_to_the_previous_approved(world):
    world.create_stack()
    previous, serving = world.registry.register(), world.registry.register()
    world.run(world.registry.decide(previous, "Approved"))
    world.run(world.registry.decide(serving, "Approved"))
    assert world.served() == serving

    result = world.run(world.registry.decide(serving, "Rejected"))

    assert result == {"batchItemFailures": []}
    assert world.served() == previous
    assert world.stack_parameters()[PARAMETER] == previous
    assert world.update_stack_calls == 3


def test_rejecting_a_package_that_is_not_serving_changes_nothing(world):
    world.create_stack()
    serving, other = world.registry.register(), world.registry.register()
    world.run(world.registry.decide(serving, "Approved"))
    calls = world.update_stack_calls

    world.run(world.registry.decide(other, "Rejected"))

    assert world.update_stack_calls == calls
    assert world.served() == serving


def test_rejecting_the_last_approved_keeps_serving_and_raises_the_alarm(world, caplog):
    world.create_stack()
    only_one = world.registry.register()
    world.run(world.registry.decide(only_one, "Approved"))
    calls = world.update_stack_calls

    with caplog.at_level(logging.INFO):
        result = world.run(world.registry.decide(only_one, "Rejected"))

    assert result == {"batchItemFailures": []}
    assert world.update_stack_calls == calls  # no change
    assert world.served() == only_one  # the endpoint keeps serving
    assert 1.0 in world.no_approved_package_datapoints()
    error_lines = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("NO APPROVED MODEL PACKAGE LEFT" in line and only_one in line for line in error_lines)


def test_rejection_with_nothing_ever_deployed_is_quiet(world):
    world.create_stack()
    arn = world.registry.register()

    world.run(world.registry.decide(arn, "Rejected"))

    assert world.update_stack_calls == 0
    assert world.served() == "none"
    assert world.no_approved_package_datapoints() == []


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


@pytest.mark.parametrize(
    "body",
    [
        "{not json",
        json.dumps(["a", "list"]),
        json.dumps({"source": "aws.sagemaker", "detail-type": "SageMaker Endpoint State Change", "detail": {}}),
        json.dumps({"source": "aws.sagemaker", "detail-type": "SageMaker Model Package State Change"}),
        json.dumps({"source": "aws.sagemaker", "detail-type": "SageMaker Model Package State Change",
                    "detail": {"ModelPackageGroupName": GROUP, "ModelApprovalStatus": "Approved"}}),
    ],
    ids=["not-json", "not-an-object", "other-detail-type", "no-detail", "no-package-arn"],
)
def test_malformed_event_is_logged_without_crashing(world, caplog, body):
    world.create_stack()
    arn = world.registry.register()
    good = world.registry.decide(arn, "Approved")

    with caplog.at_level(logging.INFO):
        result = world.run(body, good)  # the good message in the same batch is still processed

    assert result == {"batchItemFailures": []}  # retrying cannot fix it: not sent back
    assert any(r.levelno == logging.ERROR and "Malformed event dropped" in r.getMessage() for r in caplog.records)
    assert world.served() == arn


# --- Busy stack -----------------------------------------------------------------------------------

def test_update_already_in_progress_is_retried_later_not_lost(world):
    world.create_stack()
    arn = world.registry.register()
    event = world.registry.decide(arn, "Approved")
    set_moto_stack_status("UPDATE_IN_PROGRESS")  # e.g. a `cdk deploy` is running

    first_delivery = world.run(event)

    assert first_delivery == {"batchItemFailures": [{"itemIdentifier": "message-0"}]}  # back to the queue
    assert world.update_stack_calls == 0
    assert world.served() == "none"

    set_moto_stack_status("UPDATE_COMPLETE")  # that deployment finished; SQS redelivers
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
            message=f"Stack:arn:aws:cloudformation:{REGION}:{MOTO_ACCOUNT}:stack/{STACK_NAME}/x is in "
                    "UPDATE_IN_PROGRESS state and can not be updated.",
        )

        assert world.run(event) == {"batchItemFailures": [{"itemIdentifier": "message-0"}]}
        assert world.served() == "none"
        assert world.run(event) == {"batchItemFailures": []}
        assert world.served() == arn
        assert proxy.count("UpdateStack") == 2 and proxy.count("UpdateStack", forwarded_only=True) == 1
        (update,) = [c for c in proxy.calls if c.operation == "UpdateStack" and not c.injected]
        assert b"UsePreviousTemplate=true" in update.body


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


def test_unexpected_error_stays_in_the_queue(moto_endpoint, caplog):
    with AwsFaultProxy(moto_endpoint) as proxy:
        world = World(proxy.url)
        world.create_stack()
        arn = world.registry.register()
        event = world.registry.decide(arn, "Approved")
        proxy.inject("UpdateStack", error_code="AccessDenied", message="not authorized", status=403)

        with caplog.at_level(logging.INFO):
            result = world.run(event)

    assert result == {"batchItemFailures": [{"itemIdentifier": "message-0"}]}  # retried, then the DLQ
    assert "reaches the DLQ if it keeps failing" in caplog.text


# --- Configuration --------------------------------------------------------------------------------

def test_settings_come_from_the_environment():
    environ = {
        "STACK_NAME": STACK_NAME, "PARAMETER_NAME": PARAMETER, "MODEL_PACKAGE_GROUP_NAME": GROUP,
        "ENVIRONMENT_NAME": "test", "METRIC_NAMESPACE": "ReviewClassifier/Serving",
    }
    assert deployer.Settings.from_environment(environ) == SETTINGS
    del environ["STACK_NAME"]
    with pytest.raises(RuntimeError, match="missing environment variables.*STACK_NAME"):
        deployer.Settings.from_environment(environ)
