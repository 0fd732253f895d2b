"""IAM as AWS enforces it, in moto: the templates' roles created with their own policies, their
credentials handed to whoever makes calls as that role (jobs, the pipeline service's steps, the
Lambda handlers), and moto's access control switched on, so a missing permission is an
AccessDenied at the step that needed it.

What moto checks (moto 5.2.5): the action of every request, and the resource of S3 requests
(bucket and key) and of SQS requests that name an existing queue (its ARN). For other services
it authorizes against the resource "*", so a statement scoped to an ARN would never match, and
it cannot supply most condition keys. `enforceable` rewrites a policy into what moto can check
faithfully: S3 and SQS statements as written, other services' statements on "*", no
conditions, and actions named as moto names them. Resources and conditions that this leaves out
are checked by the policy tests on the templates (docs/local-run.md lists them).
"""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable

import boto3

from local_pipeline.cloudformation import RolePolicies

# Administrator of the local account: sets up the deployment, as the CDK's deploy role would.
ADMIN_USER = "local-deployer"


@dataclass(frozen=True)
class Credentials:
    arn: str
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None

    @property
    def environment(self) -> dict[str, str]:
        variables = {"AWS_ACCESS_KEY_ID": self.access_key_id, "AWS_SECRET_ACCESS_KEY": self.secret_access_key}
        if self.session_token:
            variables["AWS_SESSION_TOKEN"] = self.session_token
        return variables

    def session(self, region: str) -> boto3.Session:
        return boto3.Session(aws_access_key_id=self.access_key_id, aws_secret_access_key=self.secret_access_key,
                             aws_session_token=self.session_token, region_name=region)


def create_admin(iam: Any) -> Credentials:
    iam.create_user(UserName=ADMIN_USER)
    iam.put_user_policy(UserName=ADMIN_USER, PolicyName="administrator", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    key = iam.create_access_key(UserName=ADMIN_USER)["AccessKey"]
    arn = iam.get_user(UserName=ADMIN_USER)["User"]["Arn"]
    return Credentials(arn, key["AccessKeyId"], key["SecretAccessKey"])


# Services whose request resources moto determines, so their statements keep their Resource.
RESOURCE_CHECKED_SERVICES = frozenset({"s3", "sqs"})
# moto names an action after the request's signing name, which for CloudWatch is not its IAM
# prefix: a denied PutMetricData reads "monitoring:PutMetricData".
MOTO_ACTION_PREFIXES = {"cloudwatch": "monitoring"}


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def _as_moto_names(action: str) -> str:
    service, separator, name = action.partition(":")
    return f"{MOTO_ACTION_PREFIXES.get(service, service)}{separator}{name}"


def enforceable(document: dict) -> dict:
    """The policy as moto can enforce it (see the module docstring)."""
    statements = []
    for statement in _as_list(document.get("Statement", [])):
        statement = {key: value for key, value in statement.items() if key != "Condition"}
        if "Action" not in statement or "Resource" not in statement:
            statements.append(statement)
            continue
        actions = [_as_moto_names(action) for action in _as_list(statement["Action"])]
        checked = [action for action in actions if action.split(":")[0] in RESOURCE_CHECKED_SERVICES]
        unchecked = [action for action in actions if action not in checked]
        if checked:
            statements.append({**statement, "Action": checked})
        if unchecked:
            statements.append({**statement, "Action": unchecked, "Resource": "*"})
    for index, statement in enumerate(statements):
        statement.pop("Sid", None)
        statement["Sid"] = f"S{index}"
    return {"Version": document.get("Version", "2012-10-17"), "Statement": statements}


def create_role(iam: Any, role: RolePolicies, trusted_principal_arn: str) -> str:
    """The role with exactly the template's policies, trusted by the local stand-in for the
    service that assumes it on AWS (SageMaker, Lambda): moto checks the trust policy too."""
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"AWS": trusted_principal_arn},
    }]}
    arn = iam.create_role(RoleName=role.name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    put_policies(iam, role)
    return arn


def put_policies(iam: Any, role: RolePolicies) -> None:
    """Replace the role's inline policies with `role.policies` (as moto can enforce them)."""
    for name in iam.list_role_policies(RoleName=role.name)["PolicyNames"]:
        if name not in {key[:128] for key in role.policies}:
            iam.delete_role_policy(RoleName=role.name, PolicyName=name)
    for name, document in role.policies.items():
        iam.put_role_policy(RoleName=role.name, PolicyName=name[:128], PolicyDocument=json.dumps(enforceable(document)))


def without_statement(role: RolePolicies, sid: str) -> RolePolicies:
    """The role less the statement `sid` (tests take one permission away with it)."""
    return _edited(role, lambda statement: None if statement.get("Sid") == sid else statement, f"statement {sid!r}")


def without_action(role: RolePolicies, action: str) -> RolePolicies:
    """The role less `action` in every statement that grants it (a statement left with no action
    goes too): one permission taken away where a statement grants several."""

    def edit(statement: dict) -> dict | None:
        actions = _as_list(statement.get("Action", []))
        if action not in actions:
            return statement
        rest = [item for item in actions if item != action]
        return {**statement, "Action": rest} if rest else None

    return _edited(role, edit, f"statement granting {action!r}")


def _edited(role: RolePolicies, edit: Callable[[dict], dict | None], what: str) -> RolePolicies:
    """The role with `edit` applied to each statement (None drops it); KeyError if none changed."""
    changed = False
    policies = {}
    for name, document in role.policies.items():
        statements = []
        for statement in _as_list(document["Statement"]):
            edited = edit(statement)
            changed = changed or edited != statement
            if edited is not None:
                statements.append(edited)
        policies[name] = {**document, "Statement": statements}
    if not changed:
        raise KeyError(f"role {role.name} has no {what}")
    return RolePolicies(role.stack_name, role.logical_id, role.name, policies)


def assume(sts: Any, role_arn: str, session_name: str) -> Credentials:
    response = sts.assume_role(RoleArn=role_arn, RoleSessionName=session_name, DurationSeconds=43200)
    credentials = response["Credentials"]
    return Credentials(response["AssumedRoleUser"]["Arn"], credentials["AccessKeyId"], credentials["SecretAccessKey"],
                       credentials["SessionToken"])


def enforce_access_control(endpoint_url: str) -> None:
    """From now on every request to moto must be allowed by the caller's policies."""
    _reset_auth(endpoint_url, "0")


def relax_access_control(endpoint_url: str) -> None:
    _reset_auth(endpoint_url, "inf")


def _reset_auth(endpoint_url: str, unchecked_requests: str) -> None:
    # moto's own switch: the number of requests still let through unchecked.
    request = urllib.request.Request(f"{endpoint_url}/moto-api/reset-auth", data=unchecked_requests.encode(),
                                     method="POST", headers={"Content-Type": "text/plain"})
    urllib.request.urlopen(request, timeout=10).close()
