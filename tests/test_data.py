import gzip
import shutil

import numpy as np
import pytest
import torch

from gankd_utils import data, io


def test_mnist_from_the_data_root(mnist_train, mnist_test):
    assert mnist_train.images.shape == (60000, 1, 28, 28) and mnist_test.images.shape == (10000, 1, 28, 28)
    assert mnist_train.labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert mnist_train.images.float().div(255).mean().item() == pytest.approx(0.1307, abs=1e-3)


def test_cifar10_from_npz_shards(cifar_root):
    test = data.load_cifar10(train=False, root=cifar_root)
    assert test.images.shape == (10000, 3, 32, 32) and test.images.dtype == torch.uint8
    assert torch.bincount(test.labels).tolist() == [1000] * 10


def test_balanced_subset(mnist_test):
    sub = mnist_test.subset(100, seed=0)
    assert len(sub) == 100 and torch.bincount(sub.labels).tolist() == [10] * 10
    assert torch.equal(sub.images, mnist_test.subset(100, seed=0).images)


def test_missing_data_root_offline_says_where_and_what_to_set(tmp_path, monkeypatch):
    monkeypatch.setenv("GANKD_OFFLINE", "1")
    with pytest.raises(data.DatasetUnavailable) as e:
        data.load_mnist(root=tmp_path / "nowhere")
    msg = str(e.value)
    assert str(tmp_path / "nowhere" / "MNIST" / "raw") in msg and "GANKD_DATA_ROOT" in msg
    with pytest.raises(data.DatasetUnavailable, match="GANKD_DATA_ROOT"):
        data.load_cifar10(root=tmp_path / "nowhere")


def test_failed_download_is_a_clear_error(tmp_path, monkeypatch):
    from torchvision.datasets import MNIST

    monkeypatch.delenv("GANKD_OFFLINE", raising=False)
    monkeypatch.setattr(MNIST, "mirrors", [(tmp_path / "no-mirror").as_uri() + "/"])
    with pytest.raises(data.DatasetUnavailable, match="download failed"):
        data.load_mnist(root=tmp_path / "empty")


@pytest.fixture
def local_http(tmp_path):
    """An HTTP server on 127.0.0.1 serving a folder (torchvision's real download code needs HTTP)."""
    import functools
    import http.server
    import threading

    folder = tmp_path / "served"
    folder.mkdir()
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a):
            pass

    handler = functools.partial(Quiet, directory=str(folder))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield folder, f"http://127.0.0.1:{srv.server_address[1]}/"
    srv.shutdown()
    srv.server_close()


def test_torchvision_download_path_on_a_local_mirror(tmp_path, monkeypatch, data_root, local_http):
    """The real download code (torchvision MNIST, download=True) fetching from a loopback mirror."""
    from torchvision.datasets import MNIST

    src = data_root / "MNIST" / "raw"
    if not (src / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip("MNIST files not in the data root")
    mirror, url = local_http
    for f in src.glob("*.gz"):
        shutil.copy(f, mirror / f.name)
    monkeypatch.delenv("GANKD_OFFLINE", raising=False)
    monkeypatch.setattr(MNIST, "mirrors", [url])
    got = data.load_mnist(train=False, root=tmp_path / "root")
    assert len(got) == 10000 and (tmp_path / "root" / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz").exists()


def test_truncated_mnist_file_is_detected(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    header = (0x0803).to_bytes(4, "big") + b"".join(x.to_bytes(4, "big") for x in (10, 28, 28))
    with gzip.open(raw / "bad.gz", "wb") as f:
        f.write(header + bytes(100))
    with pytest.raises(ValueError, match="truncated"):
        data._read_idx_gz(raw / "bad.gz")


def _arrays(n=12, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8), rng.integers(0, 10, n),
            rng.normal(size=(n, 4)).astype(np.float32))


def test_shard_round_trip_and_reproducible_bytes(tmp_path):
    x, y, z = _arrays()
    e1 = data.write_shard(tmp_path / "a", 0, x, y, z)
    e2 = data.write_shard(tmp_path / "b", 0, x, y, z)
    assert e1 == e2  # same arrays, same bytes, same sha256
    data.write_manifest(tmp_path / "a", {"teacher": "test", "shards": [e1], "classes": list(range(10))})
    back = data.load_shard(tmp_path / "a", e1)
    assert np.array_equal(back["images"], x) and np.array_equal(back["labels"], y) and np.array_equal(back["z"], z)
    assert back["labels"].dtype == np.int64 and back["z"].dtype == np.float32
    s = data.load_shards(tmp_path / "a")
    assert s.images.shape == (12, 3, 8, 8)


def test_interrupted_write_leaves_no_partial_shard(tmp_path, monkeypatch):
    x, y, z = _arrays()
    folder = tmp_path / "s"
    good = data.write_shard(folder, 0, x, y, z)
    before = (folder / good["file"]).read_bytes()
    real_replace = io.os.replace

    def crash(*a, **k):
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(io.os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        data.write_shard(folder, 0, x[:5], y[:5], z[:5])  # overwrite attempt
    with pytest.raises(KeyboardInterrupt):
        data.write_shard(folder, 1, x, y, z)
    monkeypatch.setattr(io.os, "replace", real_replace)
    assert sorted(p.name for p in folder.iterdir()) == [good["file"]]  # no temp files, no shard 1
    assert (folder / good["file"]).read_bytes() == before  # what was on disk is intact


def test_corrupt_and_truncated_shards_are_detected(tmp_path):
    x, y, z = _arrays()
    e = data.write_shard(tmp_path, 0, x, y, z)
    p = tmp_path / e["file"]
    raw = bytearray(p.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    p.write_bytes(bytes(raw))
    with pytest.raises(data.ShardError, match="corrupted"):
        data.load_shard(tmp_path, e)
    p.write_bytes(bytes(raw[:200]))
    with pytest.raises(data.ShardError, match="truncated"):
        data.load_shard(tmp_path, e, verify=False)
    p.unlink()
    with pytest.raises(data.ShardError, match="missing"):
        data.load_shard(tmp_path, e)


def test_bad_shard_inputs():
    x, y, z = _arrays()
    with pytest.raises(ValueError, match="uint8"):
        data.write_shard("/tmp/never", 0, x.astype(np.float32), y)
    with pytest.raises(ValueError, match="labels"):
        data.write_shard("/tmp/never", 0, x, y[:3])
    with pytest.raises(ValueError, match="z must be"):
        data.write_shard("/tmp/never", 0, x, y, z[:3])


def test_batches_are_reproducible_and_resumable():
    s = data.ImageSet(torch.randint(0, 256, (40, 1, 4, 4), dtype=torch.uint8), torch.arange(40) % 10, ("a",) * 10, "t")
    b = data.Batches(s, 8, seed=3)
    full = [x for x, _ in b.epoch(2)]
    tail = [x for x, _ in b.epoch(2, skip=3)]
    assert len(full) == 5 and all(torch.equal(a, c) for a, c in zip(full[3:], tail))
    assert full[0].min() >= -1 and full[0].max() <= 1
    assert not torch.equal(full[0], next(b.epoch(3))[0])
