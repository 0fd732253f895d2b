#!/usr/bin/env python3
"""CDK entry point: one foundation, pipeline and serving stack per environment in cdk.json.

`cdk synth` builds every environment; `cdk synth -c env=dev` builds one.
"""

from __future__ import annotations

import sys

import aws_cdk as cdk

from stacks.app_builder import build_app
from stacks.config import ConfigError

app = cdk.App()
try:
    build_app(app)
except ConfigError as error:
    # The message names the environment and the key; a traceback would only bury it.
    sys.exit(f"cdk.json: {error}")
app.synth()
