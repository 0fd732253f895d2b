"""The code bundle is byte-identical for identical sources and changes with any script."""

from __future__ import annotations

import gzip
import io
import os
import shutil
import tarfile

import pytest

from pipeline_definition.code_bundle import CONTAINER_CODE_DIR, build_code_bundle, bundle_bytes


@pytest.fixture
def code_copy(tmp_path):
    copy = tmp_path / "container_code"
    shutil.copytree(CONTAINER_CODE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def test_bundle_holds_every_script_flat_without_caches(code_copy):
    (code_copy / "__pycache__").mkdir()
    (code_copy / "__pycache__" / "reviews.cpython-311.pyc").write_bytes(b"cache")
    (code_copy / ".hidden").write_text("editor state")
    with tarfile.open(fileobj=io.BytesIO(bundle_bytes(code_copy)), mode="r:gz") as archive:
        members = archive.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names)
    assert {"prepare.py", "train.py", "evaluate.py", "inference.py", "reviews.py"} <= set(names)
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or n.startswith(".")]
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, 0, "", "")}


def test_bundle_bytes_do_not_depend_on_file_times_or_build_folder(code_copy, tmp_path):
    first = build_code_bundle(code_copy, tmp_path / "a")
    for path in code_copy.iterdir():
        os.utime(path, (1_700_000_000, 1_700_000_000))
    second = build_code_bundle(code_copy, tmp_path / "b")
    assert first.path.read_bytes() == second.path.read_bytes()
    assert first.sha256 == second.sha256
    # The gzip header carries no time and no file name either.
    assert gzip.decompress(first.path.read_bytes())
    assert first.path.read_bytes()[4:8] == b"\x00\x00\x00\x00"


def test_changing_a_script_changes_the_bundle(code_copy, tmp_path):
    before = build_code_bundle(code_copy, tmp_path / "build").sha256
    with (code_copy / "train.py").open("a") as handle:
        handle.write("\n# a changed line\n")
    after = build_code_bundle(code_copy, tmp_path / "build")
    assert after.sha256 != before
    assert after.path.read_bytes() == bundle_bytes(code_copy)


def test_missing_or_empty_code_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="code directory not found"):
        bundle_bytes(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="code directory is empty"):
        bundle_bytes(tmp_path / "empty")
