"""Score a backlog of reviews with the environment's served model package: a SageMaker batch
transform job over an S3 prefix of JSON Lines files (one {"review_body": ...} per line), one
prediction with class probabilities per line out (`<file>.out`, inference.py's format).

    python -m tools.bulk_score --env staging --input s3://<DataBucketName>/backlog/ \\
        --output s3://<DataBucketName>/backlog-scored/ [--package-arn ARN] [--instance-count 2]

The package is the one the endpoint serves (the SSM parameter the approval deployer writes), or
--package-arn. The job runs on the environment's serving instance type (ml.m5.xlarge for a
serverless environment), its volume and output encrypted with --kms-key-id when given. Reviews
in CSV must be converted first: the served code reads JSON and JSON Lines only. Needs
credentials for the environment's account.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from dataclasses import dataclass

import boto3

from stacks.config import EnvironmentConfig, load_environment

JSON_LINES = "application/jsonlines"
DEFAULT_INSTANCE_TYPE = "ml.m5.xlarge"  # for environments whose endpoint is serverless
# Requests of up to this many MB, split at line boundaries: inference.py refuses more than
# 1 MB (REVIEW_CLASSIFIER_MAX_PAYLOAD_BYTES) and more than 256 reviews per request.
MAX_PAYLOAD_MB = 1
MAX_REVIEWS_PER_REQUEST = "256"
# What the approved-package parameter holds while nothing is approved (a test keeps it equal to
# stacks/components/approved_model_package_parameter.py's NO_APPROVED_PACKAGE).
NO_APPROVED_PACKAGE = "none"


@dataclass(frozen=True)
class BulkScoringRequest:
    model: dict  # CreateModel
    transform_job: dict  # CreateTransformJob


def job_name(config: EnvironmentConfig, package_arn: str, input_uri: str) -> str:
    """The same package and input give the same name: asking twice starts no second job."""
    digest = hashlib.sha256(f"{package_arn}\n{input_uri}".encode()).hexdigest()[:16]
    return f"{config.resource_prefix}-bulk-{digest}"[:63]


def bulk_scoring_request(config: EnvironmentConfig, *, package_arn: str, input_uri: str, output_uri: str,
                         execution_role_arn: str, instance_count: int = 1, kms_key_id: str | None = None) -> BulkScoringRequest:
    if not (input_uri.startswith("s3://") and output_uri.startswith("s3://")):
        raise ValueError("--input and --output must be s3:// URIs")
    if instance_count < 1:
        raise ValueError("--instance-count must be at least 1")
    name = job_name(config, package_arn, input_uri)
    model = {
        "ModelName": name,
        "PrimaryContainer": {"ModelPackageName": package_arn},
        "ExecutionRoleArn": execution_role_arn,
        "EnableNetworkIsolation": True,
    }
    output = {"S3OutputPath": output_uri, "Accept": JSON_LINES, "AssembleWith": "Line"}
    resources = {"InstanceType": config.serving.instance_type or DEFAULT_INSTANCE_TYPE, "InstanceCount": instance_count}
    if kms_key_id:
        output["KmsKeyId"] = kms_key_id
        resources["VolumeKmsKeyId"] = kms_key_id
    transform_job = {
        "TransformJobName": name,
        "ModelName": name,
        "BatchStrategy": "MultiRecord",
        "MaxPayloadInMB": MAX_PAYLOAD_MB,
        "Environment": {"REVIEW_CLASSIFIER_MAX_REVIEWS": MAX_REVIEWS_PER_REQUEST},
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": input_uri}},
            "ContentType": JSON_LINES,
            "SplitType": "Line",
            "CompressionType": "None",
        },
        "TransformOutput": output,
        "TransformResources": resources,
        "Tags": [{"Key": "model-package-arn", "Value": package_arn}],
    }
    return BulkScoringRequest(model=model, transform_job=transform_job)


def served_package_arn(ssm, config: EnvironmentConfig) -> str:
    value = ssm.get_parameter(Name=config.approved_model_package_parameter_name)["Parameter"]["Value"]
    if value == NO_APPROVED_PACKAGE:
        raise SystemExit(f"{config.name} serves no approved package yet: pass --package-arn")
    return value


def start(sagemaker, request: BulkScoringRequest) -> str:
    """Create the model and start the job; an existing job of the same name is left as it is."""
    try:
        return sagemaker.describe_transform_job(TransformJobName=request.transform_job["TransformJobName"])["TransformJobArn"]
    except sagemaker.exceptions.ClientError:
        pass
    sagemaker.create_model(**request.model)
    return sagemaker.create_transform_job(**request.transform_job)["TransformJobArn"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", required=True)
    parser.add_argument("--input", required=True, help="s3:// prefix of JSON Lines files")
    parser.add_argument("--output", required=True, help="s3:// prefix for the predictions")
    parser.add_argument("--role-arn", required=True, help="a SageMaker execution role that may read the input and the model")
    parser.add_argument("--package-arn", help="default: the package the endpoint serves")
    parser.add_argument("--instance-count", type=int, default=1)
    parser.add_argument("--kms-key-id")
    args = parser.parse_args(argv)
    config = load_environment(args.env)
    session = boto3.Session(region_name=config.region)
    package = args.package_arn or served_package_arn(session.client("ssm"), config)
    request = bulk_scoring_request(config, package_arn=package, input_uri=args.input, output_uri=args.output,
                                   execution_role_arn=args.role_arn, instance_count=args.instance_count,
                                   kms_key_id=args.kms_key_id)
    arn = start(session.client("sagemaker"), request)
    print(f"{arn}\n  aws sagemaker describe-transform-job --transform-job-name {request.transform_job['TransformJobName']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
