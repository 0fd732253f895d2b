"""Parameters that let the tiny model learn the synthetic reviews in a local pipeline run."""

from __future__ import annotations

from pathlib import Path


def tiny_training_parameters(model_dir: Path, **overrides: str) -> dict[str, str]:
    """Enough for the tiny model to learn the synthetic reviews' word cues in seconds."""
    return {
        "ModelNameOrPath": str(model_dir), "MaxSeqLength": "32", "BalanceDataset": "false",
        "TrainFraction": "0.6", "ValidationFraction": "0.2", "TestFraction": "0.2",
        "Epochs": "8", "LearningRate": "0.003", "TrainBatchSize": "16",
        "IngestIntoFeatureStore": "false", **overrides,
    }
