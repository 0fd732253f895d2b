"""record_features.py: a review text, or a data-capture line written from requests really served
by the HuggingFace toolkit's model server, becomes the monitored features; the features of
tweets (another domain of the same source archive) differ from those of product reviews, and
two samples of product reviews do not differ."""

from __future__ import annotations

import base64
import json
import random
import statistics

import pytest

import record_features
from record_features import FEATURE_NAMES, capture_file_features, capture_line_features, text_features
from support.data_capture import capture_line, capture_requests, inference_record, sample_reviews, sample_tweets
from support.local_endpoint import build_tiny_artifact, serve

JSON, JSON_LINES = "application/json", "application/jsonlines"
SERVED_MAX_SEQ_LENGTH = 32


def test_features_of_a_plain_review():
    features = text_features("Great phone, the battery lasts two days.", max_seq_length=128)
    assert features.review_characters == 40
    assert features.review_tokens == 9  # 7 words, a comma, a full stop
    assert features.truncated_share == 0.0
    assert features.unknown_token_share == 0.0
    assert (features.predicted_label, features.confidence) == ("", -1.0)


def test_the_share_truncated_counts_the_tokens_past_max_seq_length_less_the_special_tokens():
    text = " ".join(["word"] * 100)
    assert text_features(text, max_seq_length=52).truncated_share == 0.5
    assert text_features(text, max_seq_length=102).truncated_share == 0.0


@pytest.mark.parametrize("word", ["@anonymous", "#gratitude", "http://t.co/x", "www.example.com", "&amp;",
                                  "\U0001F600", "отлично", "素晴らしい"])
def test_unknown_words_are_mentions_tags_urls_entities_and_other_scripts(word):
    assert text_features(f"good {word}", max_seq_length=128).unknown_token_share == 0.5


@pytest.mark.parametrize("word", ["café", "naïve", "don't", "ad-2500", "$20", "(really)"])
def test_accented_latin_words_numbers_and_punctuation_are_plain(word):
    assert text_features(f"good {word}", max_seq_length=128).unknown_token_share == 0.0


def test_empty_text_has_zero_features():
    assert text_features("   ", max_seq_length=128).as_record() == {
        "review_characters": 0, "review_tokens": 0, "truncated_share": 0.0, "unknown_token_share": 0.0,
        "predicted_label": "", "confidence": -1.0}


def test_max_seq_length_comes_from_the_environment_and_a_bad_value_names_the_variable(monkeypatch):
    monkeypatch.delenv(record_features.MAX_SEQ_LENGTH_ENV, raising=False)
    assert record_features.max_seq_length_from_environment() == 128
    monkeypatch.setenv(record_features.MAX_SEQ_LENGTH_ENV, "64")
    assert record_features.max_seq_length_from_environment() == 64
    monkeypatch.setenv(record_features.MAX_SEQ_LENGTH_ENV, "two")
    with pytest.raises(ValueError, match="REVIEW_CLASSIFIER_MAX_SEQ_LENGTH"):
        text_features("good")


def test_a_base64_captured_body_is_decoded():
    request = json.dumps({"review_body": "works fine"})
    response = json.dumps([{"label": "positive", "probability": 0.8}])
    line = json.loads(capture_line(request, "text/plain", response, "application/json", event_number=1))
    assert line["captureData"]["endpointInput"]["encoding"] == "BASE64"
    assert base64.b64decode(line["captureData"]["endpointInput"]["data"]).decode() == request
    (features,) = capture_line_features(line, max_seq_length=128)
    assert (features.review_tokens, features.predicted_label, features.confidence) == (2, "positive", 0.8)


# --- capture files written from the served model ------------------------------------------------

@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    artifact = build_tiny_artifact(tmp_path_factory.mktemp("artifact") / "model", max_seq_length=SERVED_MAX_SEQ_LENGTH)
    with serve(artifact) as served:
        yield served


def requests_for(texts: list[str], per_request: int = 10) -> list[tuple[str, str]]:
    """Alternately a JSON Lines request of `per_request` reviews and a JSON list of them."""
    requests = []
    for number, start in enumerate(range(0, len(texts), per_request)):
        chunk = texts[start:start + per_request]
        if number % 2:
            requests.append((json.dumps([{"review_body": text} for text in chunk]), JSON))
        else:
            requests.append(("\n".join(json.dumps({"review_body": text}) for text in chunk), JSON_LINES))
    return requests


def captured_features(endpoint, texts, path, accept=None):
    capture_file = capture_requests(endpoint, requests_for(texts), path, accept)
    lines = capture_file.read_text(encoding="utf-8").splitlines()
    return lines, list(capture_file_features(lines, max_seq_length=SERVED_MAX_SEQ_LENGTH))


@pytest.fixture(scope="module")
def samples():
    rng = random.Random(11)
    reviews = rng.sample(sample_reviews(), 200)
    return {"reviews_a": reviews[:100], "reviews_b": reviews[100:], "tweets": rng.sample(sample_tweets(), 100)}


@pytest.fixture(scope="module")
def captured(endpoint, samples, tmp_path_factory):
    folder = tmp_path_factory.mktemp("data-capture")
    return {name: captured_features(endpoint, texts, folder / f"{name}.jsonl", accept)
            for (name, texts), accept in zip(samples.items(), (None, JSON_LINES, JSON))}


def test_every_captured_review_gets_its_features_and_the_served_prediction(captured, samples):
    lines, features = captured["reviews_a"]
    assert [f.review_characters for f in features] == [len(text.strip()) for text in samples["reviews_a"]]
    predictions = []
    for line in lines:
        output = json.loads(line)["captureData"]["endpointOutput"]
        body = output["data"]
        predictions += ([json.loads(row) for row in body.splitlines()] if "jsonlines" in output["observedContentType"]
                        else json.loads(body))
    assert [(f.predicted_label, f.confidence) for f in features] == [
        (p["label"], round(p["probability"], 6)) for p in predictions]
    assert {f.predicted_label for f in features} <= {"negative", "neutral", "positive"}


def test_the_preprocess_handler_gives_flat_records_of_the_features(captured):
    lines, features = captured["tweets"]
    rows = []
    for line in lines:
        result = record_features.preprocess_handler(inference_record(line))
        rows += result if isinstance(result, list) else [result]
    assert all(tuple(row) == FEATURE_NAMES for row in rows)
    assert all(isinstance(value, (int, float, str)) for row in rows for value in row.values())
    assert len(rows) == len(features)


def test_a_refused_request_gives_features_without_a_prediction(endpoint, tmp_path, monkeypatch):
    monkeypatch.setenv(record_features.MAX_SEQ_LENGTH_ENV, str(SERVED_MAX_SEQ_LENGTH))
    capture_file = capture_requests(endpoint, [(json.dumps({"review_body": "\u200b"}), JSON)], tmp_path / "refused.jsonl")
    (line,) = capture_file.read_text().splitlines()
    assert '"InternalServerException"' in json.loads(line)["captureData"]["endpointOutput"]["data"]
    record = record_features.preprocess_handler(inference_record(line))
    assert (record["predicted_label"], record["confidence"]) == ("", -1.0)


def test_a_record_that_is_no_review_request_becomes_no_row(tmp_path):
    line = capture_line("not json", JSON, "[]", JSON, event_number=3)
    assert record_features.preprocess_handler(inference_record(line)) == []


def share_with_unknown_words(features) -> float:
    return sum(f.unknown_token_share > 0 for f in features) / len(features)


def test_tweets_move_the_features_and_another_sample_of_reviews_does_not(captured):
    reviews_a, reviews_b, tweets = (captured[name][1] for name in ("reviews_a", "reviews_b", "tweets"))
    in_distribution = abs(share_with_unknown_words(reviews_a) - share_with_unknown_words(reviews_b))
    shifted = share_with_unknown_words(tweets) - share_with_unknown_words(reviews_a)
    assert in_distribution < 0.05 < 0.4 < shifted, (in_distribution, shifted)
    mean_unknown = {name: statistics.mean(f.unknown_token_share for f in captured[name][1]) for name in captured}
    assert mean_unknown["tweets"] > 10 * max(mean_unknown["reviews_a"], mean_unknown["reviews_b"], 0.001)
    mean_tokens = {name: statistics.mean(f.review_tokens for f in captured[name][1]) for name in captured}
    assert abs(mean_tokens["reviews_a"] - mean_tokens["reviews_b"]) < 0.15 * mean_tokens["reviews_a"]
