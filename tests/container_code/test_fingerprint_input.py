"""fingerprint_input.py against moto's S3: the objects it lists are the ones a processing input
on the same prefix downloads, its digest follows every object change and nothing else, and an
unusable prefix is a one-line failure."""

from __future__ import annotations

import json

import boto3
import pytest

import fingerprint_input
from local_pipeline import s3_io

BUCKET = "reviews-data"
PREFIX_URI = f"s3://{BUCKET}/reviews/raw/"


@pytest.fixture
def s3(moto_endpoint):
    client = boto3.client("s3", endpoint_url=moto_endpoint)
    client.create_bucket(Bucket=BUCKET)
    for key, body in {
        "reviews/raw/2026-10/reviews.csv": b"review_id,star_rating,review_body\nr1,5,great\n",
        "reviews/raw/2026-11/reviews.CSV.GZ": b"\x1f\x8b compressed",
        "reviews/raw/2026-11/": b"",  # a console-made folder marker
        "reviews/raw-old/reviews.csv": b"not under the prefix",
        "reviews/prepared/x.jsonl": b"{}",
    }.items():
        client.put_object(Bucket=BUCKET, Key=key, Body=body)
    return client


def run(s3, tmp_path, uri=PREFIX_URI) -> tuple[int, dict | None]:
    code = fingerprint_input.main(["--input-s3-uri", uri, "--output-dir", str(tmp_path / "out"),
                                   "--exit-message-file", str(tmp_path / "message")], s3=s3)
    path = tmp_path / "out" / fingerprint_input.FINGERPRINT_FILE
    return code, json.loads(path.read_text()) if path.exists() else None


def test_lists_what_a_processing_input_on_the_prefix_downloads(s3, tmp_path):
    code, summary = run(s3, tmp_path)
    assert code == 0
    manifest = json.loads((tmp_path / "out" / fingerprint_input.MANIFEST_FILE).read_text())
    listed = [item["key"] for item in manifest["objects"]]
    assert listed == s3_io.list_keys(s3, PREFIX_URI) == ["reviews/raw/2026-10/reviews.csv", "reviews/raw/2026-11/reviews.CSV.GZ"]
    assert summary["object_count"] == 2
    assert summary["total_bytes"] == sum(item["size"] for item in manifest["objects"]) == 45 + 13
    assert summary["snapshot_time"] == max(item["last_modified"] for item in manifest["objects"])
    assert summary["snapshot_time"].endswith("Z") and len(summary["snapshot_time"]) == len("2026-11-01T00:00:00Z")
    assert {k: manifest[k] for k in summary} == summary


def test_the_digest_changes_with_the_objects_and_only_with_them(s3, tmp_path):
    digest = lambda: fingerprint_input.fingerprint(fingerprint_input.list_input_objects(s3, PREFIX_URI), PREFIX_URI)["digest"]
    first = digest()
    assert digest() == first  # listed again, nothing changed
    s3.put_object(Bucket=BUCKET, Key="reviews/raw-old/more.csv", Body=b"outside the prefix")
    assert digest() == first
    # One star rating edited: same key, same size, new content.
    s3.put_object(Bucket=BUCKET, Key="reviews/raw/2026-10/reviews.csv", Body=b"review_id,star_rating,review_body\nr1,4,great\n")
    rewritten = digest()
    assert rewritten != first
    s3.put_object(Bucket=BUCKET, Key="reviews/raw/2026-12/reviews.csv", Body=b"review_id,star_rating,review_body\n")
    added = digest()
    assert added not in (first, rewritten)
    s3.delete_object(Bucket=BUCKET, Key="reviews/raw/2026-12/reviews.csv")
    assert digest() == rewritten


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        (f"s3://{BUCKET}/reviews/none/", f"fingerprint_input: no objects under s3://{BUCKET}/reviews/none/: upload the reviews there"),
        ("s3://no-such-bucket/reviews/", "fingerprint_input: cannot list s3://no-such-bucket/reviews/: An error occurred (NoSuchBucket)"),
        ("reviews/raw/", "fingerprint_input: not an S3 URI: 'reviews/raw/'"),
    ],
)
def test_a_prefix_that_cannot_be_fingerprinted_fails_with_one_line(s3, tmp_path, uri, reason):
    code, summary = run(s3, tmp_path, uri)
    assert code == 2 and summary is None
    message = (tmp_path / "message").read_text()
    assert message.startswith(reason) and message.count("\n") == 1
