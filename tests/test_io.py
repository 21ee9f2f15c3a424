"""Atomic writes and sha256 sums (gankd_utils.io)."""
import hashlib

import pytest

from gankd_utils import io


def test_atomic_writes_and_sha256(tmp_path):
    p = io.atomic_write_text(tmp_path / "sub" / "a.txt", "hello")
    assert p.read_text() == "hello"
    io.atomic_write_bytes(p, b"\x00" * (3 << 20))  # more than one 1 MiB chunk
    assert io.sha256_file(p) == hashlib.sha256(b"\x00" * (3 << 20)).hexdigest()
    assert sorted(q.name for q in p.parent.iterdir()) == ["a.txt"]  # no temp file left


def test_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path):
    p = io.atomic_write_text(tmp_path / "a.txt", "old")

    def boom(tmp):
        with open(tmp, "w") as f:
            f.write("half")
        raise RuntimeError("crash")

    with pytest.raises(RuntimeError, match="crash"):
        io.atomic_write(p, boom)
    assert p.read_text() == "old" and [q.name for q in tmp_path.iterdir()] == ["a.txt"]
