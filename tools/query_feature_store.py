"""Query one split of one environment's reviews Feature Store offline store with Athena and
write the rows as CSV.

    python -m tools.query_feature_store --env dev --split train --limit 100 --output train.csv

Reads the Glue table name from the feature group, runs the query in the environment's Athena
workgroup (results are encrypted there), waits with a timeout while printing progress to
stderr, and pages through the results. Needs credentials for the environment's account.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, TextIO

import boto3
from botocore.exceptions import ClientError

# Same values as container_code/reviews.py SPLIT_NAMES (a test keeps them equal); copied so
# this tool needs neither container_code on the path nor anything beyond boto3.
SPLIT_NAMES = ("train", "validation", "test")
SPLIT_FEATURE = "split_type"
# Columns Feature Store adds to every offline store record.
WRITE_TIME, API_INVOCATION_TIME, IS_DELETED = "write_time", "api_invocation_time", "is_deleted"
TERMINAL_STATES = {"SUCCEEDED", "FAILED", "CANCELLED"}


class FeatureStoreQueryError(RuntimeError):
    """Why the query could not produce rows, in words a user can act on."""


@dataclass(frozen=True)
class OfflineStoreTable:
    catalog: str
    database: str
    table: str
    features: tuple[str, ...]
    record_id_feature: str
    event_time_feature: str


def describe_offline_store(sagemaker_client, feature_group_name: str) -> OfflineStoreTable:
    """The Glue table behind a feature group's offline store, and its feature columns."""
    try:
        description = sagemaker_client.describe_feature_group(FeatureGroupName=feature_group_name)
    except ClientError as error:
        if error.response["Error"]["Code"] in ("ResourceNotFound", "ValidationException"):
            raise FeatureStoreQueryError(
                f"feature group '{feature_group_name}' not found: is the foundation stack of this "
                "environment deployed in this account and region?"
            ) from None
        raise
    catalog = description.get("OfflineStoreConfig", {}).get("DataCatalogConfig")
    if not catalog:
        status = description.get("FeatureGroupStatus", "unknown")
        raise FeatureStoreQueryError(
            f"feature group '{feature_group_name}' has no offline store Glue table (status: {status})"
        )
    return OfflineStoreTable(
        catalog=catalog.get("Catalog", "AwsDataCatalog"),
        database=catalog["Database"],
        table=catalog["TableName"],
        features=tuple(d["FeatureName"] for d in description["FeatureDefinitions"]),
        record_id_feature=description["RecordIdentifierFeatureName"],
        event_time_feature=description["EventTimeFeatureName"],
    )


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def split_query(table: OfflineStoreTable, split: str, limit: int | None = None) -> str:
    """SQL for the latest, not deleted version of every record of one split.

    The offline store is append-only: an updated record appears once per write, so the query
    keeps the newest row per record id (by event time, then ingestion time).
    """
    if split not in SPLIT_NAMES:
        raise FeatureStoreQueryError(f"unknown split '{split}'; expected one of {', '.join(SPLIT_NAMES)}")
    if limit is not None and limit < 1:
        raise FeatureStoreQueryError(f"limit must be a positive number, got {limit}")
    columns = ", ".join(_identifier(feature) for feature in table.features)
    record_id = _identifier(table.record_id_feature)
    newest_first = ", ".join(
        f"{_identifier(column)} DESC"
        for column in (table.event_time_feature, API_INVOCATION_TIME, WRITE_TIME)
    )
    query = (
        f"SELECT {columns}\n"
        f"FROM (\n"
        f"  SELECT *, row_number() OVER (PARTITION BY {record_id} ORDER BY {newest_first}) AS version_rank\n"
        f"  FROM {_identifier(table.database)}.{_identifier(table.table)}\n"
        f")\n"
        f"WHERE version_rank = 1 AND NOT {_identifier(IS_DELETED)} AND {_identifier(SPLIT_FEATURE)} = '{split}'\n"
        f"ORDER BY {record_id}"
    )
    return query + (f"\nLIMIT {limit}" if limit is not None else "")


def ensure_workgroup(athena_client, workgroup: str) -> None:
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


def start_query(athena_client, query: str, workgroup: str, table: OfflineStoreTable) -> str:
    # No ResultConfiguration: the workgroup enforces its encrypted results location.
    response = athena_client.start_query_execution(
        QueryString=query,
        QueryExecutionContext={"Catalog": table.catalog, "Database": table.database},
        WorkGroup=workgroup,
    )
    return response["QueryExecutionId"]


def _print_progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def wait_for_query(
    athena_client,
    execution_id: str,
    *,
    timeout_s: float,
    poll_interval_s: float = 2.0,
    progress: Callable[[str], None] = _print_progress,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict:
    """Poll until the query finishes; report each state change; stop the query on timeout."""
    started = clock()
    last_state = None
    while True:
        execution = athena_client.get_query_execution(QueryExecutionId=execution_id)["QueryExecution"]
        status = execution["Status"]
        state = status["State"]
        elapsed = clock() - started
        if state != last_state:
            progress(f"query {execution_id}: {state} after {elapsed:.1f}s")
            last_state = state
        if state == "SUCCEEDED":
            return execution
        if state in TERMINAL_STATES:
            reason = status.get("StateChangeReason") or status.get("AthenaError", {}).get("ErrorMessage") or "no reason given"
            raise FeatureStoreQueryError(f"query {execution_id} {state}: {reason}")
        if elapsed >= timeout_s:
            athena_client.stop_query_execution(QueryExecutionId=execution_id)
            raise FeatureStoreQueryError(
                f"query {execution_id} still {state} after {timeout_s:g}s; stopped it (raise --timeout?)"
            )
        sleep(poll_interval_s)


def iter_result_rows(athena_client, execution_id: str, page_size: int = 1000) -> Iterator[list[str]]:
    """Every result row as strings (NULL as ""), the header row first, across all pages."""
    paginator = athena_client.get_paginator("get_query_results")
    for page in paginator.paginate(QueryExecutionId=execution_id, PaginationConfig={"PageSize": page_size}):
        for row in page["ResultSet"]["Rows"]:
            yield [cell.get("VarCharValue", "") for cell in row["Data"]]


def write_csv(rows: Iterable[list[str]], stream: TextIO) -> int:
    """Write rows (header first); returns the number of data rows written."""
    writer = csv.writer(stream)
    count = -1
    for count, row in enumerate(rows):
        writer.writerow(row)
    return max(count, 0)


def query_split(
    *,
    sagemaker_client,
    athena_client,
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
    table = describe_offline_store(sagemaker_client, feature_group_name)
    query = split_query(table, split, limit)
    ensure_workgroup(athena_client, workgroup)
    execution_id = start_query(athena_client, query, workgroup, table)
    progress(f"started query {execution_id} on {table.database}.{table.table} in workgroup {workgroup}")
    wait_for_query(athena_client, execution_id, timeout_s=timeout_s, poll_interval_s=poll_interval_s, progress=progress)
    written = write_csv(iter_result_rows(athena_client, execution_id), output)
    progress(f"wrote {written} {split} rows")
    return written


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
    parser.add_argument("--endpoint-url", default=None, help=argparse.SUPPRESS)  # tests: moto's server
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from stacks.config import ConfigError, load_environment  # pydantic only, no CDK

    try:
        config = load_environment(args.env)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    session = boto3.Session(profile_name=args.profile, region_name=config.region)
    clients = {name: session.client(name, endpoint_url=args.endpoint_url) for name in ("sagemaker", "athena")}
    output = sys.stdout if args.output == "-" else open(args.output, "w", newline="", encoding="utf-8")
    try:
        query_split(
            sagemaker_client=clients["sagemaker"],
            athena_client=clients["athena"],
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
