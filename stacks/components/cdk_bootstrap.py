"""Names the CDK bootstrap gives its resources in this stack's account and region: one place,
so every construct that refers to a bootstrap resource follows the same qualifier."""

from __future__ import annotations

import aws_cdk as cdk


def bootstrap_qualifier(stack: cdk.Stack) -> str:
    """The stack synthesizer's qualifier, or the CDK default (`hnb659fds`)."""
    synthesizer = stack.synthesizer
    qualifier = synthesizer.bootstrap_qualifier if isinstance(synthesizer, cdk.DefaultStackSynthesizer) else None
    return qualifier or cdk.DefaultStackSynthesizer.DEFAULT_QUALIFIER


def bootstrap_name(stack: cdk.Stack, template: str) -> str:
    """A `DefaultStackSynthesizer.DEFAULT_*` name with this stack's qualifier, account and region."""
    return (
        template
        .replace("${Qualifier}", bootstrap_qualifier(stack))
        .replace("${AWS::AccountId}", stack.account)
        .replace("${AWS::Region}", stack.region)
    )


def bootstrap_version_parameter_name(stack: cdk.Stack) -> str:
    """The SSM parameter the template's `BootstrapVersion` parameter resolves (an SSM-typed
    parameter: CloudFormation reads it again on every stack update)."""
    return bootstrap_name(stack, cdk.DefaultStackSynthesizer.DEFAULT_BOOTSTRAP_STACK_VERSION_SSM_PARAMETER)
