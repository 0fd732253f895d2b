"""Leave-one-domain-out: for each domain of the sample data (product, movie, editorial, tweet),
train on the other three and score on held-out texts of that one, next to a model trained on
the domain itself (the in-domain figure) scored on the same texts; prints accuracy and macro-F1,
asserts nothing. Generalization measured, not assumed.

    .venv/bin/python benchmarks/cross_domain.py [--train-per-domain 400] [--test-per-domain 300]

Every model is the packaged MiniLM-L6 fine-tuned by train.py and scored by evaluate.py (the
pipeline's scripts, run as subprocesses); the splits are tokenized with reviews.encode_input_ids,
as prepare does. Samples are capped per domain (fixed seed) so that the eight trainings fit in
a few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from local_pipeline import CONTAINER_CODE, run_demo  # noqa: E402  (puts container_code/ on the path)

import model_io  # noqa: E402
import prepare  # noqa: E402
import reviews  # noqa: E402

EVENT_TIME = "2024-01-01T00:00:00Z"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=run_demo.DEFAULT_DATA_DIR)
    parser.add_argument("--train-per-domain", type=int, default=400, help="training texts drawn from each domain")
    parser.add_argument("--test-per-domain", type=int, default=300, help="held-out texts scored per domain")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--max-seq-length", type=int, default=64)
    parser.add_argument("--learning-rate", default="0.0001")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def domain_samples(data_dir: Path, train_per_domain: int, test_per_domain: int, seed: int):
    """{domain: (train reviews, test reviews)}, disjoint, drawn with a fixed seed."""
    files = sorted(data_dir.glob("*.csv"))
    read = prepare.read_reviews(files, prepare.Columns(), default_event_time=EVENT_TIME, log_every_rows=10**7)
    by_domain = defaultdict(list)
    for review in read.reviews:
        by_domain[review.domain].append(review)
    if len(by_domain) < 2 or "" in by_domain:
        raise SystemExit(f"{data_dir} does not hold the domain-tagged sample data: run `make data`")
    samples = {}
    for domain, members in sorted(by_domain.items()):
        drawn = random.Random(f"{seed}-{domain}").sample(members, min(len(members), train_per_domain + test_per_domain))
        samples[domain] = (drawn[test_per_domain:], drawn[:test_per_domain])
    return samples


def write_split(folder: Path, split: str, members, tokenizer, settings) -> None:
    ids = reviews.encode_input_ids(tokenizer, [review.review_body for review in members], settings)
    reviews.write_jsonl(folder / split / "part-algo-1.jsonl", [
        reviews.prepared_record(review_id=review.review_id, date=review.date, sentiment=review.sentiment,
                                input_ids=row, review_body=review.review_body, split_type=split)
        for review, row in zip(members, ids)
    ])


def train_and_score(work: Path, train_members, test_members, args, model_name_or_path: str, tokenizer) -> dict:
    settings = reviews.TokenizationSettings(args.max_seq_length)
    shuffled = list(train_members)
    random.Random(args.seed).shuffle(shuffled)
    validation_rows = max(1, len(shuffled) // 10)
    write_split(work, "train", shuffled[validation_rows:], tokenizer, settings)
    write_split(work, "validation", shuffled[:validation_rows], tokenizer, settings)
    write_split(work, "test", test_members, tokenizer, settings)
    subprocess.run([
        sys.executable, "train.py", "--model-name-or-path", model_name_or_path, "--epochs", str(args.epochs),
        "--learning-rate", args.learning_rate, "--train-batch-size", "32", "--seed", str(args.seed),
        "--train-dir", str(work / "train"), "--validation-dir", str(work / "validation"),
        "--model-dir", str(work / "model"), "--output-data-dir", str(work / "output"),
        "--checkpoint-dir", str(work / "checkpoints"), "--progress-every-seconds", "600",
    ], cwd=CONTAINER_CODE, check=True, capture_output=True)
    subprocess.run([
        sys.executable, "evaluate.py", "--model-archive", str(work / "model"), "--test-dir", str(work / "test"),
        "--output-dir", str(work / "evaluation"),
    ], cwd=CONTAINER_CODE, check=True, capture_output=True)
    return json.loads((work / "evaluation" / "evaluation.json").read_text())["multiclass_classification_metrics"]


def main(argv=None) -> None:
    args = parse_args(argv)
    logging.getLogger("prepare").setLevel(logging.WARNING)  # a line per file read: noise here
    model_name_or_path = str(run_demo.packaged_minilm_dir())
    tokenizer = model_io.load_tokenizer(model_name_or_path)
    samples = domain_samples(args.data_dir, args.train_per_domain, args.test_per_domain, args.seed)
    print(f"MiniLM-L6, {args.epochs} epoch(s), max_seq_length {args.max_seq_length}, {args.train_per_domain} training "
          f"texts per domain, {args.test_per_domain} held-out texts per domain", flush=True)
    print(f"{'held-out domain':<16} {'in-domain acc':>13} {'macro-F1':>9}   {'left-out acc':>12} {'macro-F1':>9}   seconds",
          flush=True)
    worst = 1.0
    with tempfile.TemporaryDirectory(prefix="cross-domain-") as scratch:
        for domain, (domain_train, domain_test) in samples.items():
            started = time.monotonic()
            in_domain = train_and_score(Path(scratch) / domain / "in", domain_train, domain_test, args,
                                        model_name_or_path, tokenizer)
            others = [review for other, (train_members, _) in samples.items() if other != domain for review in train_members]
            left_out = train_and_score(Path(scratch) / domain / "out", others, domain_test, args, model_name_or_path, tokenizer)
            worst = min(worst, left_out["macro_f1"]["value"])
            print(f"{domain:<16} {in_domain['accuracy']['value']:>13.3f} {in_domain['macro_f1']['value']:>9.3f}   "
                  f"{left_out['accuracy']['value']:>12.3f} {left_out['macro_f1']['value']:>9.3f}   "
                  f"{time.monotonic() - started:.0f}", flush=True)
    print(f"lowest leave-one-domain-out macro-F1: {worst:.3f} (target >= 0.55)")


if __name__ == "__main__":
    main()
