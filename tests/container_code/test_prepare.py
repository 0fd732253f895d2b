"""prepare.py: row validation and accounting, balancing, stratified deterministic splits, host
sharding, argument validation, and end-to-end runs as SageMaker runs it (a subprocess)."""

from __future__ import annotations

import gzip
import json
import logging
import os
import re
import subprocess
import sys
import zlib
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings as hypothesis_settings, strategies as st

import prepare
import reviews
from data_support import DEV_FEATURE_GROUP, FakeFeatureStore, PlannedError, minilm_tokenizer_dir, write_csv

CONTAINER_CODE = Path(prepare.__file__).resolve().parent
# `python prepare.py --help` as reviewed; regenerate it with the command in
# test_help_text_is_the_reviewed_one's docstring when a change of the help is meant.
HELP_SNAPSHOT = Path(__file__).parent / "expected" / "prepare_help.txt"
COLUMNS = ("review_id", "star_rating", "review_body", "product_category")
MAX_SEQ_LENGTH = 16
# What the pipeline passes as --event-time (its input snapshot's time).
EVENT_TIME = "2026-11-01T08:30:00Z"


def review_rows(per_star: dict[int, int], prefix: str = "r") -> list[dict]:
    rows = []
    for star, count in per_star.items():
        for index in range(count):
            rows.append(
                {
                    "review_id": f"{prefix}{star}-{index:03d}",
                    "star_rating": star,
                    "review_body": f"review {index} rated {star} stars" + " word" * (index % 7),
                    "product_category": "Electronics",
                }
            )
    return rows


def settings_for(input_dir: Path, output_dir: Path, *extra: str) -> prepare.PrepareSettings:
    return prepare.parse_settings(
        [
            "--input-dir", str(input_dir),
            "--output-dir", str(output_dir),
            "--resource-config", str(output_dir / "no-resourceconfig.json"),
            "--tokenizer", str(minilm_tokenizer_dir()),
            "--max-seq-length", str(MAX_SEQ_LENGTH),
            "--num-workers", "1",
            "--event-time", EVENT_TIME,
            *extra,
        ]
    )


def read_split(output_dir: Path, split: str) -> list[dict]:
    return [record for path in reviews.split_files(output_dir / split) for record in reviews.read_jsonl(path)]


def make_reviews(per_sentiment: dict[int, int]) -> list[prepare.Review]:
    return [
        prepare.Review(f"id-{sentiment}-{index:04d}", "2020-01-01T00:00:00Z", sentiment, f"text {index}")
        for sentiment, count in per_sentiment.items()
        for index in range(count)
    ]


# ---------------------------------------------------------------------------------------------
# Validation of single values


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", 1), ("5", 5), (" 3 ", 3), ("4.0", 4),
        ("", prepare.MISSING_STAR_RATING), (None, prepare.MISSING_STAR_RATING), ("  ", prepare.MISSING_STAR_RATING),
        ("four", prepare.STAR_RATING_NOT_AN_INTEGER), ("4.5", prepare.STAR_RATING_NOT_AN_INTEGER),
        ("nan", prepare.STAR_RATING_NOT_AN_INTEGER),
        ("0", prepare.STAR_RATING_OUT_OF_RANGE), ("6", prepare.STAR_RATING_OUT_OF_RANGE), ("-1", prepare.STAR_RATING_OUT_OF_RANGE),
    ],
)
def test_parse_star_rating(raw, expected):
    assert prepare.parse_star_rating(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2015-08-31", "2015-08-31T00:00:00Z"),
        ("2015-08-31T10:20:30Z", "2015-08-31T10:20:30Z"),
        ("2015-08-31T10:20:30+02:00", "2015-08-31T08:20:30Z"),
        ("", None), (None, None), ("31/08/2015", None), ("yesterday", None),
    ],
)
def test_parse_review_date(raw, expected, local_time_zone):
    assert prepare.parse_review_date(raw) == expected


# ---------------------------------------------------------------------------------------------
# Balancing and splitting


def test_balancing_down_samples_every_class_to_the_smallest():
    items = make_reviews({-1: 30, 0: 12, 1: 50})
    kept, dropped = prepare.balance_by_down_sampling(items, seed=7)
    assert Counter(r.sentiment for r in kept) == {-1: 12, 0: 12, 1: 12}
    assert dropped == len(items) - 36
    assert set(kept) <= set(items)
    assert prepare.balance_by_down_sampling(list(reversed(items)), seed=7)[0] == kept
    assert {r.review_id for r in prepare.balance_by_down_sampling(items, seed=8)[0]} != {r.review_id for r in kept}


def test_balancing_fails_clearly_when_a_class_is_missing():
    with pytest.raises(prepare.PrepareError, match="neutral"):
        prepare.balance_by_down_sampling(make_reviews({-1: 3, 1: 3}), seed=1)
    assert prepare.balance_by_down_sampling([], seed=1) == ([], 0)


@hypothesis_settings(max_examples=200, deadline=None)
@given(
    count=st.integers(min_value=0, max_value=5000),
    weights=st.tuples(*[st.integers(min_value=0, max_value=100)] * 3).filter(lambda w: sum(w) > 0),
)
def test_split_sizes_add_up_and_stay_within_one_of_the_exact_share(count, weights):
    total = sum(weights)
    fractions = prepare.SplitFractions(*(w / total for w in weights[:2]), 1 - sum(w / total for w in weights[:2]))
    sizes = prepare.split_sizes(count, fractions)
    assert sum(sizes.values()) == count
    for name, fraction in fractions.as_dict().items():
        assert sizes[name] >= 0 and abs(sizes[name] - count * fraction) < 1


def test_stratified_split_is_disjoint_complete_stratified_and_seeded():
    items = make_reviews({-1: 100, 0: 100, 1: 100})
    fractions = prepare.SplitFractions(0.8, 0.1, 0.1)
    splits = prepare.stratified_split(items, fractions, seed=3)

    ids = [r.review_id for members in splits.values() for r in members]
    assert sorted(ids) == sorted(r.review_id for r in items)
    for name, members in splits.items():
        expected = round(100 * fractions.as_dict()[name])
        assert Counter(r.sentiment for r in members) == {-1: expected, 0: expected, 1: expected}

    same_seed_other_order = prepare.stratified_split(list(reversed(items)), fractions, seed=3)
    assert same_seed_other_order == splits
    other_seed = prepare.stratified_split(items, fractions, seed=4)
    assert {r.review_id for r in other_seed["test"]} != {r.review_id for r in splits["test"]}


def test_with_a_test_domain_only_that_domain_reaches_the_test_split():
    products = [prepare.Review(r.review_id, r.date, r.sentiment, r.review_body, "product")
                for r in make_reviews({-1: 20, 0: 20, 1: 20})]
    tweets = [prepare.Review("t" + r.review_id, r.date, r.sentiment, r.review_body, "tweet")
              for r in make_reviews({-1: 30, 0: 30, 1: 30})]
    fractions = prepare.SplitFractions(0.8, 0.1, 0.1)
    splits = prepare.split_with_test_domain(products + tweets, fractions, seed=3, test_domain="product")

    assert {r.domain for r in splits["test"]} == {"product"}
    assert Counter(r.sentiment for r in splits["test"]) == {-1: 2, 0: 2, 1: 2}
    by_domain = {name: Counter(r.domain for r in members) for name, members in splits.items()}
    # The tweets' test share goes to train: 90% of 90 tweets there, 10% in validation.
    assert by_domain["train"] == {"product": 48, "tweet": 81}
    assert by_domain["validation"] == {"product": 6, "tweet": 9}
    ids = sorted(r.review_id for members in splits.values() for r in members)
    assert ids == sorted(r.review_id for r in products + tweets)
    assert prepare.split_with_test_domain(products + tweets, fractions, 3, prepare.ALL_DOMAINS) == \
        prepare.stratified_split(products + tweets, fractions, 3)
    # The seed decides every part: the same seed, the same splits in the same order; another
    # seed, other members both in the test domain and among the others.
    assert prepare.split_with_test_domain(list(reversed(products + tweets)), fractions, 3, "product") == splits
    other_seed = prepare.split_with_test_domain(products + tweets, fractions, 4, "product")
    assert {r.review_id for r in other_seed["test"]} != {r.review_id for r in splits["test"]}
    assert ({r.review_id for r in other_seed["validation"] if r.domain == "tweet"}
            != {r.review_id for r in splits["validation"] if r.domain == "tweet"})
    with pytest.raises(prepare.PrepareError, match=r"--test-domain 'movie': no usable review .*\['product', 'tweet'\]"):
        prepare.split_with_test_domain(products + tweets, fractions, 3, "movie")


def test_the_domain_column_selects_the_test_split_and_the_report_counts_domains(tmp_path):
    products = [{**row, "domain": "product"} for row in review_rows({1: 10, 3: 10, 5: 10}, prefix="p")]
    tweets = [{**row, "domain": "tweet"} for row in review_rows({1: 10, 3: 10, 5: 10}, prefix="t")]
    write_csv(tmp_path / "input" / "products.csv", products, (*COLUMNS, "domain"))
    write_csv(tmp_path / "input" / "tweets.csv", tweets, (*COLUMNS, "domain"))
    report = prepare.run(settings_for(tmp_path / "input", tmp_path / "output", "--balance", "false",
                                      "--train-fraction", "0.8", "--validation-fraction", "0.1",
                                      "--test-fraction", "0.1", "--test-domain", "product"))
    assert {record["review_id"][0] for record in read_split(tmp_path / "output", "test")} == {"p"}
    assert report["rows_written"]["by_split_and_domain"] == {
        "train": {"product": 24, "tweet": 27}, "validation": {"product": 3, "tweet": 3}, "test": {"product": 3}}
    assert report["settings"]["test_domain"] == "product"


@pytest.mark.parametrize(
    ("fractions", "message"),
    [
        (("0.8", "0.1", "0.05"), "sum to 1"),
        (("0.9", "0.2", "-0.1"), "--test-fraction must not be negative"),
        (("1.2", "-0.1", "-0.1"), "must not be negative"),
    ],
)
def test_bad_split_fractions_fail_with_a_usage_error(fractions, message, capsys):
    train, validation, test = fractions
    with pytest.raises(SystemExit) as exit_info:
        prepare.parse_settings(["--train-fraction", train, "--validation-fraction", validation, "--test-fraction", test])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--balance", "maybe"], "argument --balance: expected true or false"),
        (["--ingest", "true"], "--ingest true needs --feature-group-name"),
        (["--max-seq-length", "0"], "argument --max-seq-length: must be at least 1, got 0"),
        (["--num-workers", "0"], "argument --num-workers: must be at least 1, got 0"),
        (["--batch-size", "0"], "argument --batch-size: must be at least 1, got 0"),
        (["--log-every-rows", "-3"], "argument --log-every-rows: must be at least 1, got -3"),
        (["--ingest-max-workers", "0"], "argument --ingest-max-workers: must be at least 1, got 0"),
        (["--ingest-max-attempts", "0"], "argument --ingest-max-attempts: must be at least 1, got 0"),
        (["--expected-input-files", "-1"], "argument --expected-input-files: must not be negative, got -1"),
        (["--expected-input-bytes", "-2"], "argument --expected-input-bytes: must not be negative, got -2"),
        (["--ingest-retry-mode", "eager"], "argument --ingest-retry-mode: invalid choice: 'eager'"),
        (["--random-seed", "seven"], "argument --random-seed: invalid int value: 'seven'"),
        (["--train-fraction", "most"], "argument --train-fraction: invalid float value: 'most'"),
    ],
)
def test_bad_arguments_fail_with_a_usage_error(arguments, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        prepare.parse_settings(arguments)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    # argparse's own shape: the usage first, then "<prog>: error: <message>" as the last line.
    assert err.startswith("usage: ")
    assert re.search(rf"^\S+: error: {re.escape(message)}", err.splitlines()[-1])


def test_every_argument_reaches_the_settings():
    settings = prepare.parse_settings([
        "--input-dir", "in", "--output-dir", "out", "--resource-config", "rc.json", "--exit-message-file", "msg",
        "--input-digest", "d1", "--expected-input-files", "0", "--expected-input-bytes", "7", "--event-time", "2020-02-02",
        "--id-column", "id", "--rating-column", "stars", "--text-column", "text", "--date-column", "when",
        "--domain-column", "kind", "--tokenizer", "tok", "--max-seq-length", "1", "--balance", "false",
        "--train-fraction", "0.7", "--validation-fraction", "0.2", "--test-fraction", "0.1", "--random-seed", "9",
        "--test-domain", "tweet", "--num-workers", "3", "--batch-size", "50", "--log-every-rows", "20",
        "--ingest", "true", "--feature-group-name", "fg", "--ingest-max-workers", "2", "--ingest-max-attempts", "1",
        "--ingest-retry-mode", "adaptive",
    ])
    assert settings == prepare.PrepareSettings(
        input_dir=Path("in"), output_dir=Path("out"), resource_config=Path("rc.json"),
        columns=prepare.Columns("id", "stars", "text", "when", "kind"), tokenizer="tok",
        tokenization=reviews.TokenizationSettings(max_seq_length=1), balance=False,
        fractions=prepare.SplitFractions(0.7, 0.2, 0.1), random_seed=9, num_workers=3, batch_size=50,
        log_every_rows=20, ingest=True, feature_group_name="fg", ingest_max_workers=2, ingest_max_attempts=1,
        ingest_retry_mode="adaptive", event_time="2020-02-02T00:00:00Z", input_digest="d1",
        expected_input_files=0, expected_input_bytes=7, exit_message_file=Path("msg"), test_domain="tweet",
    )


@pytest.mark.parametrize(("cpu_count", "workers"), [(6, 6), (None, 1)])  # os.cpu_count() may not know
def test_without_arguments_the_job_reads_sagemakers_paths_with_the_documented_defaults(monkeypatch, cpu_count, workers):
    monkeypatch.setattr(prepare.os, "cpu_count", lambda: cpu_count)
    assert prepare.parse_settings([]) == prepare.PrepareSettings(
        input_dir=Path("/opt/ml/processing/input/data"), output_dir=Path("/opt/ml/processing/output"),
        resource_config=Path("/opt/ml/config/resourceconfig.json"),
        columns=prepare.Columns("review_id", "star_rating", "review_body", "review_date", "domain"),
        tokenizer="roberta-base", tokenization=reviews.TokenizationSettings(max_seq_length=128), balance=True,
        fractions=prepare.SplitFractions(0.90, 0.05, 0.05), random_seed=42, num_workers=workers, batch_size=1000,
        log_every_rows=10000, ingest=False, feature_group_name=None, ingest_max_workers=8, ingest_max_attempts=5,
        ingest_retry_mode="standard", event_time=None, input_digest=None, expected_input_files=None,
        expected_input_bytes=None, exit_message_file=Path("/opt/ml/output/message"), test_domain="*",
    )


def job_help(monkeypatch) -> str:
    # What `python prepare.py --help` prints on a 4-core machine in a 100-column terminal.
    monkeypatch.setattr(sys, "argv", ["prepare.py"])
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setattr(prepare.os, "cpu_count", lambda: 4)
    return prepare.build_argument_parser().format_help()


def test_help_text_is_the_reviewed_one(monkeypatch):
    """The help is the job's manual (docs/data.md points to it): every argument, its group, its
    meaning and its default. After a meant change, regenerate the snapshot with
    `.venv/bin/python -c "import sys; sys.path[:0] = ['tests/container_code', 'container_code', 'tests']; import pytest, test_prepare; mp = pytest.MonkeyPatch(); test_prepare.HELP_SNAPSHOT.write_text(test_prepare.job_help(mp))"`."""
    assert job_help(monkeypatch) == HELP_SNAPSHOT.read_text(encoding="utf-8")


def test_boolean_arguments_accept_the_strings_sagemaker_passes():
    parsed = prepare.parse_settings(["--balance", "False", "--ingest", "TRUE", "--feature-group-name", "fg"])
    assert parsed.balance is False and parsed.ingest is True
    assert prepare.parse_settings([]).balance is True


def test_help_lists_every_argument_by_its_kebab_case_name():
    help_text = prepare.build_argument_parser().format_help()
    for action in prepare.build_argument_parser()._actions:
        for option in action.option_strings:
            assert option in help_text
            assert "_" not in option


# ---------------------------------------------------------------------------------------------
# Hosts


def test_review_ids_hash_to_hosts_stably_and_evenly():
    ids = [f"R{index:06d}" for index in range(3000)]
    owners = [prepare.host_index_of(review_id, 3) for review_id in ids]
    assert owners == [prepare.host_index_of(review_id, 3) for review_id in ids]  # no per-process salt
    assert all(600 < owners.count(host) < 1400 for host in range(3))
    assert {prepare.host_index_of(review_id, 1) for review_id in ids} == {0}
    # Rows without an id go to the first host, which counts them as rejects.
    assert prepare.host_index_of("", 3) == 0
    # Known values: the same on every host, in every Python version (sha256, not hash()).
    assert [prepare.host_index_of(review_id, 2) for review_id in ("a", "b", "c", "R1")] == [
        int.from_bytes(__import__("hashlib").sha256(review_id.encode()).digest()[:8], "big") % 2 for review_id in ("a", "b", "c", "R1")
    ]


def test_host_identity_comes_from_resourceconfig(tmp_path):
    assert prepare.read_host_identity(tmp_path / "absent.json") == prepare.HostIdentity("algo-1", ("algo-1",))
    config = tmp_path / "resourceconfig.json"
    config.write_text(json.dumps({"current_host": "algo-2", "hosts": ["algo-2", "algo-1"], "network_interface_name": "eth0"}))
    assert prepare.read_host_identity(config) == prepare.HostIdentity("algo-2", ("algo-1", "algo-2"))
    config.write_text(json.dumps({"current_host": "algo-9", "hosts": ["algo-1"]}))
    with pytest.raises(prepare.PrepareError, match="algo-9"):
        prepare.read_host_identity(config)


def test_two_hosts_split_the_input_and_write_their_own_parts(tmp_path):
    input_dir = tmp_path / "input"
    for index in range(3):
        write_csv(input_dir / f"reviews-{index}.csv", review_rows({1: 8, 3: 8, 5: 8}, prefix=f"f{index}-"), COLUMNS)
    output_dir = tmp_path / "output"
    reports = []
    for host in ("algo-1", "algo-2"):
        config = tmp_path / f"resourceconfig-{host}.json"
        config.write_text(json.dumps({"current_host": host, "hosts": ["algo-1", "algo-2"]}))
        settings = settings_for(input_dir, output_dir, "--resource-config", str(config), "--train-fraction", "0.5",
                                "--validation-fraction", "0.25", "--test-fraction", "0.25")
        reports.append(prepare.run(settings))

    # Every host reads every file and keeps the rows whose id hashes to it.
    assert [report["input_files"] for report in reports] == [["reviews-0.csv", "reviews-1.csv", "reviews-2.csv"]] * 2
    assert [report["rows_scanned"] for report in reports] == [72, 72]
    assert sorted(p.name for p in (output_dir / "train").iterdir()) == ["part-algo-1.jsonl", "part-algo-2.jsonl"]
    assert sorted(p.name for p in (output_dir / "report").iterdir()) == ["prepare_report-algo-1.json", "prepare_report-algo-2.json"]
    assert sum(report["rows_read"] for report in reports) == 72
    assert all(report["rows_read"] == report["rows_written"]["total"] + report["rows_rejected"]["total"] for report in reports)
    written_ids = [r["review_id"] for split in reviews.SPLIT_NAMES for r in read_split(output_dir, split)]
    assert len(written_ids) == len(set(written_ids)) == sum(report["rows_written"]["total"] for report in reports)


# ---------------------------------------------------------------------------------------------
# Whole runs, in this process


def test_every_kind_of_bad_row_is_counted_and_nothing_is_lost(tmp_path):
    input_dir = tmp_path / "input"
    good = review_rows({1: 3, 2: 2, 3: 4, 4: 1, 5: 5})
    bad = [
        {"review_id": "", "star_rating": 5, "review_body": "no id"},
        {"review_id": "b1", "star_rating": 5, "review_body": ""},
        {"review_id": "b2", "star_rating": 5, "review_body": "   "},
        {"review_id": "b3", "star_rating": "", "review_body": "no rating"},
        {"review_id": "b4", "star_rating": "great", "review_body": "rating is a word"},
        {"review_id": "b5", "star_rating": "4.5", "review_body": "half a star"},
        {"review_id": "b6", "star_rating": 0, "review_body": "zero stars"},
        {"review_id": "b7", "star_rating": 6, "review_body": "six stars"},
        {"review_id": good[0]["review_id"], "star_rating": 4, "review_body": "same id again"},
    ]
    write_csv(input_dir / "a.csv", good[:8] + bad, COLUMNS)
    # A gzipped, unquoted TSV in a sub-folder (as Amazon ships them: a stray double quote is
    # text), and a row cut short (fewer fields than the header).
    good[8]["review_body"] = '"Best" purchase, 12" screen'
    tsv = input_dir / "more" / "b.tsv.gz"
    tsv.parent.mkdir()
    lines = ["\t".join(COLUMNS)] + ["\t".join(str(row[c]) for c in COLUMNS) for row in good[8:]] + ["short\t5"]
    tsv.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode("utf-8")))
    # A file with the date column: its rows' event time comes from it.
    dated = [dict(row, review_id=f"d{index}", review_date="2015-08-31") for index, row in enumerate(good[:3])]
    dated.append(dict(good[0], review_id="d-bad-date", review_date="not a date"))
    write_csv(input_dir / "c.csv", dated, COLUMNS + ("review_date",))

    report = prepare.run(settings_for(input_dir, tmp_path / "output", "--balance", "false", "--train-fraction", "0.6", "--validation-fraction", "0.2", "--test-fraction", "0.2"))

    expected_rejects = {
        prepare.MISSING_REVIEW_ID: 1,
        prepare.INVALID_UTF8: 0,
        prepare.MISSING_REVIEW_BODY: 3,  # empty, blank, and the short TSV row
        prepare.MISSING_STAR_RATING: 1,
        prepare.STAR_RATING_NOT_AN_INTEGER: 2,
        prepare.STAR_RATING_OUT_OF_RANGE: 2,
        prepare.INVALID_REVIEW_DATE: 1,
        prepare.DUPLICATE_REVIEW_ID: 1,
        prepare.DOWN_SAMPLED_FOR_BALANCE: 0,
    }
    assert report["rows_rejected"]["by_reason"] == expected_rejects
    assert report["rows_read"] == len(good) + len(bad) + 1 + len(dated)
    assert report["rows_read"] == report["rows_written"]["total"] + report["rows_rejected"]["total"]
    assert report["rows_written"]["total"] == len(good) + 3

    records = {r["review_id"]: r for split in reviews.SPLIT_NAMES for r in read_split(tmp_path / "output", split)}
    assert len(records) == report["rows_written"]["total"]
    assert records[good[0]["review_id"]]["review_body"] == good[0]["review_body"]  # first occurrence wins
    assert records[good[8]["review_id"]]["review_body"] == '"Best" purchase, 12" screen'
    assert {records[f"d{i}"]["date"] for i in range(3)} == {"2015-08-31T00:00:00Z"}
    assert records[good[1]["review_id"]]["date"] == report["event_time"]["default_event_time"] == EVENT_TIME
    assert report["event_time"]["files_with_date_column"] == 1
    # The first rejected rows are named by file and line (never by their text).
    assert {"file": "a.csv", "line": 10, "reason": prepare.MISSING_REVIEW_ID} in report["rows_rejected"]["first_rows"]
    assert {"file": "a.csv", "line": 18, "reason": prepare.DUPLICATE_REVIEW_ID} in report["rows_rejected"]["first_rows"]


def test_written_records_follow_the_prepared_split_contract(tmp_path):
    rows = review_rows({1: 10, 2: 10, 3: 10, 4: 10, 5: 10})
    rows[0]["review_body"] = "a very long review " * 40
    write_csv(tmp_path / "input" / "reviews.csv", rows, COLUMNS)
    report = prepare.run(settings_for(tmp_path / "input", tmp_path / "output", "--train-fraction", "0.8", "--validation-fraction", "0.1", "--test-fraction", "0.1"))

    star_of = {row["review_id"]: row["star_rating"] for row in rows}
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(minilm_tokenizer_dir()))
    for split in reviews.SPLIT_NAMES:
        records = read_split(tmp_path / "output", split)
        assert len(records) == report["rows_written"]["by_split"][split]
        for record in records:
            assert tuple(sorted(record)) == tuple(sorted(reviews.PREPARED_COLUMNS))
            assert record["split_type"] == split
            assert record["sentiment"] == reviews.star_rating_to_sentiment(star_of[record["review_id"]])
            assert record["label_id"] == record["sentiment"] + 1
            assert len(record["input_ids"]) == MAX_SEQ_LENGTH
            # The long review is cut to its head and tail first (reviews.TokenizationSettings.cut).
            text = reviews.TokenizationSettings(MAX_SEQ_LENGTH).cut(tokenizer, [record["review_body"]])[0]
            assert record["input_ids"] == tokenizer(text, max_length=MAX_SEQ_LENGTH, truncation=True, padding="max_length")["input_ids"]
    # Balanced: 20 negative, 10 neutral, 20 positive -> 10 each, 8/1/1 per class.
    assert report["rows_written"]["by_split_and_label"] == {
        "train": {"negative": 8, "neutral": 8, "positive": 8},
        "validation": {"negative": 1, "neutral": 1, "positive": 1},
        "test": {"negative": 1, "neutral": 1, "positive": 1},
    }
    assert report["rows_rejected"]["by_reason"][prepare.DOWN_SAMPLED_FOR_BALANCE] == 20
    saved = json.loads((tmp_path / "output" / "report" / "prepare_report-algo-1.json").read_text())
    assert saved == report


def test_splits_do_not_depend_on_the_number_of_workers_or_batch_size(tmp_path):
    write_csv(tmp_path / "input" / "reviews.csv", review_rows({1: 20, 3: 15, 5: 25}), COLUMNS)
    outputs = []
    for workers, batch_size in (("1", "1000"), ("2", "7")):
        output_dir = tmp_path / f"output-{workers}"
        prepare.run(settings_for(tmp_path / "input", output_dir, "--num-workers", workers, "--batch-size", batch_size, "--random-seed", "11"))
        outputs.append({split: (output_dir / split / "part-algo-1.jsonl").read_text() for split in reviews.SPLIT_NAMES})
    assert outputs[0] == outputs[1]
    assert outputs[0]["test"]  # the comparison is not between empty files


def test_inputs_that_cannot_be_used_fail_clearly(tmp_path):
    with pytest.raises(prepare.PrepareError, match="does not exist"):
        prepare.run(settings_for(tmp_path / "nowhere", tmp_path / "output"))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not a table")
    with pytest.raises(prepare.PrepareError, match="no input files"):
        prepare.run(settings_for(tmp_path / "empty", tmp_path / "output"))
    write_csv(tmp_path / "input" / "reviews.csv", [{"id": "1", "stars": 5, "text": "t"}], ("id", "stars", "text"))
    with pytest.raises(prepare.PrepareError, match=r"\['review_id', 'star_rating', 'review_body'\].*--id-column"):
        prepare.run(settings_for(tmp_path / "input", tmp_path / "output"))
    with pytest.raises(prepare.PrepareError, match="cannot load tokenizer"):
        prepare.run(settings_for(tmp_path / "input", tmp_path / "output", "--tokenizer", str(tmp_path / "no-tokenizer")))
    # ByT5's tokenizer exists in Python only (no vocabulary files: it reads bytes).
    slow = tmp_path / "byt5-tokenizer"
    slow.mkdir()
    (slow / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "ByT5Tokenizer"}))
    with pytest.raises(prepare.PrepareError, match=rf"^tokenizer '{re.escape(str(slow))}' has no fast \(Rust\) implementation; prepare needs one$"):
        prepare.run(settings_for(tmp_path / "input", tmp_path / "output", "--tokenizer", str(slow)))


# ---------------------------------------------------------------------------------------------
# Damaged input: counted rows or one clear error naming the file (and line), never a traceback


def write_bytes(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def csv_bytes(rows: list[dict], columns=COLUMNS) -> bytes:
    lines = [",".join(columns)] + [",".join(str(row.get(c, "")) for c in columns) for row in rows]
    return ("\n".join(lines) + "\n").encode("utf-8")


def test_a_byte_that_is_not_utf8_rejects_its_row_and_nothing_else(tmp_path):
    rows = review_rows({1: 4, 3: 4, 5: 4})
    data = csv_bytes(rows)
    # Latin-1 bytes: an é in one review's text, a ü in another review's id.
    data = data.replace(b"review 1 rated 1 stars", b"caf\xe9 review 1 rated 1 stars", 1)
    data = data.replace(b"r3-002,", b"r3-00\xfc2,", 1)
    # One in a column prepare does not use: the row is still usable.
    data = data.replace(b"r5-003,5,review 3 rated 5 stars word word word,Electronics", b"r5-003,5,review 3 rated 5 stars word word word,Electr\xf3nica", 1)
    write_bytes(tmp_path / "input" / "reviews.csv", data)

    report = prepare.run(settings_for(tmp_path / "input", tmp_path / "output", "--balance", "false",
                                      "--train-fraction", "0.5", "--validation-fraction", "0.25", "--test-fraction", "0.25"))

    assert report["rows_read"] == 12
    assert report["rows_rejected"]["by_reason"][prepare.INVALID_UTF8] == 2
    assert report["rows_written"]["total"] == 10
    assert [(r["file"], r["line"]) for r in report["rows_rejected"]["first_rows"]] == [("reviews.csv", 3), ("reviews.csv", 8)]
    written = {r["review_id"] for split in reviews.SPLIT_NAMES for r in read_split(tmp_path / "output", split)}
    assert "r5-003" in written and "r1-001" not in written


def test_a_review_with_nothing_visible_is_a_missing_review_body(tmp_path):
    # Serving refuses the same texts (reviews.clean_review_text): the model never sees one.
    rows = review_rows({1: 4, 3: 4, 5: 4})
    invisible = {"r1-000": "\u200b", "r3-000": "\x00", "r5-000": " \u2060\ufeff\u00ad\u3164 "}
    for row in rows:
        row["review_body"] = invisible.get(row["review_id"], row["review_body"])
    write_bytes(tmp_path / "input" / "reviews.csv", csv_bytes(rows))

    report = prepare.run(settings_for(tmp_path / "input", tmp_path / "output", "--balance", "false",
                                      "--train-fraction", "0.5", "--validation-fraction", "0.25", "--test-fraction", "0.25"))

    assert report["rows_rejected"]["by_reason"][prepare.MISSING_REVIEW_BODY] == 3
    written = {r["review_id"] for split in reviews.SPLIT_NAMES for r in read_split(tmp_path / "output", split)}
    assert written.isdisjoint(invisible) and len(written) == 9


@pytest.mark.parametrize(
    ("name", "damage"),
    [
        ("reviews.csv.gz", lambda data: gzip.compress(data)[:-30]),  # cut short: EOFError before
        ("reviews.csv.gz", lambda data: gzip.compress(data)[:40] + b"\x00" * 40 + gzip.compress(data)[80:]),  # corrupt stream
        ("reviews.csv.gz", lambda data: data),  # not gzip at all
    ],
)
def test_damaged_gzip_input_stops_with_the_file_and_line(tmp_path, name, damage):
    rows = review_rows({1: 40, 3: 40, 5: 40})
    write_bytes(tmp_path / "input" / name, damage(csv_bytes(rows)))
    with pytest.raises(prepare.PrepareError, match=rf"{name}:\d+: damaged or cut-short gzip data \(\w+: .*upload the file again"):
        prepare.run(settings_for(tmp_path / "input", tmp_path / "output"))


def test_extensions_match_in_any_case(tmp_path):
    write_bytes(tmp_path / "input" / "A.CSV.GZ", gzip.compress(csv_bytes(review_rows({1: 3, 3: 3, 5: 3}, prefix="a"))))
    lines = ["\t".join(COLUMNS)] + ["\t".join(str(row[c]) for c in COLUMNS) for row in review_rows({1: 3, 3: 3, 5: 3}, prefix="b")]
    write_bytes(tmp_path / "input" / "b.Tsv", ("\n".join(lines) + "\n").encode())
    write_bytes(tmp_path / "input" / "notes.TXT", b"not a table")
    # Other dots in a name are not extensions; a name with none, or only .gz, is no table.
    write_bytes(tmp_path / "input" / "reviews.2015-08.v2.csv.gz", gzip.compress(csv_bytes(review_rows({1: 3, 3: 3, 5: 3}, prefix="c"))))
    write_bytes(tmp_path / "input" / "README", b"not a table")
    write_bytes(tmp_path / "input" / "archive.gz", gzip.compress(b"not a table"))
    report = prepare.run(settings_for(tmp_path / "input", tmp_path / "output", "--train-fraction", "0.34",
                                      "--validation-fraction", "0.33", "--test-fraction", "0.33"))
    assert report["input_files"] == ["A.CSV.GZ", "b.Tsv", "reviews.2015-08.v2.csv.gz"]
    assert report["rows_read"] == 27 and report["rows_written"]["total"] == 27


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"a.csv": b"", "b.csv": csv_bytes(review_rows({1: 9, 3: 9, 5: 9}))}, r"a\.csv: empty file \(0 bytes\)"),
        ({"a.csv.gz": b""}, r"a\.csv\.gz: empty file \(0 bytes\)"),
        ({"a.csv.gz": gzip.compress(b"")}, r"a\.csv\.gz: no header line"),
        ({"a.csv": csv_bytes([]), "b.tsv": "\t".join(COLUMNS).encode() + b"\n"}, r"^the input holds no data rows \(header lines only\)$"),
        ({"a.csv": csv_bytes([{"review_id": f"x{i}", "star_rating": 9, "review_body": "t"} for i in range(3)] + [{"review_id": "", "star_rating": 1, "review_body": "t"}])},
         r"^all 4 rows were rejected \(missing_review_id 1, star_rating_out_of_range 3\); first at a\.csv:2$"),
    ],
    ids=["zero-byte-csv", "zero-byte-gz", "gz-of-nothing", "header-only", "all-rejected"],
)
def test_input_with_nothing_to_prepare_is_a_clear_error(tmp_path, files, message):
    for name, data in files.items():
        write_bytes(tmp_path / "input" / name, data)
    with pytest.raises(prepare.PrepareError, match=message):
        prepare.run(settings_for(tmp_path / "input", tmp_path / "output"))
    assert not (tmp_path / "output" / "train").exists()  # stopped before writing anything


def test_an_empty_split_is_a_clear_error(tmp_path):
    write_csv(tmp_path / "input" / "reviews.csv", review_rows({1: 4, 3: 4, 5: 4}), COLUMNS)
    with pytest.raises(prepare.PrepareError, match=r"the validation split is empty: 12 usable reviews .*--validation-fraction"):
        prepare.run(settings_for(tmp_path / "input", tmp_path / "output"))  # 5% of 4 per class rounds to 0


def test_duplicate_ids_in_files_of_different_hosts_meet_on_one_host(tmp_path):
    # The same reviews delivered twice, in two files: with two hosts, each file used to go to
    # its own host, and every duplicate reached both.
    rows = review_rows({1: 10, 3: 10, 5: 10})
    write_csv(tmp_path / "input" / "delivery-1.csv", rows, COLUMNS)
    write_csv(tmp_path / "input" / "delivery-2.csv", [dict(row, review_body=row["review_body"] + " again") for row in rows], COLUMNS)
    reports = []
    for host in ("algo-1", "algo-2"):
        config = tmp_path / f"resourceconfig-{host}.json"
        config.write_text(json.dumps({"current_host": host, "hosts": ["algo-1", "algo-2"]}))
        reports.append(prepare.run(settings_for(tmp_path / "input", tmp_path / "output", "--resource-config", str(config),
                                                "--balance", "false", "--train-fraction", "0.34",
                                                "--validation-fraction", "0.33", "--test-fraction", "0.33")))
    written = [r for split in reviews.SPLIT_NAMES for r in read_split(tmp_path / "output", split)]
    assert sorted(r["review_id"] for r in written) == sorted(row["review_id"] for row in rows)
    assert sum(report["rows_rejected"]["by_reason"][prepare.DUPLICATE_REVIEW_ID] for report in reports) == 30
    assert not any(r["review_body"].endswith(" again") for r in written)  # the first delivery wins


def test_event_time_comes_from_the_argument_never_from_the_clock(tmp_path, monkeypatch):
    import datetime as real_datetime

    class JumpingClock(real_datetime.datetime):
        calls = 0

        @classmethod
        def now(cls, tz=None):
            cls.calls += 1
            return real_datetime.datetime(2030, 1, 1, tzinfo=real_datetime.timezone.utc) + real_datetime.timedelta(hours=cls.calls)

    monkeypatch.setattr(real_datetime, "datetime", JumpingClock)
    if hasattr(prepare, "datetime"):
        monkeypatch.setattr(prepare, "datetime", JumpingClock)
    write_csv(tmp_path / "input" / "reviews.csv", review_rows({1: 20, 3: 20, 5: 20}), COLUMNS)
    outputs = []
    for run in ("first", "second"):
        prepare.run(settings_for(tmp_path / "input", tmp_path / run))
        outputs.append({split: (tmp_path / run / split / "part-algo-1.jsonl").read_text() for split in reviews.SPLIT_NAMES})
    assert outputs[0] == outputs[1]
    assert {r["date"] for split in reviews.SPLIT_NAMES for r in read_split(tmp_path / "first", split)} == {EVENT_TIME}


def test_rows_without_a_date_need_an_event_time(tmp_path, capsys):
    write_csv(tmp_path / "input" / "reviews.csv", review_rows({1: 20, 3: 20, 5: 20}), COLUMNS)
    settings = prepare.parse_settings([
        "--input-dir", str(tmp_path / "input"), "--output-dir", str(tmp_path / "output"),
        "--resource-config", str(tmp_path / "none.json"), "--tokenizer", str(minilm_tokenizer_dir()), "--num-workers", "1",
    ])
    with pytest.raises(prepare.PrepareError, match=r"reviews\.csv: no 'review_date' column and no --event-time: rows need an "
                                                   r"event time \(the pipeline passes its input snapshot's time\)$"):
        prepare.run(settings)
    with pytest.raises(SystemExit):
        prepare.parse_settings(["--event-time", "yesterday"])
    assert "expected an ISO-8601 date or date-time, got 'yesterday'" in capsys.readouterr().err
    assert prepare.parse_settings(["--event-time", "2026-11-29T20:01:02.345+01:00"]).event_time == "2026-11-29T19:01:02Z"


def test_input_that_changed_after_it_was_fingerprinted_is_refused(tmp_path):
    path = write_csv(tmp_path / "input" / "reviews.csv", review_rows({1: 20, 3: 20, 5: 20}), COLUMNS)
    size = path.stat().st_size
    report = prepare.run(settings_for(tmp_path / "input", tmp_path / "output", "--input-digest", "abc123",
                                      "--expected-input-files", "1", "--expected-input-bytes", str(size)))
    assert report["input"] == {"digest": "abc123", "files": 1, "bytes": size}
    with pytest.raises(prepare.PrepareError, match=r"^the input changed after the pipeline fingerprinted it \(files: expected 2, found 1; "
                                                   r"bytes: expected 1, found \d+\): start the pipeline again once the upload is complete$"):
        prepare.run(settings_for(tmp_path / "input", tmp_path / "output", "--expected-input-files", "2", "--expected-input-bytes", "1"))


def test_every_failure_leaves_a_one_line_reason_for_the_jobs_exit_message(tmp_path, monkeypatch):
    message = tmp_path / "opt" / "ml" / "output" / "message"
    write_csv(tmp_path / "input" / "reviews.csv", [], COLUMNS)
    arguments = [
        "--input-dir", str(tmp_path / "input"), "--output-dir", str(tmp_path / "output"),
        "--resource-config", str(tmp_path / "none.json"), "--tokenizer", str(minilm_tokenizer_dir()),
        "--num-workers", "1", "--event-time", EVENT_TIME, "--exit-message-file", str(message),
    ]
    assert prepare.main(arguments) == 2
    assert message.read_text() == "prepare: the input holds no data rows (header lines only)\n"

    with pytest.raises(SystemExit) as exit_info:
        prepare.main([*arguments, "--train-fraction", "2"])
    assert exit_info.value.code == 2
    assert message.read_text().startswith("prepare: invalid arguments: split fractions must sum to 1, got train 2.0")

    write_csv(tmp_path / "input" / "reviews.csv", review_rows({1: 20, 3: 20, 5: 20}), COLUMNS)
    monkeypatch.setattr(prepare, "tokenize_texts", lambda *args, **kwargs: (_ for _ in ()).throw(MemoryError("out of memory")))
    with pytest.raises(MemoryError):
        prepare.main(arguments)
    assert message.read_text() == "prepare: unexpected MemoryError: out of memory\n"
    assert len(message.read_bytes()) <= 1024


def test_column_names_are_configurable(tmp_path):
    rows = [{"id": f"x{i}", "stars": 1 + i % 5, "text": f"text {i}", "when": "2020-02-02"} for i in range(30)]
    write_csv(tmp_path / "input" / "reviews.csv", rows, ("id", "stars", "text", "when"))
    report = prepare.run(
        settings_for(
            tmp_path / "input", tmp_path / "output",
            "--id-column", "id", "--rating-column", "stars", "--text-column", "text", "--date-column", "when",
            "--train-fraction", "0.6", "--validation-fraction", "0.2", "--test-fraction", "0.2",
        )
    )
    assert report["rows_read"] == 30 and report["rows_rejected"]["total"] == 30 - report["rows_written"]["total"]
    assert {r["date"] for r in read_split(tmp_path / "output", "train")} == {"2020-02-02T00:00:00Z"}


def job_arguments(tmp_path: Path, *extra: str) -> list[str]:
    return [
        "--input-dir", str(tmp_path / "input"), "--output-dir", str(tmp_path / "output"),
        "--resource-config", str(tmp_path / "none.json"), "--tokenizer", str(minilm_tokenizer_dir()),
        "--num-workers", "1", "--event-time", EVENT_TIME, "--exit-message-file", str(tmp_path / "message"),
        "--train-fraction", "0.6", "--validation-fraction", "0.2", "--test-fraction", "0.2", *extra,
    ]


def run_with_ingestion(tmp_path, monkeypatch, store: FakeFeatureStore, group: str, *extra: str) -> int:
    write_csv(tmp_path / "input" / "reviews.csv", review_rows({1: 5, 3: 5, 5: 5}), COLUMNS)
    # FeatureGroup.ingest builds its clients from the environment, as boto3 does in the job.
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_FEATURESTORE_RUNTIME", store.endpoint_url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", store.endpoint_url)
    try:
        return prepare.main(job_arguments(tmp_path, "--ingest", "true", "--feature-group-name", group, *extra))
    finally:
        store.stop()


def test_failed_ingestion_is_reported_and_fails_the_job(tmp_path, monkeypatch):
    # Each PutRecord waits a little, so that concurrent calls would overlap.
    store = FakeFeatureStore(errors_by_record_id={"r3-002": PlannedError(400, "ValidationError")},
                             delay_seconds=0.02).start()
    assert run_with_ingestion(tmp_path, monkeypatch, store, DEV_FEATURE_GROUP, "--ingest-max-workers", "1",
                              "--ingest-max-attempts", "3", "--ingest-retry-mode", "adaptive") == 1
    report = json.loads((tmp_path / "output" / "report" / "prepare_report-algo-1.json").read_text())
    assert report["ingestion"]["failed"] == 1 and report["ingestion"]["succeeded"] == 14
    assert report["ingestion"]["first_failed_record_ids"] == ["r3-002"]
    # The retry settings the job was given are the ones botocore ran with, one call at a time.
    assert report["ingestion"]["retry_mode"] == "adaptive" and report["ingestion"]["max_attempts"] == 3
    assert store.max_in_flight == 1
    assert 0 < report["seconds"]["ingest"] < report["seconds"]["total"]
    # Every written record was offered once, in split order (train, validation, test).
    written = [r["review_id"] for split in reviews.SPLIT_NAMES for r in read_split(tmp_path / "output", split)]
    assert [review_id for _, review_id, _ in store.calls] == written
    assert (tmp_path / "message").read_text() == (
        f"prepare: 1 records could not be ingested into {DEV_FEATURE_GROUP} (see the report)\n"
    )


def test_a_missing_feature_group_fails_the_job_with_its_reason(tmp_path, monkeypatch):
    store = FakeFeatureStore().start()
    assert run_with_ingestion(tmp_path, monkeypatch, store, "no-such-group") == 1
    assert store.calls == []
    reason = (tmp_path / "message").read_text()
    assert reason.startswith("prepare: cannot ingest into feature group no-such-group: ")
    assert "ResourceNotFound" in reason


# ---------------------------------------------------------------------------------------------
# As SageMaker runs it: `python prepare.py --args` in its own folder


def run_prepare_script(arguments: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "prepare.py", *arguments],
        cwd=CONTAINER_CODE,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def small_input(tmp_path_factory) -> Path:
    input_dir = tmp_path_factory.mktemp("input")
    write_csv(input_dir / "reviews.csv", review_rows({1: 6, 2: 6, 3: 10, 4: 5, 5: 7}), COLUMNS)
    return input_dir


def script_arguments(input_dir: Path, output_dir: Path) -> list[str]:
    return [
        "--input-dir", str(input_dir), "--output-dir", str(output_dir),
        "--resource-config", str(output_dir / "no-resourceconfig.json"),
        "--tokenizer", str(minilm_tokenizer_dir()), "--max-seq-length", str(MAX_SEQ_LENGTH),
        "--balance", "true", "--train-fraction", "0.6", "--validation-fraction", "0.2", "--test-fraction", "0.2",
        "--random-seed", "5", "--num-workers", "2", "--batch-size", "4", "--log-every-rows", "5",
        "--event-time", EVENT_TIME, "--exit-message-file", str(output_dir / "message"),
    ]


@pytest.mark.slow  # a fresh interpreter imports transformers (and torch): 5-15 s
def test_script_runs_as_a_processing_job_without_ingestion(small_input, tmp_path):
    completed = run_prepare_script([*script_arguments(small_input, tmp_path), "--ingest", "false"])
    assert completed.returncode == 0, completed.stdout + completed.stderr

    report = json.loads((tmp_path / "report" / "prepare_report-algo-1.json").read_text())
    # 12 negative, 10 neutral, 12 positive: balanced to 10 each, 6/2/2 per class.
    assert report["rows_read"] == 34
    assert report["rows_written"]["by_split"] == {"train": 18, "validation": 6, "test": 6}
    assert report["rows_rejected"]["by_reason"][prepare.DOWN_SAMPLED_FOR_BALANCE] == 4
    assert report["ingestion"] is None
    for split, count in report["rows_written"]["by_split"].items():
        assert len(read_split(tmp_path, split)) == count
    # Progress is logged as it goes (batches of 4, a line at least every 5 reviews).
    assert len(re.findall(r"tokenized \d+/30 reviews", completed.stdout)) >= 5


@pytest.mark.slow  # a fresh interpreter imports transformers (and torch): 5-15 s
def test_script_ingests_every_written_record_into_the_feature_group(small_input, tmp_path):
    store = FakeFeatureStore(fail_first_calls=[PlannedError(400, "ThrottlingException"), PlannedError(500, "InternalFailure")]).start()
    try:
        completed = run_prepare_script(
            [*script_arguments(small_input, tmp_path), "--ingest", "true", "--feature-group-name", DEV_FEATURE_GROUP],
            env={"AWS_ENDPOINT_URL_SAGEMAKER_FEATURESTORE_RUNTIME": store.endpoint_url,
                 "AWS_ENDPOINT_URL_SAGEMAKER": store.endpoint_url},
        )
    finally:
        store.stop()
    assert completed.returncode == 0, completed.stdout + completed.stderr

    report = json.loads((tmp_path / "report" / "prepare_report-algo-1.json").read_text())
    assert report["ingestion"]["succeeded"] == report["rows_written"]["total"] == 30
    assert report["ingestion"]["failed"] == 0 and report["ingestion"]["retry_mode"] == "standard"
    assert len(store.calls) == 30 + 2  # the throttled and the failed call were retried by botocore
    assert store.described == [DEV_FEATURE_GROUP]
    written = {r["review_id"]: r for split in reviews.SPLIT_NAMES for r in read_split(tmp_path, split)}
    assert store.stored_record_ids() == {review_id: 1 for review_id in written}
    for review_id, features in store.stored_records().items():
        record = written[review_id]
        assert json.loads(features["input_ids"]) == record["input_ids"]
        assert features["split_type"] == record["split_type"]
        assert features["date"] == record["date"] == EVENT_TIME
        assert int(features["label_id"]) == record["label_id"]


@pytest.mark.slow  # a fresh interpreter imports transformers (and torch): 5-15 s
def test_script_stops_on_a_cut_short_gzip_with_one_line_and_no_traceback(tmp_path):
    write_bytes(tmp_path / "input" / "reviews.csv.gz", gzip.compress(csv_bytes(review_rows({1: 40, 3: 40, 5: 40})))[:-30])
    completed = run_prepare_script(script_arguments(tmp_path / "input", tmp_path / "output"))
    assert completed.returncode == 2, completed.stdout + completed.stderr
    assert "Traceback" not in completed.stdout + completed.stderr
    reason = (tmp_path / "output" / "message").read_text()
    assert re.fullmatch(r"prepare: \S+reviews\.csv\.gz:\d+: damaged or cut-short gzip data \(EOFError: .*\); upload the file again\n", reason)


# ---------------------------------------------------------------------------------------------
# The report and the job's exit, field by field


class TickingClock:
    """time.monotonic for prepare alone: each reading is TICK seconds after the one before."""

    TICK = 1.23456

    def __init__(self):
        self.now = 1000.0

    def monotonic(self) -> float:
        self.now += self.TICK
        return self.now


def test_the_report_accounts_for_every_row_setting_and_phase(tmp_path, monkeypatch):
    input_dir = tmp_path / "input"
    write_csv(input_dir / "reviews.csv", [dict(row, domain="product") for row in review_rows({1: 4, 3: 4, 5: 5})],
              (*COLUMNS, "domain"))
    dated = [dict(row, review_date="2015-08-31") for row in review_rows({1: 1, 3: 1, 5: 1}, prefix="d")]
    dated.append({"review_id": "d-no-rating", "star_rating": "", "review_body": "fine", "review_date": "2015-08-31"})
    write_csv(input_dir / "dated" / "more.csv", dated, (*COLUMNS, "review_date"))
    input_bytes = sum(path.stat().st_size for path in input_dir.rglob("*.csv"))
    config = tmp_path / "resourceconfig.json"
    config.write_text(json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]}))
    monkeypatch.setattr(prepare, "time", TickingClock())

    report = prepare.run(settings_for(
        input_dir, tmp_path / "output", "--resource-config", str(config), "--input-digest", "digest-1",
        "--expected-input-files", "2", "--expected-input-bytes", str(input_bytes), "--random-seed", "5",
        "--train-fraction", "0.6", "--validation-fraction", "0.2", "--test-fraction", "0.2",
    ))

    tick = TickingClock.TICK
    # 5 negative (4 + 1 dated), 5 neutral, 6 positive: balanced to 5 each, then 3/1/1 per class.
    expected = {
        "host": "algo-1",
        "hosts": ["algo-1"],
        "input": {"digest": "digest-1", "files": 2, "bytes": input_bytes},
        "input_files": ["dated/more.csv", "reviews.csv"],
        "rows_scanned": 17,
        "rows_read": 17,
        "rows_written": {
            "total": 15,
            "by_split": {"train": 9, "validation": 3, "test": 3},
            "by_split_and_label": {
                "train": {"negative": 3, "neutral": 3, "positive": 3},
                "validation": {"negative": 1, "neutral": 1, "positive": 1},
                "test": {"negative": 1, "neutral": 1, "positive": 1},
            },
            "by_split_and_domain": {
                name: dict(sorted(Counter("" if r["review_id"].startswith("d") else "product"
                                          for r in read_split(tmp_path / "output", name)).items()))
                for name in reviews.SPLIT_NAMES
            },
        },
        "rows_rejected": {
            "total": 2,
            "by_reason": {reason: 0 for reason in prepare.REJECT_REASONS} | {
                prepare.MISSING_STAR_RATING: 1, prepare.DOWN_SAMPLED_FOR_BALANCE: 1},
            # Named by its path under the input folder, not its bare file name.
            "first_rows": [{"file": "dated/more.csv", "line": 5, "reason": prepare.MISSING_STAR_RATING}],
        },
        "settings": {
            "balance": True,
            "split_fractions": {"train": 0.6, "validation": 0.2, "test": 0.2},
            "random_seed": 5,
            "test_domain": "*",
            "tokenizer": str(minilm_tokenizer_dir()),
            "max_seq_length": MAX_SEQ_LENGTH,
            "truncation": "head_tail",
            "columns": {"review_id": "review_id", "star_rating": "star_rating", "review_body": "review_body",
                        "review_date": "review_date", "domain": "domain"},
            "num_workers": 1,
            "batch_size": 1000,
        },
        "event_time": {"date_column": "review_date", "files_with_date_column": 1, "files_without_date_column": 1,
                       "default_event_time": EVENT_TIME},
        "ingestion": None,
        # Clock readings: start, tokenizer loaded | read | tokenize (its own start and one
        # progress line between) | write | total, 10 ticks after the start.
        "seconds": {"load_tokenizer": round(tick, 3), "read": round(tick, 3), "tokenize": round(3 * tick, 3),
                    "write": round(tick, 3), "total": round(10 * tick, 3)},
    }
    assert report == expected
    assert sum(sum(counts.values()) for counts in report["rows_written"]["by_split_and_domain"].values()) == 15
    # The file is the same report, diff-friendly: sorted keys, two-space indent, a final newline.
    saved = (tmp_path / "output" / "report" / "prepare_report-algo-1.json").read_text(encoding="utf-8")
    assert saved == json.dumps(expected, indent=2, sort_keys=True) + "\n"


class FreshRootLogger:
    """The root logger as a job's fresh interpreter has it (no handlers, WARNING), restored
    afterwards: pytest's own handlers would make logging.basicConfig a no-op."""

    def __enter__(self):
        self.root = logging.getLogger()
        self.saved = self.root.handlers[:], self.root.level
        for handler in self.saved[0]:
            self.root.removeHandler(handler)
        self.root.setLevel(logging.WARNING)
        return self

    def __exit__(self, *exc_info):
        for handler in self.root.handlers[:]:
            self.root.removeHandler(handler)
        for handler in self.saved[0]:
            self.root.addHandler(handler)
        self.root.setLevel(self.saved[1])


def test_a_job_that_succeeds_exits_0_logs_to_stdout_and_leaves_no_exit_message(tmp_path, capsys):
    write_csv(tmp_path / "input" / "reviews.csv", review_rows({1: 5, 3: 5, 5: 5}), COLUMNS)
    with FreshRootLogger():
        assert prepare.main(job_arguments(tmp_path)) == 0
    assert not (tmp_path / "message").exists()
    out = capsys.readouterr().out
    # INFO lines reach stdout (CloudWatch keeps the job's stdout), each with time, level and logger.
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO prepare: rows read 15 = written 15 \+ rejected 0 ",
                     out, flags=re.M), out


def test_a_failure_still_ends_with_its_status_when_the_exit_message_cannot_be_written(tmp_path):
    write_csv(tmp_path / "input" / "reviews.csv", [], COLUMNS)
    (tmp_path / "message").mkdir()  # a folder where the message file should go
    assert prepare.main(job_arguments(tmp_path)) == 2


def test_a_usage_error_goes_to_sagemakers_message_file_by_default(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(reviews, "EXIT_MESSAGE_FILE", str(tmp_path / "opt-ml-output-message"))
    with pytest.raises(SystemExit) as exit_info:
        prepare.main(["--batch-size", "0"])
    assert exit_info.value.code == 2
    assert (tmp_path / "opt-ml-output-message").read_text() == (
        "prepare: invalid arguments: argument --batch-size: must be at least 1, got 0\n")
    # -h after the bad argument changes nothing: the argument was refused before -h was read.
    with pytest.raises(SystemExit) as exit_info:
        prepare.main(["--batch-size", "0", "-h", "--exit-message-file", str(tmp_path / "message")])
    assert exit_info.value.code == 2
    assert (tmp_path / "message").read_text().startswith("prepare: invalid arguments: argument --batch-size")
    assert "show this help message" not in capsys.readouterr().out


def test_a_spawned_worker_loads_the_tokenizer_by_name_a_forked_one_reuses_the_inherited_one(monkeypatch):
    tokenization = reviews.TokenizationSettings(max_seq_length=MAX_SEQ_LENGTH)
    texts = ["a short review", "another one, a little longer than the first"]
    tokenizer = prepare.load_tokenizer(str(minilm_tokenizer_dir()))
    expected = reviews.encode_input_ids(tokenizer, texts, tokenization)
    monkeypatch.delenv("TOKENIZERS_PARALLELISM", raising=False)

    # Spawned (where fork is missing): nothing inherited, the worker loads the tokenizer by name.
    monkeypatch.setattr(prepare, "_worker_tokenizer", None)
    monkeypatch.setattr(prepare, "_worker_tokenization", None)
    prepare._init_worker(str(minilm_tokenizer_dir()), tokenization)
    assert prepare._encode_batch(texts) == expected
    # One process per core already: the tokenizer's own threads stay off in each worker.
    assert os.environ["TOKENIZERS_PARALLELISM"] == "false"

    # Forked: the parent's tokenizer came along, so the name is not read again.
    monkeypatch.setattr(prepare, "_worker_tokenizer", tokenizer)
    prepare._init_worker("/nonexistent/tokenizer", tokenization)
    assert prepare._encode_batch(texts) == expected


def test_progress_lines_while_reading_and_tokenizing(tmp_path, monkeypatch, caplog):
    write_csv(tmp_path / "input" / "reviews.csv", review_rows({1: 10, 3: 10, 5: 10}), COLUMNS)
    clock = TickingClock()
    clock.TICK = 0.25
    monkeypatch.setattr(prepare, "time", clock)
    caplog.set_level(logging.INFO, logger="prepare")
    prepare.run(settings_for(tmp_path / "input", tmp_path / "output", "--batch-size", "4", "--log-every-rows", "5",
                             "--train-fraction", "0.6", "--validation-fraction", "0.2", "--test-fraction", "0.2"))
    messages = [record.getMessage() for record in caplog.records if record.name == "prepare"]
    read = [m for m in messages if m.startswith("read ") and "so far" in m]
    assert read == [f"read {rows} rows ({rows} usable) so far, now in reviews.csv" for rows in range(5, 31, 5)]
    # Batches of 4 end at 4, 8, ... 28, 30: a line once at least 5 more are done, and at the end.
    # The clock reads 0.25 s later at each line, counted from the start of tokenizing.
    tokenized = [m for m in messages if m.startswith("tokenized ")]
    assert tokenized == [
        f"tokenized {done}/30 reviews ({done / (0.25 * line):.0f} reviews/s)"
        for line, done in enumerate((8, 12, 16, 20, 28, 30), start=1)
    ]


def test_a_job_of_one_batch_or_one_worker_starts_no_processes(tmp_path, monkeypatch):
    # Where processes cannot be started (no /dev/shm, as in AWS Lambda), --num-workers 1 still
    # works, and so does any worker count when the texts fit one batch.
    class NoProcesses:
        def __init__(self, *args, **kwargs):
            raise OSError("[Errno 38] Function not implemented: no /dev/shm")

    monkeypatch.setattr(prepare, "ProcessPoolExecutor", NoProcesses)
    write_csv(tmp_path / "input" / "reviews.csv", review_rows({1: 10, 3: 10, 5: 10}), COLUMNS)
    common = ("--train-fraction", "0.6", "--validation-fraction", "0.2", "--test-fraction", "0.2")
    for workers, batch_size in (("1", "4"), ("4", "30")):
        report = prepare.run(settings_for(tmp_path / "input", tmp_path / f"out-{workers}", "--num-workers", workers,
                                          "--batch-size", batch_size, *common))
        assert report["rows_written"]["total"] == 30
    with pytest.raises(OSError, match="no /dev/shm"):
        prepare.run(settings_for(tmp_path / "input", tmp_path / "out-pool", "--num-workers", "2",
                                 "--batch-size", "29", *common))


def test_read_reviews_on_its_own_reads_for_one_host_and_names_files_by_name(tmp_path):
    # As the benchmarks and the sample-data checks call it: no host identity, no input folder.
    rows = review_rows({1: 2, 3: 2, 5: 2}) + [{"review_id": "x", "star_rating": 9, "review_body": "t"}]
    path = write_csv(tmp_path / "deep" / "folder" / "reviews.csv", rows, COLUMNS)
    read = prepare.read_reviews([path], prepare.Columns(), default_event_time=EVENT_TIME, log_every_rows=100)
    assert (read.rows_scanned, read.rows_read, len(read.reviews)) == (7, 7, 6)
    assert read.reject_examples == [{"file": "reviews.csv", "line": 8, "reason": prepare.STAR_RATING_OUT_OF_RANGE}]
    assert read.reviews[0] == prepare.Review("r1-000", EVENT_TIME, -1, "review 0 rated 1 stars", "")


def test_the_report_names_the_first_20_rejected_rows(tmp_path):
    rows = review_rows({1: 5, 3: 5, 5: 5}) + [
        {"review_id": f"bad-{index}", "star_rating": "", "review_body": "t"} for index in range(25)]
    write_csv(tmp_path / "input" / "reviews.csv", rows, COLUMNS)
    report = prepare.run(settings_for(tmp_path / "input", tmp_path / "output", "--train-fraction", "0.6",
                                      "--validation-fraction", "0.2", "--test-fraction", "0.2"))
    assert report["rows_rejected"]["by_reason"][prepare.MISSING_STAR_RATING] == 25
    assert report["rows_rejected"]["first_rows"] == [
        {"file": "reviews.csv", "line": line, "reason": prepare.MISSING_STAR_RATING} for line in range(17, 37)]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", r"expected JSON with current_host and hosts \(Expecting property name"),
        (json.dumps({"hosts": ["algo-1"]}), r"expected JSON with current_host and hosts \('current_host'\)"),
        (json.dumps({"current_host": "algo-1", "hosts": 3}), r"expected JSON with current_host and hosts \(.*not iterable"),
    ],
    ids=["not-json", "no-current-host", "hosts-not-a-list"],
)
def test_a_resourceconfig_prepare_cannot_read_stops_the_job(tmp_path, content, message):
    config = tmp_path / "resourceconfig.json"
    config.write_text(content)
    with pytest.raises(prepare.PrepareError, match=rf"^{re.escape(str(config))}: {message}"):
        prepare.read_host_identity(config)


def test_rows_without_an_id_or_with_padded_or_undecodable_ids_meet_on_one_host(tmp_path):
    rows = review_rows({1: 10, 3: 10, 5: 10})
    write_csv(tmp_path / "input" / "a.csv", rows + [{"review_id": "", "star_rating": 5, "review_body": "no id"}], COLUMNS)
    # The same reviews again with their ids padded: stripped, they are duplicates of the first.
    write_csv(tmp_path / "input" / "b.csv", [dict(row, review_id=f" {row['review_id']} ") for row in rows], COLUMNS)
    # An id holding a byte that is not UTF-8 is hashed like any other, then rejected.
    write_bytes(tmp_path / "input" / "c.csv", csv_bytes([]) + b"r\xfc1,5,latin-1 id,Electronics\n")
    reports = []
    for host in ("algo-1", "algo-2"):
        config = tmp_path / f"resourceconfig-{host}.json"
        config.write_text(json.dumps({"current_host": host, "hosts": ["algo-2", "algo-1"]}))
        reports.append(prepare.run(settings_for(tmp_path / "input", tmp_path / "output", "--resource-config", str(config),
                                                "--balance", "false", "--train-fraction", "0.34",
                                                "--validation-fraction", "0.33", "--test-fraction", "0.33")))
    assert [report["hosts"] for report in reports] == [["algo-1", "algo-2"]] * 2
    by_reason = [report["rows_rejected"]["by_reason"] for report in reports]
    # The row without an id belongs to the first host of the sorted list, which counts it.
    assert [reasons[prepare.MISSING_REVIEW_ID] for reasons in by_reason] == [1, 0]
    assert sum(reasons[prepare.DUPLICATE_REVIEW_ID] for reasons in by_reason) == 30
    assert sum(reasons[prepare.INVALID_UTF8] for reasons in by_reason) == 1
    written = sorted(r["review_id"] for split in reviews.SPLIT_NAMES for r in read_split(tmp_path / "output", split))
    assert written == sorted(row["review_id"] for row in rows)


def test_a_host_that_owns_none_of_the_rows_says_so(tmp_path):
    write_csv(tmp_path / "input" / "reviews.csv", review_rows({5: 1}), COLUMNS)
    owner = prepare.host_index_of("r5-000", 2)
    idle = ("algo-1", "algo-2")[1 - owner]
    config = tmp_path / "resourceconfig.json"
    config.write_text(json.dumps({"current_host": idle, "hosts": ["algo-1", "algo-2"]}))
    with pytest.raises(prepare.PrepareError, match=rf"^none of the 1 rows belongs to host {idle} of 2: too few reviews"):
        prepare.run(settings_for(tmp_path / "input", tmp_path / "output", "--resource-config", str(config)))


def test_a_byte_that_is_not_utf8_in_the_rating_or_date_column_is_an_invalid_utf8_row(tmp_path):
    rows = [dict(row, review_date="2015-08-31") for row in review_rows({1: 4, 3: 4, 5: 4})]
    data = csv_bytes(rows, (*COLUMNS, "review_date")).replace(b"2015-08-31", b"2015-08-3\xb9", 1)
    data = data.replace(b"r5-001,5,", b"r5-001,5\xb9,", 1)
    write_bytes(tmp_path / "input" / "reviews.csv", data)
    report = prepare.run(settings_for(tmp_path / "input", tmp_path / "output", "--balance", "false",
                                      "--train-fraction", "0.5", "--validation-fraction", "0.25", "--test-fraction", "0.25"))
    assert report["rows_rejected"]["by_reason"][prepare.INVALID_UTF8] == 2
    assert report["rows_rejected"]["by_reason"][prepare.INVALID_REVIEW_DATE] == 0
    assert report["rows_rejected"]["by_reason"][prepare.STAR_RATING_NOT_AN_INTEGER] == 0


def test_tables_with_a_byte_order_mark_or_a_very_long_review_are_read(tmp_path):
    rows = review_rows({1: 4, 3: 4, 5: 4})
    rows[0]["review_body"] = "long " * 40_000  # 200 000 characters: over csv's default field limit
    write_bytes(tmp_path / "input" / "excel.csv", b"\xef\xbb\xbf" + csv_bytes(rows))
    report = prepare.run(settings_for(tmp_path / "input", tmp_path / "output", "--balance", "false",
                                      "--train-fraction", "0.5", "--validation-fraction", "0.25", "--test-fraction", "0.25"))
    assert report["rows_written"]["total"] == 12


@pytest.mark.parametrize("where", ["header", "row"])
def test_a_field_over_16_mib_stops_the_job_with_the_file_and_line(tmp_path, where):
    huge = "x" * (prepare.MAX_FIELD_CHARS + 1)
    rows = review_rows({1: 2, 3: 2, 5: 2})
    if where == "header":
        data = csv_bytes(rows, (*COLUMNS, huge))
    else:
        rows[2]["review_body"] = huge
        data = csv_bytes(rows)
    write_bytes(tmp_path / "input" / "reviews.csv", data)
    line = {"header": 1, "row": 4}[where]
    with pytest.raises(prepare.PrepareError, match=rf"reviews\.csv:{line}: unreadable CSV: field larger than field limit"):
        prepare.run(settings_for(tmp_path / "input", tmp_path / "output"))


@pytest.mark.parametrize(("keep", "complete_lines"), [(-30, 3), (30, 0)], ids=["in-a-row", "in-the-header"])
def test_a_cut_short_gzip_stops_at_the_line_it_broke_in(tmp_path, keep, complete_lines):
    cut_short = gzip.compress(csv_bytes(review_rows({1: 2, 3: 2, 5: 2})))[:keep]
    assert zlib.decompressobj(wbits=31).decompress(cut_short).count(b"\n") == complete_lines
    write_bytes(tmp_path / "input" / "reviews.csv.gz", cut_short)
    with pytest.raises(prepare.PrepareError,
                       match=rf"reviews\.csv\.gz:{complete_lines + 1}: damaged or cut-short gzip data \(EOFError: "):
        prepare.run(settings_for(tmp_path / "input", tmp_path / "output"))


@pytest.mark.parametrize(
    ("count", "fractions", "sizes"),
    [
        # The largest remainders get the rows left over, whatever the shares' sizes.
        (10, (0.61, 0.34, 0.05), (6, 3, 1)),
        (10, (0.05, 0.34, 0.61), (1, 3, 6)),
        # Equal remainders: train first, then validation.
        (1, (1 / 3, 1 / 3, 1 / 3), (1, 0, 0)),
        (2, (1 / 3, 1 / 3, 1 / 3), (1, 1, 0)),
        (0, (0.9, 0.05, 0.05), (0, 0, 0)),
    ],
)
def test_split_sizes_give_the_rows_left_over_to_the_largest_remainders(count, fractions, sizes):
    split = prepare.split_sizes(count, prepare.SplitFractions(*fractions))
    assert split == dict(zip(reviews.SPLIT_NAMES, sizes))


def test_each_split_is_written_shuffled_not_grouped_by_class_or_domain(tmp_path):
    rows = [dict(row, domain="product" if index % 2 else "tweet")
            for index, row in enumerate(review_rows({1: 40, 3: 40, 5: 40}))]
    write_csv(tmp_path / "input" / "reviews.csv", rows, (*COLUMNS, "domain"))
    for test_domain in ("*", "product"):
        output = tmp_path / f"output-{test_domain}".replace("*", "all")
        prepare.run(settings_for(tmp_path / "input", output, "--train-fraction", "0.8", "--validation-fraction", "0.1",
                                 "--test-fraction", "0.1", "--test-domain", test_domain))
        train = read_split(output, "train")
        labels = [record["label_id"] for record in train]
        # Grouped, the labels would change value twice; shuffled, dozens of times.
        assert sum(a != b for a, b in zip(labels, labels[1:])) > 20
        ids = [record["review_id"] for record in train]
        assert ids != sorted(ids)
        if test_domain == "product":
            domains = ["product" if int(r["review_id"].split("-")[1]) % 2 else "tweet" for r in train]
            assert sum(a != b for a, b in zip(domains, domains[1:])) > 20


def test_domain_values_are_read_without_surrounding_spaces(tmp_path):
    rows = [dict(row, domain=" product ") for row in review_rows({1: 10, 3: 10, 5: 10})]
    write_csv(tmp_path / "input" / "reviews.csv", rows, (*COLUMNS, "domain"))
    report = prepare.run(settings_for(tmp_path / "input", tmp_path / "output", "--train-fraction", "0.8",
                                      "--validation-fraction", "0.1", "--test-fraction", "0.1", "--test-domain", "product"))
    assert report["rows_written"]["by_split_and_domain"]["test"] == {"product": 3}


def test_the_random_seed_decides_which_reviews_are_kept_and_where_they_go(tmp_path):
    write_csv(tmp_path / "input" / "reviews.csv", review_rows({1: 30, 3: 20, 5: 30}), COLUMNS)
    written, tests = {}, {}
    for balance in ("true", "false"):
        for seed in ("1", "2"):
            output = tmp_path / f"output-{balance}-{seed}"
            prepare.run(settings_for(tmp_path / "input", output, "--balance", balance, "--random-seed", seed,
                                     "--train-fraction", "0.8", "--validation-fraction", "0.1", "--test-fraction", "0.1"))
            written[balance, seed] = {r["review_id"] for split in reviews.SPLIT_NAMES for r in read_split(output, split)}
            tests[balance, seed] = {r["review_id"] for r in read_split(output, "test")}
    # Balanced: 20 of each class are kept, which 20 depends on the seed.
    assert len(written["true", "1"]) == len(written["true", "2"]) == 60
    assert written["true", "1"] != written["true", "2"]
    # Unbalanced: every review is written; which of them are held out for testing depends on the seed.
    assert written["false", "1"] == written["false", "2"]
    assert tests["false", "1"] != tests["false", "2"]
