"""S3 locations of the pipeline's outputs: explicit (so the SDK never looks up a default
bucket) and, where a run writes data, keyed by the execution id rather than a timestamp."""

from __future__ import annotations

from sagemaker.workflow.execution_variables import ExecutionVariables
from sagemaker.workflow.functions import Join

# Model artifacts as registered and served, under content-addressed keys
# (`<prefix>/sha256/<hex digest>/model.tar.gz`). The artifacts bucket's policy lets anyone
# create an object here only with If-None-Match (never overwrite one) and the pipeline role
# delete nothing (stacks/components/pipeline_execution_role.py).
IMMUTABLE_MODELS_PREFIX = "immutable-models"
# Model Monitor baselines the pipeline calculates (`<prefix>/<execution id>/<kind>/...`) and
# registers as a version's DriftCheckBaselines; a promoting environment's deployer reads them here.
BASELINES_PREFIX = "monitoring-baselines"


def s3_uri(bucket: str, *keys: str) -> str:
    """A fixed location (the same for every execution)."""
    return "/".join(["s3:/", bucket, *keys])


def execution_s3_uri(bucket: str, prefix: str, *suffix: str) -> Join:
    """`s3://<bucket>/<prefix>/<execution id>/<suffix...>`, resolved when a run starts."""
    return Join(on="/", values=["s3:/", bucket, prefix, ExecutionVariables.PIPELINE_EXECUTION_ID, *suffix])
