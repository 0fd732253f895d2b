"""Prepare step (a SageMaker processing job): raw review CSVs in, tokenized, balanced,
stratified train/validation/test JSON Lines splits out, optionally ingested into the Feature
Group, with a report that accounts for every row read.

Runs as `python prepare.py --args` on one or more instances: each host takes every N-th input
file (sorted), so the pipeline hands every host the whole input (FullyReplicated).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import logging
import multiprocessing
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import reviews

LOG = logging.getLogger("prepare")

DEFAULT_INPUT_DIR = "/opt/ml/processing/input/data"
DEFAULT_OUTPUT_DIR = "/opt/ml/processing/output"
DEFAULT_RESOURCE_CONFIG = "/opt/ml/config/resourceconfig.json"
SINGLE_HOST = "algo-1"
REPORT_DIR = "report"

# csv refuses fields over 128 KiB by default; one very long review must not stop the job.
MAX_FIELD_CHARS = 16 * 1024 * 1024
# Input files: CSV, and TSV as the public Amazon Customer Reviews dataset ships it (unquoted:
# a review may start with a double quote that closes nowhere); either gzipped.
CSV_FORMAT_BY_SUFFIX = {
    ".csv": {"delimiter": ","},
    ".tsv": {"delimiter": "\t", "quoting": csv.QUOTE_NONE},
}

# Why a row read is not written. Every row read ends up written or counted under one of these.
MISSING_REVIEW_ID = "missing_review_id"
MISSING_REVIEW_BODY = "missing_review_body"
MISSING_STAR_RATING = "missing_star_rating"
STAR_RATING_NOT_AN_INTEGER = "star_rating_not_an_integer"
STAR_RATING_OUT_OF_RANGE = "star_rating_out_of_range"
INVALID_REVIEW_DATE = "invalid_review_date"
DUPLICATE_REVIEW_ID = "duplicate_review_id"
DOWN_SAMPLED_FOR_BALANCE = "down_sampled_for_balance"
REJECT_REASONS = (
    MISSING_REVIEW_ID,
    MISSING_REVIEW_BODY,
    MISSING_STAR_RATING,
    STAR_RATING_NOT_AN_INTEGER,
    STAR_RATING_OUT_OF_RANGE,
    INVALID_REVIEW_DATE,
    DUPLICATE_REVIEW_ID,
    DOWN_SAMPLED_FOR_BALANCE,
)


class PrepareError(Exception):
    """Input or settings that prepare cannot work with; the message says what to fix."""


# ----------------------------------------------------------------------------------------------
# Arguments


@dataclass(frozen=True)
class Columns:
    review_id: str = "review_id"
    star_rating: str = "star_rating"
    review_body: str = "review_body"
    review_date: str = "review_date"


@dataclass(frozen=True)
class SplitFractions:
    train: float
    validation: float
    test: float

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if value < 0:
                raise PrepareError(f"--{name}-fraction must not be negative, got {value}")
        total = self.train + self.validation + self.test
        if abs(total - 1.0) > 1e-6:
            raise PrepareError(
                f"split fractions must sum to 1, got train {self.train} + validation {self.validation}"
                f" + test {self.test} = {total:g}"
            )

    def as_dict(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in reviews.SPLIT_NAMES}


@dataclass(frozen=True)
class PrepareSettings:
    input_dir: Path
    output_dir: Path
    resource_config: Path
    columns: Columns
    tokenizer: str
    tokenization: reviews.TokenizationSettings
    balance: bool
    fractions: SplitFractions
    random_seed: int
    num_workers: int
    batch_size: int
    log_every_rows: int
    ingest: bool
    feature_group_name: str | None
    featurestore_endpoint_url: str | None
    ingest_max_workers: int
    ingest_max_attempts: int


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def build_argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    paths = parser.add_argument_group("paths")
    paths.add_argument("--input-dir", default=DEFAULT_INPUT_DIR, help="folder searched recursively for *.csv, *.tsv (optionally .gz)")
    paths.add_argument("--output-dir", default=DEFAULT_OUTPUT_DIR, help="gets train/, validation/, test/ (part-<host>.jsonl) and report/")
    paths.add_argument("--resource-config", default=DEFAULT_RESOURCE_CONFIG, help="SageMaker's host list (current_host, hosts); absent means one host, algo-1")

    columns = parser.add_argument_group("input columns")
    columns.add_argument("--id-column", default=Columns.review_id, help="unique review id")
    columns.add_argument("--rating-column", default=Columns.star_rating, help="star rating 1-5")
    columns.add_argument("--text-column", default=Columns.review_body, help="review text")
    columns.add_argument("--date-column", default=Columns.review_date, help="review date, used as the event time when a file has it (else the run's start time)")

    data = parser.add_argument_group("data preparation")
    data.add_argument("--tokenizer", default="roberta-base", help="AutoTokenizer name or local path")
    data.add_argument("--max-seq-length", type=_positive_int, default=reviews.TokenizationSettings().max_seq_length, help="input_ids are padded/truncated to this length")
    data.add_argument("--balance", type=reviews.bool_argument, default="true", metavar="{true,false}", help="down-sample every sentiment class to the size of the smallest")
    data.add_argument("--train-fraction", type=float, default=0.90, help="share of each class that goes to train/")
    data.add_argument("--validation-fraction", type=float, default=0.05, help="share of each class that goes to validation/")
    data.add_argument("--test-fraction", type=float, default=0.05, help="share of each class that goes to test/")
    data.add_argument("--random-seed", type=int, default=42, help="seed of balancing and splitting")

    work = parser.add_argument_group("parallelism and progress")
    work.add_argument("--num-workers", type=_positive_int, default=os.cpu_count() or 1, help="tokenizer processes, 1 = in this process; defaults to the CPU count (here %(default)s)")
    work.add_argument("--batch-size", type=_positive_int, default=1000, help="texts per tokenizer call")
    work.add_argument("--log-every-rows", type=_positive_int, default=10000, help="progress line interval while reading and tokenizing")

    ingest = parser.add_argument_group("feature store")
    ingest.add_argument("--ingest", type=reviews.bool_argument, default="false", metavar="{true,false}", help="put every written record into the feature group")
    ingest.add_argument("--feature-group-name", default=None, help="required with --ingest true")
    ingest.add_argument("--featurestore-endpoint-url", default=None, help="featurestore runtime endpoint; unset, boto3 resolves it (honouring AWS_ENDPOINT_URL_SAGEMAKER_FEATURESTORE_RUNTIME)")
    ingest.add_argument("--ingest-max-workers", type=_positive_int, default=8, help="concurrent PutRecord calls")
    ingest.add_argument("--ingest-max-attempts", type=_positive_int, default=5, help="attempts per record on throttling/5xx")
    return parser


def parse_settings(argv: Sequence[str] | None = None) -> PrepareSettings:
    """Parse and validate the arguments; bad values exit with a usage message naming them."""
    parser = build_argument_parser()
    args = parser.parse_args(argv)
    try:
        fractions = SplitFractions(args.train_fraction, args.validation_fraction, args.test_fraction)
    except PrepareError as error:
        parser.error(str(error))
    if args.ingest and not args.feature_group_name:
        parser.error("--ingest true needs --feature-group-name")
    return PrepareSettings(
        input_dir=Path(args.input_dir),
        output_dir=Path(args.output_dir),
        resource_config=Path(args.resource_config),
        columns=Columns(args.id_column, args.rating_column, args.text_column, args.date_column),
        tokenizer=args.tokenizer,
        tokenization=reviews.TokenizationSettings(max_seq_length=args.max_seq_length),
        balance=args.balance,
        fractions=fractions,
        random_seed=args.random_seed,
        num_workers=args.num_workers,
        batch_size=args.batch_size,
        log_every_rows=args.log_every_rows,
        ingest=args.ingest,
        feature_group_name=args.feature_group_name,
        featurestore_endpoint_url=args.featurestore_endpoint_url,
        ingest_max_workers=args.ingest_max_workers,
        ingest_max_attempts=args.ingest_max_attempts,
    )


# ----------------------------------------------------------------------------------------------
# Hosts and input files


@dataclass(frozen=True)
class HostIdentity:
    current_host: str
    hosts: tuple[str, ...]


def read_host_identity(resource_config: Path) -> HostIdentity:
    """This instance's name and the job's hosts, from SageMaker's resourceconfig.json."""
    if not resource_config.is_file():
        return HostIdentity(SINGLE_HOST, (SINGLE_HOST,))
    try:
        config = json.loads(resource_config.read_text(encoding="utf-8"))
        current_host, hosts = config["current_host"], tuple(sorted(config["hosts"]))
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise PrepareError(f"{resource_config}: expected JSON with current_host and hosts ({error})") from None
    if current_host not in hosts:
        raise PrepareError(f"{resource_config}: current_host {current_host!r} is not in hosts {list(hosts)}")
    return HostIdentity(current_host, hosts)


def find_input_files(input_dir: Path) -> list[Path]:
    if not input_dir.is_dir():
        raise PrepareError(f"input folder {input_dir} does not exist")
    files = sorted(p for p in input_dir.rglob("*") if p.is_file() and _csv_format_of(p) is not None)
    if not files:
        raise PrepareError(f"no input files (*.csv, *.tsv, optionally .gz) under {input_dir}")
    return files


def files_for_host(files: Sequence[Path], identity: HostIdentity) -> list[Path]:
    """Every N-th file (of the sorted list) for the N hosts: disjoint shares covering all files."""
    position = identity.hosts.index(identity.current_host)
    return [path for index, path in enumerate(sorted(files)) if index % len(identity.hosts) == position]


def _csv_format_of(path: Path) -> dict | None:
    suffixes = path.suffixes[-2:] if path.suffix == ".gz" else path.suffixes[-1:]
    return CSV_FORMAT_BY_SUFFIX.get(suffixes[0].lower()) if suffixes else None


# ----------------------------------------------------------------------------------------------
# Reading and validating rows


@dataclass(frozen=True)
class Review:
    review_id: str
    date: str
    sentiment: int
    review_body: str


@dataclass
class ReadResult:
    reviews: list[Review]
    rows_read: int
    rejected: Counter
    files_with_date_column: int = 0


@contextmanager
def open_review_table(path: Path, columns: Columns) -> Iterator[csv.DictReader]:
    """A DictReader over one input file (BOM-tolerant, gzip-aware) whose header has the
    required columns."""
    csv.field_size_limit(MAX_FIELD_CHARS)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle, **_csv_format_of(path))
        header = reader.fieldnames or []
        missing = [name for name in (columns.review_id, columns.star_rating, columns.review_body) if name not in header]
        if missing:
            raise PrepareError(f"{path}: no column(s) {missing} in header {header}; see --id-column, --rating-column, --text-column")
        try:
            yield reader
        except csv.Error as error:
            raise PrepareError(f"{path}:{reader.line_num}: unreadable CSV: {error}") from None


def parse_star_rating(raw: str | None) -> int | str:
    """The rating as an int 1-5, or the reject reason. Accepts "4" and "4.0"."""
    text = (raw or "").strip()
    if not text:
        return MISSING_STAR_RATING
    try:
        number = float(text)
    except ValueError:
        return STAR_RATING_NOT_AN_INTEGER
    if not number.is_integer():
        return STAR_RATING_NOT_AN_INTEGER
    if not 1 <= number <= 5:
        return STAR_RATING_OUT_OF_RANGE
    return int(number)


def parse_review_date(raw: str | None) -> str | None:
    """An ISO-8601 date or date-time (naive = UTC) as the event time string, or None."""
    text = (raw or "").strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return reviews.format_event_time(moment)


def read_reviews(files: Sequence[Path], columns: Columns, run_event_time: str, log_every_rows: int) -> ReadResult:
    """Every row of every file, validated: usable rows become Reviews (first occurrence of an
    id wins), the rest are counted by reason. A file with the date column takes each row's
    event time from it; a file without gets the run's start time."""
    result = ReadResult(reviews=[], rows_read=0, rejected=Counter())
    seen_ids: set[str] = set()
    for path in files:
        rows_before = result.rows_read
        with open_review_table(path, columns) as reader:
            has_date_column = columns.review_date in reader.fieldnames
            result.files_with_date_column += has_date_column
            for row in reader:
                result.rows_read += 1
                review_or_reason = _validate(row, columns, has_date_column, run_event_time)
                if isinstance(review_or_reason, str):
                    result.rejected[review_or_reason] += 1
                elif review_or_reason.review_id in seen_ids:
                    result.rejected[DUPLICATE_REVIEW_ID] += 1
                else:
                    seen_ids.add(review_or_reason.review_id)
                    result.reviews.append(review_or_reason)
                if result.rows_read % log_every_rows == 0:
                    LOG.info("read %d rows (%d usable) so far, now in %s", result.rows_read, len(result.reviews), path.name)
        LOG.info("read %s: %d rows", path, result.rows_read - rows_before)
    return result


def _validate(row: dict, columns: Columns, has_date_column: bool, run_event_time: str) -> Review | str:
    review_id = (row.get(columns.review_id) or "").strip()
    if not review_id:
        return MISSING_REVIEW_ID
    review_body = (row.get(columns.review_body) or "").strip()
    if not review_body:
        return MISSING_REVIEW_BODY
    star_rating = parse_star_rating(row.get(columns.star_rating))
    if isinstance(star_rating, str):
        return star_rating
    date = run_event_time
    if has_date_column:
        date = parse_review_date(row.get(columns.review_date))
        if date is None:
            return INVALID_REVIEW_DATE
    return Review(review_id, date, reviews.star_rating_to_sentiment(star_rating), review_body)


# ----------------------------------------------------------------------------------------------
# Balancing and splitting (deterministic: they depend on the seed and the review ids only)


def _by_sentiment(items: Sequence[Review]) -> dict[int, list[Review]]:
    groups: dict[int, list[Review]] = {sentiment: [] for sentiment in reviews.SENTIMENTS}
    for review in items:
        groups[review.sentiment].append(review)
    return {sentiment: sorted(group, key=lambda r: r.review_id) for sentiment, group in groups.items()}


def balance_by_down_sampling(items: Sequence[Review], seed: int) -> tuple[list[Review], int]:
    """Every sentiment class down-sampled to the size of the smallest; returns (kept, dropped)."""
    groups = _by_sentiment(items)
    empty = [reviews.ID2LABEL[reviews.sentiment_to_label_id(s)] for s, group in groups.items() if not group]
    if empty and items:
        raise PrepareError(f"cannot balance: no usable rows of class(es) {empty}; use --balance false or add data")
    smallest = min(len(group) for group in groups.values())
    rng = random.Random(f"balance-{seed}")
    kept = [review for group in groups.values() for review in rng.sample(group, smallest)]
    return kept, len(items) - len(kept)


def split_sizes(count: int, fractions: SplitFractions) -> dict[str, int]:
    """Split sizes of one class that add up to count exactly (largest remainder apportionment)."""
    shares = {name: count * fraction for name, fraction in fractions.as_dict().items()}
    sizes = {name: int(share) for name, share in shares.items()}
    by_remainder = sorted(shares, key=lambda name: (-(shares[name] - sizes[name]), reviews.SPLIT_NAMES.index(name)))
    for name in by_remainder[: count - sum(sizes.values())]:
        sizes[name] += 1
    return sizes


def stratified_split(items: Sequence[Review], fractions: SplitFractions, seed: int) -> dict[str, list[Review]]:
    """Each sentiment class shuffled and cut by the fractions; each split then shuffled."""
    rng = random.Random(f"split-{seed}")
    splits: dict[str, list[Review]] = {name: [] for name in reviews.SPLIT_NAMES}
    for group in _by_sentiment(items).values():
        shuffled = list(group)
        rng.shuffle(shuffled)
        start = 0
        for name, size in split_sizes(len(shuffled), fractions).items():
            splits[name].extend(shuffled[start : start + size])
            start += size
    for members in splits.values():
        rng.shuffle(members)
    return splits


# ----------------------------------------------------------------------------------------------
# Tokenization: batches through the fast tokenizer, optionally over a process pool

_worker_tokenizer = None
_worker_tokenization: reviews.TokenizationSettings | None = None


def load_tokenizer(name_or_path: str):
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    except (OSError, ValueError) as error:
        raise PrepareError(f"cannot load tokenizer {name_or_path!r}: {error}") from None
    if not getattr(tokenizer, "is_fast", False):
        raise PrepareError(f"tokenizer {name_or_path!r} has no fast (Rust) implementation; prepare needs one")
    return tokenizer


def _init_worker(name_or_path: str, tokenization: reviews.TokenizationSettings) -> None:
    global _worker_tokenizer, _worker_tokenization
    # One process per core already: the tokenizer's own thread pool would oversubscribe.
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    if _worker_tokenizer is None:  # inherited when the pool forks
        _worker_tokenizer = load_tokenizer(name_or_path)
    _worker_tokenization = tokenization


def _encode_batch(texts: list[str]) -> list[list[int]]:
    return reviews.encode_input_ids(_worker_tokenizer, texts, _worker_tokenization)


def tokenize_texts(
    texts: Sequence[str],
    tokenizer,
    tokenizer_name_or_path: str,
    tokenization: reviews.TokenizationSettings,
    *,
    num_workers: int,
    batch_size: int,
    log_every_rows: int,
) -> list[list[int]]:
    """input_ids for every text, in order, from the loaded tokenizer (its name or path lets
    spawned workers load it too). Results do not depend on num_workers or batch_size."""
    global _worker_tokenizer, _worker_tokenization
    _worker_tokenizer, _worker_tokenization = tokenizer, tokenization
    batches = [list(texts[start : start + batch_size]) for start in range(0, len(texts), batch_size)]
    started = time.monotonic()
    input_ids: list[list[int]] = []
    next_log = log_every_rows

    def record(batch_ids: list[list[int]]) -> None:
        nonlocal next_log
        input_ids.extend(batch_ids)
        if len(input_ids) >= next_log or len(input_ids) == len(texts):
            rate = len(input_ids) / max(time.monotonic() - started, 1e-9)
            LOG.info("tokenized %d/%d reviews (%.0f reviews/s)", len(input_ids), len(texts), rate)
            next_log = (len(input_ids) // log_every_rows + 1) * log_every_rows

    workers = min(num_workers, len(batches))
    if workers <= 1:
        for batch in batches:
            record(_encode_batch(batch))
        return input_ids
    # fork shares the loaded tokenizer with the workers for free; elsewhere they load it.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context(method),
        initializer=_init_worker,
        initargs=(tokenizer_name_or_path, tokenization),
    ) as pool:
        for batch_ids in pool.map(_encode_batch, batches):
            record(batch_ids)
    return input_ids


# ----------------------------------------------------------------------------------------------
# The recipe


def prepared_splits(splits: dict[str, list[Review]], input_ids: Iterator[list[int]]) -> dict[str, list[dict]]:
    """Prepared records per split; input_ids come in split order (train, validation, test)."""
    return {
        name: [
            reviews.prepared_record(
                review_id=review.review_id,
                date=review.date,
                sentiment=review.sentiment,
                input_ids=next(input_ids),
                review_body=review.review_body,
                split_type=name,
            )
            for review in members
        ]
        for name, members in splits.items()
    }


def write_splits(records_by_split: dict[str, list[dict]], output_dir: Path, host: str) -> None:
    for name, records in records_by_split.items():
        path = output_dir / name / f"part-{host}.jsonl"
        reviews.write_jsonl(path, records)
        LOG.info("wrote %d records to %s", len(records), path)


def ingest(records_by_split: dict[str, list[dict]], settings: PrepareSettings):
    import feature_store_ingestion as ingestion

    ingestion_settings = ingestion.IngestionSettings(
        feature_group_name=settings.feature_group_name,
        max_workers=settings.ingest_max_workers,
        max_attempts=settings.ingest_max_attempts,
        log_every_records=max(settings.log_every_rows // 10, 100),
    )
    client = ingestion.make_featurestore_client(
        endpoint_url=settings.featurestore_endpoint_url, max_workers=settings.ingest_max_workers
    )
    records = (record for name in reviews.SPLIT_NAMES for record in records_by_split[name])
    return ingestion.ingest_records(client, records, ingestion_settings)


def build_report(
    *,
    settings: PrepareSettings,
    identity: HostIdentity,
    files: Sequence[Path],
    read: ReadResult,
    records_by_split: dict[str, list[dict]],
    run_event_time: str,
    ingestion: dict | None,
    seconds: dict[str, float],
) -> dict:
    written_by_split = {name: len(records) for name, records in records_by_split.items()}
    written_by_label = {
        name: {label: sum(1 for r in records if r["label_id"] == label_id) for label_id, label in reviews.ID2LABEL.items()}
        for name, records in records_by_split.items()
    }
    rows_written = sum(written_by_split.values())
    rows_rejected = sum(read.rejected.values())
    if read.rows_read != rows_written + rows_rejected:
        raise AssertionError(f"row accounting is off: read {read.rows_read} != written {rows_written} + rejected {rows_rejected}")
    return {
        "host": identity.current_host,
        "hosts": list(identity.hosts),
        "input_files": [str(path.relative_to(settings.input_dir)) for path in files],
        "rows_read": read.rows_read,
        "rows_written": {"total": rows_written, "by_split": written_by_split, "by_split_and_label": written_by_label},
        "rows_rejected": {"total": rows_rejected, "by_reason": {reason: read.rejected.get(reason, 0) for reason in REJECT_REASONS}},
        "settings": {
            "balance": settings.balance,
            "split_fractions": settings.fractions.as_dict(),
            "random_seed": settings.random_seed,
            "tokenizer": settings.tokenizer,
            "max_seq_length": settings.tokenization.max_seq_length,
            "columns": asdict(settings.columns),
            "num_workers": settings.num_workers,
            "batch_size": settings.batch_size,
        },
        "event_time": {
            "date_column": settings.columns.review_date,
            "files_with_date_column": read.files_with_date_column,
            "files_without_date_column_use_run_start": len(files) - read.files_with_date_column,
            "run_start": run_event_time,
        },
        "ingestion": ingestion,
        "seconds": seconds,
    }


def run(settings: PrepareSettings) -> dict:
    """The whole step on this host; returns the report (also written to report/)."""
    started = time.monotonic()
    run_event_time = reviews.format_event_time(datetime.now(timezone.utc))
    identity = read_host_identity(settings.resource_config)
    all_files = find_input_files(settings.input_dir)
    tokenizer = load_tokenizer(settings.tokenizer)  # before any long work: a wrong path fails fast
    seconds = {"load_tokenizer": time.monotonic() - started}
    files = files_for_host(all_files, identity)
    LOG.info("host %s of %s: %d of %d input files", identity.current_host, list(identity.hosts), len(files), len(all_files))
    if not files:
        LOG.warning("no input files for this host: more hosts than files; writing empty splits")

    phase = time.monotonic()
    read = read_reviews(files, settings.columns, run_event_time, settings.log_every_rows)
    seconds["read"] = time.monotonic() - phase
    usable = read.reviews
    if settings.balance:
        usable, dropped = balance_by_down_sampling(usable, settings.random_seed)
        read.rejected[DOWN_SAMPLED_FOR_BALANCE] += dropped
        LOG.info("balanced to %d reviews per class (%d down-sampled)", len(usable) // len(reviews.SENTIMENTS), dropped)
    splits = stratified_split(usable, settings.fractions, settings.random_seed)

    phase = time.monotonic()
    ordered = [review for name in reviews.SPLIT_NAMES for review in splits[name]]
    input_ids = tokenize_texts(
        [review.review_body for review in ordered],
        tokenizer,
        settings.tokenizer,
        settings.tokenization,
        num_workers=settings.num_workers,
        batch_size=settings.batch_size,
        log_every_rows=settings.log_every_rows,
    )
    seconds["tokenize"] = time.monotonic() - phase

    phase = time.monotonic()
    records_by_split = prepared_splits(splits, iter(input_ids))
    write_splits(records_by_split, settings.output_dir, identity.current_host)
    seconds["write"] = time.monotonic() - phase

    ingestion = None
    if settings.ingest:
        phase = time.monotonic()
        ingestion = ingest(records_by_split, settings).to_dict()
        seconds["ingest"] = time.monotonic() - phase
    seconds["total"] = time.monotonic() - started

    report = build_report(
        settings=settings,
        identity=identity,
        files=files,
        read=read,
        records_by_split=records_by_split,
        run_event_time=run_event_time,
        ingestion=ingestion,
        seconds={name: round(value, 3) for name, value in seconds.items()},
    )
    report_path = settings.output_dir / REPORT_DIR / f"prepare_report-{identity.current_host}.json"
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    LOG.info(
        "rows read %d = written %d + rejected %d %s; report: %s",
        report["rows_read"], report["rows_written"]["total"], report["rows_rejected"]["total"],
        {k: v for k, v in report["rows_rejected"]["by_reason"].items() if v}, report_path,
    )
    return report


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stdout)
    settings = parse_settings(argv)
    try:
        report = run(settings)
    except PrepareError as error:
        LOG.error("%s", error)
        return 2
    failed = (report["ingestion"] or {}).get("failed", 0)
    if failed:
        LOG.error("%d records could not be ingested into %s (see the report)", failed, settings.feature_group_name)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
