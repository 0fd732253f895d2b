"""Decides ALARM or OK for a synthesized CloudWatch alarm (the `AWS::CloudWatch::Alarm`
properties, read from the template) over per-minute metric values, as CloudWatch does: one
datapoint per period (a metric's statistic, or a metric math expression over such), compared
with the threshold; the alarm fires when DatapointsToAlarm of EvaluationPeriods consecutive
datapoints breach. Only what this project's templates use is supported - 60-second periods,
Sum and Average, + - * / in expressions, notBreaching/breaching missing data - and anything else
raises UnsupportedAlarm naming it, rather than being evaluated wrongly.
"""

from __future__ import annotations

import ast
import operator
from collections import defaultdict
from dataclasses import dataclass, field

PERIOD_SECONDS = 60
STATISTICS = {"Sum": sum, "Average": lambda values: sum(values) / len(values)}
COMPARISONS = {
    "GreaterThanOrEqualToThreshold": operator.ge,
    "GreaterThanThreshold": operator.gt,
    "LessThanThreshold": operator.lt,
    "LessThanOrEqualToThreshold": operator.le,
}
ARITHMETIC = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
MISSING_DATA_BREACHES = {"notBreaching": False, "breaching": True}
# Properties that do not change the state (names, descriptions, actions) or that are read below.
KNOWN_PROPERTIES = {
    "AlarmName", "AlarmDescription", "Tags", "ActionsEnabled", "AlarmActions", "OKActions", "InsufficientDataActions",
    "ComparisonOperator", "EvaluationPeriods", "DatapointsToAlarm", "Threshold", "TreatMissingData",
    "MetricName", "Namespace", "Dimensions", "Period", "Statistic", "Metrics",
}


class UnsupportedAlarm(ValueError):
    """The alarm uses something this evaluator does not model."""


@dataclass
class RecordedMetrics:
    """What one metric source (namespace + dimensions) reported: values per minute and metric,
    e.g. a 1 or 0 per request for SageMaker's Invocation4XXErrors."""

    namespace: str
    dimensions: dict[str, str]
    values: dict[tuple[int, str], list[float]] = field(default_factory=lambda: defaultdict(list))

    def add(self, minute: int, metric_name: str, value: float) -> None:
        self.values[(minute, metric_name)].append(value)

    @property
    def minutes(self) -> list[int]:
        return sorted({minute for minute, _ in self.values})


@dataclass(frozen=True)
class AlarmEvaluation:
    datapoints: list[float | None]  # one per recorded minute, None where missing
    breaching: list[bool]
    state: str  # "ALARM" if the alarm fired at the end of any minute, else "OK"


def evaluate_alarm(alarm: dict, metrics: RecordedMetrics) -> AlarmEvaluation:
    unknown = set(alarm) - KNOWN_PROPERTIES
    if unknown:
        raise UnsupportedAlarm(f"alarm properties {sorted(unknown)} are not supported")
    compare = _lookup(COMPARISONS, alarm["ComparisonOperator"], "ComparisonOperator")
    missing_breaches = _lookup(MISSING_DATA_BREACHES, alarm.get("TreatMissingData", "missing"), "TreatMissingData")
    threshold = float(alarm["Threshold"])
    periods = int(alarm["EvaluationPeriods"])
    to_alarm = int(alarm.get("DatapointsToAlarm", periods))
    datapoint = _datapoint_function(alarm, metrics)
    minutes = metrics.minutes
    if not minutes:
        raise UnsupportedAlarm("nothing was recorded: with no datapoints the state is not decided here")
    datapoints = [datapoint(minute) for minute in range(minutes[0], minutes[-1] + 1)]
    breaching = [missing_breaches if value is None else compare(value, threshold) for value in datapoints]
    fired = any(sum(breaching[end - periods:end]) >= to_alarm for end in range(periods, len(breaching) + 1))
    return AlarmEvaluation(datapoints, breaching, "ALARM" if fired else "OK")


def _lookup(table: dict, key: str, what: str):
    if key not in table:
        raise UnsupportedAlarm(f"{what} {key!r} is not supported (only {', '.join(table)})")
    return table[key]


def _datapoint_function(alarm: dict, metrics: RecordedMetrics):
    """minute -> the alarm's datapoint for that minute (None when missing)."""
    if "Metrics" not in alarm:
        return _metric_stat(alarm["Namespace"], alarm["MetricName"], alarm.get("Dimensions", []),
                            alarm["Period"], alarm["Statistic"], metrics)
    queries = {}
    for query in alarm["Metrics"]:
        unknown = set(query) - {"Id", "Expression", "Label", "MetricStat", "ReturnData"}
        if unknown:
            raise UnsupportedAlarm(f"metric query {query.get('Id')}: {sorted(unknown)} are not supported")
        if "MetricStat" in query:
            stat = query["MetricStat"]
            metric = stat["Metric"]
            queries[query["Id"]] = _metric_stat(metric["Namespace"], metric["MetricName"], metric.get("Dimensions", []),
                                                stat["Period"], stat["Stat"], metrics)
        else:
            queries[query["Id"]] = _expression(query["Expression"], queries)
    returned = [query["Id"] for query in alarm["Metrics"] if query.get("ReturnData", True)]
    if len(returned) != 1:
        raise UnsupportedAlarm(f"an alarm returns exactly one query's data, these return data: {returned}")
    return queries[returned[0]]


def _metric_stat(namespace: str, name: str, dimensions: list[dict], period, statistic: str, metrics: RecordedMetrics):
    if int(period) != PERIOD_SECONDS:
        raise UnsupportedAlarm(f"{name}: period {period} s is not supported (only {PERIOD_SECONDS})")
    reduce = _lookup(STATISTICS, statistic, f"{name}: statistic")
    watched = {dimension["Name"]: dimension["Value"] for dimension in dimensions}
    if (namespace, watched) != (metrics.namespace, metrics.dimensions):
        raise UnsupportedAlarm(f"{name}: the alarm watches {namespace} {watched}, the recording is of "
                               f"{metrics.namespace} {metrics.dimensions}")

    def datapoint(minute: int) -> float | None:
        values = metrics.values.get((minute, name))
        return reduce(values) if values else None

    return datapoint


def _expression(text: str, queries: dict):
    """+ - * / over numbers and the ids of earlier queries; a missing operand makes the result missing."""
    tree = ast.parse(text, mode="eval")
    for node in ast.walk(tree):
        allowed = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.USub, ast.Constant, ast.Name, ast.Load, *ARITHMETIC)
        if not isinstance(node, allowed) or isinstance(node, ast.Constant) and not isinstance(node.value, (int, float)):
            raise UnsupportedAlarm(f"expression {text!r}: {ast.dump(node)[:60]} is not supported (only + - * /)")
        if isinstance(node, ast.Name) and node.id not in queries:
            raise UnsupportedAlarm(f"expression {text!r}: {node.id!r} is not the id of an earlier query")

    def value(node, minute: int) -> float | None:
        if isinstance(node, ast.Constant):
            return float(node.value)
        if isinstance(node, ast.Name):
            return queries[node.id](minute)
        if isinstance(node, ast.UnaryOp):
            operand = value(node.operand, minute)
            return None if operand is None else -operand
        left, right = value(node.left, minute), value(node.right, minute)
        if left is None or right is None:
            return None
        if isinstance(node.op, ast.Div) and right == 0:
            raise UnsupportedAlarm(f"expression {text!r} divides by zero in minute {minute}: not modelled here")
        return ARITHMETIC[type(node.op)](left, right)

    return lambda minute: value(tree.body, minute)
