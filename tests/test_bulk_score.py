"""tools/bulk_score.py: the batch transform request for the served package is valid for botocore's
CreateModel / CreateTransformJob shapes, sized by the environment, and started on moto's server;
asking twice for the same package and input starts one job."""

from __future__ import annotations

import boto3
import pytest
from botocore.validate import ParamValidator

from stacks.config import load_environment
from tools import bulk_score

PACKAGE = "arn:aws:sagemaker:us-east-1:222222222222:model-package/review-classifier-staging/3"
ROLE = "arn:aws:iam::222222222222:role/batch-scoring"


@pytest.mark.parametrize("environment", ["dev", "staging", "prod"])
def test_the_request_has_the_services_shapes_and_the_environments_size(environment):
    config = load_environment(environment)
    request = bulk_score.bulk_scoring_request(config, package_arn=PACKAGE, input_uri="s3://data/backlog/",
                                              output_uri="s3://data/scored/", execution_role_arn=ROLE,
                                              instance_count=2, kms_key_id="arn:aws:kms:us-east-1:222222222222:key/k")
    model = boto3.client("sagemaker", region_name="us-east-1").meta.service_model
    for operation, params in (("CreateModel", request.model), ("CreateTransformJob", request.transform_job)):
        report = ParamValidator().validate(params, model.operation_model(operation).input_shape)
        assert not report.has_errors(), report.generate_report()
    job = request.transform_job
    assert job["TransformResources"]["InstanceType"] == (config.serving.instance_type or bulk_score.DEFAULT_INSTANCE_TYPE)
    assert (job["TransformInput"]["ContentType"], job["TransformInput"]["SplitType"]) == ("application/jsonlines", "Line")
    assert job["TransformOutput"]["AssembleWith"] == "Line"
    assert request.model["PrimaryContainer"] == {"ModelPackageName": PACKAGE}


def test_bad_locations_are_refused():
    with pytest.raises(ValueError, match="s3:// URIs"):
        bulk_score.bulk_scoring_request(load_environment("dev"), package_arn=PACKAGE, input_uri="backlog/",
                                        output_uri="s3://x/", execution_role_arn=ROLE)


def test_the_job_starts_on_moto_once(moto_endpoint):
    sagemaker = boto3.client("sagemaker", region_name="us-east-1", endpoint_url=moto_endpoint)
    config = load_environment("staging")
    request = bulk_score.bulk_scoring_request(config, package_arn=PACKAGE, input_uri="s3://data/backlog/",
                                              output_uri="s3://data/scored/", execution_role_arn=ROLE)
    arn = bulk_score.start(sagemaker, request)
    assert bulk_score.start(sagemaker, request) == arn
    described = sagemaker.describe_transform_job(TransformJobName=request.transform_job["TransformJobName"])
    assert described["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] == "s3://data/backlog/"
    assert described["TransformResources"]["InstanceType"] == "ml.m5.xlarge"
    assert len(sagemaker.list_transform_jobs()["TransformJobSummaries"]) == 1


def test_the_default_package_is_the_served_one(moto_endpoint):
    from stacks.components.approved_model_package_parameter import NO_APPROVED_PACKAGE

    assert bulk_score.NO_APPROVED_PACKAGE == NO_APPROVED_PACKAGE
    ssm = boto3.client("ssm", region_name="us-east-1", endpoint_url=moto_endpoint)
    config = load_environment("staging")
    ssm.put_parameter(Name=config.approved_model_package_parameter_name, Value=NO_APPROVED_PACKAGE, Type="String")
    with pytest.raises(SystemExit, match="serves no approved package yet"):
        bulk_score.served_package_arn(ssm, config)
    ssm.put_parameter(Name=config.approved_model_package_parameter_name, Value=PACKAGE, Type="String", Overwrite=True)
    assert bulk_score.served_package_arn(ssm, config) == PACKAGE
