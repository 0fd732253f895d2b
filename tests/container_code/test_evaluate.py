"""evaluate.py: SageMaker's model-quality JSON on a known prediction set, and the processing
step end to end on the trained tiny model's model.tar.gz."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
import types
import warnings
from pathlib import Path
from xml.etree import ElementTree

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
    assert metrics["macro_precision"]["value"] == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    assert metrics["macro_recall"]["value"] == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)
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
    # Nor a warning: scikit-learn's UndefinedMetricWarning would land in the job's log as if
    # something were wrong with a model that merely never chose a class.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = evaluate.model_quality_report([0, 1, 2], [0, 0, 0])
        per_class = evaluate.per_class_report([0, 1, 2], [0, 0, 0])
    metrics = report["multiclass_classification_metrics"]
    assert metrics["accuracy"]["value"] == pytest.approx(1 / 3)
    assert metrics["weighted_precision"]["value"] == pytest.approx((1 / 3) / 3)
    assert metrics["macro_precision"]["value"] == pytest.approx((1 / 3) / 3)
    assert metrics["neutral_precision"]["value"] == metrics["positive_precision"]["value"] == 0.0
    assert metrics["confusion_matrix"]["positive"] == {"negative": 1, "neutral": 0, "positive": 0}
    assert per_class["neutral"]["precision"] == per_class["positive"]["precision"] == 0.0


def test_a_class_missing_from_the_test_split_is_reported_and_counts_as_zero_recall():
    # No neutral review in the split, none predicted: the gate must not pass a model that was
    # never tested on a class, so macro-F1 still averages over all three classes.
    actual, predicted = [0, 0, 2, 2], [0, 2, 2, 2]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        metrics = evaluate.model_quality_report(actual, predicted)["multiclass_classification_metrics"]
        per_class = evaluate.per_class_report(actual, predicted)
    negative_f1, positive_f1 = 2 * 1 * 0.5 / 1.5, 2 * (2 / 3) * 1 / (5 / 3)
    assert metrics["neutral_recall"]["value"] == metrics["neutral_precision"]["value"] == metrics["neutral_f1"]["value"] == 0.0
    assert metrics["negative_recall"]["value"] == pytest.approx(0.5)
    assert metrics["positive_precision"]["value"] == pytest.approx(2 / 3)
    assert metrics["macro_f1"]["value"] == pytest.approx((negative_f1 + 0 + positive_f1) / 3)
    assert metrics["macro_recall"]["value"] == pytest.approx((0.5 + 0 + 1) / 3)
    assert metrics["weighted_f1"]["value"] == pytest.approx((negative_f1 + positive_f1) / 2)
    assert metrics["confusion_matrix"] == {
        "negative": {"negative": 1, "neutral": 0, "positive": 1},
        "neutral": {"negative": 0, "neutral": 0, "positive": 0},
        "positive": {"negative": 0, "neutral": 0, "positive": 2},
    }
    assert per_class["neutral"] == {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 0.0}
    assert per_class["positive"]["f1-score"] == pytest.approx(positive_f1)


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
    with pytest.raises(ValueError, match="one probability row per label"):
        evaluate.expected_calibration_error([], [])


def test_the_two_most_confident_bins_are_kept_apart():
    # 0.95 (right) falls in the last of 15 bins, 0.9 (wrong) in the one before: |1 - 0.95| and
    # |0 - 0.9|, not one bin's |1 - 1.85|.
    probabilities = [[0.95, 0.03, 0.02], [0.9, 0.05, 0.05]]
    assert evaluate.expected_calibration_error(probabilities, [0, 1]) == pytest.approx((0.05 + 0.9) / 2)


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


def test_the_reports_are_indented_json_files_in_a_folder_made_for_them(tmp_path):
    output = tmp_path / "processing" / "evaluation"  # neither folder exists yet
    report = evaluate.write_outputs(ACTUAL, PREDICTED, output)
    # One key a line, two spaces a level, a final newline: readable and diffable in S3's console.
    written = (output / evaluate.EVALUATION_FILE).read_text()
    assert written.startswith('{\n  "multiclass_classification_metrics": {\n    "accuracy": {\n      "value": ')
    assert written.endswith("\n  }\n}\n")
    assert json.loads(written) == report
    per_class = (output / evaluate.CLASS_REPORT_FILE).read_text()
    assert per_class.startswith('{\n  "negative": {\n    "precision": ')
    assert per_class.endswith("\n  }\n}\n")
    # Written again into the same folder, as a retried processing job does: no error.
    assert evaluate.write_outputs(ACTUAL, PREDICTED, output) == report


SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def drawn_pictures(monkeypatch):
    """Each figure evaluate.py saves, also rendered as SVG with its text kept as text: what a
    reader of the PNG reads (numbers, labels, title), where, and in which colour."""
    import matplotlib
    from matplotlib.figure import Figure

    save = Figure.savefig
    drawings = []

    def save_and_render_as_svg(figure, *args, **kwargs):
        save(figure, *args, **kwargs)
        svg = io.StringIO()
        with matplotlib.rc_context({"svg.fonttype": "none"}):
            save(figure, svg, format="svg")
        drawings.append(ElementTree.fromstring(svg.getvalue()))

    monkeypatch.setattr(Figure, "savefig", save_and_render_as_svg)
    return drawings


def _svg_texts(drawing):
    texts = []
    for element in drawing.iter(f"{SVG}text"):
        style = dict(part.strip().split(": ", 1) for part in element.get("style").split(";") if part.strip())
        texts.append(types.SimpleNamespace(
            text=element.text, x=float(element.get("x")), y=float(element.get("y")),
            anchor=style.get("text-anchor", "start"), colour=style.get("fill", "#000000"),
            rotated="rotate(-90" in element.get("transform", "")))
    return texts


def test_the_confusion_matrix_picture_shows_each_count_in_its_cell(tmp_path, drawn_pictures):
    import matplotlib
    import matplotlib.image

    report = evaluate.write_outputs(ACTUAL, PREDICTED, tmp_path)
    metrics = report["multiclass_classification_metrics"]
    counts = metrics["confusion_matrix"]  # negative row: 1 1 0; neutral: 0 2 0; positive: 1 0 1
    largest = 2
    picture = matplotlib.image.imread(tmp_path / evaluate.CONFUSION_MATRIX_PICTURE)
    assert picture.shape[:2] == (400, 450)  # 4.5 x 4 inches at 100 dpi
    [drawing] = drawn_pictures
    texts = _svg_texts(drawing)

    names = list(reviews.LABEL_NAMES)
    columns = sorted((t for t in texts if t.text in names and t.anchor == "middle"), key=lambda t: t.x)
    rows = sorted((t for t in texts if t.text in names and t.anchor == "end"), key=lambda t: t.y)
    assert [t.text for t in columns] == [t.text for t in rows] == names  # predicted across, actual down
    assert {t.y for t in columns} == {columns[0].y} and {t.x for t in rows} == {rows[0].x}
    [across] = [t for t in texts if t.text == "predicted"]
    [down] = [t for t in texts if t.text == "actual"]
    assert across.y > columns[0].y and down.rotated and down.x < rows[0].x
    [title] = [t for t in texts if t.text.startswith("test accuracy")]
    assert title.text == f"test accuracy {metrics['accuracy']['value']:.3f}, macro-F1 {metrics['macro_f1']['value']:.3f}"
    assert title.y < rows[0].y

    numbers = [t for t in texts if t.text.isdigit()]
    assert len(numbers) == len(names) ** 2
    cell = columns[1].x - columns[0].x
    points_to_pixels = 100 / 72  # SVG is in points; the PNG has 100 pixels an inch
    for row in rows:
        for column in columns:
            count = counts[row.text][column.text]
            [number] = [t for t in numbers if t.x == pytest.approx(column.x) and abs(t.y - row.y) < cell / 2]
            # Centred in its cell: anchored at the column's middle, its line within 2 points of
            # the row label's (the label is centred on the row too).
            assert (number.text, number.anchor) == (str(count), "middle")
            assert abs(number.y - row.y) < 2
            # White on the dark cells (more than half the largest count), black on the light ones.
            assert number.colour == ("#ffffff" if count > largest / 2 else "#000000")
            # The cell's colour, read off the PNG beside the number: Blues, darker as the count grows.
            x = round((column.x + 0.35 * cell) * points_to_pixels)
            y = round((row.y - 0.35 * cell) * points_to_pixels)
            expected = matplotlib.colormaps["Blues"](count / largest)[:3]
            assert tuple(picture[y, x, :3]) == pytest.approx(expected, abs=0.02), (row.text, column.text)


def test_without_matplotlib_the_metrics_are_still_written(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` raise ImportError
    report = evaluate.write_outputs(ACTUAL, PREDICTED, tmp_path)
    assert json.loads((tmp_path / evaluate.EVALUATION_FILE).read_text()) == report
    assert (tmp_path / evaluate.CLASS_REPORT_FILE).is_file()
    assert not (tmp_path / evaluate.CONFUSION_MATRIX_PICTURE).exists()
    printed = capsys.readouterr()
    assert f"WARNING: no {evaluate.CONFUSION_MATRIX_PICTURE} written" in printed.err
    assert "install matplotlib in the processing image to get it\n" in printed.err
    assert "WARNING" not in printed.out


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
    # Every {value, standard_deviation} metric of evaluation.json, one line each, in its order.
    assert [line for line in printed.splitlines() if line.split(":")[0] in metrics] == [
        f"{name}: {entry['value']:.4f}" for name, entry in metrics.items() if name != "confusion_matrix"]
    assert (f"wrote {evaluate.CLASS_REPORT_FILE}, {evaluate.CONFUSION_MATRIX_PICTURE}, data-quality, "
            f"{evaluate.EVALUATION_FILE}, model-quality to {output}") in printed


class _PipedStdout(io.TextIOBase):
    """stdout as a processing job has it: a pipe to CloudWatch Logs, where what is printed
    shows once it is flushed."""

    def __init__(self):
        super().__init__()
        self.shown = self.pending = ""

    def writable(self):
        return True

    def write(self, text):
        self.pending += text
        return len(text)

    def flush(self):
        self.shown, self.pending = self.shown + self.pending, ""


def test_scoring_shows_its_progress_every_30_seconds_and_at_the_end(untrained_job, tmp_path, monkeypatch):
    archive, test_dir, labels, _ = untrained_job
    assert len(labels) == 7  # batches of 2: four batches
    stdout = _PipedStdout()
    monkeypatch.setattr(sys, "stdout", stdout)
    # The clock as the step reads it: at the start, after each batch, and when it prints. After
    # batch 1 exactly 30 s have passed (no line yet), after batch 2 31 s (a line, printed at
    # 32 s), batch 3 ends 8 s after that line (none), batch 4 is the last (a line at 45 s).
    readings = iter([1000.0, 1030.0, 1031.0, 1032.0, 1040.0, 1041.0, 1045.0])
    shown_at_reading = []

    def clock():
        shown_at_reading.append(stdout.shown)
        return next(readings, 2000.0)

    monkeypatch.setattr(evaluate, "time", types.SimpleNamespace(monotonic=clock))
    evaluate.main(["--model-archive", str(archive), "--test-dir", str(test_dir),
                   "--output-dir", str(tmp_path / "evaluation"), "--batch-size", "2"])

    printed = (stdout.shown + stdout.pending).splitlines()
    assert [line for line in printed if line.startswith("scored")] == [
        "scored 4/7 test reviews in 32s", "scored 7/7 test reviews in 45s"]
    # Each line is in the log while the job works on: the announcement before the first batch
    # is scored, the progress line before the next batch ends.
    assert "scoring 7 test reviews on " in shown_at_reading[0]
    assert "scored 4/7 test reviews in 32s\n" in shown_at_reading[4]


def test_the_data_quality_baseline_counts_truncation_at_the_models_sequence_length(untrained_job, tmp_path):
    archive, test_dir, _, _ = untrained_job
    # One review of 100 words: the tiny model reads 32 tokens (30 of text), the environment's
    # default length would read them all.
    [split_file] = test_dir.glob("*.jsonl")
    rows = list(reviews.read_jsonl(split_file))
    rows[0]["review_body"] = " ".join(["great"] * 100)
    reviews.write_jsonl(tmp_path / "test" / split_file.name, rows)
    evaluate.main(["--model-archive", str(archive), "--test-dir", str(tmp_path / "test"),
                   "--output-dir", str(tmp_path / "evaluation")])
    features = list(reviews.read_jsonl(tmp_path / "evaluation" / "data-quality" / "part-00000.jsonl"))
    assert features[0]["truncated_share"] == pytest.approx((100 - 30) / 100)
    assert [row["truncated_share"] for row in features[1:]] == [0.0] * (len(rows) - 1)


def test_help_says_what_the_step_does_and_what_its_options_default_to(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "400")  # argparse wraps at the terminal's width: one line an option
    with pytest.raises(SystemExit) as exited:
        evaluate.main(["--help"])
    assert exited.value.code == 0
    shown = " ".join(capsys.readouterr().out.split())
    assert " ".join(evaluate.__doc__.split()) in shown
    assert ("--model-archive MODEL_ARCHIVE model.tar.gz, a directory holding it, or an unpacked artifact "
            "directory (default: /opt/ml/processing/input/model/model.tar.gz)") in shown
    assert "--max-samples MAX_SAMPLES score only the first N test rows (0: all) (default: 0)" in shown


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
