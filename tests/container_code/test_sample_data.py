"""The sample-data converter: the mean-rating mapping, the snippet parser, reading the archive
nested in vaderSentiment's source archive, and the CSV that prepare.py reads back."""

from __future__ import annotations

import io
import subprocess
import tarfile
from collections import Counter
from pathlib import Path

import pytest

import prepare
import reviews
from local_pipeline import sample_data

REAL_SDIST = sample_data.DEFAULT_CACHE_DIR / sample_data.VADER_SDIST_NAME
needs_real_sdist = pytest.mark.skipif(
    not REAL_SDIST.is_file(),
    reason=f"vaderSentiment's source archive is not in {sample_data.DEFAULT_CACHE_DIR} (`make data` downloads it)",
)

HAND_MADE_SNIPPETS = (
    "\ufeff1_1\t-0.9\tno picture, scrolling in black and white.\r\n"
    "1_2\t0.0\trepost from january 13, 2004.\r\n"
    "2_1\t2.5\tbest camera i have owned!\r\n"
    "\r\n"
    "2_2\t-3.1\ttotal junk, returned it.\r\n"
    "3_1\t0.5\tthe menus are \"ok\", i guess\r\n"
)


@pytest.mark.parametrize(
    ("mean", "stars"),
    [(-4.0, 1), (-2.0, 1), (-1.99, 2), (-0.5, 2), (-0.49, 3), (0.0, 3), (0.49, 3), (0.5, 4), (1.99, 4), (2.0, 5), (4.0, 5)],
)
def test_mean_rating_to_star_rating_bounds(mean, stars):
    assert sample_data.mean_rating_to_star_rating(mean) == stars


def test_mapping_is_symmetric_around_zero():
    for mean in [x / 20 for x in range(-80, 81)]:
        assert sample_data.mean_rating_to_star_rating(mean) + sample_data.mean_rating_to_star_rating(-mean) == 6


@pytest.mark.parametrize("mean", [-4.01, 4.5, float("nan")])
def test_mean_rating_outside_the_scale_is_refused(mean):
    with pytest.raises(ValueError, match="within"):
        sample_data.mean_rating_to_star_rating(mean)


def test_parse_snippets_names_the_bad_line():
    with pytest.raises(ValueError, match=r"f.txt:2: expected 3 tab-separated fields"):
        sample_data.parse_snippets(["1_1\t0.1\tok", "1_2\t0.1"], source="f.txt")
    with pytest.raises(ValueError, match=r"f.txt:1: mean rating 'high' is not a number"):
        sample_data.parse_snippets(["1_1\thigh\tok"], source="f.txt")


def fake_sdist(path: Path, snippets_text: str) -> Path:
    """A source archive with vaderSentiment's layout around a hand-made snippet file."""

    def tar_bytes(members: dict[str, bytes]) -> bytes:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
        return buffer.getvalue()

    inner = tar_bytes({sample_data.AMAZON_SNIPPETS_MEMBER: snippets_text.encode("utf-8"), "hutto_ICWSM_2014/tweets_GroundTruth.txt": b"x"})
    path.write_bytes(tar_bytes({sample_data.SNIPPETS_ARCHIVE_MEMBER: inner, "vaderSentiment-3.3.2/setup.py": b""}))
    return path


def test_converter_turns_a_hand_made_snippet_file_into_reviews_prepare_reads(tmp_path):
    snippets = sample_data.read_amazon_snippets(fake_sdist(tmp_path / "fake.tar.gz", HAND_MADE_SNIPPETS))
    assert [s.snippet_id for s in snippets] == ["1_1", "1_2", "2_1", "2_2", "3_1"]  # BOM gone, blank line skipped
    assert snippets[0].text == "no picture, scrolling in black and white."  # no trailing \r

    csv_path = tmp_path / "reviews" / sample_data.OUTPUT_FILE_NAME
    rows = sample_data.write_reviews_csv(snippets, csv_path)
    assert [(row["review_id"], row["star_rating"]) for row in rows] == [
        ("vader-amazon-1_1", 2), ("vader-amazon-1_2", 3), ("vader-amazon-2_1", 5), ("vader-amazon-2_2", 1), ("vader-amazon-3_1", 4),
    ]

    read = prepare.read_reviews([csv_path], prepare.Columns(), default_event_time="2020-01-01T00:00:00Z", log_every_rows=100)
    assert read.rows_read == 5 and not read.rejected
    assert [(r.review_id, r.sentiment, r.review_body) for r in read.reviews] == [
        (row["review_id"], reviews.star_rating_to_sentiment(row["star_rating"]), row["review_body"]) for row in rows
    ]


def test_a_domain_with_another_number_of_texts_than_documented_is_refused():
    snippets = sample_data.parse_snippets(["1_1\t0.1\tone"])
    with pytest.raises(RuntimeError, match="1 texts, expected 3708"):
        sample_data.check_sizes({sample_data.PRODUCT: snippets})


def test_every_domain_is_tagged_and_mapped_alike():
    snippet = sample_data.Snippet("7", -2.5, "what a waste")
    rows = {domain.name: sample_data.to_review_row(snippet, domain) for domain in sample_data.DOMAINS}
    assert {name: row["domain"] for name, row in rows.items()} == {name: name for name in rows}
    assert {row["star_rating"] for row in rows.values()} == {1}
    assert rows["tweet"]["review_id"] == "vader-tweet-7" and rows["product"]["product_category"] == "Electronics"


def test_duplicate_snippet_ids_are_refused(tmp_path):
    snippets = sample_data.parse_snippets(["1_1\t0.1\tone", "1_1\t0.2\ttwo"])
    with pytest.raises(ValueError, match="duplicate snippet ids"):
        sample_data.write_reviews_csv(snippets, tmp_path / "out.csv")


def test_a_download_that_does_not_match_the_pinned_hash_is_refused(tmp_path, monkeypatch):
    def pip_that_serves_other_bytes(command, **kwargs):
        Path(command[command.index("--dest") + 1], sample_data.VADER_SDIST_NAME).write_bytes(b"not the archive")
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(sample_data.subprocess, "run", pip_that_serves_other_bytes)
    with pytest.raises(RuntimeError, match="differs from the pinned"):
        sample_data.download_sdist(tmp_path)


@needs_real_sdist
def test_real_snippets_convert_to_a_usable_three_class_dataset(tmp_path, monkeypatch, capsys):
    def no_download(*args, **kwargs):
        raise AssertionError("the cached archive should have been used")

    monkeypatch.setattr(sample_data.subprocess, "run", no_download)
    assert sample_data.main(["--dest", str(tmp_path), "--cache-dir", str(sample_data.DEFAULT_CACHE_DIR)]) == 0
    printed = capsys.readouterr().out
    assert "wrote 3708 product texts" in printed and "rows per sentiment: negative:" in printed
    files = {domain.name: tmp_path / domain.output_file_name for domain in sample_data.DOMAINS}
    everything = prepare.read_reviews(list(files.values()), prepare.Columns(), default_event_time="2020-01-01T00:00:00Z",
                                      log_every_rows=10**6)
    assert everything.rows_read == 23_703 and not everything.rejected
    assert Counter(r.domain for r in everything.reviews) == {"product": 3708, "movie": 10605, "editorial": 5190, "tweet": 4200}

    csv_path = tmp_path / sample_data.OUTPUT_FILE_NAME
    read = prepare.read_reviews([csv_path], prepare.Columns(), default_event_time="2020-01-01T00:00:00Z", log_every_rows=10**6)
    assert read.rows_read == 3708 and not read.rejected  # the dataset's documented size, all usable
    per_class = Counter(r.sentiment for r in read.reviews)
    assert min(per_class.values()) >= 0.15 * read.rows_read  # neutral is a usable class
    assert all(r.review_id.startswith("vader-amazon-") and r.domain == "product" for r in read.reviews)
    # Deterministic: a second conversion writes the same bytes.
    first = csv_path.read_bytes()
    sample_data.main(["--dest", str(tmp_path), "--cache-dir", str(sample_data.DEFAULT_CACHE_DIR)])
    assert csv_path.read_bytes() == first
