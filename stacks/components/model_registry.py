"""The environment's model package group: every trained model version the pipeline registers,
with its approval status, which the serving stack follows."""

from __future__ import annotations

from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from stacks.components.lifecycle import removal_policy


class ModelRegistry(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, model_package_group_name: str, retain_on_delete: bool) -> None:
        super().__init__(scope, construct_id)
        self.model_package_group = sagemaker.CfnModelPackageGroup(
            self,
            "ModelPackageGroup",
            model_package_group_name=model_package_group_name,
            model_package_group_description="Review sentiment classifiers (negative/neutral/positive)",
        )
        # Registered versions and their approval history are an audit trail: keep them in prod.
        self.model_package_group.apply_removal_policy(removal_policy(retain_on_delete))
