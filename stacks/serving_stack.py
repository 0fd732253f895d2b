"""SCAFFOLD (to be replaced): serving stack of one environment."""

from __future__ import annotations

import aws_cdk as cdk
from constructs import Construct

from stacks.config import EnvironmentConfig
from stacks.shared_resources import SharedResources


class ServingStack(cdk.Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: EnvironmentConfig, shared: SharedResources, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        self.shared = shared
