"""The offline demo end to end with the tiny model: prepare -> train (sagemaker-training
toolkit) -> evaluate -> condition -> local registration -> serving, on a small review CSV."""

from __future__ import annotations

import csv
import json
import random

import pytest

from local_pipeline import run_demo
from parity_env import skip_where_the_image_lacks
from tiny_roberta import synthetic_reviews

STARS_BY_SENTIMENT = {-1: (1, 2), 0: (3,), 1: (4, 5)}


@pytest.fixture(scope="module")
def reviews_csv_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reviews")
    rng = random.Random(7)
    with (folder / "reviews.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["review_id", "star_rating", "review_body"])
        for index, (text, sentiment) in enumerate(synthetic_reviews(300, seed=11)):
            writer.writerow([f"r{index:04d}", rng.choice(STARS_BY_SENTIMENT[sentiment]), text])
    return folder


@pytest.mark.slow
def test_demo_runs_every_step_with_the_same_scripts(tiny_model_dir, reviews_csv_dir, tmp_path, capfd):
    work = tmp_path / "demo"
    try:
        summary = run_demo.main([
            "--small", "--work-dir", str(work), "--data-dir", str(reviews_csv_dir),
            "--model-name-or-path", str(tiny_model_dir), "--epochs", "8", "--learning-rate", "0.003",
            "--min-accuracy", "0.5",
        ])
    except ModuleNotFoundError as missing:
        # The demo serves in its own process: one image's env cannot run all its steps.
        skip_where_the_image_lacks(missing, "the demo's serve step")
    output = capfd.readouterr().out

    # prepare wrote the contract's splits; training read them through the toolkit's channels.
    assert (work / "prepare" / "processing" / "output" / "train" / "part-algo-1.jsonl").is_file()
    hyperparameters = json.loads((work / "train" / "input" / "config" / "hyperparameters.json").read_text())
    assert json.loads(hyperparameters["sagemaker_program"]) == "train.py"
    assert json.loads(hyperparameters["epochs"]) == 8
    assert (work / "train" / "output" / "success").exists()
    assert "[metric] validation_accuracy=" in output

    # evaluate scored model.tar.gz; the condition passed; the package waits for approval.
    evaluation = json.loads((work / "evaluate" / "processing" / "evaluation" / "evaluation.json").read_text())
    accuracy = evaluation["multiclass_classification_metrics"]["accuracy"]["value"]
    assert accuracy == summary["test_accuracy"] >= 0.5
    package = json.loads((work / "registry" / "model-package.json").read_text())
    assert package["ModelApprovalStatus"] == "PendingManualApproval"
    assert package["CustomerMetadataProperties"]["test_accuracy"] == f"{accuracy:.4f}"
    assert package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"].endswith("model/model.tar.gz")

    # The artifact answered through the HandlerService.
    assert len(summary["predictions"]) == len(run_demo.SAMPLE_REVIEWS)
    assert {p["label"] for p in summary["predictions"]} <= {"negative", "neutral", "positive"}
    assert "an empty review is refused with 400" in output
    assert f"test accuracy {accuracy:.4f}" in output


def test_the_condition_stops_the_run_below_the_threshold():
    evaluation = {"multiclass_classification_metrics": {"accuracy": {"value": 0.41, "standard_deviation": "NaN"}}}
    with pytest.raises(SystemExit, match=r"test accuracy 0\.4100 is below the threshold 0\.6000"):
        run_demo.check_accuracy(evaluation, 0.6)
    assert run_demo.check_accuracy(evaluation, 0.41) == 0.41


def test_the_packaged_minilm_is_found():
    model_dir = run_demo.packaged_minilm_dir()
    assert (model_dir / "config.json").is_file() and (model_dir / "tokenizer.json").is_file()
