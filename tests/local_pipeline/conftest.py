"""Fixtures for running the pipeline locally: a tiny RoBERTa saved by the training image's own
transformers (as a hub download would be there), and a folder of synthetic raw reviews in the
Amazon Customer Reviews layout."""

from __future__ import annotations

import csv
import os
import subprocess
from pathlib import Path

import pytest

from local_pipeline import containers
from tiny_roberta import synthetic_reviews

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TRAINING_PYTHON = containers.PARITY_ROOT / "training" / "bin" / "python"
STARS_BY_SENTIMENT = {-1: 1, 0: 3, 1: 5}
RAW_COLUMNS = ["review_id", "star_rating", "review_body", "product_category"]


def require_training_parity_env() -> None:
    if not TRAINING_PYTHON.exists():
        pytest.skip("the training image's parity env is missing: `make setup-parity` builds it (make test does)")


@pytest.fixture(scope="session")
def tiny_model_for_images(tmp_path_factory) -> Path:
    require_training_parity_env()
    destination = tmp_path_factory.mktemp("tiny-roberta-images")
    environment = {**os.environ, "PYTHONPATH": f"{PROJECT_ROOT / 'container_code'}:{PROJECT_ROOT / 'tests'}"}
    completed = subprocess.run([str(TRAINING_PYTHON), str(PROJECT_ROOT / "tests" / "tiny_roberta.py"), str(destination)],
                               env=environment, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return destination


@pytest.fixture(scope="session")
def raw_reviews_dir(tmp_path_factory) -> Path:
    """300 synthetic reviews whose words carry their sentiment, as one CSV."""
    folder = tmp_path_factory.mktemp("raw-reviews")
    with (folder / "reviews.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(RAW_COLUMNS)
        for index, (text, sentiment) in enumerate(synthetic_reviews(300, seed=7)):
            writer.writerow([f"r{index:04d}", STARS_BY_SENTIMENT[sentiment], text, "Electronics"])
    return folder
