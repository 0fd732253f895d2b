#!/usr/bin/env python3
"""CDK entry point: one foundation, pipeline and serving stack per environment in cdk.json.

`cdk synth` builds every environment; `cdk synth -c env=dev` builds one.
"""

from __future__ import annotations

import aws_cdk as cdk

from stacks.app_builder import build_app

app = cdk.App()
build_app(app)
app.synth()
