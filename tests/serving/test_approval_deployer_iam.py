"""The approval deployer's handler as its own role, with moto's IAM enforcement on.

The role is the one the synthesized `dev` serving template gives the Lambda function whose
Handler is the deployer's, with the policies CloudFormation would attach, resolved against the
local deployment (local_pipeline/cloudformation.py; the foundation and pipeline templates join for
their exports). CloudFormation names two of the resources those policies and the function's
environment refer to at deploy time, the dead-letter queue and the approval update role: they
resolve to the local stand-ins' names. Everything else is named in the template as the stand-in
names it (tests/support/approval_deployer_world.py uses `dev`'s stack, parameter, group and
endpoint names), and the handler runs with its environment resolved from the same template. The
role is created in moto, assumed, and its credentials are the handler's; set-up and inspection run
as an administrator.

What moto 5.2.5 checks: the action of every call the handler makes, and the resource of SQS calls
(the dead-letter statement must name the queue the handler sends to). It authorizes CloudFormation,
SSM, SageMaker and CloudWatch calls against "*" and evaluates no conditions, so those statements
are enforced on "*" (local_pipeline/iam.py). Its denials are reworded as AWS words them
(tests/support/moto_iam.py), so the tests read what an operator would read.

What this leaves unchecked, and where it is checked instead:
- the resources those statements name (this stack, the approved-package parameter, this group's
  packages, this endpoint) and their conditions: UpdateStack only with the update role
  (`cloudformation:RoleArn`), rejecting only (`sagemaker:ModelApprovalStatus`), the metric
  namespace (`cloudwatch:namespace`) - tests/serving/test_approval_deployer_stack.py;
- `iam:PassRole` of the update role, only to CloudFormation: moto checks no PassRole (same tests);
- what CloudFormation does with the caller's or the update role's credentials: re-reading the
  SSM-typed `BootstrapVersion` (`ssm:GetParameters`, aws-cdk issue 20959) and changing the served
  resources - moto's CloudFormation does both unchecked (same tests, against the resource schemas);
- what Lambda does for the function: reading the events queue, writing the logs;
- excess permissions: running cannot show them; the stack tests pin the role's exact actions.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Callable, Iterator

import boto3
import pytest

from local_pipeline import iam, local_aws
from local_pipeline.cloudformation import Deployment, RolePolicies, default_physical_resource, find_role, role_policies
from stacks.lambdas.approval_deployer import handler as deployer
from support.approval_deployer_world import (
    ACCOUNT,
    CONFIG,
    DEAD_LETTER_QUEUE_NAME,
    REGION,
    SETTINGS,
    STACK_NAME,
    UPDATE_ROLE_NAME,
    World,
    approve,
    promote_and_roll_back,
)
from support.moto_cloudformation import set_stack_status, ssm_parameters_resolved_on_update
from support.moto_iam import read_access_denied_as_aws_words_it

DEPLOYER_HANDLER = "handler.handler"
SESSION_NAME = "approval-deployer"


@dataclasses.dataclass(frozen=True)
class DeployerRole:
    policies: RolePolicies
    settings: deployer.Settings  # the function's environment, resolved


def handler_environment(template: dict) -> dict:
    (function,) = [
        resource for resource in template["Resources"].values()
        if resource["Type"] == "AWS::Lambda::Function" and resource["Properties"].get("Handler") == DEPLOYER_HANDLER
    ]
    return function["Properties"]["Environment"]["Variables"]


@pytest.fixture(scope="module")
def deployer_role(synthesized_app) -> DeployerRole:
    templates = {CONFIG.stack_name(component): synthesized_app.template_json(CONFIG.name, component)
                 for component in ("foundation", "pipeline", "serving")}
    serving = templates[STACK_NAME]
    variables = handler_environment(serving)
    named_at_deploy_time = {
        variables["DEAD_LETTER_QUEUE_URL"]["Ref"]:
            default_physical_resource("AWS::SQS::Queue", DEAD_LETTER_QUEUE_NAME, account=ACCOUNT, region=REGION),
        variables["CLOUDFORMATION_ROLE_ARN"]["Fn::GetAtt"][0]:
            default_physical_resource("AWS::IAM::Role", UPDATE_ROLE_NAME, account=ACCOUNT, region=REGION),
    }
    deployment = Deployment(account=ACCOUNT, region=REGION, overrides=named_at_deploy_time)
    for stack_name, template in templates.items():
        deployment.add_stack(stack_name, template)
    return DeployerRole(
        policies=role_policies(deployment, STACK_NAME, find_role(serving, function_handler=DEPLOYER_HANDLER)),
        settings=deployer.Settings.from_environment(deployment.resolve(STACK_NAME, variables)),
    )


class DeployerWorld(World):
    """The stand-in, with the handler calling as the deployer's role and access control on."""

    def __init__(self, endpoint_url: str, role: DeployerRole, admin: iam.Credentials, credentials: iam.Credentials):
        handler_clients = deployer.Clients.create(
            endpoint_url=endpoint_url, region_name=REGION, aws_access_key_id=credentials.access_key_id,
            aws_secret_access_key=credentials.secret_access_key, aws_session_token=credentials.session_token,
        )
        for field in dataclasses.fields(handler_clients):
            read_access_denied_as_aws_words_it(getattr(handler_clients, field.name))
        super().__init__(endpoint_url, settings=role.settings, handler_clients=handler_clients)
        self.role = role.policies
        self.iam = admin.session(REGION).client("iam", endpoint_url=endpoint_url)

    def take_away(self, action: str) -> None:
        iam.put_policies(self.iam, iam.without_action(self.role, action))

    def denied(self, action: str) -> str:
        """What the handler reports when the role may not do `action`."""
        return (f"AccessDenied: User: arn:aws:sts::{ACCOUNT}:assumed-role/{self.role.name}/{SESSION_NAME} "
                f"is not authorized to perform: {action}")


@pytest.fixture
def world(moto_endpoint, deployer_role, monkeypatch) -> Iterator[DeployerWorld]:
    ssm_parameters_resolved_on_update(monkeypatch)
    with local_aws.aws_endpoint(moto_endpoint, REGION, ACCOUNT):
        iam_client = boto3.client("iam")
        admin = iam.create_admin(iam_client)
        role_arn = iam.create_role(iam_client, deployer_role.policies, admin.arn)
        # moto's switch is process-wide, and its server is the whole suite's: always off again.
        iam.enforce_access_control(moto_endpoint)
        try:
            with local_aws.credentials_in_environment(admin):
                credentials = iam.assume(boto3.client("sts"), role_arn, SESSION_NAME)
                world = DeployerWorld(moto_endpoint, deployer_role, admin, credentials)
                world.create_stack()
                yield world
        finally:
            iam.relax_access_control(moto_endpoint)


def error_lines(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]


def test_the_templates_handler_environment_names_the_stand_ins(deployer_role):
    assert deployer_role.settings == SETTINGS


# --- The main paths succeed as the role -------------------------------------------------------------

def test_a_promotion_on_approval(world):
    arn = world.registry.register()

    assert approve(world, arn) == {"batchItemFailures": []}

    assert world.served() == arn and world.declared() == arn
    assert world.update_stack_calls == 1
    assert world.dead_letters() == []
    assert world.metric(deployer.NO_APPROVED_PACKAGE_METRIC)["Maximum"] == 0


def test_a_rejection_moves_back_to_the_previous_approved(world):
    previous, serving = world.registry.register(), world.registry.register()
    approve(world, previous)
    approve(world, serving)

    assert world.run(world.registry.decide(serving, "Rejected")) == {"batchItemFailures": []}

    assert world.served() == previous and world.declared() == previous
    assert world.dead_letters() == []


def test_the_scheduled_check_verifies_what_serves(world, caplog):
    approve(world, world.registry.register())

    with caplog.at_level(logging.INFO):
        assert world.check() == {"batchItemFailures": []}

    assert error_lines(caplog) == []
    assert world.metric(deployer.NOT_SERVING_METRIC) == {"SampleCount": 2, "Sum": 0, "Minimum": 0, "Maximum": 0}


def test_a_rolled_back_promotion_is_rejected(world):
    serving, failing = promote_and_roll_back(world)

    assert world.stack_status_changed("UPDATE_ROLLBACK_COMPLETE") == {"batchItemFailures": []}

    assert world.registry.status(failing)[0] == "Rejected"
    assert world.declared() == serving
    assert world.metric(deployer.PROMOTION_FAILURES_METRIC)["Sum"] == 1


def test_a_permanent_error_goes_to_the_dead_letter_queue(world):
    event = world.registry.decide(world.registry.register(), "Approved")
    set_stack_status(STACK_NAME, "UPDATE_ROLLBACK_FAILED")

    assert world.run(event) == {"batchItemFailures": []}

    ((body, attributes),) = world.dead_letters()
    assert json.loads(body) == event
    assert "UPDATE_ROLLBACK_FAILED" in attributes["FailureReason"]
    assert world.metric(deployer.PROMOTION_FAILURES_METRIC)["Sum"] == 1


# --- One permission taken away: the handler says which call was denied -------------------------------

# In the order an approval makes them: each one is denied with all before it allowed.
APPROVAL_CALLS = [
    "cloudformation:DescribeStacks", "ssm:GetParameter", "sagemaker:ListModelPackages", "cloudwatch:PutMetricData",
    "ssm:PutParameter", "cloudformation:UpdateStack",
]


@pytest.mark.parametrize("action", APPROVAL_CALLS)
def test_an_approval_denied_a_call_is_dead_lettered_naming_it(world, caplog, action):
    event = world.registry.decide(world.registry.register(), "Approved")
    world.take_away(action)

    with caplog.at_level(logging.INFO):
        assert world.run(event) == {"batchItemFailures": []}

    ((body, attributes),) = world.dead_letters()
    assert json.loads(body) == event
    assert attributes["FailureReason"] == world.denied(action)
    assert any("APPROVAL EVENT DEAD-LETTERED" in line and world.denied(action) in line for line in error_lines(caplog))
    if action == "cloudwatch:PutMetricData":
        # No metric can say it: the dead-letter queue's own alarm does, and the log.
        assert any(line.startswith("Could not publish") and world.denied(action) in line for line in error_lines(caplog))
    else:
        assert world.metric(deployer.PROMOTION_FAILURES_METRIC)["Sum"] == 1
    assert world.served() == "none"


def after_a_promotion(world: World) -> None:
    approve(world, world.registry.register())


def after_a_rolled_back_promotion(world: World) -> None:
    promote_and_roll_back(world)


CHECK_CALLS: dict[str, Callable[[World], None]] = {
    "cloudformation:DescribeStackResources": after_a_promotion,
    "sagemaker:DescribeEndpoint": after_a_promotion,
    "sagemaker:DescribeEndpointConfig": after_a_promotion,
    "sagemaker:DescribeModel": after_a_promotion,
    "cloudformation:DescribeStackEvents": after_a_rolled_back_promotion,
    "sagemaker:DescribeModelPackage": after_a_rolled_back_promotion,
    "sagemaker:UpdateModelPackage": after_a_rolled_back_promotion,
}


@pytest.mark.parametrize("action", CHECK_CALLS)
def test_a_check_denied_a_call_logs_it_and_raises_the_not_serving_alarm(world, caplog, action):
    CHECK_CALLS[action](world)
    world.take_away(action)

    with caplog.at_level(logging.INFO):
        assert world.check() == {"batchItemFailures": []}  # a check is never retried nor dead-lettered

    assert any(line.startswith("Serving check failed (scheduled check)") and world.denied(action) in line
               for line in error_lines(caplog))
    assert world.metric(deployer.NOT_SERVING_METRIC)["Maximum"] == 1
    assert world.dead_letters() == []


def test_a_permanent_error_the_dead_letter_queue_refuses_stays_in_the_queue(world, caplog):
    event = world.registry.decide(world.registry.register(), "Approved")
    set_stack_status(STACK_NAME, "UPDATE_ROLLBACK_FAILED")
    world.take_away("sqs:SendMessage")

    with caplog.at_level(logging.INFO):
        assert world.run(event) == {"batchItemFailures": [{"itemIdentifier": "message-0"}]}

    assert any(f"to the dead-letter queue ({world.denied('sqs:SendMessage')})" in line for line in error_lines(caplog))
    assert world.metric(deployer.PROMOTION_FAILURES_METRIC)["Sum"] == 1  # the alarm still fires
    assert world.dead_letters() == []


def test_sending_to_the_dead_letter_queue_is_allowed_only_to_the_queue_the_statement_names(world, caplog):
    another_queue = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{STACK_NAME}-approval-events"
    policies = {
        name: {**document, "Statement": [
            {**statement, "Resource": another_queue} if statement.get("Sid") == "DeadLetterPermanentFailures" else statement
            for statement in document["Statement"]
        ]}
        for name, document in world.role.policies.items()
    }
    iam.put_policies(world.iam, dataclasses.replace(world.role, policies=policies))
    set_stack_status(STACK_NAME, "UPDATE_ROLLBACK_FAILED")

    with caplog.at_level(logging.INFO):
        result = world.run(world.registry.decide(world.registry.register(), "Approved"))

    assert result == {"batchItemFailures": [{"itemIdentifier": "message-0"}]}
    assert any(world.denied("sqs:SendMessage") in line for line in error_lines(caplog))
