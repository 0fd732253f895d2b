"""The shared module: label mapping, tokenization, event time, prepared records, booleans."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

import reviews
from data_support import minilm_tokenizer_dir


@pytest.mark.parametrize(("star_rating", "sentiment", "label"), [(1, -1, "negative"), (2, -1, "negative"), (3, 0, "neutral"), (4, 1, "positive"), (5, 1, "positive")])
def test_star_rating_maps_to_sentiment_label_id_and_name(star_rating, sentiment, label):
    assert reviews.star_rating_to_sentiment(star_rating) == sentiment
    label_id = reviews.sentiment_to_label_id(sentiment)
    assert label_id == sentiment + 1
    assert reviews.ID2LABEL[label_id] == label and reviews.LABEL2ID[label] == label_id
    assert reviews.label_id_to_sentiment(label_id) == sentiment


@pytest.mark.parametrize(("bad", "error"), [(0, ValueError), (6, ValueError), (3.0, TypeError), ("3", TypeError), (True, TypeError)])
def test_star_rating_outside_1_to_5_or_not_an_int_is_refused(bad, error):
    with pytest.raises(error):
        reviews.star_rating_to_sentiment(bad)


@pytest.mark.parametrize("value", ["true", "True", " TRUE ", "1", "yes", True])
def test_parse_bool_true(value):
    assert reviews.parse_bool(value) is True


@pytest.mark.parametrize("value", ["false", "False", "0", "no", False])
def test_parse_bool_false(value):
    assert reviews.parse_bool(value) is False


@pytest.mark.parametrize("value", ["", "maybe", "2", "none"])
def test_parse_bool_refuses_anything_else(value):
    with pytest.raises(ValueError, match="true or false"):
        reviews.parse_bool(value)


def test_event_time_is_utc_iso8601_to_the_second():
    aware = datetime(2024, 5, 1, 14, 30, 15, 999, tzinfo=timezone(timedelta(hours=2)))
    assert reviews.format_event_time(aware) == "2024-05-01T12:30:15Z"
    assert reviews.format_event_time(datetime(2015, 8, 31)) == "2015-08-31T00:00:00Z"


def test_prepared_record_has_exactly_the_contract_columns():
    record = reviews.prepared_record(
        review_id="r1", date="2015-08-31T00:00:00Z", sentiment=0, input_ids=(101, 102), review_body="ok", split_type="test"
    )
    assert tuple(record) == reviews.PREPARED_COLUMNS
    assert record["label_id"] == 1 and record["input_ids"] == [101, 102]
    with pytest.raises(ValueError, match="split_type"):
        reviews.prepared_record(review_id="r1", date="d", sentiment=0, input_ids=[], review_body="ok", split_type="dev")
    with pytest.raises(ValueError, match="sentiment"):
        reviews.prepared_record(review_id="r1", date="d", sentiment=2, input_ids=[], review_body="ok", split_type="test")


def test_encode_input_ids_pads_and_truncates_to_max_seq_length():
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(minilm_tokenizer_dir()))
    settings = reviews.TokenizationSettings(max_seq_length=12)
    texts = ["great", "the battery died after two days and support never answered my emails at all"]
    input_ids = reviews.encode_input_ids(tokenizer, texts, settings)

    assert [len(ids) for ids in input_ids] == [12, 12]
    assert input_ids[0][:3] == [tokenizer.cls_token_id, tokenizer.convert_tokens_to_ids("great"), tokenizer.sep_token_id]
    assert set(input_ids[0][3:]) == {tokenizer.pad_token_id}
    assert input_ids[1][-1] == tokenizer.sep_token_id and tokenizer.pad_token_id not in input_ids[1]
    # One call per text (the seed's encode_plus loop) gives the same ids as the batched call.
    assert input_ids == [tokenizer(text, **settings.tokenizer_kwargs(pad_to_max_length=True))["input_ids"] for text in texts]
