"""`make demo` end to end on the tiny model: the generated definition upserted into moto,
executed, the package registered, and its artifact served over HTTP by the HuggingFace
inference toolkit."""

from __future__ import annotations

import pytest

from local_pipeline import run_demo
from local_run_support import tiny_training_parameters

pytestmark = pytest.mark.slow


def test_demo_executes_the_definition_and_serves_the_registered_package(tiny_model_for_images, raw_reviews_dir, tmp_path, capfd):
    overrides = [f"--parameter={name}={value}" for name, value in tiny_training_parameters(tiny_model_for_images).items()]
    summary = run_demo.main(["--small", "--data-dir", str(raw_reviews_dir), "--work-dir", str(tmp_path / "demo"), *overrides])
    output = capfd.readouterr().out

    assert summary["execution"]["PipelineExecutionStatus"] == "Succeeded"
    steps = [step["StepName"] for step in reversed(summary["steps"]["PipelineExecutionSteps"])]
    assert steps == ["FingerprintInput", "PrepareReviews", "TrainModel", "SealModelArtifact", "EvaluateModel",
                     "DataQualityBaseline", "ModelQualityBaseline", "CheckModelQuality", "CheckNotYetRegistered", "Register-RegisterModel", "Create-CreateModel"]
    assert summary["model_package_arn"].endswith(":model-package/review-classifier-dev/1")
    assert summary["test_accuracy"] >= 0.6  # dev's accuracy floor
    assert len(summary["predictions"]) == len(run_demo.SAMPLE_REVIEWS)
    assert {prediction["label"] for prediction in summary["predictions"]} <= {"negative", "neutral", "positive"}
    # Per-step seconds, as list-pipeline-execution-steps would give them.
    assert set(summary["seconds"]) >= {"PrepareReviews", "TrainModel", "EvaluateModel", "serve", "total"}
    assert "upserted arn:aws:sagemaker:us-east-1:111111111111:pipeline/review-classifier-dev-training" in output
    assert "an empty review is refused with 400" in output


def test_a_run_below_the_threshold_stops_with_the_fail_steps_message(tiny_model_for_images, raw_reviews_dir, tmp_path):
    overrides = [f"--parameter={name}={value}"
                 for name, value in tiny_training_parameters(tiny_model_for_images, MinAccuracy="1.01", Epochs="1").items()]
    # One epoch may leave the model below one of dev's floors too: then that is the threshold it missed.
    with pytest.raises(SystemExit, match=r"Evaluated (accuracy .* is below (the minimum accuracy 1\.01|dev's accuracy floor 0\.6)"
                                         r"|recall of class \w+ .* is below dev's minimum class recall 0\.3 .*"
                                         r"|macro-F1 .* is below dev's floor 0\.55 .*)$"):
        run_demo.main(["--data-dir", str(raw_reviews_dir), "--work-dir", str(tmp_path / "demo"), "--no-serve", *overrides])


@pytest.mark.parametrize("argument", ["Epochs", "=3", "Epochs3"])
def test_a_malformed_parameter_override_is_refused(argument, capsys):
    with pytest.raises(SystemExit):
        run_demo.parse_args(["--parameter", argument])
    assert "expected Name=Value" in capsys.readouterr().err
