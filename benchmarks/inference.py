"""Time of one request to the local endpoint (the HuggingFace inference toolkit's model server
over HTTP, in the inference parity environment: HTTP, JSON parsing, tokenization, forward pass,
serialization) next to the bare model forward pass in this process on the same, already
tokenized reviews, at batch sizes 1 and 32; prints figures, asserts nothing.

    .venv/bin/python benchmarks/inference.py [--model-name-or-path DIR] [--repetitions 30]

The model is the packaged MiniLM-L6 with a fresh classification head (its accuracy does not
matter for timing), saved as a deployable artifact. Both measurements alternate within one
run so a busy machine slows both alike; medians are reported.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from local_pipeline import run_demo  # noqa: E402  (puts container_code/ on the path)
from local_pipeline.serving import LocalEndpoint  # noqa: E402

import model_io  # noqa: E402
import reviews  # noqa: E402


def sample_texts(count: int) -> list[str]:
    """Real snippets from the demo data when present, else a fixed review."""
    files = sorted(run_demo.DEFAULT_DATA_DIR.glob("*.csv"))
    texts: list[str] = []
    if files:
        with files[0].open(encoding="utf-8") as handle:
            texts = [row["review_body"] for row, _ in zip(csv.DictReader(handle), range(count))]
    while len(texts) < count:
        texts.append("The picture is sharp and the battery lasts, but the menus are confusing.")
    return texts


def build_artifact(model_name_or_path: str, destination: Path, max_seq_length: int) -> Path:
    model = model_io.load_classifier_for_training(model_name_or_path)
    tokenizer = model_io.load_tokenizer(model_name_or_path)
    model_io.save_artifact(model, tokenizer, destination, model_io.ArtifactMetadata(max_seq_length, base_model=model_name_or_path))
    return destination


def median_seconds(action, repetitions: int) -> float:
    timings = []
    for _ in range(repetitions):
        started = time.perf_counter()
        action()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-name-or-path", default=None, help="default: the packaged MiniLM-L6")
    parser.add_argument("--repetitions", type=int, default=30)
    parser.add_argument("--max-seq-length", type=int, default=64)
    args = parser.parse_args()
    model_name_or_path = args.model_name_or_path or str(run_demo.packaged_minilm_dir())

    import torch

    with contextlib.ExitStack() as stack:
        work = stack.enter_context(tempfile.TemporaryDirectory(prefix="inference-bench-"))
        model_dir = build_artifact(model_name_or_path, Path(work) / "model", args.max_seq_length)
        endpoint = stack.enter_context(LocalEndpoint(model_dir))
        bare_model, tokenizer, _ = model_io.load_for_inference(model_dir)
        settings = reviews.TokenizationSettings(args.max_seq_length)
        print(f"model {model_name_or_path}, torch threads {torch.get_num_threads()}, "
              f"median of {args.repetitions} repetitions (after 3 warm-up calls)")
        print(f"{'batch':>5}  {'endpoint ms':>11}  {'bare forward ms':>15}  {'endpoint / bare':>15}  {'reviews/s (endpoint)':>20}")
        for batch_size in (1, 32):
            texts = sample_texts(batch_size)
            body = json.dumps([{"review_body": text} for text in texts])
            encoded = tokenizer(texts, return_tensors="pt", **settings.tokenizer_kwargs(pad_to_max_length=False))

            def through_endpoint() -> None:
                response = endpoint.invoke(body, "application/json", "application/json")
                assert response.status == 200, response.body

            def bare_forward() -> None:
                with torch.inference_mode():
                    bare_model(input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"])

            for _ in range(3):
                through_endpoint()
                bare_forward()
            # Alternate in chunks so that load changes hit both measurements alike.
            endpoint_times, bare_times = [], []
            for _ in range(args.repetitions):
                endpoint_times.append(median_seconds(through_endpoint, 1))
                bare_times.append(median_seconds(bare_forward, 1))
            served, bare = statistics.median(endpoint_times), statistics.median(bare_times)
            print(f"{batch_size:>5}  {served * 1e3:>11.1f}  {bare * 1e3:>15.1f}  {served / bare:>15.2f}  "
                  f"{batch_size / served:>20.1f}")


if __name__ == "__main__":
    main()
