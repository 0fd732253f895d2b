"""monitoring_baseline.py: the datasets the pipeline's Model Monitor baselines are computed from,
as evaluate.py writes them for the trained tiny model's test split."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import evaluate
import monitoring_baseline
import record_features
import reviews
import split_dataset

MQ, DQ = monitoring_baseline.MODEL_QUALITY_DIR, monitoring_baseline.DATA_QUALITY_DIR


def read_rows(path: Path) -> list[dict]:
    return list(reviews.read_jsonl(path))


def test_one_feature_row_and_one_outcome_per_review(tmp_path):
    paths = monitoring_baseline.write_baseline_datasets(
        tmp_path, ["great", "@anonymous meh #fail"], [2, 1], [2, 0], [0.9, 0.51234567], max_seq_length=64)
    features, outcomes = read_rows(paths[DQ]), read_rows(paths[MQ])
    assert [sorted(row) for row in features] == [sorted(record_features.FEATURE_NAMES)] * 2
    assert features[1]["unknown_token_share"] == pytest.approx(2 / 3)
    assert [(row["predicted_label"], row["confidence"]) for row in features] == [("positive", 0.9), ("negative", 0.512346)]
    assert outcomes == [{"label": "positive", "predicted_label": "positive", "confidence": 0.9},
                        {"label": "neutral", "predicted_label": "negative", "confidence": 0.512346}]


def test_mismatched_lengths_are_refused(tmp_path):
    with pytest.raises(ValueError, match="one text, label, prediction and confidence per review"):
        monitoring_baseline.write_baseline_datasets(tmp_path, ["a"], [1], [1, 2], [0.5], max_seq_length=64)


def test_evaluate_writes_the_baseline_datasets_of_its_predictions(model_archive, prepared_dir, tmp_path):
    output = tmp_path / "evaluation"
    completed = subprocess.run(
        [sys.executable, "evaluate.py", "--model-archive", str(model_archive.parent),
         "--test-dir", str(prepared_dir / "test"), "--output-dir", str(output)],
        cwd=Path(evaluate.__file__).parent, capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    test = split_dataset.load_split(prepared_dir / "test", pad_token_id=1)
    features = read_rows(output / DQ / monitoring_baseline.DATASET_FILE)
    outcomes = read_rows(output / MQ / monitoring_baseline.DATASET_FILE)
    assert len(features) == len(outcomes) == len(test)
    assert [row["review_characters"] for row in features] == [len(text.strip()) for text in test.review_bodies]
    assert [row["label"] for row in outcomes] == [reviews.ID2LABEL[i] for i in test.label_ids.tolist()]
    assert [row["predicted_label"] for row in features] == [row["predicted_label"] for row in outcomes]
    assert all(1 / 3 <= row["confidence"] <= 1 for row in outcomes)
    # The same outcomes as evaluation.json's confusion matrix.
    matrix = json.loads((output / evaluate.EVALUATION_FILE).read_text())["multiclass_classification_metrics"]["confusion_matrix"]
    for actual in reviews.LABEL_NAMES:
        for predicted in reviews.LABEL_NAMES:
            assert matrix[actual][predicted] == sum(
                1 for row in outcomes if (row["label"], row["predicted_label"]) == (actual, predicted))
