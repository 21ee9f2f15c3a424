"""The shard format (gankd_utils.shards): writing, reading, the one definition of complete, datasets over shards."""
import json

import numpy as np
import pytest
import torch

from gankd_utils import data, io, shards, teachers
from gankd_utils.models import CondDCGANGenerator
from gankd_utils.shards import ShardBatches, ShardDataset, ShardError, ShardShuffleSampler


def _arrays(n=12, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8), rng.integers(0, 10, n),
            rng.normal(size=(n, 4)).astype(np.float32))


def _folder(root, n_shards=2, complete=None, z=True):
    """A shard folder written with the format's own functions (a real-data copy when ``complete`` is None)."""
    entries = []
    for i in range(n_shards):
        x, y, zz = _arrays(seed=i)
        entries.append(shards.write_shard(root, i, x, y, zz if z else None))
    m = {"teacher": "test", "shards": entries, "classes": list(range(10))}
    if complete is not None:
        m["complete"] = complete
    shards.write_manifest(root, m)
    return root, entries


@pytest.fixture(scope="module")
def small_export(tmp_path_factory):
    """A complete export of a small class-conditional MNIST-sized teacher: 10 classes x 6 images, 8 shards."""
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("export") / "set"
    t = teachers.TorchTeacher(CondDCGANGenerator(32), "cpu", name="small")
    teachers.export(t, out, per_class=6, seed=0, shard_size=8, progress=False)
    return out


# ---------------------------------------------------------------- writing and reading

def test_shard_round_trip_and_reproducible_bytes(tmp_path):
    x, y, z = _arrays()
    e1 = shards.write_shard(tmp_path / "a", 0, x, y, z)
    e2 = shards.write_shard(tmp_path / "b", 0, x, y, z)
    assert e1 == e2  # same arrays, same bytes, same sha256
    assert e1["file"] == shards.shard_name(0) == "shard_00000.npz" and e1["count"] == 12
    assert e1["sha256"] == io.sha256_file(tmp_path / "a" / e1["file"])
    shards.write_manifest(tmp_path / "a", {"teacher": "test", "shards": [e1], "classes": list(range(10))})
    m = shards.read_manifest(tmp_path / "a")
    assert m["format"] == shards.SHARD_FORMAT and m["shards"] == [e1]
    assert not [p for p in (tmp_path / "a").iterdir() if p.name.startswith(".")]  # no temp file left
    back = shards.load_shard(tmp_path / "a", e1)
    assert np.array_equal(back["images"], x) and np.array_equal(back["labels"], y) and np.array_equal(back["z"], z)
    assert back["labels"].dtype == np.int64 and back["z"].dtype == np.float32
    s = shards.load_shards(tmp_path / "a")
    assert isinstance(s, data.ImageSet) and s.images.shape == (12, 3, 8, 8) and s.z.shape == (12, 4)
    assert torch.equal(s.images, torch.from_numpy(x).permute(0, 3, 1, 2)) and s.classes == tuple(map(str, range(10)))


def test_load_shards_names_classes_by_label(tmp_path):
    x, _, z = _arrays(4)
    e = shards.write_shard(tmp_path, 0, x, np.array([3, 3, 7, 7]), z)
    shards.write_manifest(tmp_path, {"shards": [e], "classes": [3, 7], "class_names": ["cat", "horse"]})
    s = shards.load_shards(tmp_path)
    assert s.classes[3] == "cat" and s.classes[7] == "horse" and len(s.classes) == 8
    assert s.labels.tolist() == [3, 3, 7, 7]


def test_interrupted_write_leaves_no_partial_shard(tmp_path, monkeypatch):
    x, y, z = _arrays()
    folder = tmp_path / "s"
    good = shards.write_shard(folder, 0, x, y, z)
    before = (folder / good["file"]).read_bytes()
    real_replace = io.os.replace

    def crash(*a, **k):
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(io.os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        shards.write_shard(folder, 0, x[:5], y[:5], z[:5])  # overwrite attempt
    with pytest.raises(KeyboardInterrupt):
        shards.write_shard(folder, 1, x, y, z)
    monkeypatch.setattr(io.os, "replace", real_replace)
    assert sorted(p.name for p in folder.iterdir()) == [good["file"]]  # no temp files, no shard 1
    assert (folder / good["file"]).read_bytes() == before  # what was on disk is intact


def test_corrupt_and_truncated_shards_are_detected(tmp_path):
    x, y, z = _arrays()
    e = shards.write_shard(tmp_path, 0, x, y, z)
    p = tmp_path / e["file"]
    raw = bytearray(p.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    p.write_bytes(bytes(raw))
    with pytest.raises(ShardError, match="corrupted"):
        shards.load_shard(tmp_path, e)
    p.write_bytes(bytes(raw[:200]))
    with pytest.raises(ShardError, match="truncated"):
        shards.load_shard(tmp_path, e, verify=False)
    p.unlink()
    with pytest.raises(ShardError, match="missing"):
        shards.load_shard(tmp_path, e)


def test_bad_shard_inputs():
    x, y, z = _arrays()
    with pytest.raises(ValueError, match="uint8"):
        shards.write_shard("/tmp/never", 0, x.astype(np.float32), y)
    with pytest.raises(ValueError, match="labels"):
        shards.write_shard("/tmp/never", 0, x, y[:3])
    with pytest.raises(ValueError, match="z must be"):
        shards.write_shard("/tmp/never", 0, x, y, z[:3])


def test_bad_manifests(tmp_path):
    with pytest.raises(ShardError, match="no manifest.json"):
        shards.read_manifest(tmp_path)
    (tmp_path / shards.MANIFEST).write_text("{not json")
    with pytest.raises(ShardError, match="not valid JSON"):
        shards.read_manifest(tmp_path)
    (tmp_path / shards.MANIFEST).write_text(json.dumps({"format": "other/9", "shards": []}))
    with pytest.raises(ShardError, match="expected 'gankd-shards/1'"):
        shards.read_manifest(tmp_path)


# ---------------------------------------------------------------- the one definition of complete

def test_complete_sets(tmp_path):
    for name, complete in (("real", None), ("export", True)):  # a real-data copy has no "complete" key
        folder, entries = _folder(tmp_path / name, complete=complete)
        m = shards.check_complete(folder)
        assert m["shards"] == entries and shards.incomplete_reason(folder, m) is None
        assert len(shards.load_shards(folder)) == 24 and len(ShardDataset(folder)) == 24


def test_missing_shard_is_incomplete(tmp_path):
    folder, entries = _folder(tmp_path / "s", complete=True)
    (folder / entries[1]["file"]).unlink()
    reason = shards.incomplete_reason(folder, shards.read_manifest(folder))
    assert reason == "1 of 2 shards are missing (shard_00001.npz)"
    with pytest.raises(ShardError, match=r"not a complete export: 1 of 2 shards are missing.*Run the export again"):
        shards.check_complete(folder)


def test_unhashed_entry_is_incomplete(tmp_path):
    folder, entries = _folder(tmp_path / "s")
    m = shards.read_manifest(folder)
    m["shards"][0]["sha256"] = None  # written by a worker, not yet recorded
    shards.write_manifest(folder, m)
    assert shards.incomplete_reason(folder, m) == "the export was not finalized"
    with pytest.raises(ShardError, match="not finalized"):
        shards.check_complete(folder)


def test_complete_false_is_incomplete(tmp_path):
    folder, _ = _folder(tmp_path / "s", complete=False)  # every shard there and hashed, but not marked complete
    assert shards.incomplete_reason(folder, shards.read_manifest(folder)) == "the export was not finalized"
    with pytest.raises(ShardError, match="not finalized"):
        shards.check_complete(folder)


def test_empty_and_absent_sets_are_incomplete(tmp_path):
    (tmp_path / "empty").mkdir()
    shards.write_manifest(tmp_path / "empty", {"shards": []})
    with pytest.raises(ShardError, match="lists no shards"):
        shards.check_complete(tmp_path / "empty")
    with pytest.raises(ShardError, match="does not exist"):
        shards.check_complete(tmp_path / "nowhere")


def test_every_reader_uses_the_one_definition(tmp_path, teacher_set):
    folder, entries = _folder(tmp_path / "s", complete=False)
    with pytest.raises(ShardError, match="not finalized"):
        shards.load_shards(folder)
    with pytest.raises(ShardError, match="not finalized"):
        ShardDataset(folder)
    m = shards.read_manifest(teacher_set)
    (tmp_path / "t").mkdir()
    shards.write_manifest(tmp_path / "t", {**m, "complete": False})
    for e in m["shards"]:
        (tmp_path / "t" / e["file"]).write_bytes((teacher_set / e["file"]).read_bytes())
    with pytest.raises(ShardError, match="not finalized"):
        shards.teacher_info(tmp_path / "t")


# ---------------------------------------------------------------- teacher_info

def test_teacher_info(tmp_path, teacher_set):
    info = shards.teacher_info(teacher_set)
    assert (info["resolution"], info["z_dim"], info["n_classes"], info["count"]) == (32, 128, 10, 80)
    assert info["classes"] == list(range(10)) and info["bytes"] == 80 * 32 * 32 * 3 and info["teacher"] == "tiny_cgan"
    with pytest.raises(FileNotFoundError, match="export one first"):
        shards.teacher_info(tmp_path / "missing")
    real, _ = _folder(tmp_path / "real")  # real-data shards: no teacher fields
    with pytest.raises(ValueError, match="not a teacher export"):
        shards.teacher_info(real)
    m = shards.read_manifest(real)
    shards.write_manifest(real, {**m, "resolution": 8, "z_dim": 4, "n_classes": 0, "count": 24})
    with pytest.raises(ValueError, match="unconditional teacher"):
        shards.teacher_info(real)


# ---------------------------------------------------------------- datasets over shards

def test_shard_dataset_subset_and_shuffling_across_shards(small_export):
    out = small_export  # 60 items, 8 shards
    ds = ShardDataset(out, cache_shards=2)
    assert len(ds) == 60 and ds.n_shards == 8
    x, y, z = ds[13]
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32 and -1 <= x.min() <= x.max() <= 1
    assert y.item() == 2 and z.shape == (100,)
    assert torch.equal(ds[-1][0], ds[59][0])
    with pytest.raises(IndexError):
        ds[60]
    assert ShardDataset(out, output="uint8")[13][0].dtype == torch.uint8
    with pytest.raises(ValueError, match="output must be"):
        ShardDataset(out, output="half")
    sub = ShardDataset(out, classes=[3, 8])
    assert len(sub) == 12 and set(sub.labels.tolist()) == {3, 8} and sub.classes == [3, 8]
    with pytest.raises(ValueError, match=r"classes \[11\] are not in"):
        ShardDataset(out, classes=[3, 11])
    with pytest.raises(ValueError, match="class subset is empty"):
        ShardDataset(out, classes=[])
    sampler = ShardShuffleSampler(ds, seed=0)
    order = list(sampler)
    assert sorted(order) == list(range(60)) and order != list(range(60)) and len(sampler) == 60
    first = {int(ds.shard_of[i]) for i in order[:16]}
    assert len(first) == 2  # one group of two shards, mixed together
    sampler.set_epoch(1)
    assert list(sampler) != order and list(ShardShuffleSampler(ds, seed=0)) == order
    xb, yb, zb = next(iter(ds.loader(batch_size=16, seed=0)))
    assert xb.shape == (16, 1, 28, 28) and yb.shape == (16,) and zb.shape == (16, 100)


def test_streamed_batches_match_the_manifest_and_split_by_rank(teacher_set):
    ds = ShardDataset(teacher_set)
    whole = shards.load_shards(teacher_set)
    seen = []
    for rank in (0, 1):
        src = ShardBatches(ds, 8, seed=3, rank=rank, world=2)
        assert len(src) == 5
        for x, y, z in src.epoch(0):
            assert x.shape == (8, 3, 32, 32) and z.shape == (8, 128)
            for xi, yi, zi in zip(x, y, z):  # every item is a real (image, label, z) triple of the export
                k = int(torch.nonzero((whole.z == zi).all(1))[0])
                assert int(whole.labels[k]) == int(yi)
                assert torch.equal(data.to_uint8(xi), whole.images[k])
                seen.append(k)
    assert len(seen) == len(set(seen)) == 80  # ranks see disjoint data, every item once per epoch
    again = [b[2] for b in ShardBatches(ds, 8, seed=3).epoch(1, skip=2)]
    full = [b[2] for b in ShardBatches(ds, 8, seed=3).epoch(1)][2:]
    assert len(again) == len(full) == 8 and all(torch.equal(a, b) for a, b in zip(again, full))  # skip resumes


def test_streamed_batches_errors(tmp_path, teacher_set):
    ds = ShardDataset(teacher_set)
    with pytest.raises(ValueError, match="fewer than one batch"):
        ShardBatches(ds, 64, world=2)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        ShardBatches(ds, 0)
    for rank, world in ((2, 2), (-1, 2)):  # a rank outside the world would read another's batches
        with pytest.raises(ValueError, match="rank must lie in"):
            ShardBatches(ds, 4, rank=rank, world=world)
    folder, _ = _folder(tmp_path / "noz", z=False)
    with pytest.raises(ShardError, match="holds no z"):
        next(ShardBatches(ShardDataset(folder), 4).epoch(0))
