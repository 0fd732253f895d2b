"""Moves a job's data between S3 and its local /opt/ml folder as SageMaker does in File
mode: every object under an S3 prefix in, every file under a local path out."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from botocore.exceptions import ClientError


class NoS3ObjectsError(Exception):
    """An input prefix that matches nothing: SageMaker fails the job before it starts."""


class S3TransferError(Exception):
    """The job's role could not read an input or write an output: the job fails."""


def _transfer_error(what: str, uri: str, error: ClientError) -> S3TransferError:
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    code = "AccessDenied" if status == 403 else error.response.get("Error", {}).get("Code", "Unknown")
    return S3TransferError(f"ClientError: {code} when the job's role tried to {what} {uri}")


def split_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ValueError(f"not an S3 URI: {uri!r}")
    bucket, _, key = uri[len("s3://"):].partition("/")
    if not bucket:
        raise ValueError(f"S3 URI without a bucket: {uri!r}")
    return bucket, key


def list_keys(s3: Any, uri: str) -> list[str]:
    bucket, prefix = split_s3_uri(uri)
    keys: list[str] = []
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys.extend(item["Key"] for item in page.get("Contents", []) if not item["Key"].endswith("/"))
    except ClientError as error:
        raise _transfer_error("list", uri, error) from None
    return sorted(keys)


def relative_name(key: str, prefix: str) -> str:
    """The object's path below the prefix; an exact-key prefix keeps the object's file name."""
    if key == prefix:
        return key.rsplit("/", 1)[-1]
    return key[len(prefix):].lstrip("/")


def download_prefix(s3: Any, uri: str, destination: Path, keys: list[str] | None = None) -> int:
    """Every object under `uri` (or the given subset of its keys) into `destination`."""
    bucket, prefix = split_s3_uri(uri)
    keys = list_keys(s3, uri) if keys is None else keys
    if not keys:
        # The service's own wording for an empty training channel or processing input.
        raise NoS3ObjectsError(f"ClientError: No S3 objects found under S3 URL \"{uri}\" given in input data source")
    destination.mkdir(parents=True, exist_ok=True)
    for key in keys:
        target = destination / relative_name(key, prefix)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            s3.download_file(bucket, key, str(target))
        except ClientError as error:
            raise _transfer_error("read", f"s3://{bucket}/{key}", error) from None
    return len(keys)


def local_files(source: Path) -> Iterator[Path]:
    if source.is_file():
        yield source
    elif source.is_dir():
        yield from sorted(path for path in source.rglob("*") if path.is_file())


def upload_tree(s3: Any, source: Path, uri: str, *, kms_key_id: str | None = None) -> list[str]:
    """Every file under `source` to `uri/<relative path>`; the URIs written."""
    bucket, prefix = split_s3_uri(uri.rstrip("/"))
    extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_id} if kms_key_id else None
    written = []
    for path in local_files(source):
        relative = path.name if source.is_file() else path.relative_to(source).as_posix()
        key = f"{prefix}/{relative}" if prefix else relative
        try:
            s3.upload_file(str(path), bucket, key, ExtraArgs=extra)
        except ClientError as error:
            raise _transfer_error("write", f"s3://{bucket}/{key}", error) from None
        written.append(f"s3://{bucket}/{key}")
    return written


def read_json_object(s3: Any, uri: str) -> Any:
    import json

    bucket, key = split_s3_uri(uri)
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
