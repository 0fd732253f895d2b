"""The approval deployer's world in moto, named as the `dev` environment names it: a stand-in
serving stack (the same SSM-typed `ApprovedModelPackageArn` and `BootstrapVersion` parameters,
the `HasApprovedModel` condition and under it a model built from the package, an endpoint config
and an endpoint), the foundation's approved-package parameter, the model package group, the
dead-letter queue, events shaped as EventBridge sends them through the queue, and what tests
read back. With `dev`'s names, the policies of the synthesized `dev` template name these very
resources (tests/serving/test_approval_deployer_iam.py runs the handler as that role).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

from stacks.config import load_environment
from stacks.lambdas.approval_deployer import handler as deployer
from support.moto_accounts import route_to_owner
from support.moto_cloudformation import moto_stack, roll_back_update

CONFIG = load_environment("dev")
ACCOUNT, REGION = CONFIG.account, CONFIG.region

GROUP = CONFIG.model_package_group_name
STACK_NAME = CONFIG.stack_name("serving")
PARAMETER = "ApprovedModelPackageArn"
APPROVED_PACKAGE_PARAMETER = CONFIG.approved_model_package_parameter_name
BOOTSTRAP_VERSION_PARAMETER = "/cdk-bootstrap/hnb659fds/version"
ENDPOINT_NAME = CONFIG.endpoint_name
# CloudFormation names these two at deploy time; the stand-ins' names stand for them.
UPDATE_ROLE_NAME = f"{STACK_NAME}-approval-update"
DEAD_LETTER_QUEUE_NAME = f"{STACK_NAME}-approval-events-dlq"
UPDATE_ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/{UPDATE_ROLE_NAME}"
SETTINGS = deployer.Settings(
    stack_name=STACK_NAME,
    parameter_name=PARAMETER,
    approved_package_parameter_name=APPROVED_PACKAGE_PARAMETER,
    cloudformation_role_arn=UPDATE_ROLE_ARN,
    dead_letter_queue_url=f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{DEAD_LETTER_QUEUE_NAME}",
    model_package_group_name=GROUP,
    environment_name=CONFIG.name,
    metric_namespace="ReviewClassifier/Serving",
)
def stand_in_template(endpoint_name: str, approved_package_parameter: str) -> dict:
    """The stand-in serving stack of another environment's names."""
    template = json.loads(json.dumps(STAND_IN_TEMPLATE))
    template["Parameters"][PARAMETER]["Default"] = approved_package_parameter
    template["Resources"]["Endpoint"]["Properties"]["EndpointName"] = endpoint_name
    return template


STAND_IN_TEMPLATE = {
    "Parameters": {
        PARAMETER: {"Type": "AWS::SSM::Parameter::Value<String>", "Default": APPROVED_PACKAGE_PARAMETER},
        "BootstrapVersion": {"Type": "AWS::SSM::Parameter::Value<String>", "Default": BOOTSTRAP_VERSION_PARAMETER},
        "DataCaptureSamplingPercent": {"Type": "String", "Default": "20"},
    },
    "Conditions": {"HasApprovedModel": {"Fn::Not": [{"Fn::Equals": [{"Ref": PARAMETER}, "none"]}]}},
    "Resources": {
        "Model": {
            "Type": "AWS::SageMaker::Model",
            "Condition": "HasApprovedModel",
            "Properties": {
                "ExecutionRoleArn": f"arn:aws:iam::{ACCOUNT}:role/model-execution",
                "PrimaryContainer": {"ModelPackageName": {"Ref": PARAMETER}},
            },
        },
        "EndpointConfig": {
            "Type": "AWS::SageMaker::EndpointConfig",
            "Condition": "HasApprovedModel",
            "Properties": {"ProductionVariants": [{
                "VariantName": "AllTraffic", "ModelName": {"Fn::GetAtt": ["Model", "ModelName"]},
                "InitialInstanceCount": 1, "InstanceType": "ml.m5.large", "InitialVariantWeight": 1.0,
            }]},
        },
        "Endpoint": {
            "Type": "AWS::SageMaker::Endpoint",
            "Condition": "HasApprovedModel",
            "Properties": {
                "EndpointName": ENDPOINT_NAME,
                "EndpointConfigName": {"Fn::GetAtt": ["EndpointConfig", "EndpointConfigName"]},
            },
        },
    },
}
INFERENCE_SPECIFICATION = {
    "Containers": [{
        "Image": "763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-inference:2.1.0-transformers4.37.0-cpu-py310-ubuntu22.04",
        "ModelDataUrl": f"s3://{CONFIG.resource_prefix}-artifacts-{ACCOUNT}/models/model.tar.gz",
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

    def status(self, arn: str) -> tuple[str, str]:
        package = self.sagemaker.describe_model_package(ModelPackageName=arn)
        return package["ModelApprovalStatus"], package.get("ApprovalDescription", "")

    def event(self, arn: str) -> dict:
        detail = self.sagemaker.describe_model_package(ModelPackageName=arn)
        detail.pop("ResponseMetadata")
        return eventbridge_event("aws.sagemaker", "SageMaker Model Package State Change", [arn],
                                 json.loads(json.dumps(detail, default=lambda value: value.isoformat())))


def eventbridge_event(source: str, detail_type: str, resources: list[str], detail: dict) -> dict:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": ACCOUNT,
        "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": resources,
        "detail": detail,
    }


def scheduled_event() -> dict:
    rule = f"arn:aws:events:{REGION}:{ACCOUNT}:rule/serving-check"
    return eventbridge_event("aws.events", "Scheduled Event", [rule], {})


def sqs_batch(*bodies: dict | str) -> dict:
    """What the Lambda receives from the queue: one record per EventBridge event."""
    return {"Records": [
        {
            "messageId": f"message-{index}",
            "receiptHandle": f"handle-{index}",
            "body": body if isinstance(body, str) else json.dumps(body),
            "attributes": {"ApproximateReceiveCount": "1"},
            "eventSource": "aws:sqs",
            "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:approval-events",
            "awsRegion": REGION,
        }
        for index, body in enumerate(bodies)
    ]}


class World:
    """Clients on moto (optionally through the fault proxy) plus what the tests inspect. The
    handler runs with `settings` and `handler_clients` (by default the same clients as set-up and
    inspection; where IAM is enforced, clients with its role's credentials). With `account`, the
    world lives in that account of moto's server and requests naming another account's resources
    go there (tests/support/moto_accounts.py); the stack, parameter and group are the settings'."""

    def __init__(
        self, endpoint_url: str, *, settings: deployer.Settings = SETTINGS, handler_clients: deployer.Clients | None = None,
        account: str | None = None, bucket_accounts: dict[str, str] | None = None, endpoint_name: str = ENDPOINT_NAME,
    ) -> None:
        kwargs = {"endpoint_url": endpoint_url, "region_name": REGION}
        self.clients = deployer.Clients.create(**kwargs)  # the handler's own retry configuration
        if account is not None:
            for client in vars(self.clients).values():
                route_to_owner(client, account, bucket_accounts)
        self.handler_clients = handler_clients or self.clients
        self.endpoint_name = endpoint_name
        self.registry = Registry(self.clients.sagemaker)
        self.update_requests: list[dict] = []
        self.handler_clients.cloudformation.meta.events.register(
            "provide-client-params.cloudformation.UpdateStack", self._record_update
        )
        self.clients.sqs.create_queue(QueueName=settings.dead_letter_queue_url.rsplit("/", 1)[-1])
        self.settings = settings

    def _record_update(self, params, **_) -> None:
        self.update_requests.append(dict(params))

    @property
    def update_stack_calls(self) -> int:
        return len(self.update_requests)

    def create_stack(self, *, with_group: bool = True, template: dict | None = None) -> None:
        """What exists before the first approval: the foundation's parameter, the bootstrap's
        version, the model package group (unless the test made it) and the serving stack without
        an endpoint (the stand-in, or `template` with the stand-in's parameters)."""
        ssm, settings = self.clients.ssm, self.settings
        ssm.put_parameter(Name=settings.approved_package_parameter_name, Value="none", Type="String")
        ssm.put_parameter(Name=BOOTSTRAP_VERSION_PARAMETER, Value="21", Type="String")
        if with_group:
            self.clients.sagemaker.create_model_package_group(ModelPackageGroupName=settings.model_package_group_name)
        self.clients.cloudformation.create_stack(
            StackName=settings.stack_name,
            TemplateBody=json.dumps(template or stand_in_template(self.endpoint_name, settings.approved_package_parameter_name)),
            Parameters=[
                {"ParameterKey": PARAMETER, "ParameterValue": settings.approved_package_parameter_name},
                {"ParameterKey": "BootstrapVersion", "ParameterValue": BOOTSTRAP_VERSION_PARAMETER},
                {"ParameterKey": "DataCaptureSamplingPercent", "ParameterValue": "50"},
            ],
        )

    def run(self, *bodies: dict | str) -> dict:
        return deployer.handler(sqs_batch(*bodies), None, clients=self.handler_clients, settings=self.settings)

    def check(self) -> dict:
        return self.run(scheduled_event())

    def stack_status_changed(self, status: str) -> dict:
        stack_id = moto_stack(STACK_NAME).stack_id
        return self.run(eventbridge_event(
            "aws.cloudformation", "CloudFormation Stack Status Change", [stack_id],
            {"stack-id": stack_id, "status-details": {"status": status, "status-reason": ""}},
        ))

    def stack_parameters(self) -> dict[str, str]:
        stack = self.clients.cloudformation.describe_stacks(StackName=self.settings.stack_name)["Stacks"][0]
        return {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}

    def declared(self) -> str:
        return self.clients.ssm.get_parameter(Name=self.settings.approved_package_parameter_name)["Parameter"]["Value"]

    def served(self) -> str:
        """The package the stack's endpoint runs, read from SageMaker ("none" without an endpoint)."""
        resources = self.clients.cloudformation.describe_stack_resources(StackName=self.settings.stack_name)["StackResources"]
        endpoints = [r["PhysicalResourceId"] for r in resources if r.get("ResourceType") == "AWS::SageMaker::Endpoint"]
        if not endpoints:
            return "none"
        sagemaker = self.clients.sagemaker
        endpoint = sagemaker.describe_endpoint(EndpointName=endpoints[0].rsplit("/", 1)[-1])
        config = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
        model = sagemaker.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
        return model["PrimaryContainer"]["ModelPackageName"]

    def stack_updates(self) -> int:
        events = self.clients.cloudformation.describe_stack_events(StackName=self.settings.stack_name)["StackEvents"]
        return sum(1 for e in events if e["LogicalResourceId"] == self.settings.stack_name and e["ResourceStatus"] == "UPDATE_COMPLETE")

    def dead_letters(self) -> list[tuple[str, dict[str, str]]]:
        response = self.clients.sqs.receive_message(
            QueueUrl=self.settings.dead_letter_queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"],
        )
        return [
            (m["Body"], {name: a["StringValue"] for name, a in m.get("MessageAttributes", {}).items()})
            for m in response.get("Messages", [])
        ]

    def metric(self, name: str) -> dict[str, float]:
        """Everything published to one of the deployer's metrics in this test, in one datapoint
        (SampleCount, Sum, Minimum, Maximum); {} if nothing was published. Only datapoints whose
        unit is Count: statistics that name a unit leave out the datapoints of any other."""
        now = datetime.now(timezone.utc)
        response = self.clients.cloudwatch.get_metric_statistics(
            Namespace=self.settings.metric_namespace,
            MetricName=name,
            Dimensions=[{"Name": "Environment", "Value": self.settings.environment_name}],
            StartTime=now - timedelta(hours=1),
            EndTime=now + timedelta(hours=1),
            Period=7200,
            Statistics=["SampleCount", "Sum", "Minimum", "Maximum"],
            Unit="Count",
        )
        (point,) = response["Datapoints"] or [{}]
        return {key: point[key] for key in ("SampleCount", "Sum", "Minimum", "Maximum") if key in point}


def approve(world: World, arn: str) -> dict:
    return world.run(world.registry.decide(arn, "Approved"))


def promote_and_roll_back(world: World) -> tuple[str, str]:
    """v1 serves; v2 is approved, its update fails on the endpoint and is rolled back."""
    serving, failing = world.registry.register(), world.registry.register()
    approve(world, serving)
    approve(world, failing)
    assert world.served() == failing  # moto completed the update; CloudFormation now undoes it
    roll_back_update(
        STACK_NAME, ssm=world.clients.ssm, token=world.update_requests[-1]["ClientRequestToken"],
        failed_resource="Endpoint",
        reason=f"Endpoint {ENDPOINT_NAME} update failed: alarm {ENDPOINT_NAME}-invocation-5xx-errors went into "
               "ALARM, the deployment was rolled back",
        previous_ssm_values={APPROVED_PACKAGE_PARAMETER: serving},
    )
    assert world.served() == serving and world.declared() == failing
    return serving, failing
