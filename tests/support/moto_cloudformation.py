"""What CloudFormation does that moto 5.2.5's CloudFormation does not, done to moto's in-process
backend so that code under test still meets it over HTTP (moto's server runs in this process).

- `ssm_parameters_resolved_on_update(monkeypatch)`: CloudFormation resolves SSM-typed parameters
  again on every update and updates each resource whose resolved inputs changed (and what depends
  on it). moto resolves them too, but decides what to update from the raw parameter values, which
  for an SSM-typed parameter (its SSM name) never change: nothing would be updated.
- `set_stack_status(...)`: moto completes every operation at once; a stack that is still updating,
  or stuck, is shown by setting its status.
- `roll_back_update(...)`: moto never rolls back. This leaves a stack as CloudFormation leaves it
  after rolling an update back: the resources and parameter values of before, the failed
  resource's events (its update started, then failed) and the stack's rollback events, all
  carrying the update's request token.
"""

from __future__ import annotations

import os
from typing import Any

MOTO_ACCOUNT = "123456789012"  # moto's default account
REGION = "us-east-1"
SSM_PARAMETER_TYPE_PREFIX = "AWS::SSM::Parameter::Value"


def _references(node: Any) -> set[str]:
    """Logical ids and parameter names a template fragment refers to (Ref and Fn::GetAtt)."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                target = value[0] if isinstance(value, list) else str(value).split(".")[0]
                found.add(target)
            else:
                found |= _references(value)
    elif isinstance(node, list):
        for item in node:
            found |= _references(item)
    return found


def _resolved(resource_map: Any, template: dict, parameters: dict[str, Any]) -> dict[str, Any]:
    from moto.ssm import ssm_backends

    ssm = ssm_backends[resource_map._account_id][resource_map._region_name]
    values = {}
    for name, declaration in template.get("Parameters", {}).items():
        value = parameters.get(name, declaration.get("Default"))
        if str(declaration.get("Type", "")).startswith(SSM_PARAMETER_TYPE_PREFIX) and value:
            value = ssm.get_parameter(value).value
        values[name] = value
    return values


def ssm_parameters_resolved_on_update(monkeypatch) -> None:
    from moto.cloudformation.parsing import ResourceMap

    original = ResourceMap.build_resource_diff

    def build_resource_diff(self, other_template, parameters=None):
        actions = original(self, other_template, parameters)
        if parameters is None:
            return actions
        before = dict(self.resolved_parameters)
        after = _resolved(self, other_template, parameters)
        changed = {name for name, value in after.items() if before.get(name) != value}
        resources = other_template["Resources"]
        while True:  # resources that read a changed value, then those that read them
            more = {
                name for name, declaration in resources.items()
                if name not in changed and _references(declaration) & changed
            }
            if not more:
                break
            changed |= more
        for name in resources:  # template order: dependencies come first in the stand-in
            if name in changed and name in self._resource_json_map and name not in actions["Modify"] + actions["Add"]:
                actions["Modify"].append(name)
        return actions

    monkeypatch.setattr(ResourceMap, "build_resource_diff", build_resource_diff)


def moto_stack(stack_name: str) -> Any:
    from moto.cloudformation.models import cloudformation_backends

    # The account moto's server answers in: MOTO_ACCOUNT_ID where it is set, as moto reads it.
    backend = cloudformation_backends[os.environ.get("MOTO_ACCOUNT_ID", MOTO_ACCOUNT)][REGION]
    (stack,) = [s for s in backend.stacks.values() if s.name == stack_name]
    return stack


def set_stack_status(stack_name: str, status: str) -> None:
    """The server then answers DescribeStacks with it, exactly as CloudFormation does."""
    moto_stack(stack_name).status = status


def roll_back_update(
    stack_name: str, *, ssm: Any, token: str, failed_resource: str, reason: str, previous_ssm_values: dict[str, str],
) -> None:
    """Undo the stack's last update as a CloudFormation rollback would. `previous_ssm_values` are
    the SSM values the stack had resolved before that update (the parameters themselves keep their
    current values: CloudFormation restores what it resolved, not the parameter store); `ssm` is a
    boto3 client on moto."""
    from moto.cloudformation.models import Event

    stack = moto_stack(stack_name)

    def stack_event(status: str, why: str | None = None) -> None:
        stack._add_stack_event(status, resource_status_reason=why)
        stack.events[-1].client_request_token = token

    failed = stack.resource_map[failed_resource]
    # The resource's update starts, then fails: both events carry the operation's token.
    for status, why in (("UPDATE_IN_PROGRESS", None), ("UPDATE_FAILED", reason)):
        event = Event(
            stack_id=stack.stack_id, stack_name=stack.name, logical_resource_id=failed_resource,
            physical_resource_id=getattr(failed, "physical_resource_id", failed_resource),
            resource_type=stack.template_dict["Resources"][failed_resource]["Type"],
            resource_status=status, resource_status_reason=why, resource_properties=None,
        )
        event.client_request_token = token
        stack.events.append(event)
    stack_event("UPDATE_ROLLBACK_IN_PROGRESS", f"The following resource(s) failed to update: [{failed_resource}].")
    current = {name: ssm.get_parameter(Name=name)["Parameter"]["Value"] for name in previous_ssm_values}
    for name, value in previous_ssm_values.items():
        ssm.put_parameter(Name=name, Value=value, Type="String", Overwrite=True)
    stack.resource_map.update(stack.template_dict, dict(stack.resource_map.input_parameters))
    for name, value in current.items():
        ssm.put_parameter(Name=name, Value=value, Type="String", Overwrite=True)
    stack_event("UPDATE_ROLLBACK_COMPLETE")
    stack.status = "UPDATE_ROLLBACK_COMPLETE"
