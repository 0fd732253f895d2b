"""Offline sample data: the four human-rated ground-truth sets that ship in vaderSentiment's
source archive (23,703 texts), converted to the Amazon Customer Reviews layout that prepare.py
reads, one CSV per domain, each row tagged with its domain.

    python -m local_pipeline.sample_data --dest .data/reviews

The source archive comes from PyPI through pip (`pip download --no-binary :all:`; the wheel
lacks the snippets) into a cache folder, once; later runs read the cached file and need no
network. Inside it, additional_resources/hutto_ICWSM_2014.tar.gz holds, each text with the mean
sentiment of at least 20 human raters on a -4..+4 scale (Hutto & Gilbert, ICWSM 2014):

    domain     file                                  texts  what
    product    amazonReviewSnippets_GroundTruth.txt  3,708  sentences of 309 reviews of five
                                                            electronics products (Hu & Liu, 2004)
    movie      movieReviewSnippets_GroundTruth.txt  10,605  movie-review snippets (Pang & Lee, 2005)
    editorial  nytEditorialSnippets_GroundTruth.txt  5,190  sentences of NYT opinion pieces
    tweet      tweets_GroundTruth.txt                4,200  tweets

Mean rating to star_rating (symmetric around 0; bounds chosen so that the neutral band, about
a fifth of the snippets, is large enough to learn from):

    mean <= -2.0         -> 1 star   (negative)
    -2.0 < mean <= -0.5  -> 2 stars  (negative)
    -0.5 < mean <  0.5   -> 3 stars  (neutral)
     0.5 <= mean <  2.0  -> 4 stars  (positive)
     2.0 <= mean         -> 5 stars  (positive)

The same mapping for every domain. Rows: review_id `vader-<source>-<snippet id>` (for the
product snippets `<review>_<sentence>`), star_rating, review_body (the text), product_category
(`Electronics` for the products; the domain's kind of text otherwise), marketplace `US`,
vader_mean_rating (the source value, for traceability) and domain. The texts carry no dates, so
there is no review_date column and prepare uses its run's start time as the event time. The
product snippets are the domain the README's test figures are measured on (prepare's
--test-domain product keeps the others out of the test split).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import subprocess
import sys
import tarfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import reviews  # container_code/, put on the path by local_pipeline/__init__.py

PROJECT_ROOT = Path(__file__).resolve().parent.parent

VADER_REQUIREMENT = "vaderSentiment==3.3.2"
VADER_SDIST_NAME = "vaderSentiment-3.3.2.tar.gz"
# sha256 of the file PyPI serves for vaderSentiment 3.3.2 (checked after every download).
VADER_SDIST_SHA256 = "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9"
SNIPPETS_ARCHIVE_MEMBER = "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"
AMAZON_SNIPPETS_MEMBER = "hutto_ICWSM_2014/amazonReviewSnippets_GroundTruth.txt"

DEFAULT_DEST = PROJECT_ROOT / ".data" / "reviews"
DEFAULT_CACHE_DIR = PROJECT_ROOT / ".data" / "cache"
MARKETPLACE = "US"
CSV_COLUMNS = ("review_id", "star_rating", "review_body", "product_category", "marketplace", "vader_mean_rating", "domain")


@dataclass(frozen=True)
class Domain:
    """One ground-truth set of the archive and how its rows are written."""

    name: str
    member: str
    output_file_name: str
    review_id_prefix: str
    product_category: str
    texts: int  # how many the archive holds: a conversion that finds another number fails


PRODUCT = Domain("product", AMAZON_SNIPPETS_MEMBER, "amazon_review_snippets.csv", "vader-amazon-", "Electronics", 3708)
DOMAINS: tuple[Domain, ...] = (
    PRODUCT,
    Domain("movie", "hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt", "movie_review_snippets.csv",
           "vader-movie-", "Movies", 10605),
    Domain("editorial", "hutto_ICWSM_2014/nytEditorialSnippets_GroundTruth.txt", "nyt_editorial_snippets.csv",
           "vader-nyt-", "Editorials", 5190),
    Domain("tweet", "hutto_ICWSM_2014/tweets_GroundTruth.txt", "tweets.csv", "vader-tweet-", "Tweets", 4200),
)
# The domain the README's test figures are measured on.
TEST_DOMAIN = PRODUCT.name
# Kept for callers that read the product snippets alone.
OUTPUT_FILE_NAME = PRODUCT.output_file_name

MIN_MEAN_RATING, MAX_MEAN_RATING = -4.0, 4.0


@dataclass(frozen=True)
class Snippet:
    snippet_id: str
    mean_rating: float
    text: str


def mean_rating_to_star_rating(mean_rating: float) -> int:
    """The documented mapping (see the module docstring) from a -4..+4 mean rating to 1-5 stars."""
    if not MIN_MEAN_RATING <= mean_rating <= MAX_MEAN_RATING:
        raise ValueError(f"mean rating must be within [-4, 4], got {mean_rating}")
    if mean_rating <= -2.0:
        return 1
    if mean_rating <= -0.5:
        return 2
    if mean_rating < 0.5:
        return 3
    if mean_rating < 2.0:
        return 4
    return 5


def parse_snippets(lines: Iterable[str], source: str = "snippets") -> list[Snippet]:
    """Tab-separated `id, mean rating, text` lines (blank lines skipped); a bad line is an
    error naming the source and line number."""
    snippets = []
    for line_number, line in enumerate(lines, start=1):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 3:
            raise ValueError(f"{source}:{line_number}: expected 3 tab-separated fields, got {len(fields)}")
        snippet_id, mean_text, text = (field.strip() for field in fields)
        try:
            mean_rating = float(mean_text)
        except ValueError:
            raise ValueError(f"{source}:{line_number}: mean rating {mean_text!r} is not a number") from None
        if not snippet_id or not text:
            raise ValueError(f"{source}:{line_number}: empty id or text")
        snippets.append(Snippet(snippet_id, mean_rating, text))
    return snippets


def to_review_row(snippet: Snippet, domain: Domain = PRODUCT) -> dict[str, str | int | float]:
    return {
        "review_id": domain.review_id_prefix + snippet.snippet_id,
        "star_rating": mean_rating_to_star_rating(snippet.mean_rating),
        "review_body": snippet.text,
        "product_category": domain.product_category,
        "marketplace": MARKETPLACE,
        "vader_mean_rating": snippet.mean_rating,
        "domain": domain.name,
    }


def write_reviews_csv(snippets: Sequence[Snippet], path: Path, domain: Domain = PRODUCT) -> list[dict]:
    """The snippets as an Amazon Customer Reviews CSV; returns the rows written."""
    rows = [to_review_row(snippet, domain) for snippet in snippets]
    duplicates = [rid for rid, count in Counter(row["review_id"] for row in rows).items() if count > 1]
    if duplicates:
        raise ValueError(f"duplicate snippet ids: {duplicates[:5]}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return rows


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_sdist(cache_dir: Path) -> Path:
    """vaderSentiment's source archive in cache_dir, downloaded with pip unless already there."""
    sdist = cache_dir / VADER_SDIST_NAME
    if sdist.is_file() and _sha256(sdist) == VADER_SDIST_SHA256:
        print(f"using cached {sdist}")
        return sdist
    cache_dir.mkdir(parents=True, exist_ok=True)
    print(f"downloading {VADER_REQUIREMENT} (source archive) into {cache_dir} ...", flush=True)
    command = [
        sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--quiet",
        "--no-deps", "--no-binary", ":all:", "--dest", str(cache_dir), VADER_REQUIREMENT,
    ]
    completed = subprocess.run(command, capture_output=True, text=True)
    if completed.returncode != 0 or not sdist.is_file():
        raise RuntimeError(f"pip download failed ({completed.returncode}):\n{completed.stderr.strip()}")
    actual = _sha256(sdist)
    if actual != VADER_SDIST_SHA256:
        raise RuntimeError(f"{sdist}: sha256 {actual} differs from the pinned {VADER_SDIST_SHA256}")
    return sdist


def read_domain_snippets(sdist: Path, domains: Sequence[Domain] = DOMAINS) -> dict[Domain, list[Snippet]]:
    """Each domain's snippets, read from the archive nested in the source archive (no extraction)."""
    snippets: dict[Domain, list[Snippet]] = {}
    with tarfile.open(sdist, "r:gz") as outer:
        nested = outer.extractfile(SNIPPETS_ARCHIVE_MEMBER)
        if nested is None:
            raise RuntimeError(f"{sdist}: no {SNIPPETS_ARCHIVE_MEMBER}")
        with tarfile.open(fileobj=io.BytesIO(nested.read()), mode="r:gz") as inner:
            for domain in domains:
                member = inner.extractfile(domain.member)
                if member is None:
                    raise RuntimeError(f"{sdist}: no {domain.member} in {SNIPPETS_ARCHIVE_MEMBER}")
                # The files start with a UTF-8 byte-order mark.
                text = member.read().decode("utf-8-sig")
                snippets[domain] = parse_snippets(text.splitlines(), source=domain.member)
    return snippets


def check_sizes(snippets: dict[Domain, list[Snippet]]) -> None:
    """Every domain holds the number of texts the archive is documented to hold."""
    for domain, domain_snippets in snippets.items():
        if len(domain_snippets) != domain.texts:
            raise RuntimeError(f"{domain.member}: {len(domain_snippets)} texts, expected {domain.texts}")


def read_amazon_snippets(sdist: Path) -> list[Snippet]:
    """The product snippets alone."""
    return read_domain_snippets(sdist, (PRODUCT,))[PRODUCT]


def summarize(rows: Sequence[dict]) -> str:
    stars = Counter(row["star_rating"] for row in rows)
    sentiments = Counter(reviews.star_rating_to_sentiment(row["star_rating"]) for row in rows)
    star_text = ", ".join(f"{star}: {stars[star]}" for star in range(1, 6))
    sentiment_text = ", ".join(
        f"{name}: {sentiments[reviews.label_id_to_sentiment(label_id)]}" for label_id, name in reviews.ID2LABEL.items()
    )
    return f"rows per star_rating: {star_text}\nrows per sentiment: {sentiment_text}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST,
                        help=f"folder that gets {', '.join(domain.output_file_name for domain in DOMAINS)}")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR, help="where the downloaded source archive is kept")
    args = parser.parse_args(argv)
    try:
        sdist = download_sdist(args.cache_dir)
        snippets = read_domain_snippets(sdist)
        check_sizes(snippets)
    except (RuntimeError, ValueError, tarfile.TarError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for domain, domain_snippets in snippets.items():
        output = args.dest / domain.output_file_name
        rows = write_reviews_csv(domain_snippets, output, domain)
        print(f"wrote {len(rows)} {domain.name} texts to {output}")
        print(summarize(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
