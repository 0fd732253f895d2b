"""SageMaker processing step: scores the trained model on the test split and writes
evaluation.json in SageMaker's model-quality format (the pipeline's quality gate reads accuracy,
macro-F1 and each class's recall from it), a per-class report and a confusion-matrix picture.

Accuracy alone passes a model that ignores a class (1 neutral review in 5 can be given up for
0.8); macro-F1 and per-class recall do not, and the expected calibration error says how far
the probabilities the endpoint returns can be read as probabilities."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

import model_io
import monitoring_baseline
import reviews
import split_dataset

EVALUATION_FILE = "evaluation.json"
CLASS_REPORT_FILE = "classification_report.json"
CONFUSION_MATRIX_PICTURE = "confusion_matrix.png"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--model-archive", default="/opt/ml/processing/input/model/model.tar.gz",
                        help="model.tar.gz, a directory holding it, or an unpacked artifact directory")
    parser.add_argument("--test-dir", default="/opt/ml/processing/input/test")
    parser.add_argument("--output-dir", default="/opt/ml/processing/evaluation")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-samples", type=int, default=0, help="score only the first N test rows (0: all)")
    return parser


# Equal-width confidence bins of the expected calibration error (Guo et al. 2017 use 15).
CALIBRATION_BINS = 15


def class_metric_name(label: str, measure: str) -> str:
    """`neutral_recall`: the key of one class's precision, recall or f1 in evaluation.json."""
    return f"{label}_{measure}"


def expected_calibration_error(probabilities: Sequence[Sequence[float]], actual: Sequence[int],
                               bins: int = CALIBRATION_BINS) -> float:
    """Mean |accuracy - confidence| over equal-width bins of the top-class probability, each
    bin weighted by its share of the reviews."""
    if len(probabilities) != len(actual) or not actual:
        raise ValueError(f"need one probability row per label, and at least one (got {len(probabilities)}, {len(actual)})")
    totals = [[0, 0.0, 0] for _ in range(bins)]  # reviews, summed confidence, correct
    for row, label in zip(probabilities, actual):
        confidence = max(row)
        predicted = max(range(len(row)), key=row.__getitem__)
        # A confidence of exactly 1.0 belongs in the last bin, not one past it.
        bucket = totals[min(int(confidence * bins), bins - 1)]
        bucket[0] += 1
        bucket[1] += confidence
        bucket[2] += int(predicted == label)
    return sum(abs(correct - confidence) for _, confidence, correct in totals) / len(actual)


def model_quality_report(actual: Sequence[int], predicted: Sequence[int],
                         probabilities: Sequence[Sequence[float]] | None = None) -> dict:
    """SageMaker's multiclass model-quality JSON; labels are the class names. Beside the
    schema's accuracy, weighted means, best-constant accuracy and confusion matrix: macro
    means, each class's precision/recall/f1 (`neutral_recall`), and, given the probabilities,
    the expected calibration error; every one as {value, standard_deviation}, as the schema
    writes a metric."""
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    if len(actual) != len(predicted) or not actual:
        raise ValueError(f"need as many predictions as labels, and at least one (got {len(actual)}, {len(predicted)})")
    label_ids = sorted(reviews.ID2LABEL)
    precision, recall, f1, _ = precision_recall_fscore_support(
        actual, predicted, labels=label_ids, average="weighted", zero_division=0
    )
    macro_precision, macro_recall, macro_f1, _ = precision_recall_fscore_support(
        actual, predicted, labels=label_ids, average="macro", zero_division=0
    )
    class_precision, class_recall, class_f1, _ = precision_recall_fscore_support(
        actual, predicted, labels=label_ids, average=None, zero_division=0
    )
    matrix = confusion_matrix(actual, predicted, labels=label_ids)

    def metric(value: float) -> dict:
        # SageMaker's model-quality schema writes an unknown deviation as the string "NaN".
        return {"value": float(value), "standard_deviation": "NaN"}

    metrics = {
        "accuracy": metric(accuracy_score(actual, predicted)),
        # What always answering the most frequent class scores: a model near it learned little.
        "accuracy_best_constant_classifier": metric(matrix.sum(axis=1).max() / len(actual)),
        "weighted_precision": metric(precision),
        "weighted_recall": metric(recall),
        "weighted_f1": metric(f1),
        "macro_precision": metric(macro_precision),
        "macro_recall": metric(macro_recall),
        "macro_f1": metric(macro_f1),
    }
    for index, label_id in enumerate(label_ids):
        label = reviews.ID2LABEL[label_id]
        for measure, values in (("precision", class_precision), ("recall", class_recall), ("f1", class_f1)):
            metrics[class_metric_name(label, measure)] = metric(values[index])
    if probabilities is not None:
        metrics["expected_calibration_error"] = metric(expected_calibration_error(probabilities, actual))
    metrics["confusion_matrix"] = {
        reviews.ID2LABEL[a]: {reviews.ID2LABEL[p]: int(matrix[i, j]) for j, p in enumerate(label_ids)}
        for i, a in enumerate(label_ids)
    }
    return {"multiclass_classification_metrics": metrics}


def per_class_report(actual: Sequence[int], predicted: Sequence[int]) -> dict:
    from sklearn.metrics import classification_report

    return classification_report(
        actual, predicted, labels=sorted(reviews.ID2LABEL), target_names=list(reviews.LABEL_NAMES),
        output_dict=True, zero_division=0,
    )


def draw_confusion_matrix(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # processing containers have no display
    import matplotlib.pyplot as plt

    matrix = report["multiclass_classification_metrics"]["confusion_matrix"]
    names = list(reviews.LABEL_NAMES)
    counts = [[matrix[a][p] for p in names] for a in names]
    figure, axes = plt.subplots(figsize=(4.5, 4))
    axes.imshow(counts, cmap="Blues")
    axes.set_xticks(range(len(names)), names)
    axes.set_yticks(range(len(names)), names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("actual")
    largest = max(max(row) for row in counts) or 1
    for i, row in enumerate(counts):
        for j, count in enumerate(row):
            axes.text(j, i, str(count), ha="center", va="center", color="white" if count > largest / 2 else "black")
    metrics = report["multiclass_classification_metrics"]
    axes.set_title(f"test accuracy {metrics['accuracy']['value']:.3f}, macro-F1 {metrics['macro_f1']['value']:.3f}")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def predict_split(model, split: split_dataset.TokenizedSplit, batch_size: int) -> list[list[float]]:
    """Each test review's class probabilities, in label-id order."""
    import torch

    loader = torch.utils.data.DataLoader(
        split_dataset.SplitRows(split), batch_size=batch_size, shuffle=False,
        collate_fn=split_dataset.TrimmedBatchCollator(split, trim_padding=True),
    )
    predicted: list[list[float]] = []
    started = last = time.monotonic()
    for batch_number, batch in enumerate(loader, start=1):
        probabilities = model_io.class_probabilities(model, batch["input_ids"], batch["attention_mask"])
        predicted.extend(probabilities.tolist())
        if time.monotonic() - last > 30 or batch_number == len(loader):
            last = time.monotonic()
            print(f"scored {len(predicted)}/{len(split)} test reviews in {last - started:.0f}s", flush=True)
    return predicted


def write_outputs(actual: Sequence[int], predicted: Sequence[int], output_dir: Path,
                  probabilities: Sequence[Sequence[float]] | None = None) -> dict:
    output_dir.mkdir(parents=True, exist_ok=True)
    report = model_quality_report(actual, predicted, probabilities)
    (output_dir / EVALUATION_FILE).write_text(json.dumps(report, indent=2) + "\n")
    (output_dir / CLASS_REPORT_FILE).write_text(json.dumps(per_class_report(actual, predicted), indent=2) + "\n")
    try:
        draw_confusion_matrix(report, output_dir / CONFUSION_MATRIX_PICTURE)
    except ImportError as error:
        # The picture is for people; the pipeline's condition reads evaluation.json, which is
        # already written. An image without matplotlib must not fail a whole training run.
        print(f"WARNING: no {CONFUSION_MATRIX_PICTURE} written ({error}); install matplotlib in the "
              "processing image to get it", file=sys.stderr, flush=True)
    return report


def printed_metrics(report: dict) -> list[tuple[str, float]]:
    """Every {value, standard_deviation} metric of the report, in its order."""
    return [(name, entry["value"]) for name, entry in report["multiclass_classification_metrics"].items()
            if isinstance(entry, dict) and "value" in entry]


def main(argv: Sequence[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    if args.batch_size < 1 or args.max_samples < 0:
        raise SystemExit("--batch-size must be >= 1 and --max-samples >= 0")
    with tempfile.TemporaryDirectory(prefix="model-") as unpacked:
        model_dir = model_io.unpack_model_archive(Path(args.model_archive), Path(unpacked))
        model, tokenizer, _ = model_io.load_for_inference(model_dir)
        test_split = split_dataset.load_split(
            Path(args.test_dir), pad_token_id=tokenizer.pad_token_id, max_rows=args.max_samples or None
        )
        print(f"scoring {len(test_split)} test reviews on {next(model.parameters()).device}", flush=True)
        probabilities = predict_split(model, test_split, args.batch_size)
    predicted = [max(range(len(row)), key=row.__getitem__) for row in probabilities]
    report = write_outputs(test_split.label_ids.tolist(), predicted, Path(args.output_dir), probabilities)
    # What the pipeline's Model Monitor baselines are computed from (monitoring_baseline.py).
    monitoring_baseline.write_baseline_datasets(
        Path(args.output_dir), test_split.review_bodies, test_split.label_ids.tolist(), predicted,
        [max(row) for row in probabilities], test_split.max_seq_length)
    for name, value in printed_metrics(report):
        print(f"{name}: {value:.4f}", flush=True)
    written = sorted(path.name for path in Path(args.output_dir).iterdir())
    print(f"wrote {', '.join(written)} to {args.output_dir}")
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
