"""Reads IAM roles out of synthesized CloudFormation templates as CloudFormation would create
them: the intrinsic functions in their policies resolved against the physical resources of a
(local) deployment, so the policies that moto enforces are the templates' own.

Only what role policies use is resolved: Ref, Fn::GetAtt, Fn::Join, Fn::Sub, Fn::Select,
Fn::Split and Fn::ImportValue; anything else is an error that names it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping


class TemplateError(Exception):
    """A template construct this resolver does not know, or a reference it cannot resolve."""


@dataclass(frozen=True)
class PhysicalResource:
    """What `Ref` and `Fn::GetAtt` give for one deployed resource."""

    ref: str
    attributes: Mapping[str, str] = field(default_factory=dict)


def default_physical_resource(resource_type: str, name: str, *, account: str, region: str) -> PhysicalResource:
    """The physical id and attributes CloudFormation gives a resource called `name`."""
    if resource_type == "AWS::IAM::Role":
        return PhysicalResource(name, {"Arn": f"arn:aws:iam::{account}:role/{name}", "RoleId": name})
    if resource_type == "AWS::S3::Bucket":
        return PhysicalResource(name, {"Arn": f"arn:aws:s3:::{name}", "DomainName": f"{name}.s3.amazonaws.com"})
    if resource_type == "AWS::SQS::Queue":
        return PhysicalResource(f"https://sqs.{region}.amazonaws.com/{account}/{name}",
                                {"Arn": f"arn:aws:sqs:{region}:{account}:{name}", "QueueName": name})
    if resource_type == "AWS::SageMaker::ModelPackageGroup":
        arn = f"arn:aws:sagemaker:{region}:{account}:model-package-group/{name}"
        return PhysicalResource(arn, {"ModelPackageGroupArn": arn})
    if resource_type == "AWS::KMS::Key":
        return PhysicalResource(name, {"Arn": f"arn:aws:kms:{region}:{account}:key/{name}", "KeyId": name})
    if resource_type == "AWS::Logs::LogGroup":
        return PhysicalResource(name, {"Arn": f"arn:aws:logs:{region}:{account}:log-group:{name}:*"})
    if resource_type == "AWS::Lambda::Function":
        return PhysicalResource(name, {"Arn": f"arn:aws:lambda:{region}:{account}:function:{name}"})
    return PhysicalResource(name)


_NAME_PROPERTIES = (
    "RoleName", "BucketName", "QueueName", "ModelPackageGroupName", "FunctionName", "FeatureGroupName", "LogGroupName",
)


class Deployment:
    """Resolves templates of several stacks deployed together (exports cross between them)."""

    def __init__(self, *, account: str, region: str, overrides: Mapping[str, PhysicalResource] | None = None):
        self.account = account
        self.region = region
        # Resources whose physical ids the local deployment chose, by logical id prefix.
        self.overrides = dict(overrides or {})
        self.templates: dict[str, dict] = {}
        self.exports: dict[str, Any] = {}

    def add_stack(self, stack_name: str, template: dict) -> None:
        self.templates[stack_name] = template
        for output in template.get("Outputs", {}).values():
            if "Export" in output:
                export_name = self.resolve(stack_name, output["Export"]["Name"])
                self.exports[export_name] = (stack_name, output["Value"])

    def physical(self, stack_name: str, logical_id: str) -> PhysicalResource:
        for prefix, resource in self.overrides.items():
            if logical_id.startswith(prefix):
                return resource
        resources = self.templates[stack_name].get("Resources", {})
        if logical_id not in resources:
            raise TemplateError(f"{stack_name}: Ref to {logical_id}, which is neither a resource nor a parameter here")
        resource = resources[logical_id]
        properties = resource.get("Properties", {})
        name = next((properties[key] for key in _NAME_PROPERTIES if isinstance(properties.get(key), str)), None)
        # CloudFormation names an unnamed resource after its stack and logical id.
        name = name or f"{stack_name}-{logical_id}"[:63]
        return default_physical_resource(resource["Type"], name, account=self.account, region=self.region)

    def resolve(self, stack_name: str, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(stack_name, item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) != 1 or not next(iter(value)).startswith(("Fn::", "Ref")):
            return {key: self.resolve(stack_name, item) for key, item in value.items()}
        (function, argument), = value.items()
        if function == "Ref":
            return self._ref(stack_name, argument)
        if function == "Fn::GetAtt":
            logical_id, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
            attributes = self.physical(stack_name, logical_id).attributes
            if attribute not in attributes:
                raise TemplateError(f"{stack_name}: Fn::GetAtt {logical_id}.{attribute} is not known locally")
            return attributes[attribute]
        if function == "Fn::Join":
            separator, items = argument
            return separator.join(str(self.resolve(stack_name, item)) for item in items)
        if function == "Fn::Select":
            index, items = argument
            return self.resolve(stack_name, items)[int(self.resolve(stack_name, index))]
        if function == "Fn::Split":
            separator, text = argument
            return str(self.resolve(stack_name, text)).split(separator)
        if function == "Fn::Sub":
            text, variables = (argument, {}) if isinstance(argument, str) else argument
            resolved = {name: self.resolve(stack_name, item) for name, item in variables.items()}
            return re.sub(r"\$\{([^}!]+)\}", lambda m: str(resolved[m.group(1)] if m.group(1) in resolved
                                                          else self._sub_reference(stack_name, m.group(1))), text)
        if function == "Fn::ImportValue":
            export_name = self.resolve(stack_name, argument)
            if export_name not in self.exports:
                raise TemplateError(f"{stack_name}: Fn::ImportValue {export_name!r}: no stack exports it")
            exporting_stack, exported = self.exports[export_name]
            return self.resolve(exporting_stack, exported)
        raise TemplateError(f"{stack_name}: intrinsic function {function} is not resolved locally")

    def _sub_reference(self, stack_name: str, name: str) -> str:
        if "." in name:
            logical_id, attribute = name.split(".", 1)
            return self.resolve(stack_name, {"Fn::GetAtt": [logical_id, attribute]})
        return self._ref(stack_name, name)

    def _ref(self, stack_name: str, name: str) -> str:
        pseudo = {"AWS::Partition": "aws", "AWS::AccountId": self.account, "AWS::Region": self.region,
                  "AWS::URLSuffix": "amazonaws.com", "AWS::StackName": stack_name}
        if name in pseudo:
            return pseudo[name]
        parameters = self.templates[stack_name].get("Parameters", {})
        if name in parameters:
            if "Default" not in parameters[name]:
                raise TemplateError(f"{stack_name}: parameter {name} has no default to resolve locally")
            return parameters[name]["Default"]
        return self.physical(stack_name, name).ref


@dataclass(frozen=True)
class RolePolicies:
    """A role as the template declares it: its name and the policy documents attached to it."""

    stack_name: str
    logical_id: str
    name: str
    policies: dict[str, dict]


def role_policies(deployment: Deployment, stack_name: str, role_logical_id: str) -> RolePolicies:
    """The role's inline policies and every AWS::IAM::Policy attached to it, resolved."""
    resources = deployment.templates[stack_name]["Resources"]
    role = resources[role_logical_id]
    if role["Type"] != "AWS::IAM::Role":
        raise TemplateError(f"{stack_name}: {role_logical_id} is a {role['Type']}, not an AWS::IAM::Role")
    if role["Properties"].get("ManagedPolicyArns"):
        raise TemplateError(f"{stack_name}: {role_logical_id} uses managed policies, which are not reproduced locally")
    policies = {
        item["PolicyName"]: deployment.resolve(stack_name, item["PolicyDocument"])
        for item in role["Properties"].get("Policies", [])
    }
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::IAM::Policy":
            continue
        attached = [item.get("Ref") for item in resource["Properties"].get("Roles", []) if isinstance(item, dict)]
        if role_logical_id in attached:
            policies[logical_id] = deployment.resolve(stack_name, resource["Properties"]["PolicyDocument"])
    name = deployment.physical(stack_name, role_logical_id).ref
    return RolePolicies(stack_name, role_logical_id, name, policies)


def find_role(template: dict, *, role_name: str | None = None, function_handler: str | None = None) -> str:
    """The logical id of the role named `role_name`, or of the Lambda function whose Handler is
    `function_handler`."""
    resources = template["Resources"]
    for logical_id, resource in resources.items():
        properties = resource.get("Properties", {})
        if role_name and resource["Type"] == "AWS::IAM::Role" and properties.get("RoleName") == role_name:
            return logical_id
        if function_handler and resource["Type"] == "AWS::Lambda::Function" and properties.get("Handler") == function_handler:
            return properties["Role"]["Fn::GetAtt"][0]
    raise TemplateError(f"no role {'named ' + role_name if role_name else 'for the function ' + str(function_handler)}")
