"""The one stand-in of the local run: what SageMaker's Model Monitor analyzer image (Deequ on
Spark, `sagemaker-model-monitor-analyzer`) computes for a QualityCheck step's baselining job,
computed here in Python from the same dataset, and written as the same two files in the
analyzer's documented formats (AWS: "Schema for Statistics (statistics.json file)" and "Schema for
Constraints (constraints.json file)"; model quality: "Model quality metrics and Amazon CloudWatch
monitoring"). That image needs Docker and Spark, and it is not on PyPI.

What it reproduces: the columns, their inferred types, counts, completeness, mean / sum /
std_dev / min / max, 10 equal-width buckets of each numeric column (the analyzer's KLL sketch
materialized in 10 buckets), the categorical distribution and domain of each string column, and
the multiclass metrics of a model-quality baseline. What it does not: the KLL sketch itself (the
sorted values stand in for its data), Deequ's suggestion heuristics beyond non-negativity,
completeness and string domains, and the analyzer's own error messages.
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

VERSION = 0.0
DISTRIBUTION_BUCKETS = 10
# Deequ's KLL defaults, as the analyzer reports them in each sketch's parameters.
KLL_PARAMETERS = {"c": 0.64, "k": 2048.0}
STATISTICS_FILE = "statistics.json"
CONSTRAINTS_FILE = "constraints.json"
# The monitoring_config the analyzer suggests with a data-quality baseline.
MONITORING_CONFIG = {
    "evaluate_constraints": "Enabled",
    "emit_metrics": "Enabled",
    "datatype_check_threshold": 1.0,
    "domain_content_threshold": 1.0,
    "distribution_constraints": {"perform_comparison": "Enabled", "comparison_threshold": 0.1,
                                 "comparison_method": "Robust"},
}
MODEL_QUALITY_METRICS = ("accuracy", "weighted_recall", "weighted_precision", "weighted_f1")


class AnalyzerError(ValueError):
    """The dataset cannot be baselined; the message says why, as the job's FailureReason."""


def read_dataset(folder: Path, dataset_format: dict) -> list[dict[str, Any]]:
    """Every record of the files under `folder`, in the job's `dataset_format`
    ({"json": {"lines": true}} or {"csv": {"header": true}})."""
    files = sorted(path for path in Path(folder).rglob("*") if path.is_file())
    if not files:
        raise AnalyzerError(f"no dataset files under {folder}")
    rows: list[dict[str, Any]] = []
    for path in files:
        text = path.read_text(encoding="utf-8")
        if "json" in dataset_format:
            if dataset_format["json"].get("lines"):
                rows += [json.loads(line) for line in text.splitlines() if line.strip()]
            else:
                document = json.loads(text)
                rows += document if isinstance(document, list) else [document]
        elif "csv" in dataset_format and dataset_format["csv"].get("header"):
            rows += [dict(row) for row in csv.DictReader(text.splitlines())]
        else:
            raise AnalyzerError(f"dataset format {json.dumps(dataset_format)} is not emulated locally")
    if not rows:
        raise AnalyzerError(f"the dataset under {folder} holds no records")
    return rows


def _inferred_type(values: Sequence[Any]) -> str:
    if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "Integral"
    if values and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return "Fractional"
    return "String"


def _buckets(values: Sequence[float]) -> list[dict[str, float]]:
    low, high = min(values), max(values)
    width = (high - low) / DISTRIBUTION_BUCKETS or 1.0
    counts = Counter(min(int((value - low) / width), DISTRIBUTION_BUCKETS - 1) for value in values)
    return [{"lower_bound": low + index * width, "upper_bound": low + (index + 1) * width, "count": float(counts[index])}
            for index in range(DISTRIBUTION_BUCKETS)]


def _numerical_statistics(values: Sequence[float], missing: int) -> dict[str, Any]:
    mean = sum(values) / len(values)
    return {
        "common": {"num_present": len(values), "num_missing": missing},
        "mean": mean,
        "sum": float(sum(values)),
        "std_dev": math.sqrt(sum((value - mean) ** 2 for value in values) / len(values)),
        "min": float(min(values)),
        "max": float(max(values)),
        "distribution": {"kll": {"buckets": _buckets(values),
                                 "sketch": {"parameters": KLL_PARAMETERS, "data": [sorted(map(float, values))]}}},
    }


def _string_statistics(values: Sequence[Any], missing: int) -> dict[str, Any]:
    counts = Counter(str(value) for value in values)
    return {
        "common": {"num_present": len(values), "num_missing": missing},
        "distinct_count": float(len(counts)),
        "distribution": {"categorical": {"buckets": [{"value": value, "count": count}
                                                     for value, count in sorted(counts.items())]}},
    }


def data_quality_baseline(rows: Sequence[dict[str, Any]]) -> tuple[dict, dict]:
    """statistics.json and constraints.json of a data-quality baseline, column by column in the
    order of the first record."""
    names = list(dict.fromkeys(name for row in rows for name in row))
    statistics, constraints = [], []
    for name in names:
        values = [row[name] for row in rows if row.get(name) is not None]
        missing = len(rows) - len(values)
        kind = _inferred_type(values)
        feature: dict[str, Any] = {"name": name, "inferred_type": kind}
        constraint: dict[str, Any] = {"name": name, "inferred_type": kind, "completeness": len(values) / len(rows)}
        if kind == "String":
            feature["string_statistics"] = _string_statistics(values, missing)
            constraint["string_constraints"] = {"domains": sorted({str(value) for value in values})}
        else:
            feature["numerical_statistics"] = _numerical_statistics(values, missing)
            constraint["num_constraints"] = {"is_non_negative": min(values) >= 0}
        statistics.append(feature)
        constraints.append(constraint)
    return ({"version": VERSION, "dataset": {"item_count": len(rows)}, "features": statistics},
            {"version": VERSION, "features": constraints, "monitoring_config": MONITORING_CONFIG})


def _weighted(per_class: dict[str, float], support: Counter) -> float:
    total = sum(support.values())
    return sum(per_class[label] * support[label] for label in support) / total


def model_quality_baseline(rows: Sequence[dict[str, Any]], *, inference_attribute: str,
                           ground_truth_attribute: str) -> tuple[dict, dict]:
    """statistics.json and constraints.json of a multiclass model-quality baseline."""
    try:
        pairs = [(str(row[ground_truth_attribute]), str(row[inference_attribute])) for row in rows]
    except KeyError as error:
        raise AnalyzerError(f"a record has no attribute {error.args[0]!r} (ground truth "
                            f"{ground_truth_attribute!r}, inference {inference_attribute!r})") from None
    labels = sorted({label for pair in pairs for label in pair})
    matrix = {actual: {predicted: 0 for predicted in labels} for actual in labels}
    for actual, predicted in pairs:
        matrix[actual][predicted] += 1
    support = Counter(actual for actual, _ in pairs)
    predicted_count = Counter(predicted for _, predicted in pairs)
    precision = {label: matrix[label][label] / predicted_count[label] if predicted_count[label] else 0.0 for label in labels}
    recall = {label: matrix[label][label] / support[label] if support[label] else 0.0 for label in labels}
    f1 = {label: 2 * precision[label] * recall[label] / (precision[label] + recall[label])
          if precision[label] + recall[label] else 0.0 for label in labels}
    metrics = {
        "accuracy": sum(matrix[label][label] for label in labels) / len(pairs),
        "weighted_recall": _weighted(recall, support),
        "weighted_precision": _weighted(precision, support),
        "weighted_f1": _weighted(f1, support),
    }
    statistics = {
        "version": VERSION,
        "dataset": {"item_count": len(pairs)},
        "multiclass_classification_metrics": {
            "confusion_matrix": matrix,
            **{name: {"value": value, "standard_deviation": "NaN"} for name, value in metrics.items()},
        },
    }
    constraints = {
        "version": VERSION,
        "multiclass_classification_constraints": {
            name: {"threshold": metrics[name], "comparison_operator": "LessThanThreshold"} for name in MODEL_QUALITY_METRICS
        },
    }
    return statistics, constraints


def run_baselining_job(environment: dict[str, str], dataset_dir: Path, output_dir: Path) -> None:
    """The analyzer's baselining job, from its environment (as QualityCheckStep sets it):
    dataset_format, analysis_type (MODEL_QUALITY, or data quality when absent), and the
    model-quality attributes; writes statistics.json and constraints.json to output_dir."""
    rows = read_dataset(dataset_dir, json.loads(environment["dataset_format"]))
    if environment.get("analysis_type") == "MODEL_QUALITY":
        if environment.get("problem_type") != "MulticlassClassification":
            raise AnalyzerError(f"problem_type {environment.get('problem_type')!r} is not emulated locally")
        statistics, constraints = model_quality_baseline(
            rows, inference_attribute=environment["inference_attribute"],
            ground_truth_attribute=environment["ground_truth_attribute"])
    else:
        if environment.get("record_preprocessor_script"):
            raise AnalyzerError("a record preprocessor in a baselining job is not emulated locally")
        statistics, constraints = data_quality_baseline(rows)
    output_dir.mkdir(parents=True, exist_ok=True)
    for file_name, document in ((STATISTICS_FILE, statistics), (CONSTRAINTS_FILE, constraints)):
        (output_dir / file_name).write_text(json.dumps(document, indent=2) + "\n")
