"""Time of one request to the local endpoint (the HuggingFace inference toolkit's model server
over HTTP, in the inference parity environment: HTTP, JSON parsing, tokenization, forward pass,
serialization) next to the bare model forward pass in this process on the same, already
tokenized reviews, at batch sizes 1 and 32; and, first, what tokenizing a 1 MB single-word
review costs whole (as predict_fn did) and capped at max_seq_length x 32 characters (as it does
now), CPU time and peak memory, each in a fresh process. Prints figures, asserts nothing.

    .venv/bin/python benchmarks/inference.py [--model-name-or-path DIR] [--repetitions 30] [--long-review-only]

The model is the packaged MiniLM-L6 with a fresh classification head (its accuracy does not
matter for timing), saved as a deployable artifact. Both measurements alternate within one
run so a busy machine slows both alike; medians are reported.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
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


LONG_REVIEW = "great" * 200_000  # 1 MB, one word


def _memory_kib(field: str) -> int:
    """VmRSS (now) or VmHWM (peak) of this process, from /proc/self/status."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


def _tokenizing_cost(model_dir: str, text: str, max_seq_length: int) -> tuple[float, float, float]:
    """(CPU s, wall s, peak resident memory above the resident memory before, MB) of tokenizing
    `text` as predict_fn does, in this process (Linux)."""
    tokenizer = model_io.load_tokenizer(model_dir)
    kwargs = reviews.TokenizationSettings(max_seq_length).tokenizer_kwargs(pad_to_max_length=False)
    tokenizer(["warm up"], return_tensors="pt", **kwargs)
    Path("/proc/self/clear_refs").write_text("5")  # resets the peak (VmHWM) to the current size
    resident_before = _memory_kib("VmRSS")
    cpu, wall = time.process_time(), time.perf_counter()
    tokenizer([text], return_tensors="pt", **kwargs)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return cpu, wall, (_memory_kib("VmHWM") - resident_before) / 1024


def print_long_review_cost(model_dir: Path, max_seq_length: int) -> None:
    settings = reviews.TokenizationSettings(max_seq_length)
    print(f"a {len(LONG_REVIEW):,}-character single-word review, max_seq_length {max_seq_length}:")
    print(f"{'tokenizer reads':>28}  {'CPU s':>6}  {'wall s':>6}  {'peak memory +MB':>15}")
    for label, text in (("the whole text", LONG_REVIEW), (f"{settings.max_text_chars:,} characters (capped)", settings.capped(LONG_REVIEW))):
        # A fresh process each: peak memory (ru_maxrss) only ever grows within one.
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            cpu, wall, peak = pool.submit(_tokenizing_cost, str(model_dir), text, max_seq_length).result()
        print(f"{label:>28}  {cpu:>6.3f}  {wall:>6.3f}  {peak:>15.0f}")


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
    parser.add_argument("--long-review-only", action="store_true", help="only the 1 MB review (no endpoint)")
    args = parser.parse_args()
    model_name_or_path = args.model_name_or_path or str(run_demo.packaged_minilm_dir())

    import torch

    with contextlib.ExitStack() as stack:
        work = stack.enter_context(tempfile.TemporaryDirectory(prefix="inference-bench-"))
        model_dir = build_artifact(model_name_or_path, Path(work) / "model", args.max_seq_length)
        print(f"model {model_name_or_path}")
        print_long_review_cost(model_dir, args.max_seq_length)
        if args.long_review_only:
            return
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
