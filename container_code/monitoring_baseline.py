"""The datasets Model Monitor's baselines are computed from, written by evaluate.py beside
evaluation.json: the test split as the data-quality analyzer will see captured requests (one
record_features row per review, with the served label and confidence), and as the
model-quality analyzer will see predictions merged with ground truth (label, predicted_label,
confidence). Both are JSON Lines, the dataset format the baselining jobs are given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import record_features
import reviews

DATA_QUALITY_DIR = "data-quality"
MODEL_QUALITY_DIR = "model-quality"
DATASET_FILE = "part-00000.jsonl"
# The model-quality dataset's columns (the baselining job's ground-truth and inference attributes).
GROUND_TRUTH_ATTRIBUTE = "label"
INFERENCE_ATTRIBUTE = "predicted_label"
PROBABILITY_ATTRIBUTE = "confidence"


def write_baseline_datasets(
    output_dir: Path,
    texts: Sequence[str],
    actual: Sequence[int],
    predicted: Sequence[int],
    confidences: Sequence[float],
    max_seq_length: int,
) -> dict[str, Path]:
    """Write both datasets under output_dir; returns their paths by kind."""
    if not len(texts) == len(actual) == len(predicted) == len(confidences):
        raise ValueError(f"need one text, label, prediction and confidence per review, got "
                         f"{len(texts)}, {len(actual)}, {len(predicted)}, {len(confidences)}")
    features = []
    outcomes = []
    for text, label_id, predicted_id, confidence in zip(texts, actual, predicted, confidences):
        prediction = {"label": reviews.ID2LABEL[predicted_id], "probability": confidence}
        features.append(record_features.with_prediction(
            record_features.text_features(text, max_seq_length), prediction).as_record())
        outcomes.append({GROUND_TRUTH_ATTRIBUTE: reviews.ID2LABEL[label_id],
                         INFERENCE_ATTRIBUTE: reviews.ID2LABEL[predicted_id],
                         PROBABILITY_ATTRIBUTE: round(float(confidence), 6)})
    paths = {DATA_QUALITY_DIR: Path(output_dir) / DATA_QUALITY_DIR / DATASET_FILE,
             MODEL_QUALITY_DIR: Path(output_dir) / MODEL_QUALITY_DIR / DATASET_FILE}
    reviews.write_jsonl(paths[DATA_QUALITY_DIR], features)
    reviews.write_jsonl(paths[MODEL_QUALITY_DIR], outcomes)
    return paths
