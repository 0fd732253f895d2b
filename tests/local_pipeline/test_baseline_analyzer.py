"""baseline_analyzer.py, the local stand-in for Model Monitor's analyzer image: the documented
statistics/constraints layout on known rows, model-quality metrics that agree with evaluate.py's
independent (scikit-learn) computation, and datasets it cannot baseline refused with the reason."""

from __future__ import annotations

import json

import pytest

import evaluate
import reviews
from local_pipeline import baseline_analyzer

ROWS = [
    {"review_tokens": 4, "confidence": 0.5, "predicted_label": "positive"},
    {"review_tokens": 8, "confidence": 0.9, "predicted_label": "negative"},
    {"review_tokens": 12, "confidence": None, "predicted_label": "positive"},
]


def test_data_quality_statistics_and_constraints_of_known_rows():
    statistics, constraints = baseline_analyzer.data_quality_baseline(ROWS)
    assert statistics["dataset"] == {"item_count": 3}
    tokens, confidence, label = statistics["features"]
    assert (tokens["name"], tokens["inferred_type"]) == ("review_tokens", "Integral")
    numbers = tokens["numerical_statistics"]
    assert (numbers["mean"], numbers["sum"], numbers["min"], numbers["max"]) == (8, 24, 4, 12)
    assert numbers["std_dev"] == pytest.approx((32 / 3) ** 0.5)
    assert [bucket["count"] for bucket in numbers["distribution"]["kll"]["buckets"]] == [1, 0, 0, 0, 0, 1, 0, 0, 0, 1]
    assert confidence["inferred_type"] == "Fractional"
    assert confidence["numerical_statistics"]["common"] == {"num_present": 2, "num_missing": 1}
    assert label["string_statistics"]["distribution"]["categorical"]["buckets"] == [
        {"value": "negative", "count": 1}, {"value": "positive", "count": 2}]
    by_name = {feature["name"]: feature for feature in constraints["features"]}
    assert by_name["confidence"]["completeness"] == pytest.approx(2 / 3)
    assert by_name["review_tokens"]["num_constraints"] == {"is_non_negative": True}
    assert by_name["predicted_label"]["string_constraints"] == {"domains": ["negative", "positive"]}
    assert constraints["monitoring_config"]["distribution_constraints"]["perform_comparison"] == "Enabled"


def test_model_quality_metrics_agree_with_evaluate_py():
    actual, predicted = [0, 0, 1, 1, 2, 2, 2], [0, 1, 1, 1, 2, 0, 2]
    rows = [{"label": reviews.ID2LABEL[a], "predicted_label": reviews.ID2LABEL[p]} for a, p in zip(actual, predicted)]
    statistics, constraints = baseline_analyzer.model_quality_baseline(
        rows, inference_attribute="predicted_label", ground_truth_attribute="label")
    ours = statistics["multiclass_classification_metrics"]
    theirs = evaluate.model_quality_report(actual, predicted)["multiclass_classification_metrics"]
    for name in baseline_analyzer.MODEL_QUALITY_METRICS:
        assert ours[name]["value"] == pytest.approx(theirs[name]["value"]), name
    assert ours["confusion_matrix"] == theirs["confusion_matrix"]
    assert constraints["multiclass_classification_constraints"]["weighted_f1"] == {
        "threshold": pytest.approx(theirs["weighted_f1"]["value"]), "comparison_operator": "LessThanThreshold"}


def test_the_job_reads_its_environment_and_writes_both_files(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "part.jsonl").write_text("\n".join(json.dumps(row) for row in ROWS) + "\n")
    baseline_analyzer.run_baselining_job({"dataset_format": '{"json": {"lines": true}}'}, tmp_path / "in", tmp_path / "out")
    assert json.loads((tmp_path / "out" / "statistics.json").read_text())["dataset"]["item_count"] == 3
    assert "features" in json.loads((tmp_path / "out" / "constraints.json").read_text())


@pytest.mark.parametrize(("environment", "message"), [
    ({"dataset_format": '{"parquet": {}}'}, "is not emulated locally"),
    ({"dataset_format": '{"json": {"lines": true}}', "analysis_type": "MODEL_QUALITY",
      "problem_type": "MulticlassClassification", "inference_attribute": "prediction", "ground_truth_attribute": "label"},
     "no attribute 'prediction'"),
])
def test_what_cannot_be_baselined_says_why(tmp_path, environment, message):
    (tmp_path / "part.jsonl").write_text(json.dumps({"label": "positive", "predicted_label": "positive"}) + "\n")
    with pytest.raises(baseline_analyzer.AnalyzerError, match=message):
        baseline_analyzer.run_baselining_job(environment, tmp_path, tmp_path / "out")


def test_an_empty_dataset_is_refused(tmp_path):
    with pytest.raises(baseline_analyzer.AnalyzerError, match="no dataset files"):
        baseline_analyzer.read_dataset(tmp_path, {"json": {"lines": True}})
