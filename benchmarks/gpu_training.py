"""train.py on a CUDA GPU, as the training step runs it on ml.g4dn (fp16) and ml.g5 (bf16):
one run per mixed-precision mode on the same prepared splits, each a fresh `python train.py`
process with one GPU (SM_NUM_GPUS=1, so torch.multiprocessing spawns one NCCL worker, as on a
one-GPU instance). Prints, per mode, the training throughput train.py itself reports, the
validation accuracy after each epoch and the wall time; asserts nothing.

    .venv/bin/python benchmarks/gpu_training.py [--prepared DIR] [--model-name-or-path DIR] [--modes no,fp16,bf16]
    .venv/bin/python benchmarks/gpu_training.py --roberta-base-shape --batch-size 256

Without --prepared it runs prepare.py on the sample reviews first, as benchmarks/training.py
does; --prepared takes splits made elsewhere (prepare.py's train/ and validation/), so a GPU
machine needs only train.py's own dependencies. Without a CUDA device it says so and measures
nothing (`make bench` runs it on CPU machines too). --roberta-base-shape trains a randomly initialised model of roberta-base's shape
(12 layers, hidden 768) with the checkpoint's tokenizer: its accuracy means nothing, its
throughput is what the production model costs per sample at this sequence length.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONTAINER_CODE = PROJECT_ROOT / "container_code"

SAMPLES_PER_SECOND = re.compile(r"([0-9.]+) samples/s")
VALIDATION_ACCURACY = re.compile(r"\[metric\] validation_accuracy=([0-9.]+)")


def roberta_base_shaped(tokenizer_dir: str, target: Path) -> Path:
    """A random roberta-base-shaped classifier with the given tokenizer, saved for from_pretrained."""
    from transformers import AutoTokenizer, RobertaConfig, RobertaForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = RobertaConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, num_labels=3)
    RobertaForSequenceClassification(config).save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


def train_once(args: argparse.Namespace, model: str, mode: str, work: Path) -> dict:
    command = [
        sys.executable, "train.py", "--model-name-or-path", model, "--mixed-precision", mode,
        "--epochs", str(args.epochs), "--train-batch-size", str(args.batch_size),
        "--learning-rate", str(args.learning_rate), "--progress-every-seconds", "5",
        "--train-dir", str(args.prepared / "train"), "--validation-dir", str(args.prepared / "validation"),
        "--model-dir", str(work / "model"), "--checkpoint-dir", str(work / "checkpoints"),
        "--checkpoint-every-steps", "0", "--hosts", '["algo-1"]', "--current-host", "algo-1", "--num-gpus", "1",
    ]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=CONTAINER_CODE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    rates, accuracies, tail = [], [], []
    for line in process.stdout:
        tail = (tail + [line.rstrip()])[-30:]
        if line.startswith(("epoch ", "train rows", "[metric]", "mixed precision", "class weights")):
            print(f"    {line.rstrip()}", flush=True)
        if match := SAMPLES_PER_SECOND.search(line):
            rates.append(float(match.group(1)))
        if match := VALIDATION_ACCURACY.search(line):
            accuracies.append(float(match.group(1)))
    process.wait()
    if process.returncode != 0:
        raise SystemExit(f"train.py --mixed-precision {mode} failed (exit {process.returncode}):\n" + "\n".join(tail))
    return {"seconds": time.perf_counter() - started, "samples_per_s": rates[-1] if rates else float("nan"),
            "validation_accuracy": accuracies}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prepared", type=Path, default=None,
                        help="prepare.py's output (train/, validation/); default: prepare the sample reviews")
    parser.add_argument("--model-name-or-path", default=None, help="default: the packaged MiniLM-L6")
    parser.add_argument("--modes", default="no,fp16,bf16", help="train.py --mixed-precision values, in order")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32, help="the demo's (make demo)")
    parser.add_argument("--learning-rate", type=float, default=1e-4, help="the demo's (make demo)")
    parser.add_argument("--roberta-base-shape", action="store_true", help="a random model of roberta-base's shape")
    args = parser.parse_args()

    import torch
    import transformers

    if not torch.cuda.is_available():
        print("no CUDA device here: nothing measured (benchmarks/training.py is the CPU benchmark)")
        return
    sys.path.insert(0, str(PROJECT_ROOT))
    if args.model_name_or_path is None:
        from local_pipeline.run_demo import packaged_minilm_dir

        args.model_name_or_path = str(packaged_minilm_dir())
    print(f"{torch.cuda.get_device_name(0)}; torch {torch.__version__}, transformers {transformers.__version__}")

    with tempfile.TemporaryDirectory(prefix="gpu-training-") as scratch:
        if args.prepared is None:
            from benchmarks.training import prepared_splits

            args.prepared = prepared_splits(Path(scratch), args.model_name_or_path)
        model = args.model_name_or_path
        if args.roberta_base_shape:
            model = str(roberta_base_shaped(model, Path(scratch) / "roberta-base-shaped"))
            print("model: random weights of roberta-base's shape (throughput only)")
        results = {}
        for mode in args.modes.split(","):
            print(f"\n--mixed-precision {mode}:", flush=True)
            results[mode] = train_once(args, model, mode, Path(scratch) / mode)

    print(f"\n{'mode':>6} {'samples/s':>10} {'wall s':>7}  validation accuracy per epoch")
    for mode, result in results.items():
        accuracy = ", ".join(f"{value:.4f}" for value in result["validation_accuracy"])
        print(f"{mode:>6} {result['samples_per_s']:10.1f} {result['seconds']:7.1f}  {accuracy}")


if __name__ == "__main__":
    main()
