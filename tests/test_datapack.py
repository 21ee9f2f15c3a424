"""CIFAR-10 packed into small lossless parts and back (gankd_utils.datapack)."""
import json
import warnings

import numpy as np
import pytest

pytestmark = pytest.mark.filterwarnings("ignore:.*of CIFAR-10's:UserWarning")  # the small sets are subsets

from gankd_utils import data, datapack
from gankd_utils.cli import main


def _cifar_root(tmp_path, per_class=6, n_test=20, seed=0):
    """A data root with a small CIFAR-10 in the loader's npz shards (two training shards, one test file)."""
    rng = np.random.default_rng(seed)
    root = tmp_path / "src"
    (root / "cifar10").mkdir(parents=True)
    labels = rng.permutation(np.repeat(np.arange(10), per_class))
    # smooth images (as photos are), so WebP compresses them as it would real ones
    base = rng.integers(0, 256, size=(len(labels), 4, 4, 3), dtype=np.uint8)
    images = np.repeat(np.repeat(base, 8, axis=1), 8, axis=2)
    images[:, ::3, ::5, :] = rng.integers(0, 256, size=images[:, ::3, ::5, :].shape, dtype=np.uint8)
    half = len(labels) // 2
    np.savez(root / "cifar10" / "train_00.npz", images=images[:half], labels=labels[:half])
    np.savez(root / "cifar10" / "train_01.npz", images=images[half:], labels=labels[half:])
    test_images = rng.integers(0, 256, size=(n_test, 32, 32, 3), dtype=np.uint8)
    np.savez(root / "cifar10" / "test.npz", images=test_images, labels=np.arange(n_test) % 10)
    return root


def _load(root, train=True):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a small set is a "subset" of CIFAR-10: the loader says so
        return data.load_cifar10(train=train, root=root, download=False)


def test_interleave_makes_every_prefix_class_balanced():
    labels = np.array([3, 3, 3, 1, 1, 1, 2, 2, 2, 3])
    order = datapack.interleave(labels)
    assert sorted(order) == list(range(10))
    assert list(labels[order][:3]) == [1, 2, 3]  # one of each class first
    assert list(order[:3]) == [3, 6, 0]  # the first image of each class, classes in order
    assert labels[order][-1] == 3  # the class with the most images finishes last


def test_pack_and_unpack_give_back_the_same_images_in_the_same_order(tmp_path):
    src = _cifar_root(tmp_path)
    manifest = datapack.pack(tmp_path / "pack", part_mib=0.015, root=src)
    train_parts = [p for p in manifest["parts"] if p["split"] == "train"]
    assert len(train_parts) >= 2  # 60 images of a few kB each do not fit one part of 15 kB
    assert all(p["bytes"] <= 0.015 * 2**20 for p in manifest["parts"])
    got = datapack.unpack(tmp_path / "pack", root=tmp_path / "dst")
    assert got == {"train": 60, "test": 20}
    for train in (True, False):
        a, b = _load(src, train), _load(tmp_path / "dst", train)
        assert b.images.shape == a.images.shape
        assert bool((a.images == b.images).all()) and bool((a.labels == b.labels).all())


def test_the_first_parts_alone_are_a_class_balanced_subset(tmp_path):
    src = _cifar_root(tmp_path)
    manifest = datapack.pack(tmp_path / "pack", part_mib=0.015, root=src, splits=("train",))
    first = manifest["parts"][0]
    for p in manifest["parts"][1:]:
        (tmp_path / "pack" / p["file"]).unlink()
    got = datapack.unpack(tmp_path / "pack", root=tmp_path / "dst")
    assert got == {"train": first["count"]} and first["count"] < 60
    with pytest.warns(UserWarning, match="subset"):
        sub = data.load_cifar10(train=True, root=tmp_path / "dst", download=False)
    counts = np.bincount(sub.labels.numpy(), minlength=10)
    assert counts.max() - counts.min() <= 1
    # every image of the subset is one of the originals, with its own label
    full = _load(src)
    originals = {bytes(im.numpy().tobytes()): int(y) for im, y in zip(full.images, full.labels)}
    assert all(originals[bytes(im.numpy().tobytes())] == int(y) for im, y in zip(sub.images, sub.labels))


def test_a_damaged_part_is_refused_by_name_and_nothing_is_written(tmp_path):
    src = _cifar_root(tmp_path)
    manifest = datapack.pack(tmp_path / "pack", part_mib=0.015, root=src)
    last = tmp_path / "pack" / manifest["parts"][-1]["file"]  # a test part: the training parts decode first
    raw = bytearray(last.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    last.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=last.name):
        datapack.unpack(tmp_path / "pack", root=tmp_path / "dst")
    assert not (tmp_path / "dst" / "cifar10").exists() or not list((tmp_path / "dst" / "cifar10").iterdir())


def test_a_part_whose_pixels_changed_is_refused(tmp_path):
    src = _cifar_root(tmp_path)
    datapack.pack(tmp_path / "pack", part_mib=1.0, root=src, splits=("test",))
    mpath = tmp_path / "pack" / datapack.MANIFEST
    m = json.loads(mpath.read_text())
    m["parts"][0]["pixels_sha256"] = "0" * 64  # as if another encoder had changed a pixel
    mpath.write_text(json.dumps(m))
    with pytest.raises(ValueError, match="decoded images differ"):
        datapack.unpack(tmp_path / "pack", root=tmp_path / "dst")


def test_nothing_on_disk_is_overwritten(tmp_path):
    src = _cifar_root(tmp_path)
    datapack.pack(tmp_path / "pack", part_mib=1.0, root=src)
    with pytest.raises(FileExistsError, match="already holds a CIFAR-10 pack"):
        datapack.pack(tmp_path / "pack", part_mib=1.0, root=src)
    before = (src / "cifar10" / "train_00.npz").read_bytes()
    with pytest.raises(FileExistsError, match="already holds CIFAR-10 shards"):
        datapack.unpack(tmp_path / "pack", root=src)
    assert (src / "cifar10" / "train_00.npz").read_bytes() == before


def test_the_command_line_packs_unpacks_and_says_what_was_wrong(tmp_path, capsys):
    src = _cifar_root(tmp_path)
    assert main(["datapack", "pack", "--out", str(tmp_path / "pack"), "--root", str(src), "--part-mib", "1"]) == 0
    assert "datapack.json" in capsys.readouterr().out
    assert main(["datapack", "unpack", str(tmp_path / "pack"), "--root", str(tmp_path / "dst")]) == 0
    out = capsys.readouterr().out
    assert "train: 60 images" in out and "a subset of 50,000" in out
    assert main(["datapack", "unpack", str(tmp_path / "nowhere"), "--root", str(tmp_path / "x")]) == 2
    assert "holds no datapack.json" in capsys.readouterr().err
    assert main(["datapack", "pack", "--out", str(tmp_path / "p2"), "--root", str(src), "--part-mib", "0"]) == 2
    assert "part_mib" in capsys.readouterr().err


def test_a_damaged_manifest_is_named_with_what_to_do(tmp_path):
    src = _cifar_root(tmp_path)
    datapack.pack(tmp_path / "pack", part_mib=1.0, root=src, splits=("test",))
    mpath = tmp_path / "pack" / datapack.MANIFEST
    text = mpath.read_text()
    for bad in (text[:50], "[1, 2]"):
        mpath.write_text(bad)
        with pytest.raises(ValueError, match=f"{mpath.name}.*(not valid JSON|does not hold).*copy"):
            datapack.unpack(tmp_path / "pack", root=tmp_path / "dst")
        assert not (tmp_path / "dst").exists()


def test_a_pack_cut_off_while_writing_its_manifest_leaves_none(tmp_path, monkeypatch):
    """datapack.json goes through the package's atomic write: cut off in the middle, no half manifest is left."""
    src = _cifar_root(tmp_path)
    real_write_text = type(tmp_path).write_text

    def cut_off(self, text, *a, **k):
        if "cifar10" in text and '"parts"' in text:  # the manifest: half of it, then the machine stops
            real_write_text(self, text[: len(text) // 2], *a, **k)
            raise KeyboardInterrupt
        return real_write_text(self, text, *a, **k)

    monkeypatch.setattr(type(tmp_path), "write_text", cut_off)
    with pytest.raises(KeyboardInterrupt):
        datapack.pack(tmp_path / "pack", part_mib=0.015, root=src)
    monkeypatch.undo()
    assert not (tmp_path / "pack" / datapack.MANIFEST).exists()
    assert not list((tmp_path / "pack").glob(".*.tmp"))
