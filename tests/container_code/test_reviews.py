"""The shared module: label mapping, tokenization, event time, prepared records, booleans."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import reviews
from data_support import minilm_tokenizer_dir
from tiny_roberta import synthetic_reviews


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
    # One call per text (the seed's encode_plus loop) gives the same ids as the batched call:
    # of the head with head truncation, of the head and tail texts with head_tail.
    head = reviews.TokenizationSettings(max_seq_length=12, truncation="head")
    assert reviews.encode_input_ids(tokenizer, texts, head) == [
        tokenizer(text, **head.tokenizer_kwargs(pad_to_max_length=True))["input_ids"] for text in texts]
    assert input_ids == [tokenizer(settings.cut(tokenizer, [text])[0], **settings.tokenizer_kwargs(pad_to_max_length=True))["input_ids"]
                         for text in texts]
    assert input_ids[1][1:3] == tokenizer("the battery")["input_ids"][1:3]
    assert input_ids[1][-3:-1] == tokenizer("at all")["input_ids"][1:3]


# ---------------------------------------------------------------------------- review text


@pytest.mark.parametrize(
    "text",
    ["", "   ", "\x00", "\x00\x00\x07", "\u200b", "\ufeff", "\u00ad", "\u2060\u200d\u200c", "\u202e\u2066",
     "\u3164", "\u115f\u1160", "\u2800", "\ufe0f", "\U000e0041\U000e007f", "\u00a0\u3000\u2028", " \x00 \u200b\n\t"],
)
def test_a_text_with_nothing_visible_in_it_is_empty(text):
    # What prepare rejects as a missing review body and serving refuses.
    assert reviews.clean_review_text(text) == ""


@pytest.mark.parametrize(
    ("text", "cleaned"),
    [("  great \n", "great"), ("\u200bgreat\u200b", "\u200bgreat\u200b"), ("👍", "👍"), ("é", "é"), ("中", "中"),
     ("5", "5"), ("\x00ok", "\x00ok"), ("\ue000", "\ue000")],
)
def test_a_text_with_something_visible_keeps_all_but_its_surrounding_whitespace(text, cleaned):
    assert reviews.clean_review_text(text) == cleaned


def test_the_tokenizer_reads_a_bounded_prefix_derived_from_max_seq_length():
    settings = reviews.TokenizationSettings(max_seq_length=128, truncation="head")
    assert settings.max_text_chars == 128 * reviews.MAX_CHARS_PER_TOKEN
    assert settings.capped("x" * 10**6) == "x" * settings.max_text_chars
    assert settings.capped("short") == "short"
    head_tail = reviews.TokenizationSettings(max_seq_length=128)
    assert len(head_tail.capped("x" * 10**6)) == head_tail.max_text_chars + 1  # head, a space, tail


LONG_TEXTS = [
    " ".join(text for text, _ in synthetic_reviews(3000, seed=5)),
    "The battery died after 2 days; support (ticket #48213) never answered: https://example.com/help?id=42 !!! " * 400,
    "Très bien, l'écran est superbe 👍 mais la batterie… 😞 Ça ne vaut pas 129,99 €. " * 600,
    "great" * 40_000,  # one long word
]


@pytest.mark.parametrize("truncation", reviews.TRUNCATIONS)
@pytest.mark.parametrize("tokenizer_name", ["minilm-wordpiece", "tiny-roberta-bpe"])
@pytest.mark.parametrize("max_seq_length", [8, 64, 512])
def test_capping_a_long_text_before_tokenizing_changes_no_input_ids(tiny_model_dir, tokenizer_name, max_seq_length,
                                                                    truncation, monkeypatch):
    from transformers import AutoTokenizer

    directory = minilm_tokenizer_dir() if tokenizer_name == "minilm-wordpiece" else tiny_model_dir
    tokenizer = AutoTokenizer.from_pretrained(str(directory))
    settings = reviews.TokenizationSettings(max_seq_length=max_seq_length, truncation=truncation)
    assert all(len(text) > settings.max_text_chars for text in LONG_TEXTS)
    # With head_tail the cap's seam splits a word of 200,000 characters in two, which WordPiece
    # reads as two words, where uncapped the whole word is one [UNK]: not a review, left out.
    texts = LONG_TEXTS if truncation == "head" else LONG_TEXTS[:3]
    capped = reviews.encode_input_ids(tokenizer, texts, settings)
    monkeypatch.setattr(reviews, "MAX_CHARS_PER_TOKEN", 10**6)  # no cap: the whole text is read
    assert capped == reviews.encode_input_ids(tokenizer, texts, settings)


def _minilm_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(minilm_tokenizer_dir()))


def test_head_tail_keeps_the_start_and_the_verdict_of_a_long_review():
    tokenizer = _minilm_tokenizer()
    middle = " ".join(f"filler{index}" for index in range(200))
    text = f"I bought this camera in march. {middle} In the end it broke and I returned it."
    settings = reviews.TokenizationSettings(max_seq_length=32)
    [ids] = reviews.encode_input_ids(tokenizer, [text], settings)
    decoded = tokenizer.decode(ids, skip_special_tokens=True)
    assert len(ids) == 32 and ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
    assert decoded.startswith("i bought this")
    assert decoded.endswith("in the end it broke and i returned it.")
    # Head only: the verdict is cut off.
    [head] = reviews.encode_input_ids(tokenizer, [text], reviews.TokenizationSettings(32, "head"))
    assert "returned" not in tokenizer.decode(head, skip_special_tokens=True)
    assert head[:8] == ids[:8]


def test_a_text_that_fits_is_tokenized_as_the_tokenizer_does_whatever_the_truncation():
    tokenizer = _minilm_tokenizer()
    texts = ["Short and sweet.", "word " * 29]  # 29 words + [CLS] [SEP] = 31 tokens, within 32
    expected = tokenizer(texts, max_length=32, truncation=True, padding="max_length")["input_ids"]
    for truncation in reviews.TRUNCATIONS:
        assert reviews.encode_input_ids(tokenizer, texts, reviews.TokenizationSettings(32, truncation)) == expected


def test_the_character_cap_keeps_head_and_tail_too():
    settings = reviews.TokenizationSettings(max_seq_length=8)  # 256 characters
    text = "a" * 1000 + "b" * 1000
    capped = settings.capped(text)
    assert capped.startswith("a" * 64) and capped.endswith("b" * 192) and len(capped) == 257
    assert reviews.TokenizationSettings(8, "head").capped(text) == "a" * 256
    with pytest.raises(ValueError, match="truncation must be one of"):
        reviews.TokenizationSettings(8, "middle")


def test_a_batch_of_short_texts_is_still_padded_to_max_seq_length():
    # What prepare stores: every record has exactly max_seq_length input_ids, whatever the batch.
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(minilm_tokenizer_dir()))
    input_ids = reviews.encode_input_ids(tokenizer, ["great", "bad"], reviews.TokenizationSettings(max_seq_length=12))
    assert [len(ids) for ids in input_ids] == [12, 12]


def test_serving_pads_a_batch_to_its_longest_text_and_asks_for_the_attention_mask():
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(minilm_tokenizer_dir()))
    settings = reviews.TokenizationSettings(max_seq_length=12)
    long_text = "the battery died after two days and support never answered my emails at all"
    batch = tokenizer(["great", "great product"], **settings.tokenizer_kwargs(pad_to_max_length=False))
    assert [len(ids) for ids in batch["input_ids"]] == [4, 4]  # [CLS] great product [SEP]
    assert batch["input_ids"][0][0] == tokenizer.cls_token_id and batch["input_ids"][0][2] == tokenizer.sep_token_id
    assert batch["attention_mask"] == [[1, 1, 1, 0], [1, 1, 1, 1]]
    truncated = tokenizer([long_text], **settings.tokenizer_kwargs(pad_to_max_length=False))
    assert len(truncated["input_ids"][0]) == 12


@pytest.mark.parametrize("label_id", [-1, 3, "1"])
def test_an_unknown_label_id_is_refused_with_the_known_ones(label_id):
    with pytest.raises(ValueError, match=r"label_id must be one of \[0, 1, 2\]"):
        reviews.label_id_to_sentiment(label_id)


def test_star_rating_errors_say_what_was_expected():
    with pytest.raises(ValueError, match="between 1 and 5, got 6"):
        reviews.star_rating_to_sentiment(6)
    with pytest.raises(TypeError, match="must be an int, got '3'"):
        reviews.star_rating_to_sentiment("3")


def test_a_bad_boolean_job_argument_is_a_usage_error_that_names_it():
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--flag", type=reviews.bool_argument)
    assert parser.parse_args(["--flag", "TRUE"]).flag is True
    assert parser.parse_args(["--flag", "no"]).flag is False
    with pytest.raises(argparse.ArgumentTypeError, match="expected true or false, got 'maybe'"):
        reviews.bool_argument("maybe")


# ---------------------------------------------------------------------------- event time


def test_event_time_is_utc_whatever_the_machine_zone(local_time_zone):
    # A naive datetime is UTC already; an aware one is converted, not relabelled.
    assert reviews.format_event_time(datetime(2015, 8, 31)) == "2015-08-31T00:00:00Z"
    assert reviews.format_event_time(datetime(2015, 8, 31, 23, 59, 59)) == "2015-08-31T23:59:59Z"
    assert reviews.format_event_time(datetime(2024, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=-5)))) == "2024-01-01T05:30:00Z"


@pytest.mark.parametrize(
    ("text", "event_time"),
    [
        ("2015-08-31", "2015-08-31T00:00:00Z"),
        ("  2015-08-31T10:00:00  ", "2015-08-31T10:00:00Z"),
        ("2015-08-31T10:00:00Z", "2015-08-31T10:00:00Z"),
        ("2015-08-31T10:00:00+02:00", "2015-08-31T08:00:00Z"),
        ("2015-08-31T22:00:00-03:30", "2015-09-01T01:30:00Z"),
    ],
)
def test_a_review_date_becomes_a_utc_event_time(local_time_zone, text, event_time):
    assert reviews.parse_event_time(text) == event_time


@pytest.mark.parametrize("text", ["", "   ", None, "yesterday", "2015-13-01", "31/08/2015"])
def test_what_is_not_a_date_has_no_event_time(text):
    assert reviews.parse_event_time(text) is None


# ---------------------------------------------------------------------------- files


def test_the_exit_message_is_one_utf8_line_of_at_most_1_kb(tmp_path):
    message_file = tmp_path / "opt" / "ml" / "output" / "message"
    reviews.write_exit_message(message_file, "no reviews\n\tin  s3://bucket/raw/ \ud800")
    assert message_file.read_bytes() == b"no reviews in s3://bucket/raw/ ?\n"

    reviews.write_exit_message(message_file, "é" * 2000)  # 2 bytes each: the cut falls inside one
    data = message_file.read_bytes()
    assert len(data) <= reviews.EXIT_MESSAGE_MAX_BYTES and data.endswith(b"\n")
    assert data.decode("utf-8") == "é" * 511 + "\n"

    reviews.write_exit_message(message_file, "x" * 2000)
    assert message_file.read_bytes() == b"x" * 1023 + b"\n"


def test_records_written_as_json_lines_read_back_the_same(tmp_path):
    records = [{"review_id": "r1", "review_body": "Très bien 👍", "input_ids": [0, 5, 2]}, {"b": 1, "a": None}]
    path = tmp_path / "prepared" / "train" / "part.jsonl"
    assert reviews.write_jsonl(path, records) == 2
    text = path.read_text(encoding="utf-8")
    assert text.splitlines()[1] == '{"a": null, "b": 1}'  # sorted keys, one record a line
    assert "Très bien 👍" in text  # written as UTF-8, not escaped
    assert list(reviews.read_jsonl(path)) == records
    assert reviews.write_jsonl(tmp_path / "empty.jsonl", []) == 0
    assert (tmp_path / "empty.jsonl").read_bytes() == b""


def test_reading_json_lines_skips_blank_lines_and_names_the_bad_one(tmp_path):
    path = tmp_path / "split.jsonl"
    path.write_bytes('{"a": "é"}\n\n  \n{"b": 2}\nnot json\n'.encode("utf-8"))
    lines = reviews.read_jsonl(path)
    assert next(lines) == {"a": "é"} and next(lines) == {"b": 2}
    with pytest.raises(ValueError, match=r"split\.jsonl:5: not valid JSON"):
        next(lines)


def test_split_files_are_the_jsonl_files_below_a_split_in_a_stable_order(tmp_path):
    for relative in ("host-2/part.jsonl", "host-1/b.jsonl", "host-1/a.jsonl", "host-1/notes.txt", "a.jsonl/x.txt"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text("{}\n")
    found = reviews.split_files(tmp_path)
    assert found == [tmp_path / "host-1/a.jsonl", tmp_path / "host-1/b.jsonl", tmp_path / "host-2/part.jsonl"]
    assert reviews.split_files(str(tmp_path)) == found


@pytest.mark.parametrize(
    ("value", "line"),
    [
        (0.5, "[metric] validation_accuracy=0.500000 epoch=2 step=40"),
        (1 / 3, "[metric] validation_accuracy=0.333333 epoch=2 step=40"),
        (float("nan"), "[metric] validation_accuracy=nan epoch=2 step=40"),
        (float("inf"), "[metric] validation_accuracy=nan epoch=2 step=40"),
    ],
)
def test_a_metric_line_is_what_the_metric_definitions_parse(value, line):
    assert reviews.format_metric_line("validation_accuracy", value, epoch=2, step=40) == line


LOCALE_CHECK = """
import pathlib, sys
import reviews
out = pathlib.Path(sys.argv[1])
record = {"review_body": "caf\\u00e9 \\U0001f44d"}
reviews.write_jsonl(out / "written-under-c.jsonl", [record])
assert list(reviews.read_jsonl(out / "written-under-c.jsonl")) == [record]
assert list(reviews.read_jsonl(out / "written-here.jsonl")) == [record]
"""


def test_json_lines_are_utf8_whatever_the_machine_locale(tmp_path):
    # The images' locale is not ours: files are written and read as UTF-8 under the C locale too.
    record = {"review_body": "café 👍"}
    reviews.write_jsonl(tmp_path / "written-here.jsonl", [record])
    assert list(reviews.read_jsonl(tmp_path / "written-here.jsonl")) == [record]
    c_locale = {**os.environ, "LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0",
                "PYTHONPATH": str(Path(reviews.__file__).parent)}
    completed = subprocess.run([sys.executable, "-c", LOCALE_CHECK, str(tmp_path)], env=c_locale,
                               capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=60)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert (tmp_path / "written-under-c.jsonl").read_bytes() == (tmp_path / "written-here.jsonl").read_bytes()


def test_a_text_of_exactly_the_character_cap_is_kept_whole():
    settings = reviews.TokenizationSettings(max_seq_length=8)  # 256 characters
    assert settings.capped("ab" * 128) == "ab" * 128


def test_a_text_of_exactly_the_token_budget_is_not_cut_even_where_the_seam_falls_inside_a_word():
    tokenizer = _minilm_tokenizer()
    # 10 words of 3 word pieces ("fill", "##er", "##N"): 30 tokens, max_seq_length 32 less
    # [CLS] and [SEP]; the head/tail seam (after 8 pieces) falls between "##er" and "##2".
    text = " ".join(f"filler{index}" for index in range(10))
    settings = reviews.TokenizationSettings(max_seq_length=32)
    assert settings.cut(tokenizer, [text]) == [text]
    expected = tokenizer([text], max_length=32, truncation=True, padding="max_length")["input_ids"]
    assert reviews.encode_input_ids(tokenizer, [text], settings) == expected


def test_the_smallest_budget_keeps_the_first_and_the_last_token():
    tokenizer = _minilm_tokenizer()
    settings = reviews.TokenizationSettings(max_seq_length=4)  # two tokens besides [CLS] and [SEP]
    [ids] = reviews.encode_input_ids(tokenizer, ["alpha beta gamma"], settings)
    assert tokenizer.convert_ids_to_tokens(ids) == ["[CLS]", "alpha", "gamma", "[SEP]"]
