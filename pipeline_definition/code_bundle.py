"""Builds a deterministic `sourcedir.tar.gz` of container_code/: the same files give the same
bytes (sorted entries, zeroed times and owners, no caches), so the CDK asset hash, and with it
the code URI in the pipeline definition, changes exactly when a script changes."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONTAINER_CODE_DIR = PROJECT_ROOT / "container_code"
DEFAULT_BUILD_DIR = PROJECT_ROOT / "build" / "code_bundle"
BUNDLE_FILE_NAME = "sourcedir.tar.gz"

_EXCLUDED_DIR_NAMES = frozenset({"__pycache__", ".pytest_cache", ".ipynb_checkpoints"})
_EXCLUDED_SUFFIXES = (".pyc", ".pyo")


@dataclass(frozen=True)
class CodeBundle:
    path: Path
    sha256: str
    files: tuple[str, ...]


def bundled_files(source_dir: Path) -> list[Path]:
    """The files that go into the bundle, relative to `source_dir`, in archive order."""
    files = []
    for path in source_dir.rglob("*"):
        relative = path.relative_to(source_dir)
        if any(part in _EXCLUDED_DIR_NAMES or part.startswith(".") for part in relative.parts):
            continue
        if path.is_file() and not path.name.endswith(_EXCLUDED_SUFFIXES):
            files.append(relative)
    return sorted(files, key=lambda p: p.as_posix())


def bundle_bytes(source_dir: Path = CONTAINER_CODE_DIR) -> bytes:
    """The gzip-compressed tar of `source_dir`, byte-identical for identical contents."""
    source_dir = Path(source_dir)
    if not source_dir.is_dir():
        raise FileNotFoundError(f"code directory not found: {source_dir}")
    files = bundled_files(source_dir)
    if not files:
        raise ValueError(f"code directory is empty: {source_dir}")
    tar_buffer = io.BytesIO()
    with tarfile.open(fileobj=tar_buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for relative in files:
            data = (source_dir / relative).read_bytes()
            info = tarfile.TarInfo(relative.as_posix())
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o755 if (source_dir / relative).stat().st_mode & 0o111 else 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            archive.addfile(info, io.BytesIO(data))
    gzip_buffer = io.BytesIO()
    # mtime=0 and no file name in the gzip header: otherwise every build differs.
    with gzip.GzipFile(filename="", mode="wb", fileobj=gzip_buffer, mtime=0, compresslevel=9) as compressed:
        compressed.write(tar_buffer.getvalue())
    return gzip_buffer.getvalue()


def build_code_bundle(source_dir: Path = CONTAINER_CODE_DIR, build_dir: Path = DEFAULT_BUILD_DIR) -> CodeBundle:
    """Write the bundle to `build_dir/sourcedir.tar.gz` (only if its bytes changed)."""
    source_dir = Path(source_dir)
    data = bundle_bytes(source_dir)
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    path = build_dir / BUNDLE_FILE_NAME
    if not path.exists() or path.read_bytes() != data:
        # Write-then-rename: a synth running beside this one never sees half a file.
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        partial.write_bytes(data)
        os.replace(partial, path)
    return CodeBundle(
        path=path,
        sha256=hashlib.sha256(data).hexdigest(),
        files=tuple(p.as_posix() for p in bundled_files(source_dir)),
    )
