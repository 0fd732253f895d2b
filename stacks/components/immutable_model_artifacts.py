"""Makes the artifacts bucket's model prefix write-once: the `model.tar.gz` (and its
`code/inference.py`) that a model version registers, and that an endpoint downloads again on
every scale-out, can be created but never replaced, and the pipeline's role (so also the code
of every pipeline job, which runs as that role) can never delete it.

- Bucket policy, every principal: `s3:PutObject` under the prefix is denied unless the request
  carries `If-None-Match` (S3 then refuses to replace an existing key: 412). The condition key
  `s3:ObjectCreationOperation` limits the rule to the requests that create an object
  (PutObject, CompleteMultipartUpload, CopyObject); CreateMultipartUpload and UploadPart carry
  no conditional header and create nothing. A CopyObject into the prefix needs the header too.
- Bucket policy and the role's own policy: the pipeline role may not `DeleteObject` or
  `DeleteObjectVersion` under the prefix (on a versioned bucket a delete would put a delete
  marker over the served key; a version delete would remove the bytes).

Nothing here protects against a principal that may change the bucket policy itself (the
account's administrators, CloudFormation's deploy role).
"""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

# Requests that delete an object or one of its versions.
DELETE_ACTIONS = ("s3:DeleteObject", "s3:DeleteObjectVersion")


class ImmutableModelArtifacts(Construct):
    """Statements only (the bucket's policy and the role's); no resources of its own."""

    def __init__(self, scope: Construct, construct_id: str, *, bucket: s3.IBucket, prefix: str, writer_role: iam.IRole) -> None:
        super().__init__(scope, construct_id)
        objects = bucket.arn_for_objects(f"{prefix.strip('/')}/*")
        bucket.add_to_resource_policy(iam.PolicyStatement(
            sid="CreateImmutableModelsOnlyIfAbsent",
            effect=iam.Effect.DENY,
            principals=[iam.AnyPrincipal()],
            actions=["s3:PutObject"],
            resources=[objects],
            conditions={
                "Null": {"s3:if-none-match": "true"},
                "Bool": {"s3:ObjectCreationOperation": "true"},
            },
        ))
        bucket.add_to_resource_policy(iam.PolicyStatement(
            sid="PipelineRoleNeverDeletesImmutableModels",
            effect=iam.Effect.DENY,
            principals=[iam.AnyPrincipal()],
            actions=list(DELETE_ACTIONS),
            resources=[objects],
            # By ARN, not by principal: it holds for every session of the role.
            conditions={"ArnEquals": {"aws:PrincipalArn": writer_role.role_arn}},
        ))
        # The same deny in the role's own policy: it holds even where the bucket policy is not
        # evaluated (the local runs' moto checks identity policies only).
        writer_role.add_to_principal_policy(iam.PolicyStatement(
            sid="NeverDeleteImmutableModels",
            effect=iam.Effect.DENY,
            actions=list(DELETE_ACTIONS),
            resources=[objects],
        ))
