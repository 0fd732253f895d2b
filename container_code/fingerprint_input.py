"""Fingerprint step (a SageMaker processing job): lists the objects under the pipeline's input
S3 prefix and writes a digest of their keys, ETags, sizes and modification times, plus the
snapshot's time, for the prepare step to take as arguments.

SageMaker's step cache compares a step's arguments, never the content of the S3 objects they
name (docs/pipeline.md): with the digest among prepare's arguments, prepare (and so everything
after it) reruns exactly when an input object was added, removed or rewritten, and hits the
cache when none was. The step itself is never cached.

Runs as `python fingerprint_input.py --input-s3-uri s3://bucket/prefix/`; needs s3:ListBucket.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import reviews

LOG = logging.getLogger("fingerprint_input")

DEFAULT_OUTPUT_DIR = "/opt/ml/processing/fingerprint"
# The property file the pipeline reads (JsonGet) and the full object list beside it.
FINGERPRINT_FILE = "fingerprint.json"
MANIFEST_FILE = "manifest.json"


class FingerprintError(Exception):
    """An input prefix that cannot be fingerprinted; the message says why."""


@dataclass(frozen=True)
class InputObject:
    key: str
    etag: str
    size: int
    last_modified: str  # the Feature Store event time format, to the second


def split_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or not uri[len("s3://"):].partition("/")[0]:
        raise FingerprintError(f"not an S3 URI: {uri!r} (expected s3://bucket/prefix)")
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    return bucket, prefix


def list_input_objects(s3, uri: str) -> list[InputObject]:
    """Every object a processing input with this S3Prefix URI downloads: keys that start with
    the prefix, folder markers (keys ending in "/") left out, sorted by key."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, prefix = split_s3_uri(uri)
    objects = []
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                if item["Key"].endswith("/"):
                    continue
                objects.append(InputObject(
                    key=item["Key"],
                    etag=item["ETag"].strip('"'),
                    size=int(item["Size"]),
                    last_modified=reviews.format_event_time(item["LastModified"]),
                ))
    except (ClientError, BotoCoreError) as error:
        raise FingerprintError(f"cannot list {uri}: {error}") from None
    if not objects:
        raise FingerprintError(f"no objects under {uri}: upload the reviews there or start the pipeline with another InputDataS3Uri")
    return sorted(objects, key=lambda item: item.key)


def fingerprint(objects: Sequence[InputObject], uri: str) -> dict:
    """What prepare receives: the digest (its cache key), the file count and bytes it checks
    its download against, and the snapshot's time (the newest object's), the event time of
    rows that carry no date of their own. Every value is a function of the object list."""
    lines = "".join(f"{o.key}\t{o.etag}\t{o.size}\t{o.last_modified}\n" for o in sorted(objects, key=lambda o: o.key))
    return {
        "input_s3_uri": uri,
        "digest": hashlib.sha256(lines.encode("utf-8")).hexdigest(),
        "object_count": len(objects),
        "total_bytes": sum(o.size for o in objects),
        "snapshot_time": max(o.last_modified for o in objects),
    }


def write_outputs(output_dir: Path, summary: dict, objects: Sequence[InputObject]) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / FINGERPRINT_FILE).write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    manifest = {**summary, "objects": [asdict(o) for o in objects]}
    (output_dir / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def build_argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--input-s3-uri", required=True, help="the S3 prefix prepare reads (its processing input)")
    parser.add_argument("--output-dir", default=DEFAULT_OUTPUT_DIR, help=f"gets {FINGERPRINT_FILE} and {MANIFEST_FILE}")
    parser.add_argument("--exit-message-file", default=reviews.EXIT_MESSAGE_FILE, help="where a failure's one-line reason goes")
    return parser


def main(argv: Sequence[str] | None = None, s3=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stdout)
    args = build_argument_parser().parse_args(argv)
    try:
        if s3 is None:
            import boto3  # honours AWS_ENDPOINT_URL and the job role's credentials

            s3 = boto3.client("s3")
        objects = list_input_objects(s3, args.input_s3_uri)
    except FingerprintError as error:
        LOG.error("%s", error)
        reviews.write_exit_message(args.exit_message_file, f"fingerprint_input: {error}")
        return 2
    summary = fingerprint(objects, args.input_s3_uri)
    write_outputs(Path(args.output_dir), summary, objects)
    LOG.info("%s: %d objects, %d bytes, newest %s, digest %s", args.input_s3_uri, summary["object_count"],
             summary["total_bytes"], summary["snapshot_time"], summary["digest"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
