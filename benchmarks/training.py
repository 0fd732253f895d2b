"""Training throughput with and without per-batch padding trimming, and the time train.py
takes to report the first epoch's validation accuracy with MiniLM on the demo data; prints
figures, asserts nothing.

    .venv/bin/python benchmarks/training.py [--steps 12] [--skip-epoch]

Data: prepare.py run on the sample reviews (.data/reviews, `make data`) with the demo's
parameters. Throughput alternates trimmed and untrimmed
steps on the very same rows, so only the padding differs and load changes hit both alike.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from local_pipeline import CONTAINER_CODE, run_demo  # noqa: E402  (puts container_code/ on the path)

import model_io  # noqa: E402
import split_dataset  # noqa: E402
import train  # noqa: E402

VALIDATION_ACCURACY = re.compile(r"\[metric\] validation_accuracy=([0-9.]+)")


def prepared_splits(work: Path, model_name_or_path: str) -> Path:
    """prepare.py with the demo's split and tokenization parameters, on explicit paths."""
    parameters = run_demo.demo_parameters(small=False)
    output = work / "prepared"
    subprocess.run([
        sys.executable, "prepare.py", "--input-dir", str(run_demo.DEFAULT_DATA_DIR), "--output-dir", str(output),
        "--resource-config", "none", "--tokenizer", model_name_or_path,
        "--max-seq-length", parameters["MaxSeqLength"], "--balance", parameters["BalanceDataset"],
        "--train-fraction", parameters["TrainFraction"], "--validation-fraction", parameters["ValidationFraction"],
        "--test-fraction", parameters["TestFraction"], "--ingest", "false",
        # The snippets have no date: a fixed event time, as the pipeline passes its snapshot time.
        "--event-time", "2024-01-01T00:00:00Z",
    ], cwd=CONTAINER_CODE, check=True)
    return output


def throughput(model_name_or_path: str, prepared: Path, steps: int, batch_size: int) -> None:
    import torch

    tokenizer = model_io.load_tokenizer(model_name_or_path)
    split = split_dataset.load_split(prepared / "train", pad_token_id=tokenizer.pad_token_id)
    model = model_io.load_classifier_for_training(model_name_or_path)
    model.train()
    optimizer = train.build_optimizer(model, 5e-5, 0.01)
    loss_fn = torch.nn.CrossEntropyLoss()
    collators = {
        "trimmed": split_dataset.TrimmedBatchCollator(split, trim_padding=True),
        "padded": split_dataset.TrimmedBatchCollator(split, trim_padding=False),
    }
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(0)).tolist()
    seconds = {name: [] for name in collators}
    widths = {name: [] for name in collators}
    for step in range(steps + 1):  # step 0 warms up
        rows = order[step * batch_size : (step + 1) * batch_size]
        for name, collate in collators.items():
            batch = collate(rows)
            started = time.perf_counter()
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            loss_fn(logits, batch["labels"]).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if step:
                seconds[name].append(time.perf_counter() - started)
                widths[name].append(batch["input_ids"].shape[1])
    print(f"\ntraining steps ({steps} per variant, batch {batch_size}, torch threads {torch.get_num_threads()}):")
    rate = {name: batch_size / statistics.median(values) for name, values in seconds.items()}
    for name in collators:
        print(f"  {name:>8}: mean width {statistics.mean(widths[name]):5.1f} tokens, "
              f"median {statistics.median(seconds[name]):.2f} s/step, {rate[name]:.1f} samples/s")
    print(f"  trimmed / padded throughput: {rate['trimmed'] / rate['padded']:.2f}x")


def time_to_first_validation(model_name_or_path: str, prepared: Path, work: Path) -> None:
    """train.py with the demo's hyperparameters; seconds from start until it logs the first
    epoch's validation accuracy (model loading and data reading included)."""
    parameters = run_demo.demo_parameters(small=False)
    command = [
        sys.executable, "train.py", "--model-name-or-path", model_name_or_path, "--epochs", parameters["Epochs"],
        "--train-batch-size", parameters["TrainBatchSize"], "--learning-rate", parameters["LearningRate"],
        "--progress-every-seconds", "20",
        "--train-dir", str(prepared / "train"), "--validation-dir", str(prepared / "validation"),
        "--model-dir", str(work / "model"), "--checkpoint-dir", str(work / "checkpoints"),
        "--hosts", '["algo-1"]', "--current-host", "algo-1", "--num-gpus", "0",
    ]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=CONTAINER_CODE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    accuracy = None
    for line in process.stdout:
        if line.startswith(("epoch ", "train rows", "[metric]")):
            print("  " + line.rstrip(), flush=True)
        match = VALIDATION_ACCURACY.search(line)
        if match and accuracy is None:
            accuracy, elapsed = float(match.group(1)), time.perf_counter() - started
    process.wait()
    if accuracy is None:
        raise SystemExit(f"train.py ended (exit code {process.returncode}) without a validation accuracy")
    print(f"\nfirst epoch's validation accuracy {accuracy:.4f} after {elapsed:.0f} s "
          f"({elapsed / 60:.1f} min, from process start)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-name-or-path", default=None, help="default: the packaged MiniLM-L6")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--skip-epoch", action="store_true", help="only the throughput comparison")
    args = parser.parse_args()
    model_name_or_path = args.model_name_or_path or str(run_demo.packaged_minilm_dir())
    with tempfile.TemporaryDirectory(prefix="training-bench-") as work:
        prepared = prepared_splits(Path(work), model_name_or_path)
        print(f"model {model_name_or_path}\nprepared splits {prepared}")
        throughput(model_name_or_path, prepared, args.steps, args.batch_size)
        if not args.skip_epoch:
            print("\ntime to the first epoch's validation accuracy (demo hyperparameters):")
            time_to_first_validation(model_name_or_path, prepared, Path(work) / "epoch")


if __name__ == "__main__":
    main()
