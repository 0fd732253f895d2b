"""seal_model.py against moto's server: the artifact lands once under its digest's key, a second
seal of the same bytes stores nothing and finds the registered version, other bytes under a
digest's key are refused, and seal.json carries what the pipeline's conditions read."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import boto3
import pytest

import seal_model

BUCKET = "review-classifier-test-artifacts"
GROUP = "review-classifier-test"
PREFIX = "immutable-models"


@pytest.fixture
def aws(moto_endpoint):
    s3 = boto3.client("s3", endpoint_url=moto_endpoint)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    sagemaker = boto3.client("sagemaker", endpoint_url=moto_endpoint)
    sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
    return s3, sagemaker


@pytest.fixture
def model_dir(tmp_path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.tar.gz").write_bytes(b"model weights and code/inference.py" * 1000)
    return folder


def _seal(model_dir: Path, aws) -> dict:
    s3, sagemaker = aws
    return seal_model.seal(model_dir, BUCKET, PREFIX, GROUP, s3=s3, sagemaker=sagemaker)


def _register(sagemaker, model_data_url: str) -> str:
    return sagemaker.create_model_package(
        ModelPackageGroupName=GROUP,
        ModelApprovalStatus="PendingManualApproval",
        InferenceSpecification={
            "Containers": [{"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/inference:1", "ModelDataUrl": model_data_url}],
            "SupportedContentTypes": ["application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
    )["ModelPackageArn"]


def test_the_artifact_is_stored_once_under_its_digest(model_dir, aws):
    s3, _ = aws
    digest = hashlib.sha256((model_dir / "model.tar.gz").read_bytes()).hexdigest()
    report = _seal(model_dir, aws)
    key = f"{PREFIX}/sha256/{digest}/model.tar.gz"
    assert report == {
        "model_data_url": f"s3://{BUCKET}/{key}",
        "sha256": digest,
        "size_bytes": (model_dir / "model.tar.gz").stat().st_size,
        "created": True,
        "registered_versions": 0,
        "registered_model_package_arns": [],
    }
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == (model_dir / "model.tar.gz").read_bytes()


def test_sealing_the_same_bytes_again_stores_nothing_and_finds_the_registered_version(model_dir, aws):
    s3, sagemaker = aws
    first = _seal(model_dir, aws)
    package_arn = _register(sagemaker, first["model_data_url"])
    _register(sagemaker, f"s3://{BUCKET}/{PREFIX}/sha256/{'0' * 64}/model.tar.gz")  # another artifact
    again = _seal(model_dir, aws)
    assert again["model_data_url"] == first["model_data_url"]
    assert again["created"] is False
    assert (again["registered_versions"], again["registered_model_package_arns"]) == (1, [package_arn])
    key = first["model_data_url"].split("/", 3)[3]
    assert len(s3.list_object_versions(Bucket=BUCKET, Prefix=key)["Versions"]) == 1


def test_other_bytes_under_a_digests_key_are_refused(model_dir, aws):
    s3, _ = aws
    digest = hashlib.sha256((model_dir / "model.tar.gz").read_bytes()).hexdigest()
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/sha256/{digest}/model.tar.gz", Body=b"something else")
    with pytest.raises(seal_model.SealError, match="already exists and holds other bytes"):
        _seal(model_dir, aws)


def test_a_missing_archive_is_named(tmp_path, aws):
    with pytest.raises(seal_model.SealError, match="model.tar.gz does not exist"):
        _seal(tmp_path, aws)


def test_main_writes_the_report_the_pipeline_reads(model_dir, aws, tmp_path, monkeypatch, moto_endpoint):
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    output_dir = tmp_path / "seal"
    report = seal_model.main(["--model-archive", str(model_dir), "--bucket", BUCKET, "--prefix", PREFIX,
                              "--model-package-group", GROUP, "--output-dir", str(output_dir)])
    assert json.loads((output_dir / seal_model.REPORT_FILE).read_text()) == report
