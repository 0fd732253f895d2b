"""The small CloudWatch alarm evaluator in tests/support/cloudwatch_alarm.py: the decisions it
models, and a clear refusal for everything it does not."""

from __future__ import annotations

import copy

import pytest

from support.cloudwatch_alarm import RecordedMetrics, UnsupportedAlarm, evaluate_alarm

NAMESPACE = "AWS/SageMaker"
DIMENSIONS = {"EndpointName": "e", "VariantName": "AllTraffic"}
DIMENSION_LIST = [{"Name": name, "Value": value} for name, value in DIMENSIONS.items()]
SUM_ALARM = {
    "AlarmName": "errors", "Namespace": NAMESPACE, "MetricName": "Errors", "Dimensions": DIMENSION_LIST,
    "Statistic": "Sum", "Period": 60, "EvaluationPeriods": 2, "Threshold": 3,
    "ComparisonOperator": "GreaterThanOrEqualToThreshold", "TreatMissingData": "notBreaching",
}


def share_alarm(expression: str = "100 * bad / all") -> dict:
    def summed(query_id: str, name: str) -> dict:
        return {"Id": query_id, "ReturnData": False, "MetricStat": {
            "Metric": {"Namespace": NAMESPACE, "MetricName": name, "Dimensions": DIMENSION_LIST},
            "Period": 60, "Stat": "Sum"}}

    return {
        "AlarmName": "share", "EvaluationPeriods": 2, "Threshold": 50, "TreatMissingData": "notBreaching",
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        "Metrics": [summed("bad", "Bad"), summed("all", "All"), {"Id": "share", "Expression": expression, "ReturnData": True}],
    }


def recorded(per_minute: dict[int, dict[str, list[float]]]) -> RecordedMetrics:
    metrics = RecordedMetrics(NAMESPACE, dict(DIMENSIONS))
    for minute, values in per_minute.items():
        for name, points in values.items():
            for point in points:
                metrics.add(minute, name, point)
    return metrics


def test_two_breaching_minutes_in_a_row_fire():
    metrics = recorded({0: {"Errors": [1, 1, 1]}, 1: {"Errors": [1, 1, 1, 0]}})
    result = evaluate_alarm(SUM_ALARM, metrics)
    assert (result.datapoints, result.breaching, result.state) == ([3, 3], [True, True], "ALARM")


def test_breaching_minutes_apart_do_not_fire_but_datapoints_to_alarm_can_allow_it():
    metrics = recorded({0: {"Errors": [3]}, 1: {"Errors": [0]}, 2: {"Errors": [3]}})
    assert evaluate_alarm(SUM_ALARM, metrics).state == "OK"
    assert evaluate_alarm({**SUM_ALARM, "DatapointsToAlarm": 1}, metrics).state == "ALARM"


def test_missing_minutes_follow_treat_missing_data():
    metrics = recorded({0: {"Errors": [5]}, 2: {"Errors": [5]}})  # nothing in minute 1
    assert evaluate_alarm(SUM_ALARM, metrics).datapoints == [5, None, 5]
    assert evaluate_alarm(SUM_ALARM, metrics).state == "OK"
    assert evaluate_alarm({**SUM_ALARM, "TreatMissingData": "breaching"}, metrics).state == "ALARM"


def test_average_and_other_comparisons():
    metrics = recorded({0: {"Errors": [1, 3]}, 1: {"Errors": [2, 2]}})
    assert evaluate_alarm({**SUM_ALARM, "Statistic": "Average", "Threshold": 2}, metrics).state == "ALARM"
    assert evaluate_alarm({**SUM_ALARM, "Statistic": "Average", "Threshold": 2,
                           "ComparisonOperator": "GreaterThanThreshold"}, metrics).state == "OK"
    assert evaluate_alarm({**SUM_ALARM, "Threshold": 5, "ComparisonOperator": "LessThanThreshold"}, metrics).state == "ALARM"


def test_metric_math_share():
    metrics = recorded({0: {"Bad": [1, 1, 0, 0], "All": [1, 1, 1, 1]}, 1: {"Bad": [1, 1, 1, 0], "All": [1, 1, 1, 1]}})
    result = evaluate_alarm(share_alarm(), metrics)
    assert (result.datapoints, result.state) == ([50.0, 75.0], "ALARM")
    assert evaluate_alarm(share_alarm("100 * bad / all - 30"), metrics).state == "OK"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: a.update(Statistic="p99"), "statistic 'p99' is not supported"),
        (lambda a: a.update(Period=300), "period 300 s is not supported"),
        (lambda a: a.update(TreatMissingData="ignore"), "TreatMissingData 'ignore' is not supported"),
        (lambda a: a.update(ComparisonOperator="LessThanLowerOrGreaterThanUpperThreshold"), "ComparisonOperator"),
        (lambda a: a.update(ThresholdMetricId="ad1"), "ThresholdMetricId"),
        (lambda a: a.update(Dimensions=[{"Name": "EndpointName", "Value": "other"}]), "the alarm watches"),
    ],
)
def test_what_it_does_not_model_is_refused_by_name(change, message):
    alarm = copy.deepcopy(SUM_ALARM)
    change(alarm)
    with pytest.raises(UnsupportedAlarm, match=message):
        evaluate_alarm(alarm, recorded({0: {"Errors": [1]}}))


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("IF(all > 10, 100 * bad / all, 0)", "is not supported"),
        ("FILL(bad, 0)", "is not supported"),
        ("100 * bad / total", "'total' is not the id of an earlier query"),
        ("bad ** 2", "is not supported"),
    ],
)
def test_expressions_beyond_arithmetic_are_refused(expression, message):
    with pytest.raises(UnsupportedAlarm, match=message):
        evaluate_alarm(share_alarm(expression), recorded({0: {"Bad": [1], "All": [1]}}))


def test_division_by_zero_is_refused_not_guessed():
    with pytest.raises(UnsupportedAlarm, match="divides by zero in minute 0"):
        evaluate_alarm(share_alarm(), recorded({0: {"Bad": [0], "All": [0]}}))
