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


def test_atomic_writes_keep_the_mode_of_the_file_they_replace_or_follow_the_umask(tmp_path):
    """``mkstemp`` makes 0600 files: on a shared machine nobody else could read the results."""
    import os
    import stat

    def mode(p):
        return stat.S_IMODE(os.stat(p).st_mode)

    old = os.umask(0o022)
    try:
        p = io.atomic_write_text(tmp_path / "new.txt", "x")
        assert mode(p) == 0o644  # 0666 less the umask, as open() would make it
        os.umask(0o027)
        assert mode(io.atomic_write_text(tmp_path / "other.txt", "x")) == 0o640
        os.chmod(p, 0o664)
        assert mode(io.atomic_write_bytes(p, b"y")) == 0o664 and p.read_bytes() == b"y"  # kept when rewritten
        assert os.umask(0o027) == 0o027  # the umask is read, never left changed
    finally:
        os.umask(old)
