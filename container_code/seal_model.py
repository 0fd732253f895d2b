"""SageMaker processing step: seals the trained model artifact. It copies model.tar.gz to a
content-addressed key (`<prefix>/sha256/<digest>/model.tar.gz`) that may be created once and
never overwritten (the bucket policy requires If-None-Match there, and the pipeline role may
delete nothing there), and writes seal.json: where the sealed copy is, its digest, and which
versions of the model package group already hold it, so that a re-run of the same artifact
registers no duplicate. Evaluation, registration and serving all read the sealed copy."""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
from pathlib import Path
from typing import Sequence

import model_io

REPORT_FILE = "seal.json"
# One PutObject carries at most 5 GiB; a larger artifact would need a multipart upload.
MAX_SINGLE_PUT_BYTES = 5 * 1024**3
_CHUNK_BYTES = 8 * 1024 * 1024
# S3's answers to If-None-Match: the key exists (412), or another conditional write to it is
# in flight (409).
_KEY_EXISTS = ("PreconditionFailed", "ConditionalRequestConflict")


class SealError(Exception):
    """The artifact cannot be sealed (too large, or its key holds other bytes)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--model-archive", default="/opt/ml/processing/input/model",
                        help="model.tar.gz, or the directory holding it")
    parser.add_argument("--bucket", required=True, help="bucket of the sealed copy")
    parser.add_argument("--prefix", required=True, help="key prefix of the sealed copies")
    parser.add_argument("--model-package-group", required=True, help="the group a re-run must not register twice in")
    parser.add_argument("--output-dir", default="/opt/ml/processing/seal")
    return parser


def archive_path(model_archive: Path) -> Path:
    path = model_archive / model_io.MODEL_ARCHIVE_NAME if model_archive.is_dir() else model_archive
    if not path.is_file():
        raise SealError(f"model archive {path} does not exist")
    return path


def sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sealed_key(prefix: str, sha256: str) -> str:
    return f"{prefix.strip('/')}/sha256/{sha256}/{model_io.MODEL_ARCHIVE_NAME}"


def _sha256_of_object(s3, bucket: str, key: str) -> str:
    digest = hashlib.sha256()
    for chunk in s3.get_object(Bucket=bucket, Key=key)["Body"].iter_chunks(_CHUNK_BYTES):
        digest.update(chunk)
    return digest.hexdigest()


def store_once(s3, archive: Path, bucket: str, key: str, sha256: str) -> bool:
    """Create the object from `archive` if the key is free: True. If it is taken, check that it
    holds the same bytes and answer False; other bytes under a digest's key are an error."""
    size = archive.stat().st_size
    if size > MAX_SINGLE_PUT_BYTES:
        raise SealError(f"{archive} is {size} bytes; one PutObject carries at most {MAX_SINGLE_PUT_BYTES}")
    from botocore.exceptions import ClientError

    try:
        with archive.open("rb") as body:
            # If-None-Match: S3 refuses to replace an existing object (412). The checksum makes
            # S3 verify the bytes it stores against the digest in the key.
            s3.put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*",
                          ChecksumSHA256=base64.b64encode(bytes.fromhex(sha256)).decode())
        return True
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in _KEY_EXISTS:
            raise
    stored = _sha256_of_object(s3, bucket, key)
    if stored != sha256:
        raise SealError(f"s3://{bucket}/{key} already exists and holds other bytes (sha256 {stored}); "
                        "an object under a digest's key must hold exactly those bytes")
    return False


def versions_holding(sagemaker, group: str, model_data_url: str) -> list[str]:
    """ARNs of the group's versions (any approval status) whose container serves `model_data_url`."""
    found = []
    for page in sagemaker.get_paginator("list_model_packages").paginate(ModelPackageGroupName=group):
        for summary in page["ModelPackageSummaryList"]:
            package = sagemaker.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
            containers = package.get("InferenceSpecification", {}).get("Containers", [])
            if any(container.get("ModelDataUrl") == model_data_url for container in containers):
                found.append(summary["ModelPackageArn"])
    return sorted(found)


def seal(model_archive: Path, bucket: str, prefix: str, group: str, *, s3, sagemaker) -> dict:
    archive = archive_path(model_archive)
    sha256 = sha256_of_file(archive)
    key = sealed_key(prefix, sha256)
    created = store_once(s3, archive, bucket, key, sha256)
    model_data_url = f"s3://{bucket}/{key}"
    registered = versions_holding(sagemaker, group, model_data_url)
    return {
        "model_data_url": model_data_url,
        "sha256": sha256,
        "size_bytes": archive.stat().st_size,
        "created": created,
        # The registration condition compares this count with 0.
        "registered_versions": len(registered),
        "registered_model_package_arns": registered,
    }


def main(argv: Sequence[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    import boto3

    report = seal(Path(args.model_archive), args.bucket, args.prefix, args.model_package_group,
                  s3=boto3.client("s3"), sagemaker=boto3.client("sagemaker"))
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / REPORT_FILE).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    state = "stored" if report["created"] else "already stored"
    print(f"{state}: {report['model_data_url']} ({report['size_bytes']} bytes)", flush=True)
    if report["registered_versions"]:
        print(f"already registered as {', '.join(report['registered_model_package_arns'])}: "
              "this run registers no new version", flush=True)
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
