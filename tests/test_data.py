"""Datasets in memory (gankd_utils.data): MNIST, CIFAR-10, image folders, ImageSet and Batches."""
import functools
import gzip
import http.server
import shutil
import threading
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.datasets import MNIST

from gankd_utils import data


def test_mnist_from_the_data_root(mnist_train, mnist_test):
    assert mnist_train.images.shape == (60000, 1, 28, 28) and mnist_test.images.shape == (10000, 1, 28, 28)
    assert mnist_train.labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert mnist_train.images.float().div(255).mean().item() == pytest.approx(0.1307, abs=1e-3)
    assert mnist_train.classes == tuple(str(i) for i in range(10))


def test_cifar10_from_npz_shards(cifar_root):
    test = data.load_cifar10(train=False, root=cifar_root)
    assert test.images.shape == (10000, 3, 32, 32) and test.images.dtype == torch.uint8
    assert torch.bincount(test.labels).tolist() == [1000] * 10
    assert test.classes[0] == "airplane" and test.name == "cifar10-test"


def test_cifar10_from_some_of_its_shards_says_it_is_a_subset(cifar_root, tmp_path):
    (tmp_path / "cifar10").mkdir()
    for name in ("train_00.npz", "train_03.npz", "test.npz"):
        shutil.copy(cifar_root / "cifar10" / name, tmp_path / "cifar10" / name)
    with pytest.warns(UserWarning, match=r"holds 10,000 of CIFAR-10's 50,000 train images \(train_00.npz, "
                                         r"train_03.npz\).*on that subset"):
        part = data.load_cifar10(train=True, root=tmp_path)
    assert len(part) == 10_000 and torch.bincount(part.labels).tolist() == [1000] * 10  # the shards are balanced
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(data.load_cifar10(train=False, root=tmp_path)) == data.FULL_SIZES["cifar10-test"]
    assert data.cifar10_train_size(tmp_path) == 10_000  # counted from the labels, without loading the images
    assert data.cifar10_train_size(cifar_root) == 50_000
    assert data.cifar10_train_size(tmp_path / "elsewhere") == 50_000  # nothing on disk: the whole set downloads


def test_balanced_subset(mnist_test):
    sub = mnist_test.subset(100, seed=0)
    assert len(sub) == 100 and torch.bincount(sub.labels).tolist() == [10] * 10
    assert torch.equal(sub.images, mnist_test.subset(100, seed=0).images)
    assert mnist_test.subset(None) is mnist_test and mnist_test.subset(10**6) is mnist_test


def test_load_dataset_by_name(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'svhn'"):
        data.load_dataset("svhn")


def test_missing_data_root_offline_says_where_and_what_to_set(tmp_path, monkeypatch):
    monkeypatch.setenv("GANKD_OFFLINE", "1")
    with pytest.raises(data.DatasetUnavailable) as e:
        data.load_mnist(root=tmp_path / "nowhere")
    msg = str(e.value)
    assert str(tmp_path / "nowhere" / "MNIST" / "raw") in msg and "GANKD_DATA_ROOT" in msg
    with pytest.raises(data.DatasetUnavailable, match="GANKD_DATA_ROOT"):
        data.load_cifar10(root=tmp_path / "nowhere")


def test_failed_download_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("GANKD_OFFLINE", raising=False)
    monkeypatch.setattr(MNIST, "mirrors", [(tmp_path / "no-mirror").as_uri() + "/"])
    with pytest.raises(data.DatasetUnavailable, match="download failed"):
        data.load_mnist(root=tmp_path / "empty")


@pytest.fixture
def local_http(tmp_path):
    """An HTTP server on 127.0.0.1 serving a folder (torchvision's real download code needs HTTP)."""
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


def test_image_set_checks_and_conversions():
    imgs = torch.zeros(4, 1, 2, 2, dtype=torch.uint8)
    with pytest.raises(ValueError, match="uint8"):
        data.ImageSet(imgs.float(), torch.zeros(4, dtype=torch.int64), ("a",), "t")
    with pytest.raises(ValueError, match="4 images but 3 labels"):
        data.ImageSet(imgs, torch.zeros(3, dtype=torch.int64), ("a",), "t")
    with pytest.raises(ValueError, match="noise vectors"):
        data.ImageSet(imgs, torch.zeros(4, dtype=torch.int64), ("a",), "t", torch.zeros(3, 8))
    s = data.ImageSet(imgs, torch.zeros(4, dtype=torch.int64), ("a",), "t")
    assert s.shape == (1, 2, 2) and len(s) == 4 and len(s.fingerprint()) == 16
    u = torch.tensor([0, 127, 128, 255], dtype=torch.uint8)
    f = data.to_float(u)
    assert f.tolist() == pytest.approx([-1.0, -1 / 255, 1 / 255, 1.0], abs=1e-6)
    assert torch.equal(data.to_uint8(f), u) and data.to_uint8(torch.tensor([-3.0, 3.0])).tolist() == [0, 255]


def test_batches_are_reproducible_and_resumable():
    s = data.ImageSet(torch.randint(0, 256, (40, 1, 4, 4), dtype=torch.uint8), torch.arange(40) % 10, ("a",) * 10, "t")
    b = data.Batches(s, 8, seed=3)
    full = [x for x, _ in b.epoch(2)]
    tail = [x for x, _ in b.epoch(2, skip=3)]
    assert len(full) == 5 and all(torch.equal(a, c) for a, c in zip(full[3:], tail))
    assert full[0].min() >= -1 and full[0].max() <= 1
    assert not torch.equal(full[0], next(b.epoch(3))[0])
    with pytest.raises(ValueError, match="fewer than one batch"):
        data.Batches(s, 41)
    with pytest.raises(ValueError, match="rank must lie"):
        data.Batches(s, 4, rank=2, world=2)
    z = data.ImageSet(s.images, s.labels, s.classes, "z", torch.randn(40, 3))
    assert len(next(data.Batches(z, 8).epoch(0))) == 3  # a set with z gives (x, y, z)


def test_in_memory_batches_split_by_rank():
    imgs = torch.arange(40, dtype=torch.uint8).view(40, 1, 1, 1).expand(40, 1, 2, 2).contiguous()
    s = data.ImageSet(imgs, torch.zeros(40, dtype=torch.int64), ("a",), "t")
    got = [data.to_uint8(x[:, 0, 0, 0]).tolist() for r in (0, 1) for x, _ in data.Batches(s, 4, 0, rank=r, world=2)
           .epoch(0)]
    flat = [v for b in got for v in b]
    assert len(flat) == len(set(flat)) == 40
    single = [data.to_uint8(x[:, 0, 0, 0]).tolist() for x, _ in data.Batches(s, 4, 0).epoch(0)]
    assert got[0] == single[0] and got[5] == single[1]  # rank r takes slice r of each global batch


def test_image_folder(tmp_path):
    for c in (0, 3):
        (tmp_path / "real" / str(c)).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((40, 48, 3), 30 * i + c, np.uint8)).save(tmp_path / "real" / str(c) / f"{i}.png")
    real = data.load_image_folder(tmp_path / "real", 32)
    assert real.images.shape == (6, 3, 32, 32) and sorted(set(real.labels.tolist())) == [0, 3]
    assert len(data.load_image_folder(tmp_path / "real", 16, max_per_class=1)) == 2
    with pytest.raises(ValueError, match="the teacher set lacks"):
        data.load_image_folder(tmp_path / "real", 32, class_ids=[0, 1])
    (tmp_path / "real" / "n0001").mkdir()
    with pytest.raises(ValueError, match="name them by class id"):
        data.load_image_folder(tmp_path / "real", 32)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.load_image_folder(tmp_path / "nowhere", 32)


def _part(path, n, labels=None, **arrays):
    labels = np.arange(n) % 10 if labels is None else np.asarray(labels)
    np.savez(path, **(arrays or {"images": np.zeros((n, 32, 32, 3), np.uint8), "labels": labels}))


def test_only_the_numbered_cifar10_parts_load_and_never_more_than_the_whole_set(cifar_root, tmp_path):
    (tmp_path / "cifar10").mkdir()
    for name in ("train_00.npz", "train_03.npz"):
        shutil.copy(cifar_root / "cifar10" / name, tmp_path / "cifar10" / name)
    shutil.copy(cifar_root / "cifar10" / "train_03.npz", tmp_path / "cifar10" / "train_03 (copy).npz")  # a stray
    with pytest.warns(UserWarning, match=r"holds 10,000 of CIFAR-10's 50,000"):
        assert len(data.load_cifar10(train=True, root=tmp_path)) == 10_000  # the copy is not read
    assert data.cifar10_train_size(tmp_path) == 10_000
    for i in range(9):  # eleven parts of 5,000 under the right names: 55,000 is more than CIFAR-10 has
        shutil.copy(cifar_root / "cifar10" / "train_00.npz", tmp_path / "cifar10" / f"train_{i + 10}.npz")
    with pytest.raises(ValueError, match=r"holds 55,000 train images .* more than CIFAR-10's 50,000"):
        data.load_cifar10(train=True, root=tmp_path)
    with pytest.raises(ValueError, match=r"more than CIFAR-10's 50,000"):
        data.cifar10_train_size(tmp_path)


def test_a_damaged_cifar10_part_is_named_with_what_to_do(tmp_path):
    d = tmp_path / "cifar10"
    d.mkdir()
    _part(d / "train_00.npz", 20)
    good = (d / "train_00.npz").read_bytes()
    (d / "train_01.npz").write_bytes(good[: len(good) // 2])  # truncated
    with pytest.raises(ValueError, match=r"train_01.npz cannot be read \(BadZipFile.*copy it again"):
        data.load_cifar10(train=True, root=tmp_path)
    with pytest.raises(ValueError, match=r"train_01.npz cannot be read"):
        data.cifar10_train_size(tmp_path)
    _part(d / "train_01.npz", 2, x=np.zeros((2, 32, 32, 3), np.uint8), y=np.zeros(2))  # other array names
    with pytest.raises(ValueError, match=r"train_01.npz holds the arrays \['x', 'y'\], not 'images' and 'labels'"):
        data.load_cifar10(train=True, root=tmp_path)
    # 3 images with 2 labels, then 2 with 3: the totals agree, the labels would shift by one
    _part(d / "train_00.npz", 3, labels=[0, 1])
    _part(d / "train_01.npz", 2, labels=[2, 3, 4])
    with pytest.raises(ValueError, match=r"train_00.npz holds 3 images but 2 labels"):
        data.load_cifar10(train=True, root=tmp_path)
    _part(d / "train_00.npz", 3, labels=[0, 1, 42])
    with pytest.raises(ValueError, match=r"train_00.npz: labels must lie in 0..9 .*found 0..42"):
        data.load_cifar10(train=True, root=tmp_path)
    _part(d / "train_00.npz", 3)
    _part(d / "train_01.npz", 2)
    with pytest.warns(UserWarning, match="holds 5 of"):
        assert data.load_cifar10(train=True, root=tmp_path).labels.tolist() == [0, 1, 2, 0, 1]


def test_an_mnist_file_failing_its_checksum_is_named(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name, _ in MNIST.resources:
        with gzip.open(raw / name, "wb") as f:
            f.write(b"not mnist")
    with pytest.raises(data.DatasetUnavailable, match=r"t10k-images-idx3-ubyte.gz, .*t10k-labels-idx1-ubyte.gz failed "
                                                      r"their md5 checksum.*Copy the original file again"):
        data.load_mnist(train=False, root=tmp_path, download=False)
    (raw / "t10k-images-idx3-ubyte.gz").unlink()  # missing, not damaged: the other file is still named
    with pytest.raises(data.DatasetUnavailable, match=r"t10k-labels-idx1-ubyte.gz failed its md5 checksum"):
        data.load_mnist(train=False, root=tmp_path, download=False)
    assert sorted(p.name for p in raw.iterdir()) == sorted(n for n, _ in MNIST.resources if "t10k-images" not in n)


def test_a_small_class_gives_its_shortfall_to_the_others():
    labels = torch.tensor([0] * 100 + [1] * 5 + [2] * 100)
    s = data.ImageSet(torch.zeros(len(labels), 1, 2, 2, dtype=torch.uint8), labels, ("a", "b", "c"), "x")
    sub = s.subset(60)
    assert len(sub) == 60 and torch.bincount(sub.labels).tolist() == [28, 5, 27]  # never fewer than asked
    assert torch.bincount(s.subset(201).labels).tolist() == [98, 5, 98]
    assert data._quotas([100, 5, 100], 60) == [28, 5, 27] and data._quotas([3, 1, 2], 5) == [2, 1, 2]
    even = s.subset(12, seed=3)  # no class short: n // k each, as always (the same images for the same seed)
    assert torch.bincount(even.labels).tolist() == [4, 4, 4] and torch.equal(even.images, s.subset(12, seed=3).images)
    assert len(s.subset(0)) == 0
    with pytest.raises(ValueError, match="n >= 0"):
        s.subset(-5)


def test_a_damaged_cifar10_batches_folder_is_not_called_a_failed_download(tmp_path, monkeypatch):
    monkeypatch.setenv("GANKD_OFFLINE", "1")
    (tmp_path / "cifar-10-batches-py").mkdir()
    (tmp_path / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"damaged")
    with pytest.raises(data.DatasetUnavailable, match=r"cifar-10-batches-py is there but could not be read") as e:
        data.load_cifar10(train=True, root=tmp_path)
    assert "download" not in str(e.value).split("(")[0]
    assert (tmp_path / "cifar-10-batches-py" / "data_batch_1").read_bytes() == b"damaged"
