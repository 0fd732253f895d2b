"""SageMaker ARNs of one stack's account and region, built without a round trip to node each."""

from __future__ import annotations

from typing import Callable


def sagemaker_arn_factory(partition: str, region: str, account: str) -> Callable[[str, str], str]:
    """`arn(resource, name)` as Stack.format_arn concatenates it (`arn:<partition>:sagemaker:
    <region>:<account>:<resource>/<name>`), from values the caller read once: each read of a
    stack's partition, region or account is a jsii round trip."""
    prefix = f"arn:{partition}:sagemaker:{region}:{account}"

    def sagemaker_arn(resource: str, name: str) -> str:
        return f"{prefix}:{resource}/{name}"

    return sagemaker_arn
