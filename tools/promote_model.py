"""Promotes one Approved version of a source environment's model package group into a target
environment's group, as a new version PendingManualApproval (docs/serving.md#promotion-across-accounts).

    python -m tools.promote_model --from staging --to prod --version 7

Run it with the target account's promotion role (stack output `ModelPromotionRoleArn` of the
target's serving stack). It reads the source version (cross-account, by its ARN), checks that it is
Approved there and that its sealed artifact's bytes have the SHA-256 its key names, then registers
the same inference specification in the target's group with the digest and the source ARN in the
version's metadata, and the source's ModelMetrics and DriftCheckBaselines as they are (S3 URIs in
the source's bucket): the target's registry shows what the source's gate measured, and the
target's deployer publishes those baselines to its monitoring schedules. Nothing serves until a
person of the target account approves that version; the target's approval deployer then checks
the digest again before the endpoint moves.
Promoting the same source version twice returns the version the first promotion created.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Any, Sequence

from stacks.config import EnvironmentConfig, load_all_environments
from stacks.lambdas.approval_deployer.handler import (
    ARTIFACT_SHA256_KEY,
    PROMOTED_FROM_KEY,
    model_data_urls,
    sealed_artifact,
    sha256_of_object,
)

APPROVED = "Approved"
PENDING_MANUAL_APPROVAL = "PendingManualApproval"
# What a new version may carry over from the source's InferenceSpecification (the rest is read-only).
_CONTAINER_FIELDS = ("Image", "ImageDigest", "ModelDataUrl", "Environment", "Framework", "FrameworkVersion",
                     "NearestModelName", "ModelInput")
_SPECIFICATION_FIELDS = ("SupportedContentTypes", "SupportedResponseMIMETypes",
                         "SupportedRealtimeInferenceInstanceTypes", "SupportedTransformInstanceTypes")
# What the source's pipeline measured and what monitoring compares with: DescribeModelPackage
# answers them in the very shapes CreateModelPackage takes (ModelMetrics, DriftCheckBaselines).
_QUALITY_FIELDS = ("ModelMetrics", "DriftCheckBaselines")


class PromotionError(Exception):
    """The version cannot be promoted; the message says why."""


@dataclass(frozen=True)
class PromotionClients:
    """In AWS one SageMaker and one S3 client of the promotion role serve both sides (requests name
    the source's resources by ARN and bucket); tests give each account its own."""

    source_sagemaker: Any
    source_s3: Any
    target_sagemaker: Any


@dataclass(frozen=True)
class Promotion:
    source_arn: str
    target_arn: str
    sha256: str
    created: bool


def package_arn(config: EnvironmentConfig, version: int) -> str:
    return (f"arn:aws:sagemaker:{config.region}:{config.account}:model-package/"
            f"{config.model_package_group_name}/{version}")


def check_promotable(source: EnvironmentConfig, target: EnvironmentConfig) -> None:
    if target.model_source.promote_from != source.name:
        raise PromotionError(f"{target.name} does not promote from {source.name} "
                             f"(environments.{target.name}.model_source.promote_from in cdk.json)")


def existing_promotion(sagemaker: Any, group: str, source_arn: str) -> str | None:
    for page in sagemaker.get_paginator("list_model_packages").paginate(ModelPackageGroupName=group):
        for summary in page["ModelPackageSummaryList"]:
            package = sagemaker.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
            if (package.get("CustomerMetadataProperties") or {}).get(PROMOTED_FROM_KEY) == source_arn:
                return summary["ModelPackageArn"]
    return None


def inference_specification(package: dict) -> dict:
    specification = package["InferenceSpecification"]
    return {
        "Containers": [{name: c[name] for name in _CONTAINER_FIELDS if name in c} for c in specification["Containers"]],
        **{name: specification[name] for name in _SPECIFICATION_FIELDS if name in specification},
    }


def quality_records(package: dict) -> dict:
    """The source's metrics and baselines, as registered (S3 URIs and content types), if any."""
    return {name: package[name] for name in _QUALITY_FIELDS if package.get(name)}


def promote(clients: PromotionClients, source: EnvironmentConfig, target: EnvironmentConfig, version: int) -> Promotion:
    check_promotable(source, target)
    source_arn = package_arn(source, version)
    package = clients.source_sagemaker.describe_model_package(ModelPackageName=source_arn)
    if package.get("ModelApprovalStatus") != APPROVED:
        raise PromotionError(f"{source_arn} is {package.get('ModelApprovalStatus')}: only a version Approved "
                             f"in {source.name} is promoted")
    urls = model_data_urls(package)
    sealed = sealed_artifact(urls[0]) if len(urls) == 1 else None
    if sealed is None:
        raise PromotionError(f"{source_arn} serves {urls}, not one sealed artifact (…/sha256/<digest>/model.tar.gz)")
    actual = sha256_of_object(clients.source_s3, sealed["bucket"], sealed["key"])
    if actual != sealed["digest"]:
        raise PromotionError(f"{urls[0]} holds bytes with SHA-256 {actual}, not the {sealed['digest']} its key names")

    group = target.model_package_group_name
    found = existing_promotion(clients.target_sagemaker, group, source_arn)
    if found is not None:
        return Promotion(source_arn, found, actual, created=False)
    created = clients.target_sagemaker.create_model_package(
        ModelPackageGroupName=group,
        ModelPackageDescription=f"Promoted from {source.name}: {source_arn} (sha256 {actual})"[:1024],
        ModelApprovalStatus=PENDING_MANUAL_APPROVAL,
        InferenceSpecification=inference_specification(package),
        **quality_records(package),
        CustomerMetadataProperties={PROMOTED_FROM_KEY: source_arn, ARTIFACT_SHA256_KEY: actual},
    )
    return Promotion(source_arn, created["ModelPackageArn"], actual, created=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--from", dest="source", required=True, help="the environment that trained it (cdk.json)")
    parser.add_argument("--to", dest="target", required=True, help="the environment it is promoted to")
    parser.add_argument("--version", type=int, required=True, help="the version in the source's group")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import boto3

    configs = load_all_environments()
    for name in (args.source, args.target):
        if name not in configs:
            raise SystemExit(f"unknown environment '{name}'; known: {', '.join(sorted(configs))}")
    source, target = configs[args.source], configs[args.target]
    sagemaker = boto3.client("sagemaker", region_name=target.region)
    s3 = boto3.client("s3", region_name=source.region)
    try:
        promotion = promote(PromotionClients(sagemaker, s3, sagemaker), source, target, args.version)
    except PromotionError as error:
        print(f"not promoted: {error}", file=sys.stderr)
        return 1
    state = "promoted as" if promotion.created else "already promoted as"
    print(f"{promotion.source_arn} (sha256 {promotion.sha256}) {state} {promotion.target_arn}, "
          f"PendingManualApproval: approve it in {target.name} to serve it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
