"""evaluate.py: SageMaker's model-quality JSON on a known prediction set, and the processing
step end to end on the trained tiny model's model.tar.gz."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import evaluate
import model_io
import reviews
import split_dataset
from tiny_roberta import write_prepared_splits

# negative, neutral, positive = 0, 1, 2; two reviews of each class.
ACTUAL = [0, 0, 1, 1, 2, 2]
PREDICTED = [0, 1, 1, 1, 2, 0]


def test_model_quality_report_on_a_known_prediction_set():
    report = evaluate.model_quality_report(ACTUAL, PREDICTED)
    metrics = report["multiclass_classification_metrics"]
    # Worked by hand: precision per class 1/2, 2/3, 1; recall 1/2, 1, 1/2; F1 1/2, 4/5, 2/3;
    # every class has support 2, so the weighted means are plain means.
    assert metrics["accuracy"] == {"value": pytest.approx(4 / 6), "standard_deviation": "NaN"}
    assert metrics["weighted_precision"]["value"] == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    assert metrics["weighted_recall"]["value"] == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)
    assert metrics["weighted_f1"]["value"] == pytest.approx((1 / 2 + 4 / 5 + 2 / 3) / 3)
    assert metrics["macro_f1"]["value"] == pytest.approx((1 / 2 + 4 / 5 + 2 / 3) / 3)
    assert metrics["negative_precision"]["value"] == pytest.approx(1 / 2)
    assert metrics["neutral_recall"]["value"] == pytest.approx(1.0)
    assert metrics["positive_recall"]["value"] == pytest.approx(1 / 2)
    assert metrics["positive_f1"]["value"] == pytest.approx(2 / 3)
    assert metrics["accuracy_best_constant_classifier"]["value"] == pytest.approx(2 / 6)
    assert metrics["confusion_matrix"] == {
        "negative": {"negative": 1, "neutral": 1, "positive": 0},
        "neutral": {"negative": 0, "neutral": 2, "positive": 0},
        "positive": {"negative": 1, "neutral": 0, "positive": 1},
    }


def test_report_has_exactly_the_contract_shape_and_is_json():
    report = json.loads(json.dumps(evaluate.model_quality_report(ACTUAL, PREDICTED)))
    assert list(report) == ["multiclass_classification_metrics"]
    metrics = report["multiclass_classification_metrics"]
    per_class = {f"{label}_{measure}" for label in reviews.LABEL_NAMES for measure in ("precision", "recall", "f1")}
    scalar = {"accuracy", "accuracy_best_constant_classifier", "weighted_precision", "weighted_recall", "weighted_f1",
              "macro_precision", "macro_recall", "macro_f1", *per_class}
    assert set(metrics) == scalar | {"confusion_matrix"}
    for name in scalar:
        assert set(metrics[name]) == {"value", "standard_deviation"}
        assert isinstance(metrics[name]["value"], float)
    assert all(set(row) == set(reviews.LABEL_NAMES) for row in metrics["confusion_matrix"].values())


def test_a_class_never_predicted_counts_as_zero_precision_not_an_error():
    report = evaluate.model_quality_report([0, 1, 2], [0, 0, 0])
    metrics = report["multiclass_classification_metrics"]
    assert metrics["accuracy"]["value"] == pytest.approx(1 / 3)
    assert metrics["weighted_precision"]["value"] == pytest.approx((1 / 3) / 3)
    assert metrics["confusion_matrix"]["positive"] == {"negative": 1, "neutral": 0, "positive": 0}


def test_a_model_that_ignores_a_class_scores_well_on_accuracy_but_not_on_macro_f1_or_its_recall():
    # 8 positive, 1 negative, 1 neutral: always "positive" is right 8 times in 10.
    actual = [2] * 8 + [0, 1]
    metrics = evaluate.model_quality_report(actual, [2] * 10)["multiclass_classification_metrics"]
    assert metrics["accuracy"]["value"] == pytest.approx(0.8)
    assert metrics["accuracy"]["value"] == metrics["accuracy_best_constant_classifier"]["value"]
    assert metrics["neutral_recall"]["value"] == metrics["negative_recall"]["value"] == 0.0
    assert metrics["macro_f1"]["value"] == pytest.approx((0 + 0 + 2 * 0.8 / 1.8) / 3)


def test_expected_calibration_error_on_known_probabilities():
    # Two reviews at confidence 0.9 (one right), two at 0.6 (both right): bins |0.5-0.9|, |1-0.6|.
    probabilities = [[0.9, 0.05, 0.05], [0.05, 0.9, 0.05], [0.2, 0.2, 0.6], [0.6, 0.2, 0.2]]
    actual = [0, 0, 2, 0]
    assert evaluate.expected_calibration_error(probabilities, actual) == pytest.approx((2 * 0.4 + 2 * 0.4) / 4)
    # A perfectly confident, always right model is perfectly calibrated; certainty lands in the last bin.
    assert evaluate.expected_calibration_error([[0.0, 0.0, 1.0]], [2]) == 0.0
    report = evaluate.model_quality_report(actual, [0, 1, 2, 0], probabilities)
    assert report["multiclass_classification_metrics"]["expected_calibration_error"]["value"] == pytest.approx(0.4)
    with pytest.raises(ValueError, match="one probability row per label"):
        evaluate.expected_calibration_error(probabilities[:1], actual)


def test_mismatched_or_empty_predictions_are_refused():
    with pytest.raises(ValueError, match="as many predictions as labels"):
        evaluate.model_quality_report([0, 1], [0])
    with pytest.raises(ValueError):
        evaluate.model_quality_report([], [])


def test_per_class_report_and_picture(tmp_path):
    report = evaluate.write_outputs(ACTUAL, PREDICTED, tmp_path)
    per_class = json.loads((tmp_path / evaluate.CLASS_REPORT_FILE).read_text())
    assert per_class["neutral"] == {"precision": pytest.approx(2 / 3), "recall": 1.0, "f1-score": pytest.approx(0.8), "support": 2.0}
    assert per_class["accuracy"] == pytest.approx(report["multiclass_classification_metrics"]["accuracy"]["value"])
    assert (tmp_path / evaluate.CONFUSION_MATRIX_PICTURE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_without_matplotlib_the_metrics_are_still_written(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` raise ImportError
    report = evaluate.write_outputs(ACTUAL, PREDICTED, tmp_path)
    assert json.loads((tmp_path / evaluate.EVALUATION_FILE).read_text()) == report
    assert (tmp_path / evaluate.CLASS_REPORT_FILE).is_file()
    assert not (tmp_path / evaluate.CONFUSION_MATRIX_PICTURE).exists()
    assert "matplotlib" in capsys.readouterr().err


def test_processing_step_scores_the_test_split_from_model_tar_gz(model_archive, prepared_dir, tmp_path):
    # As the pipeline calls it: --model-archive names the folder that holds model.tar.gz.
    completed = subprocess.run(
        [sys.executable, "evaluate.py", "--model-archive", str(model_archive.parent),
         "--test-dir", str(prepared_dir / "test"), "--output-dir", str(tmp_path / "evaluation")],
        cwd=Path(evaluate.__file__).parent, capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    metrics = json.loads((tmp_path / "evaluation" / "evaluation.json").read_text())["multiclass_classification_metrics"]

    # The same predictions computed here, independently of evaluate.py's batching.
    model, tokenizer, _ = model_io.load_for_inference(model_io.unpack_model_archive(model_archive, tmp_path / "unpacked"))
    test = split_dataset.load_split(prepared_dir / "test", pad_token_id=tokenizer.pad_token_id)
    expected_correct = 0
    for row, label in zip(test.input_ids, test.label_ids):
        ids = row[row != tokenizer.pad_token_id].unsqueeze(0)
        probabilities = model_io.class_probabilities(model, ids, ids.new_ones(ids.shape))
        expected_correct += int(probabilities.argmax() == label)
    assert metrics["accuracy"]["value"] == pytest.approx(expected_correct / len(test))
    assert sum(sum(row.values()) for row in metrics["confusion_matrix"].values()) == len(test) == 48
    assert metrics["accuracy"]["value"] > 0.55  # the tiny model learned (chance is 1/3)
    assert 0.0 <= metrics["expected_calibration_error"]["value"] <= 1.0
    for line in ("accuracy:", "macro_f1:", "neutral_recall:", "expected_calibration_error:"):
        assert line in completed.stdout
    for name in (evaluate.CLASS_REPORT_FILE, evaluate.CONFUSION_MATRIX_PICTURE):
        assert (tmp_path / "evaluation" / name).is_file()


def test_a_missing_model_archive_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="model archive .*model.tar.gz does not exist"):
        model_io.unpack_model_archive(tmp_path, tmp_path / "out")


# The processing step in process, on an untrained tiny model: what it scores and writes does not
# depend on what the model learned, and it runs in seconds, where the end-to-end test above
# trains a model first.
@pytest.fixture(scope="module")
def untrained_job(tmp_path_factory):
    from support.local_endpoint import build_tiny_artifact

    artifact = build_tiny_artifact(tmp_path_factory.mktemp("untrained"), max_seq_length=32)
    archive = model_io.pack_model_archive(artifact, tmp_path_factory.mktemp("s3") / "model.tar.gz")
    prepared = write_prepared_splits(artifact, tmp_path_factory.mktemp("prepared"), rows_per_split={"test": 7})
    model, tokenizer, _ = model_io.load_for_inference(artifact)
    test = split_dataset.load_split(prepared / "test", pad_token_id=tokenizer.pad_token_id)
    # Each review scored alone, without padding: evaluate.py's batches must not change a score.
    probabilities = []
    for row in test.input_ids:
        ids = row[row != tokenizer.pad_token_id].unsqueeze(0)
        probabilities.append(model_io.class_probabilities(model, ids, ids.new_ones(ids.shape))[0].tolist())
    return archive, prepared / "test", test.label_ids.tolist(), probabilities


def _argmax(row):
    return max(range(len(row)), key=row.__getitem__)


@pytest.mark.parametrize("max_samples, batch_size", [(0, 3), (4, 64), (0, 1)])
def test_the_step_scores_each_review_once_and_reports_what_it_wrote(untrained_job, tmp_path, capsys, max_samples, batch_size):
    archive, test_dir, labels, probabilities = untrained_job
    scored = len(labels) if max_samples == 0 else max_samples
    labels, probabilities = labels[:scored], probabilities[:scored]
    output = tmp_path / "evaluation"

    report = evaluate.main(["--model-archive", str(archive), "--test-dir", str(test_dir), "--output-dir", str(output),
                            "--batch-size", str(batch_size), "--max-samples", str(max_samples)])

    assert json.loads((output / evaluate.EVALUATION_FILE).read_text()) == report
    metrics = report["multiclass_classification_metrics"]
    predicted = [_argmax(row) for row in probabilities]
    assert metrics["confusion_matrix"] == evaluate.model_quality_report(labels, predicted)["multiclass_classification_metrics"]["confusion_matrix"]
    assert metrics["expected_calibration_error"]["value"] == pytest.approx(
        evaluate.expected_calibration_error(probabilities, labels), abs=1e-5)
    outcomes = list(reviews.read_jsonl(output / "model-quality" / "part-00000.jsonl"))
    assert [row["predicted_label"] for row in outcomes] == [reviews.ID2LABEL[p] for p in predicted]
    assert [row["confidence"] for row in outcomes] == pytest.approx([max(row) for row in probabilities], abs=1e-5)

    printed = capsys.readouterr().out
    assert f"scoring {scored} test reviews" in printed
    assert f"scored {scored}/{scored} test reviews" in printed
    assert f"accuracy: {metrics['accuracy']['value']:.4f}\n" in printed
    assert f"macro_f1: {metrics['macro_f1']['value']:.4f}\n" in printed
    assert "confusion_matrix:" not in printed
    assert (f"wrote {evaluate.CLASS_REPORT_FILE}, {evaluate.CONFUSION_MATRIX_PICTURE}, data-quality, "
            f"{evaluate.EVALUATION_FILE}, model-quality to {output}") in printed


@pytest.mark.parametrize("argument", [["--batch-size", "0"], ["--max-samples", "-1"]])
def test_a_batch_size_below_one_or_a_negative_sample_count_is_refused(untrained_job, tmp_path, argument):
    archive, test_dir, _, _ = untrained_job
    with pytest.raises(SystemExit) as refused:
        evaluate.main(["--model-archive", str(archive), "--test-dir", str(test_dir),
                       "--output-dir", str(tmp_path), *argument])
    assert str(refused.value) == "--batch-size must be >= 1 and --max-samples >= 0"
    assert not list(tmp_path.iterdir())


def test_without_arguments_the_step_reads_and_writes_sagemakers_processing_paths():
    args = evaluate.build_parser().parse_args([])
    # A processing job mounts inputs under /opt/ml/processing/input and uploads outputs from
    # /opt/ml/processing/<name>: run with no arguments, the script finds the pipeline's channels.
    assert (args.model_archive, args.test_dir, args.output_dir) == (
        "/opt/ml/processing/input/model/model.tar.gz", "/opt/ml/processing/input/test", "/opt/ml/processing/evaluation")
    assert (args.batch_size, args.max_samples) == (64, 0)
