"""Query one split of one environment's reviews Feature Store offline store through the
SageMaker SDK (`FeatureGroup.athena_query()`: run, then `as_dataframe()`) and write the rows as
CSV.

    python -m tools.query_feature_store --env dev --split train --limit 100 --output train.csv

The query runs in the environment's Athena workgroup, whose settings are enforced (results
encrypted in the data bucket), so the SDK is given the workgroup's own result location: that
is where Athena writes the CSV that `as_dataframe()` downloads. Needs credentials for the
environment's account.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable, TextIO

# Same values as container_code/reviews.py SPLIT_NAMES (a test keeps them equal); copied so
# this tool needs no container_code on the path.
SPLIT_NAMES = ("train", "validation", "test")
SPLIT_FEATURE = "split_type"
# Columns Feature Store adds to every offline store record.
WRITE_TIME, API_INVOCATION_TIME, IS_DELETED = "write_time", "api_invocation_time", "is_deleted"
TERMINAL_STATES = {"SUCCEEDED", "FAILED", "CANCELLED"}
# Newer SDKs emit telemetry from FeatureGroup calls (an STS call, an HTTPS request to AWS):
# a query tool makes only the calls it needs.
TELEMETRY_OFF = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}}


class FeatureStoreQueryError(RuntimeError):
    """Why the query could not produce rows, in words a user can act on."""


def describe_offline_store(feature_group) -> dict:
    """The feature group's description, once it is known to have an offline store table."""
    from botocore.exceptions import ClientError

    try:
        description = feature_group.describe()
    except ClientError as error:
        if error.response["Error"]["Code"] in ("ResourceNotFound", "ValidationException"):
            raise FeatureStoreQueryError(
                f"feature group '{feature_group.name}' not found: is the foundation stack of this "
                "environment deployed in this account and region?"
            ) from None
        raise
    if not description.get("OfflineStoreConfig", {}).get("DataCatalogConfig"):
        status = description.get("FeatureGroupStatus", "unknown")
        raise FeatureStoreQueryError(
            f"feature group '{feature_group.name}' has no offline store Glue table (status: {status})"
        )
    return description


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def split_query(query, description: dict, split: str, limit: int | None = None) -> str:
    """SQL for the latest, not deleted version of every record of one split, on the table of
    `query` (the SDK's AthenaQuery: database and table_name).

    The offline store is append-only: an updated record appears once per write, so the query
    keeps the newest row per record id (by event time, then ingestion time).
    """
    if split not in SPLIT_NAMES:
        raise FeatureStoreQueryError(f"unknown split '{split}'; expected one of {', '.join(SPLIT_NAMES)}")
    if limit is not None and limit < 1:
        raise FeatureStoreQueryError(f"limit must be a positive number, got {limit}")
    columns = ", ".join(_identifier(d["FeatureName"]) for d in description["FeatureDefinitions"])
    record_id = _identifier(description["RecordIdentifierFeatureName"])
    newest_first = ", ".join(
        f"{_identifier(column)} DESC"
        for column in (description["EventTimeFeatureName"], API_INVOCATION_TIME, WRITE_TIME)
    )
    sql = (
        f"SELECT {columns}\n"
        f"FROM (\n"
        f"  SELECT *, row_number() OVER (PARTITION BY {record_id} ORDER BY {newest_first}) AS version_rank\n"
        f"  FROM {_identifier(query.database)}.{_identifier(query.table_name)}\n"
        f")\n"
        f"WHERE version_rank = 1 AND NOT {_identifier(IS_DELETED)} AND {_identifier(SPLIT_FEATURE)} = '{split}'\n"
        f"ORDER BY {record_id}"
    )
    return sql + (f"\nLIMIT {limit}" if limit is not None else "")


def workgroup_output_location(athena_client, workgroup: str) -> str:
    """Where the workgroup has Athena write results (it overrides any location a query asks for)."""
    from botocore.exceptions import ClientError

    try:
        found = athena_client.get_work_group(WorkGroup=workgroup).get("WorkGroup")
    except ClientError as error:
        if error.response["Error"]["Code"] != "InvalidRequestException":
            raise
        found = None
    if not found:
        raise FeatureStoreQueryError(
            f"Athena workgroup '{workgroup}' not found: is the foundation stack of this environment deployed?"
        )
    location = found.get("Configuration", {}).get("ResultConfiguration", {}).get("OutputLocation")
    if not location:
        raise FeatureStoreQueryError(f"Athena workgroup '{workgroup}' has no result location")
    return location


def _print_progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def wait_for_query(
    query,
    athena_client,
    *,
    timeout_s: float,
    poll_interval_s: float = 2.0,
    progress: Callable[[str], None] = _print_progress,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Poll `query.get_query_execution()` until the query finishes, reporting each state change;
    stop the query on timeout. Not `query.wait()`: it polls every 5 s with no timeout, and never
    returns for a CANCELLED query (it waits for SUCCEEDED or FAILED only)."""
    started = clock()
    last_state = None
    while True:
        execution = query.get_query_execution()["QueryExecution"]
        status = execution["Status"]
        state = status["State"]
        elapsed = clock() - started
        execution_id = execution["QueryExecutionId"]
        if state != last_state:
            progress(f"query {execution_id}: {state} after {elapsed:.1f}s")
            last_state = state
        if state == "SUCCEEDED":
            return
        if state in TERMINAL_STATES:
            reason = status.get("StateChangeReason") or status.get("AthenaError", {}).get("ErrorMessage") or "no reason given"
            raise FeatureStoreQueryError(f"query {execution_id} {state}: {reason}")
        if elapsed >= timeout_s:
            athena_client.stop_query_execution(QueryExecutionId=execution_id)
            raise FeatureStoreQueryError(
                f"query {execution_id} still {state} after {timeout_s:g}s; stopped it (raise --timeout?)"
            )
        sleep(poll_interval_s)


def make_session(region_name: str, profile_name: str | None = None):
    import boto3
    from sagemaker.session import Session

    boto_session = boto3.Session(profile_name=profile_name, region_name=region_name)
    return Session(boto_session=boto_session, sagemaker_config=TELEMETRY_OFF)


def query_split(
    *,
    session,
    feature_group_name: str,
    workgroup: str,
    split: str,
    output: TextIO,
    limit: int | None = None,
    timeout_s: float = 600.0,
    poll_interval_s: float = 2.0,
    progress: Callable[[str], None] = _print_progress,
) -> int:
    """Run the split query end to end; returns the number of rows written to `output`."""
    from sagemaker.feature_store.feature_group import FeatureGroup

    feature_group = FeatureGroup(name=feature_group_name, sagemaker_session=session)
    description = describe_offline_store(feature_group)
    query = feature_group.athena_query()
    sql = split_query(query, description, split, limit)
    athena_client = session.boto_session.client("athena", region_name=session.boto_region_name)
    location = workgroup_output_location(athena_client, workgroup)
    execution_id = query.run(query_string=sql, output_location=location, workgroup=workgroup)
    progress(f"started query {execution_id} on {query.database}.{query.table_name} in workgroup {workgroup}")
    wait_for_query(query, athena_client, timeout_s=timeout_s, poll_interval_s=poll_interval_s, progress=progress)
    # Every value as Athena wrote it: no type guessing, NULL (an empty field) stays empty.
    frame = query.as_dataframe(dtype=str, keep_default_na=False)
    frame.to_csv(output, index=False)
    progress(f"wrote {len(frame)} {split} rows")
    return len(frame)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tools.query_feature_store",
        description="Query one split of an environment's reviews Feature Store offline store (Athena).",
    )
    parser.add_argument("--env", required=True, help="environment name in cdk.json (dev, staging, prod)")
    parser.add_argument("--split", required=True, choices=SPLIT_NAMES)
    parser.add_argument("--limit", type=int, default=None, help="at most this many rows")
    parser.add_argument("--output", default="-", help="CSV file to write (default: standard output)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the query")
    parser.add_argument("--profile", default=None, help="AWS profile (default: the usual credential chain)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from stacks.config import ConfigError, load_environment  # pydantic only, no CDK

    try:
        config = load_environment(args.env)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    session = make_session(config.region, args.profile)
    output = sys.stdout if args.output == "-" else open(args.output, "w", newline="", encoding="utf-8")
    try:
        query_split(
            session=session,
            feature_group_name=config.feature_group_name,
            workgroup=config.athena_workgroup_name,
            split=args.split,
            output=output,
            limit=args.limit,
            timeout_s=args.timeout,
        )
    except FeatureStoreQueryError as error:
        if output is not sys.stdout:
            output.close()
            Path(args.output).unlink(missing_ok=True)  # no half-written file left behind
        print(f"error: {error}", file=sys.stderr)
        return 1
    if output is not sys.stdout:
        output.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
