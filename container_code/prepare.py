"""Prepare step (a SageMaker processing job): raw review CSVs in, tokenized, balanced,
stratified train/validation/test JSON Lines splits out, optionally ingested into the Feature
Group, with a report that accounts for every row read.

Runs as `python prepare.py --args` on one or more instances: every host reads the whole input
(the pipeline hands it over FullyReplicated) and keeps the rows whose review id hashes to it, so
duplicates of an id always meet on one host. Unusable input stops the job with a one-line reason,
also written where SageMaker reads a processing job's exit message.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import json
import logging
import multiprocessing
import os
import random
import sys
import time
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
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
INVALID_UTF8 = "invalid_utf8"
MISSING_REVIEW_BODY = "missing_review_body"
MISSING_STAR_RATING = "missing_star_rating"
STAR_RATING_NOT_AN_INTEGER = "star_rating_not_an_integer"
STAR_RATING_OUT_OF_RANGE = "star_rating_out_of_range"
INVALID_REVIEW_DATE = "invalid_review_date"
DUPLICATE_REVIEW_ID = "duplicate_review_id"
DOWN_SAMPLED_FOR_BALANCE = "down_sampled_for_balance"
REJECT_REASONS = (
    MISSING_REVIEW_ID,
    INVALID_UTF8,
    MISSING_REVIEW_BODY,
    MISSING_STAR_RATING,
    STAR_RATING_NOT_AN_INTEGER,
    STAR_RATING_OUT_OF_RANGE,
    INVALID_REVIEW_DATE,
    DUPLICATE_REVIEW_ID,
    DOWN_SAMPLED_FOR_BALANCE,
)
# The report names the file and line of the first rejected rows (never their text).
MAX_REJECT_EXAMPLES = 20
# What a damaged or cut-short gzip stream raises while it is read.
GZIP_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error)


# --test-domain's value for "the test split draws on every domain".
ALL_DOMAINS = "*"


class PrepareError(Exception):
    """Input or settings that prepare cannot work with; the message says what to fix."""


class IngestionFailed(Exception):
    """Nothing could be ingested (the feature group could not be described): exit status 1."""


class UsageError(SystemExit):
    """A bad command line: argparse's exit (status 2), carrying its one-line message."""

    def __init__(self, message: str):
        super().__init__(2)
        self.message = message


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str):
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise UsageError(f"invalid arguments: {message}")


# ----------------------------------------------------------------------------------------------
# Arguments


@dataclass(frozen=True)
class Columns:
    review_id: str = "review_id"
    star_rating: str = "star_rating"
    review_body: str = "review_body"
    review_date: str = "review_date"
    # Optional: which kind of text a row is (the sample data's product, movie, editorial, tweet).
    domain: str = "domain"


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
    ingest_max_workers: int
    ingest_max_attempts: int
    ingest_retry_mode: str = "standard"
    event_time: str | None = None
    input_digest: str | None = None
    expected_input_files: int | None = None
    expected_input_bytes: int | None = None
    exit_message_file: Path = Path(reviews.EXIT_MESSAGE_FILE)
    test_domain: str = ALL_DOMAINS


def _event_time(value: str) -> str:
    event_time = reviews.parse_event_time(value)
    if event_time is None:
        raise argparse.ArgumentTypeError(f"expected an ISO-8601 date or date-time, got {value!r}")
    return event_time


def _non_negative_int(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {number}")
    return number


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def build_argument_parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(
        description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    paths = parser.add_argument_group("paths")
    paths.add_argument("--input-dir", default=DEFAULT_INPUT_DIR, help="folder searched recursively for *.csv, *.tsv (optionally .gz)")
    paths.add_argument("--output-dir", default=DEFAULT_OUTPUT_DIR, help="gets train/, validation/, test/ (part-<host>.jsonl) and report/")
    paths.add_argument("--resource-config", default=DEFAULT_RESOURCE_CONFIG, help="SageMaker's host list (current_host, hosts); absent means one host, algo-1")
    paths.add_argument("--exit-message-file", default=reviews.EXIT_MESSAGE_FILE, help="where a failure's one-line reason goes (SageMaker returns it as the job's ExitMessage)")

    snapshot = parser.add_argument_group("input snapshot (from the pipeline's fingerprint step)")
    snapshot.add_argument("--input-digest", default=None, help="digest of the input objects (keys, ETags, sizes, times); recorded in the report")
    snapshot.add_argument("--expected-input-files", type=_non_negative_int, default=None, help="files the input folder must hold: fewer or more means the input changed after it was fingerprinted")
    snapshot.add_argument("--expected-input-bytes", type=_non_negative_int, default=None, help="bytes those files must add up to")
    snapshot.add_argument("--event-time", type=_event_time, default=None, help="event time (ISO-8601) of rows from files without the date column; required when there are such files")

    columns = parser.add_argument_group("input columns")
    columns.add_argument("--id-column", default=Columns.review_id, help="unique review id")
    columns.add_argument("--rating-column", default=Columns.star_rating, help="star rating 1-5")
    columns.add_argument("--text-column", default=Columns.review_body, help="review text")
    columns.add_argument("--date-column", default=Columns.review_date, help="review date, used as the event time when a file has it (else --event-time)")
    columns.add_argument("--domain-column", default=Columns.domain, help="optional: the kind of text of a row (--test-domain selects on it)")

    data = parser.add_argument_group("data preparation")
    data.add_argument("--tokenizer", default="roberta-base", help="AutoTokenizer name or local path")
    data.add_argument("--max-seq-length", type=_positive_int, default=reviews.TokenizationSettings().max_seq_length, help="input_ids are padded/truncated to this length")
    data.add_argument("--balance", type=reviews.bool_argument, default="true", metavar="{true,false}", help="down-sample every sentiment class to the size of the smallest")
    data.add_argument("--train-fraction", type=float, default=0.90, help="share of each class that goes to train/")
    data.add_argument("--validation-fraction", type=float, default=0.05, help="share of each class that goes to validation/")
    data.add_argument("--test-fraction", type=float, default=0.05, help="share of each class that goes to test/")
    data.add_argument("--random-seed", type=int, default=42, help="seed of balancing and splitting")
    data.add_argument("--test-domain", default=ALL_DOMAINS,
                      help="draw the test split from this domain only (the others' test share goes to train/), "
                           f"so that evaluation measures the domain the model is for; {ALL_DOMAINS!r}: every domain")

    work = parser.add_argument_group("parallelism and progress")
    work.add_argument("--num-workers", type=_positive_int, default=os.cpu_count() or 1, help="tokenizer processes, 1 = in this process; defaults to the CPU count (here %(default)s)")
    work.add_argument("--batch-size", type=_positive_int, default=1000, help="texts per tokenizer call")
    work.add_argument("--log-every-rows", type=_positive_int, default=10000, help="progress line interval while reading and tokenizing")

    ingest = parser.add_argument_group("feature store")
    ingest.add_argument("--ingest", type=reviews.bool_argument, default="false", metavar="{true,false}", help="put every written record into the feature group")
    ingest.add_argument("--feature-group-name", default=None, help="required with --ingest true")
    ingest.add_argument("--ingest-max-workers", type=_positive_int, default=8, help="FeatureGroup.ingest's max_workers: concurrent PutRecord calls")
    ingest.add_argument("--ingest-max-attempts", type=_positive_int, default=5, help="botocore's total_max_attempts per record (throttling, 5xx, connection errors)")
    ingest.add_argument("--ingest-retry-mode", choices=("standard", "adaptive"), default="standard", help="botocore's retry mode for PutRecord")
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
        columns=Columns(args.id_column, args.rating_column, args.text_column, args.date_column, args.domain_column),
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
        ingest_max_workers=args.ingest_max_workers,
        ingest_max_attempts=args.ingest_max_attempts,
        ingest_retry_mode=args.ingest_retry_mode,
        event_time=args.event_time,
        input_digest=args.input_digest,
        expected_input_files=args.expected_input_files,
        expected_input_bytes=args.expected_input_bytes,
        exit_message_file=Path(args.exit_message_file),
        test_domain=args.test_domain,
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
    """The review tables under input_dir (extensions matched in any case), sorted."""
    if not input_dir.is_dir():
        raise PrepareError(f"input folder {input_dir} does not exist")
    files = sorted(p for p in input_dir.rglob("*") if p.is_file() and _csv_format_of(p) is not None)
    if not files:
        raise PrepareError(f"no input files (*.csv, *.tsv, optionally .gz, in any case) under {input_dir}")
    return files


def verify_input_snapshot(input_dir: Path, expected_files: int | None, expected_bytes: int | None) -> dict:
    """What the input folder holds (every file, tables or not, as SageMaker downloaded them),
    checked against the fingerprint the pipeline took of the S3 prefix before this job."""
    found = [path for path in input_dir.rglob("*") if path.is_file()]
    files, total_bytes = len(found), sum(path.stat().st_size for path in found)
    mismatches = [
        f"{what}: expected {expected}, found {actual}"
        for what, expected, actual in (("files", expected_files, files), ("bytes", expected_bytes, total_bytes))
        if expected is not None and expected != actual
    ]
    if mismatches:
        raise PrepareError(
            f"the input changed after the pipeline fingerprinted it ({'; '.join(mismatches)}): "
            "start the pipeline again once the upload is complete"
        )
    return {"files": files, "bytes": total_bytes}


def host_index_of(review_id: str, host_count: int) -> int:
    """The host (index into the sorted host list) that owns a review id: a stable hash, the same
    on every host and in every run. Rows without an id belong to the first host, which counts them."""
    if host_count == 1 or not review_id:
        return 0
    digest = hashlib.sha256(review_id.encode("utf-8", errors="surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") % host_count


def _csv_format_of(path: Path) -> dict | None:
    suffixes = [suffix.lower() for suffix in path.suffixes]
    if suffixes[-1:] == [".gz"]:
        suffixes = suffixes[:-1]
    return CSV_FORMAT_BY_SUFFIX.get(suffixes[-1]) if suffixes else None


def _is_gzipped(path: Path) -> bool:
    return path.suffix.lower() == ".gz"


# ----------------------------------------------------------------------------------------------
# Reading and validating rows


@dataclass(frozen=True)
class Review:
    review_id: str
    date: str
    sentiment: int
    review_body: str
    domain: str = ""


@dataclass
class ReadResult:
    reviews: list[Review]
    rows_read: int  # rows this host owns: each is written or rejected
    rejected: Counter
    rows_scanned: int = 0  # data rows of every input file, whichever host owns them
    files_with_date_column: int = 0
    reject_examples: list[dict] = field(default_factory=list)

    def reject(self, reason: str, path: str, line: int) -> None:
        self.rejected[reason] += 1
        if len(self.reject_examples) < MAX_REJECT_EXAMPLES:
            self.reject_examples.append({"file": path, "line": line, "reason": reason})


@contextmanager
def open_review_table(path: Path, columns: Columns) -> Iterator[csv.DictReader]:
    """A DictReader over one input file (BOM-tolerant, gzip-aware) whose header has the
    required columns. Bytes that are not UTF-8 come through as lone surrogates (the row is then
    rejected, not the file); a damaged gzip stream or bad CSV stops with the file and line."""
    csv.field_size_limit(MAX_FIELD_CHARS)
    if path.stat().st_size == 0:
        raise PrepareError(f"{path}: empty file (0 bytes): upload it again or remove it")
    opener = gzip.open if _is_gzipped(path) else open
    line = 0
    try:
        with opener(path, "rt", encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
            reader = csv.DictReader(handle, **_csv_format_of(path))
            header = reader.fieldnames or []
            if not header:
                raise PrepareError(f"{path}: no header line (the file holds no text)")
            missing = [name for name in (columns.review_id, columns.star_rating, columns.review_body) if name not in header]
            if missing:
                raise PrepareError(f"{path}: no column(s) {missing} in header {header}; see --id-column, --rating-column, --text-column")
            line = reader.line_num
            try:
                yield reader
            finally:
                # The csv reader's own count includes a line it failed to parse; DictReader's
                # stops at the last row it returned.
                line = reader.reader.line_num
    except csv.Error as error:
        raise PrepareError(f"{path}:{max(line, 1)}: unreadable CSV: {error}") from None
    except GZIP_ERRORS as error:
        raise PrepareError(
            f"{path}:{line + 1}: damaged or cut-short gzip data ({type(error).__name__}: {error}); upload the file again"
        ) from None


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
    return reviews.parse_event_time(raw or "")


def read_reviews(
    files: Sequence[Path],
    columns: Columns,
    *,
    identity: HostIdentity = HostIdentity(SINGLE_HOST, (SINGLE_HOST,)),
    default_event_time: str | None,
    log_every_rows: int,
    input_dir: Path | None = None,
) -> ReadResult:
    """Every row of every file, validated; this host keeps the rows whose id hashes to it.
    Usable rows become Reviews (first occurrence of an id wins), the rest are counted by
    reason. A file with the date column takes each row's event time from it; a file without
    gets default_event_time, which must then be given."""
    result = ReadResult(reviews=[], rows_read=0, rejected=Counter())
    seen_ids: set[str] = set()
    position, host_count = identity.hosts.index(identity.current_host), len(identity.hosts)
    for path in files:
        name = str(path.relative_to(input_dir)) if input_dir else path.name
        rows_before = result.rows_read
        with open_review_table(path, columns) as reader:
            has_date_column = columns.review_date in reader.fieldnames
            if not has_date_column and default_event_time is None:
                raise PrepareError(
                    f"{path}: no {columns.review_date!r} column and no --event-time: rows need an event time "
                    "(the pipeline passes its input snapshot's time)"
                )
            result.files_with_date_column += has_date_column
            for row in reader:
                result.rows_scanned += 1
                if host_index_of((row.get(columns.review_id) or "").strip(), host_count) != position:
                    continue
                result.rows_read += 1
                review_or_reason = _validate(row, columns, has_date_column, default_event_time)
                if isinstance(review_or_reason, str):
                    result.reject(review_or_reason, name, reader.line_num)
                elif review_or_reason.review_id in seen_ids:
                    result.reject(DUPLICATE_REVIEW_ID, name, reader.line_num)
                else:
                    seen_ids.add(review_or_reason.review_id)
                    result.reviews.append(review_or_reason)
                if result.rows_read % log_every_rows == 0:
                    LOG.info("read %d rows (%d usable) so far, now in %s", result.rows_read, len(result.reviews), path.name)
        LOG.info("read %s: %d rows for this host", path, result.rows_read - rows_before)
    return result


def _is_utf8(*texts: str | None) -> bool:
    try:
        for text in texts:
            (text or "").encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: the file held a byte that is not UTF-8
        return False
    return True


def _validate(row: dict, columns: Columns, has_date_column: bool, default_event_time: str | None) -> Review | str:
    review_id = (row.get(columns.review_id) or "").strip()
    if not review_id:
        return MISSING_REVIEW_ID
    used = [row.get(columns.review_id), row.get(columns.review_body), row.get(columns.star_rating)]
    if has_date_column:
        used.append(row.get(columns.review_date))
    if not _is_utf8(*used):
        return INVALID_UTF8
    # "" also when only invisible characters are left (a NUL, a zero-width space): serving
    # refuses those reviews too (reviews.clean_review_text).
    review_body = reviews.clean_review_text(row.get(columns.review_body) or "")
    if not review_body:
        return MISSING_REVIEW_BODY
    star_rating = parse_star_rating(row.get(columns.star_rating))
    if isinstance(star_rating, str):
        return star_rating
    date = default_event_time
    if has_date_column:
        date = parse_review_date(row.get(columns.review_date))
        if date is None:
            return INVALID_REVIEW_DATE
    domain = (row.get(columns.domain) or "").strip()
    return Review(review_id, date, reviews.star_rating_to_sentiment(star_rating), review_body, domain)


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


def split_with_test_domain(items: Sequence[Review], fractions: SplitFractions, seed: int,
                           test_domain: str) -> dict[str, list[Review]]:
    """stratified_split, except that only `test_domain`'s reviews can land in test/: the other
    domains' test share goes to train/, so they teach the model without diluting the figure
    the test split measures."""
    if test_domain == ALL_DOMAINS:
        return stratified_split(items, fractions, seed)
    in_domain = [review for review in items if review.domain == test_domain]
    if not in_domain:
        seen = sorted({review.domain for review in items})
        raise PrepareError(f"--test-domain {test_domain!r}: no usable review of that domain (domains: {seen})")
    others = [review for review in items if review.domain != test_domain]
    splits = stratified_split(in_domain, fractions, seed)
    no_test = SplitFractions(fractions.train + fractions.test, fractions.validation, 0.0)
    for name, members in stratified_split(others, no_test, seed).items():
        splits[name].extend(members)
    rng = random.Random(f"mix-{seed}")
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
        retry_mode=settings.ingest_retry_mode,
    )
    records = (record for name in reviews.SPLIT_NAMES for record in records_by_split[name])
    try:
        return ingestion.ingest_records(records, ingestion_settings)
    except ingestion.FeatureGroupUnavailable as error:
        raise IngestionFailed(str(error)) from error


def build_report(
    *,
    settings: PrepareSettings,
    identity: HostIdentity,
    files: Sequence[Path],
    snapshot: dict,
    read: ReadResult,
    records_by_split: dict[str, list[dict]],
    ingestion: dict | None,
    seconds: dict[str, float],
    domains_by_id: dict[str, str],
) -> dict:
    written_by_split = {name: len(records) for name, records in records_by_split.items()}
    written_by_domain = {name: dict(sorted(Counter(domains_by_id[r["review_id"]] for r in records).items()))
                         for name, records in records_by_split.items()}
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
        "input": {"digest": settings.input_digest, **snapshot},
        "input_files": [str(path.relative_to(settings.input_dir)) for path in files],
        "rows_scanned": read.rows_scanned,
        "rows_read": read.rows_read,
        "rows_written": {"total": rows_written, "by_split": written_by_split, "by_split_and_label": written_by_label,
                         "by_split_and_domain": written_by_domain},
        "rows_rejected": {
            "total": rows_rejected,
            "by_reason": {reason: read.rejected.get(reason, 0) for reason in REJECT_REASONS},
            "first_rows": read.reject_examples,
        },
        "settings": {
            "balance": settings.balance,
            "split_fractions": settings.fractions.as_dict(),
            "random_seed": settings.random_seed,
            "test_domain": settings.test_domain,
            "tokenizer": settings.tokenizer,
            "max_seq_length": settings.tokenization.max_seq_length,
            "truncation": settings.tokenization.truncation,
            "columns": asdict(settings.columns),
            "num_workers": settings.num_workers,
            "batch_size": settings.batch_size,
        },
        "event_time": {
            "date_column": settings.columns.review_date,
            "files_with_date_column": read.files_with_date_column,
            "files_without_date_column": len(files) - read.files_with_date_column,
            "default_event_time": settings.event_time,
        },
        "ingestion": ingestion,
        "seconds": seconds,
    }


def check_usable(read: ReadResult, identity: HostIdentity) -> None:
    """Stop before any long work when this host has nothing to prepare."""
    if read.reviews:
        return
    if read.rows_scanned == 0:
        raise PrepareError("the input holds no data rows (header lines only)")
    if read.rows_read == 0:
        raise PrepareError(
            f"none of the {read.rows_scanned} rows belongs to host {identity.current_host} of {len(identity.hosts)}: "
            "too few reviews for this many prepare instances"
        )
    reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(read.rejected.items()) if count)
    first = read.reject_examples[0] if read.reject_examples else {}
    raise PrepareError(
        f"all {read.rows_read} rows were rejected ({reasons}); first at {first.get('file')}:{first.get('line')}"
    )


def check_splits(splits: dict[str, list[Review]], fractions: SplitFractions) -> None:
    """Every split must hold reviews: train, validation and evaluation all read one."""
    usable = sum(len(members) for members in splits.values())
    for name, members in splits.items():
        if not members:
            raise PrepareError(
                f"the {name} split is empty: {usable} usable reviews with split fractions "
                f"{fractions.as_dict()}; add data or raise --{name}-fraction"
            )


def run(settings: PrepareSettings) -> dict:
    """The whole step on this host; returns the report (also written to report/)."""
    started = time.monotonic()
    identity = read_host_identity(settings.resource_config)
    files = find_input_files(settings.input_dir)
    snapshot = verify_input_snapshot(settings.input_dir, settings.expected_input_files, settings.expected_input_bytes)
    tokenizer = load_tokenizer(settings.tokenizer)  # before any long work: a wrong path fails fast
    seconds = {"load_tokenizer": time.monotonic() - started}
    LOG.info("host %s of %s: reading %d input files, keeping the review ids that hash to this host",
             identity.current_host, list(identity.hosts), len(files))

    phase = time.monotonic()
    read = read_reviews(
        files, settings.columns, identity=identity, default_event_time=settings.event_time,
        log_every_rows=settings.log_every_rows, input_dir=settings.input_dir,
    )
    seconds["read"] = time.monotonic() - phase
    check_usable(read, identity)
    usable = read.reviews
    if settings.balance:
        usable, dropped = balance_by_down_sampling(usable, settings.random_seed)
        read.rejected[DOWN_SAMPLED_FOR_BALANCE] += dropped
        LOG.info("balanced to %d reviews per class (%d down-sampled)", len(usable) // len(reviews.SENTIMENTS), dropped)
    splits = split_with_test_domain(usable, settings.fractions, settings.random_seed, settings.test_domain)
    check_splits(splits, settings.fractions)

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
        snapshot=snapshot,
        read=read,
        records_by_split=records_by_split,
        ingestion=ingestion,
        seconds={name: round(value, 3) for name, value in seconds.items()},
        domains_by_id={review.review_id: review.domain for review in ordered},
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


def _exit_message_file(argv: Sequence[str] | None) -> str:
    """--exit-message-file from a command line that may not parse as a whole."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--exit-message-file", default=reviews.EXIT_MESSAGE_FILE)
    return pre.parse_known_args(argv)[0].exit_message_file


def fail(message_file: str | Path, reason: str, status: int) -> int:
    """Log the reason and leave it where SageMaker reads the job's exit message."""
    LOG.error("%s", reason)
    try:
        reviews.write_exit_message(message_file, f"prepare: {reason}")
    except OSError as error:
        LOG.warning("could not write the exit message to %s: %s", message_file, error)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stdout)
    try:
        settings = parse_settings(argv)
    except UsageError as error:
        fail(_exit_message_file(argv), error.message, 2)
        raise
    try:
        report = run(settings)
    except PrepareError as error:
        return fail(settings.exit_message_file, str(error), 2)
    except IngestionFailed as error:
        return fail(settings.exit_message_file, str(error), 1)
    except Exception as error:
        # A bug or the machine (memory, disk): the traceback goes to the log, the reason to
        # the exit message, so the job does not fail without one.
        fail(settings.exit_message_file, f"unexpected {type(error).__name__}: {error}", 1)
        raise
    failed = (report["ingestion"] or {}).get("failed", 0)
    if failed:
        return fail(
            settings.exit_message_file,
            f"{failed} records could not be ingested into {settings.feature_group_name} (see the report)",
            1,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
