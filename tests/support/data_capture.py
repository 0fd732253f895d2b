"""Data-capture lines as SageMaker writes them for a real-time endpoint, from requests sent to a
served model and the responses it gave, and texts from other domains to send.

The line layout is AWS's ("Capture data from real-time endpoint" and the record structure in
Model Monitor's "Preprocessing and Postprocessing"): captureData.endpointInput /
endpointOutput with observedContentType, mode, data and encoding; eventMetadata with eventId
and inferenceTime; eventVersion "0". A content type the endpoint config lists under
CaptureContentTypeHeader.JsonContentTypes is captured as text with encoding JSON, any other
as BASE64.
"""

from __future__ import annotations

import base64
import io
import json
import tarfile
from pathlib import Path
from types import SimpleNamespace

from local_pipeline import sample_data

# What stacks/components/approved_model_endpoint.py lists as JSON content types.
CAPTURED_AS_JSON = ("application/json", "application/jsonlines")
TWEETS_MEMBER = "hutto_ICWSM_2014/tweets_GroundTruth.txt"


def _captured(mode: str, body: str, content_type: str | None) -> dict:
    base_type = (content_type or "").split(";")[0].strip().lower()
    if base_type in CAPTURED_AS_JSON:
        data, encoding = body, "JSON"
    else:
        data, encoding = base64.b64encode(body.encode("utf-8")).decode("ascii"), "BASE64"
    return {"observedContentType": content_type, "mode": mode, "data": data, "encoding": encoding}


def capture_line(request_body: str, request_content_type: str, response_body: str,
                 response_content_type: str | None, *, event_number: int) -> str:
    """One capture line; the event id and time are fixed by `event_number` (no clock)."""
    event = {
        "captureData": {
            "endpointInput": _captured("INPUT", request_body, request_content_type),
            "endpointOutput": _captured("OUTPUT", response_body, response_content_type),
        },
        "eventMetadata": {
            "eventId": f"00000000-0000-0000-0000-{event_number:012d}",
            "inferenceTime": f"2026-01-01T00:{event_number // 60 % 60:02d}:{event_number % 60:02d}Z",
        },
        "eventVersion": "0",
    }
    return json.dumps(event)


def capture_requests(endpoint, requests: list[tuple[str, str]], path: Path, accept: str | None = None) -> Path:
    """Send each (body, content type) to `endpoint` and write the capture file of what it answered."""
    lines = []
    for number, (body, content_type) in enumerate(requests):
        response = endpoint.invoke(body, content_type, accept)
        lines.append(capture_line(body, content_type, response.body, response.content_type, event_number=number))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def inference_record(line: str) -> SimpleNamespace:
    """A line as the record preprocessor receives it: the attributes of the CapturedData /
    EventData classes in AWS's documentation of the preprocessing contract."""
    event = json.loads(line)

    def event_data(data: dict | None):
        if data is None:
            return None
        return SimpleNamespace(encoding=data.get("encoding"), data=data.get("data"),
                               observedContentType=data.get("observedContentType"), mode=data.get("mode"))

    capture = event.get("captureData", {})
    metadata = event.get("eventMetadata", {})
    return SimpleNamespace(
        event_metadata=SimpleNamespace(event_id=metadata.get("eventId"), event_time=metadata.get("inferenceTime")),
        endpoint_input=event_data(capture.get("endpointInput")),
        endpoint_output=event_data(capture.get("endpointOutput")),
        event_version=event.get("eventVersion"),
    )


def sample_tweets(cache_dir: Path = sample_data.DEFAULT_CACHE_DIR) -> list[str]:
    """The 4,200 rated tweets of the same source archive as the sample reviews: another domain."""
    sdist = Path(cache_dir) / sample_data.VADER_SDIST_NAME
    with tarfile.open(sdist, "r:gz") as outer:
        nested = outer.extractfile(sample_data.SNIPPETS_ARCHIVE_MEMBER)
        with tarfile.open(fileobj=io.BytesIO(nested.read()), mode="r:gz") as inner:
            text = inner.extractfile(TWEETS_MEMBER).read().decode("utf-8-sig")
    return [snippet.text for snippet in sample_data.parse_snippets(text.splitlines(), source=TWEETS_MEMBER)]


def sample_reviews(path: Path = sample_data.DEFAULT_DEST / sample_data.OUTPUT_FILE_NAME) -> list[str]:
    import csv

    with Path(path).open(encoding="utf-8", newline="") as handle:
        return [row["review_body"] for row in csv.DictReader(handle)]
