"""What the demo uploads: the product snippets whole, each other domain capped with a fixed
seed, TestDomain only when the data name their domains; and the targets it prints."""

from __future__ import annotations

import csv
from pathlib import Path

from local_pipeline import run_demo

HEADER = ["review_id", "star_rating", "review_body", "domain"]


def _write(path: Path, domain: str | None, rows: int) -> Path:
    header = HEADER if domain else HEADER[:-1]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for index in range(rows):
            writer.writerow([f"{domain}-{index}", 3, f"text {index}", *([domain] if domain else [])])
    return path


def _rows(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))[1:]


def test_the_mix_keeps_every_product_snippet_and_caps_the_other_domains(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    _write(data / "amazon_review_snippets.csv", "product", 50)
    _write(data / "tweets.csv", "tweet", 40)
    _write(data / "movie_review_snippets.csv", "movie", 10)
    files = run_demo.review_files(data, small=False, staging_dir=tmp_path / "staged", mix_cap=20)
    counts = {path.name: len(_rows(path)) for path in files}
    assert counts == {"amazon_review_snippets.csv": 50, "movie_review_snippets.csv": 10, "tweets.csv": 20}
    again = run_demo.review_files(data, small=False, staging_dir=tmp_path / "again", mix_cap=20)
    assert [_rows(path) for path in again] == [_rows(path) for path in files]  # a fixed seed
    assert run_demo.files_name_domains(files)
    assert run_demo.demo_parameters(False, domains=True)["TestDomain"] == "product"
    uncapped = run_demo.review_files(data, small=False, staging_dir=tmp_path / "all", mix_cap=0)
    assert sum(len(_rows(path)) for path in uncapped) == 100


def test_data_without_domains_gets_no_test_domain(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    files = [_write(data / "reviews.csv", None, 5)]
    assert not run_demo.files_name_domains(files)
    assert "TestDomain" not in run_demo.demo_parameters(False, domains=run_demo.files_name_domains(files))


def test_the_targets_say_met_or_missed():
    metrics = {"macro_f1": {"value": 0.71}, "neutral_recall": {"value": 0.42}}
    text = run_demo.target_lines(metrics, total_seconds=400)
    assert "macro_f1 0.710 (target >= 0.70: met)" in text
    assert "neutral_recall 0.420 (target >= 0.50: MISSED)" in text
    assert "wall time 400 s" in text and "(target <= 360 s: MISSED)" in text
