"""Teachers (gankd_utils.teachers): BigGAN through TF-Hub (tiny TF1 / TF2 stand-ins), torch teachers, the export.

No network: BigGAN-shaped modules are built locally (tests/tf_fixtures.py) and
loaded through the same code path as a real handle; the offline error for the
default handle is checked with downloads off and with a failing resolver.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import gankd_utils  # noqa: F401  (torchvision before tensorflow in this process)
import numpy as np
import pytest
import torch

from gankd_utils import checkpoint, classes, data, repro, runlog, shards, teachers, viz
from gankd_utils.io import sha256_file
from gankd_utils.models import CondDCGANGenerator, ResNetGenerator
from gankd_utils.shards import ShardDataset, ShardError
from gankd_utils.teachers import biggan as bgu

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="session")
def biggan(tf_modules) -> teachers.BigGAN:
    return teachers.load_biggan(str(tf_modules["tf1"]), device="cpu")


def _save_generator(path: Path, c: int, seed: int) -> Path:
    torch.manual_seed(seed)
    checkpoint.save_model(path, CondDCGANGenerator(c=c))
    return path.with_suffix(".safetensors")


@pytest.fixture(scope="session")
def small_ckpt(tmp_path_factory) -> Path:
    """A small (untrained) class-conditional torch generator: 10 classes, (1, 28, 28) images."""
    return _save_generator(tmp_path_factory.mktemp("ckpt") / "small", c=32, seed=0)


@pytest.fixture(scope="session")
def small_teacher(small_ckpt) -> teachers.TorchTeacher:
    return teachers.TorchTeacher.from_checkpoint(small_ckpt, "cpu")


def _folder_bytes(folder: Path) -> dict[str, str]:
    """sha256 of every file in ``folder`` (hidden temp files included: there must be none)."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(TF_CPP_MIN_LOG_LEVEL="2", GANKD_OFFLINE="1", **extra)
    return env


# ---------------------------------------------------------------- class names, noise, labels

def test_imagenet_class_search():
    assert teachers.class_name(207) == "golden retriever" and teachers.class_name(0) == "tench"
    assert teachers.find_class("golden retriever")[0] == (207, "golden retriever")
    assert {i for i, _ in teachers.find_class("retriever")} == {205, 206, 207, 208, 209}
    assert teachers.class_id("Goldfish") == 1 and teachers.class_id(281) == 281
    with pytest.raises(ValueError, match="matches .* classes"):
        teachers.class_id("terrier")
    assert teachers.ANIMAL_CLASSES == tuple(range(398))


def test_truncated_z_sample_range_seed_and_errors():
    z = teachers.truncated_z_sample(256, 0.5, seed=3)
    assert z.shape == (256, 128) and z.dtype == np.float32
    assert np.abs(z).max() <= 1.0 and abs(float(z.mean())) < 0.02
    assert (z / 0.5).std() == pytest.approx(0.88, abs=0.03)  # sd of N(0, 1) truncated to [-2, 2]
    assert np.array_equal(z, teachers.truncated_z_sample(256, 0.5, seed=3))
    assert not np.array_equal(z, teachers.truncated_z_sample(256, 0.5, seed=4))
    # every truncation scales the same draw
    assert np.allclose(teachers.truncated_z_sample(4, 1.0, seed=3) * 0.25, teachers.truncated_z_sample(4, 0.25, seed=3))
    for bad in (0, -0.5, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"truncation must lie in \(0, 1\]"):
            teachers.truncated_z_sample(2, bad, seed=0)


def test_one_hot_and_class_id_errors():
    y = teachers.one_hot([0, 999, 5])
    assert y.shape == (3, 1000) and y.dtype == np.float32 and y.sum() == 3 and y[1, 999] == 1
    with pytest.raises(ValueError, match=r"class ids out of range 0\.\.999: \[1000\]"):
        teachers.one_hot([1, 1000])
    with pytest.raises(ValueError, match=r"0\.\.999: \[-1\]"):
        teachers.one_hot([-1])
    with pytest.raises(ValueError, match="class list is empty"):
        teachers.one_hot([])
    assert teachers.interpolate(np.zeros(3), np.ones(3), 5)[:, 0].tolist() == [0, 0.25, 0.5, 0.75, 1]


# ---------------------------------------------------------------- BigGAN through TF-Hub

@pytest.mark.tf
@pytest.mark.parametrize("fmt", ["tf1", "tf2"])
def test_tf1_hub_format_and_tf2_savedmodel_load_through_one_path(tf_modules, fmt):
    import tensorflow_hub as hub

    raw = hub.load(str(tf_modules[fmt]))
    assert not callable(raw) and "default" in raw.signatures  # what the published modules look like
    bg = teachers.load_biggan(str(tf_modules[fmt]), device="cpu")
    assert (bg.z_dim, bg.n_classes, bg.resolution, bg.name) == (128, 1000, 128, "biggan-deep-128")
    z = teachers.truncated_z_sample(3, 0.5, seed=0)
    x = bg.generate(z, [1, 2, 3], truncation=0.5, batch_size=2)
    assert x.shape == (3, 3, 128, 128) and x.dtype == torch.float32 and -1 <= x.min() and x.max() <= 1
    u = bg.generate(z, [1, 2, 3], truncation=0.5, output="uint8")
    assert u.shape == (3, 128, 128, 3) and u.dtype == np.uint8
    same_batches = bg.generate(z, [1, 2, 3], truncation=0.5)  # the uint8 path rounds as data.to_uint8 does
    assert np.array_equal(u, data.to_uint8(same_batches).permute(0, 2, 3, 1).numpy())
    strip = bg.interpolate(("goldfish", 0), (207, 1), steps=4, truncation=0.5)
    assert strip.shape == (4, 3, 128, 128) and not torch.allclose(strip[0], strip[-1])


@pytest.mark.tf
def test_biggan_bad_inputs_have_clear_messages(biggan):
    z = teachers.truncated_z_sample(2, 0.5, seed=0)
    with pytest.raises(ValueError, match=r"class ids out of range 0\.\.999"):
        biggan.generate(z, [3, 1000], 0.5)
    with pytest.raises(ValueError, match=r"truncation must lie in \(0, 1\]"):
        biggan.generate(z, [3, 4], 0.0)
    with pytest.raises(ValueError, match=r"truncation must lie in \(0, 1\]"):
        biggan.generate(z, [3, 4], 1.2)
    with pytest.raises(ValueError, match=r"z must have shape \(N, 128\).*\(2, 120\)"):
        biggan.generate(np.zeros((2, 120), np.float32), [3, 4], 0.5)
    with pytest.raises(ValueError, match="class list is empty"):
        biggan.sample([], per_class=2)
    with pytest.raises(ValueError, match="one class per z"):
        biggan.generate(z, [3], 0.5)


@pytest.mark.tf
def test_sweep_explorer_and_figures(biggan, tmp_path):
    sweep = biggan.truncation_sweep(207, (0.1, 1.0), n=3, seed=0)
    assert list(sweep) == [0.1, 1.0] and bgu.diversity(sweep[0.1]) < bgu.diversity(sweep[1.0])
    bgu.sweep_figure(sweep, path_stem=tmp_path / "sweep")
    assert biggan.class_names() is classes.imagenet_classes()
    fn = biggan.sampler()  # one explorer for torch generators and BigGAN: fn(n, class, seed, truncation)
    x = fn(2, teachers.class_id("goldfish"), 1, 0.5)
    assert x.shape == (2, 3, 128, 128) and torch.equal(x, fn(2, 1, 1, 0.5)) and not torch.equal(x, fn(2, 1, 2, 0.5))
    assert viz.explorer({"BigGAN": fn}, class_names=biggan.class_names(), class_ids=teachers.ANIMAL_CLASSES,
                        class_id=teachers.class_id("goldfish"), truncation=0.5, seed=1, n=2, interactive=False,
                        path_stem=tmp_path / "explorer") is None
    viz.explorer({"BigGAN": fn}, class_names=biggan.class_names(), class_id=1, truncation=0.5, n=2,
                 interactive=True)  # the widgets build outside a kernel too
    assert {p.name for p in tmp_path.iterdir()} == {"sweep.png", "sweep.pdf", "explorer.png", "explorer.pdf"}


# ---------------------------------------------------------------- handles and offline

def test_default_handle_and_overrides(monkeypatch, tmp_path):
    monkeypatch.delenv(teachers.HANDLE_ENV, raising=False)
    assert teachers.resolve_handle() == "https://tfhub.dev/deepmind/biggan-deep-128/1"
    assert teachers.resolve_handle(resolution=512) == "https://tfhub.dev/deepmind/biggan-deep-512/1"
    assert teachers.resolve_handle("deepmind/biggan-deep-256/1") == "https://tfhub.dev/deepmind/biggan-deep-256/1"
    monkeypatch.setenv(teachers.HANDLE_ENV, str(tmp_path))
    assert teachers.resolve_handle() == str(tmp_path)
    assert teachers.resolve_handle("https://mirror.example/biggan") == "https://mirror.example/biggan"
    with pytest.raises(ValueError, match="resolutions"):
        teachers.default_handle(64)


def test_offline_default_handle_fails_fast_with_the_fix(monkeypatch, tmp_path):
    monkeypatch.delenv(teachers.HANDLE_ENV, raising=False)
    monkeypatch.setenv("GANKD_OFFLINE", "1")
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "empty_cache"))

    def no_network(*a, **k):
        raise AssertionError("tried to reach TF-Hub while offline")

    monkeypatch.setattr(bgu, "_import_hub", no_network)
    with pytest.raises(teachers.HandleUnavailable) as e:
        teachers.load_biggan()
    msg = str(e.value)
    assert "https://tfhub.dev/deepmind/biggan-deep-128/1" in msg and "could not be fetched" in msg
    assert "offline" in msg and "GANKD_BIGGAN_HANDLE" in msg and "TFHUB_CACHE_DIR" in msg
    with pytest.raises(teachers.HandleUnavailable, match="does not exist.*GANKD_BIGGAN_HANDLE"):
        teachers.load_biggan(str(tmp_path / "no" / "such" / "folder"))
    with pytest.raises(teachers.HandleUnavailable, match="no saved_model.pb"):
        teachers.load_biggan(str(tmp_path))


@pytest.mark.tf
def test_unreachable_handle_through_a_failing_resolver(monkeypatch, tf_modules):
    import urllib.error

    import tensorflow_hub as hub

    monkeypatch.delenv("GANKD_OFFLINE", raising=False)
    monkeypatch.delenv(teachers.HANDLE_ENV, raising=False)

    def unreachable(handle):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(hub, "resolve", unreachable)
    with pytest.raises(teachers.HandleUnavailable) as e:
        teachers.load_biggan(resolution=256)
    msg = str(e.value)
    assert "biggan-deep-256/1" in msg and "name resolution" in msg and "GANKD_BIGGAN_HANDLE" in msg
    bg, note = teachers.try_load_biggan(where="test", what="BigGAN")
    assert bg is None and note.startswith("SKIPPED [test] BigGAN") and "GANKD_BIGGAN_HANDLE" in note
    assert note.count("GANKD_BIGGAN_HANDLE=") == 1  # the advice once: the message itself says it
    assert runlog.read_skipped()[-1]["setting"] is None


@pytest.mark.tf
def test_env_handle_and_a_prefilled_tfhub_cache_work_offline(monkeypatch, tmp_path, tf_modules):
    monkeypatch.setenv("GANKD_OFFLINE", "1")
    monkeypatch.setenv(teachers.HANDLE_ENV, str(tf_modules["tf2"]))
    assert teachers.load_biggan().handle == str(tf_modules["tf2"])
    monkeypatch.delenv(teachers.HANDLE_ENV)
    cache = tmp_path / "cache"
    handle = teachers.default_handle(128)
    shutil.copytree(tf_modules["tf1"], cache / hashlib.sha1(handle.encode()).hexdigest())
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(cache))
    bg = teachers.load_biggan()
    assert bg.handle == handle and bg.fingerprint == teachers.load_biggan(str(tf_modules["tf1"])).fingerprint


@pytest.mark.tf
def test_a_handle_keeps_its_resolution_and_says_so_when_another_was_asked(monkeypatch, tf_modules):
    import warnings

    monkeypatch.setenv("GANKD_OFFLINE", "1")
    monkeypatch.delenv(teachers.HANDLE_ENV, raising=False)
    with pytest.warns(UserWarning, match="is a 128 px module, so resolution=256 is not used"):
        bg = teachers.load_biggan(str(tf_modules["tf1"]), resolution=256, device="cpu")
    assert bg.resolution == 128
    monkeypatch.setenv(teachers.HANDLE_ENV, str(tf_modules["tf2"]))
    with pytest.warns(UserWarning, match=f"{teachers.HANDLE_ENV}=.*resolution=512 is not used.*unset"):
        teachers.load_biggan(resolution=512, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the module's own resolution, or none asked: nothing to say
        teachers.load_biggan(resolution=128, device="cpu")
        teachers.load_biggan(str(tf_modules["tf1"]), device="cpu")


def test_teachers_package_does_not_import_tensorflow():
    code = ("import gankd_utils.teachers, gankd_utils.teachers.export, gankd_utils.shards, sys; "
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported eagerly'")
    subprocess.run([sys.executable, "-c", code], check=True, env=_env(), cwd=REPO, timeout=120)


# ---------------------------------------------------------------- torch teachers

def test_torch_teacher_wraps_a_checkpoint(small_teacher, small_ckpt, tmp_path):
    t = small_teacher
    assert (t.z_dim, t.n_classes, t.channels, t.resolution, t.kind) == (100, 10, 1, 28, "checkpoint")
    assert t.class_names() == tuple(str(i) for i in range(10))  # no dataset in the sidecar: ids as names
    assert t.default_classes() == tuple(range(10)) and t.identity()["teacher_sha256"] == sha256_file(small_ckpt)
    z = t.sample_z(3, 1.0, repro.generator(0, "t"))
    x = t.generate(z, [0, 1, 2])
    assert x.shape == (3, 1, 28, 28) and -1 <= x.min() and x.max() <= 1
    u = t.generate(z, [0, 1, 2], output="uint8")
    assert u.shape == (3, 28, 28, 1) and np.array_equal(u, data.to_uint8(x).permute(0, 2, 3, 1).numpy())
    assert np.abs(t.sample_z(100, 0.5, repro.generator(0, "t"))).max() <= 1.0  # truncated below 1
    with pytest.raises(ValueError, match="one class per z"):
        t.generate(z, [0, 1])
    with pytest.raises(ValueError, match=r"z must have shape \(N, 100\)"):
        t.generate(np.zeros((2, 3), np.float32), [0, 1])
    with pytest.raises(ValueError, match="output must be"):
        t.generate(z, [0, 1, 2], output="half")
    # a checkpoint trained on CIFAR-10 names its classes (the sidecar's config says the dataset)
    torch.manual_seed(0)
    ckpt = checkpoint.save_model(tmp_path / "c", ResNetGenerator(ch=4), config={"dataset": "cifar10"})
    assert teachers.TorchTeacher.from_checkpoint(ckpt, "cpu").class_names() == classes.CIFAR10_CLASSES
    with pytest.raises(ValueError, match="3 class names for a generator of 10 classes"):
        teachers.TorchTeacher(CondDCGANGenerator(32), "cpu", names=("a", "b", "c"))
    with pytest.raises(TypeError, match="no z_dim"):
        teachers.TorchTeacher(torch.nn.Linear(2, 2), "cpu")


def test_load_teacher_by_kind(small_ckpt):
    t = teachers.load_teacher("checkpoint", checkpoint=str(small_ckpt), device="cpu")
    assert isinstance(t, teachers.TorchTeacher) and t.n_classes == 10
    with pytest.raises(ValueError, match="needs --checkpoint"):
        teachers.load_teacher("checkpoint")
    with pytest.raises(ValueError, match="--handle is for --teacher biggan"):
        teachers.load_teacher("checkpoint", handle="x", checkpoint=str(small_ckpt))
    with pytest.raises(ValueError, match="--checkpoint is for --teacher checkpoint"):
        teachers.load_teacher("biggan", checkpoint=str(small_ckpt))
    with pytest.raises(ValueError, match="unknown teacher"):
        teachers.load_teacher("vae")


# ---------------------------------------------------------------- export

def test_export_layout_per_class_noise_and_manifest(small_teacher, tmp_path):
    out = tmp_path / "set"
    res = teachers.export(small_teacher, out, classes=[2, 5, 7], per_class=5, truncation=1.0, seed=3, shard_size=4,
                          batch_size=3, progress=False)
    assert res["complete"] and res["written"] == [0, 1, 2, 3] and res["kept"] == []
    m = shards.check_complete(out)
    assert (m["count"], m["n_shards"], m["classes"], m["per_class"], m["seed"], m["truncation"]) == (
        15, 4, [2, 5, 7], 5, 3, 1.0)
    assert [e["count"] for e in m["shards"]] == [4, 4, 4, 3] and all(len(e["sha256"]) == 64 for e in m["shards"])
    assert m["teacher_sha256"] == sha256_file(small_teacher.handle) and "time" not in json.dumps(m)
    assert m["class_names"] == ["2", "5", "7"] and m["complete"] is True  # no dataset in the sidecar: ids as names
    arrays = [shards.load_shard(out, e) for e in m["shards"]]
    x = np.concatenate([a["images"] for a in arrays])
    y = np.concatenate([a["labels"] for a in arrays])
    z = np.concatenate([a["z"] for a in arrays])
    assert x.dtype == np.uint8 and x.shape == (15, 28, 28, 1) and y.tolist() == [2] * 5 + [5] * 5 + [7] * 5
    for k, c in enumerate([2, 5, 7]):  # each class its own noise stream, seeded by (seed, class)
        expect = torch.randn(5, 100, generator=repro.generator(3, f"export:{c}")).numpy()
        assert np.array_equal(z[5 * k:5 * k + 5], expect)
    assert not np.allclose(z[0], z[5])  # no seed shared across classes
    assert np.array_equal(x, small_teacher.generate(z, y, output="uint8"))
    again = teachers.export(small_teacher, out, classes=[2, 5, 7], per_class=5, truncation=1.0, seed=3,
                            shard_size=4, progress=False)
    assert again["written"] == [] and again["kept"] == [0, 1, 2, 3]
    assert shards.load_shards(out).images.shape == (15, 1, 28, 28)  # the generic reader agrees


def test_conflicting_manifest_is_refused(small_teacher, small_ckpt, tmp_path):
    out = tmp_path / "set"
    kw = dict(classes=[0, 1], per_class=3, truncation=1.0, seed=0, shard_size=4, progress=False)
    teachers.export(small_teacher, out, **kw)
    before = _folder_bytes(out)
    for change, word in [({"truncation": 0.5}, "truncation"), ({"seed": 1}, "seed"),
                         ({"classes": [0, 1, 2]}, "classes"), ({"per_class": 4}, "per_class")]:
        with pytest.raises(ShardError, match=rf"already holds a different export.*{word}.*refused"):
            teachers.export(small_teacher, out, **{**kw, **change})
    other = teachers.TorchTeacher.from_checkpoint(_save_generator(tmp_path / "other", c=32, seed=1), "cpu")
    with pytest.raises(ShardError, match="teacher_sha256"):
        teachers.export(other, out, **kw)
    assert _folder_bytes(out) == before  # nothing was mixed in
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "shard_00000.npz").write_bytes(b"x")
    with pytest.raises(ShardError, match="no manifest.json"):
        teachers.export(small_teacher, stray, **kw)


def test_export_request_errors(small_teacher, tmp_path):
    with pytest.raises(ValueError, match=r"class ids out of range 0\.\.9: \[10\]"):
        teachers.export(small_teacher, tmp_path / "a", classes=[3, 10], per_class=2, progress=False)
    with pytest.raises(ValueError, match="class list is empty"):
        teachers.export(small_teacher, tmp_path / "a", classes=[], per_class=2, progress=False)
    with pytest.raises(ValueError, match=r"truncation must lie in \(0, 1\]"):
        teachers.export(small_teacher, tmp_path / "a", per_class=2, truncation=2.0, progress=False)
    with pytest.raises(ValueError, match="worker must lie in"):
        teachers.export(small_teacher, tmp_path / "a", per_class=2, worker=2, workers=2, progress=False)
    with pytest.raises(ValueError, match="repeats a class id"):
        teachers.export(small_teacher, tmp_path / "a", classes=[1, 1], per_class=2, progress=False)
    assert not (tmp_path / "a").exists()


def test_killed_export_resumes_byte_identical(tmp_path):
    """A real export process is SIGKILLed mid-run, then `python -m gankd_utils export` runs again."""
    ckpt = _save_generator(tmp_path / "teacher", c=32, seed=0)
    args = ["export", "--teacher", "checkpoint", "--checkpoint", str(ckpt), "--classes", "0-9", "--per-class", "40",
            "--seed", "7", "--shard-size", "20", "--batch-size", "8", "--device", "cpu"]
    ref, out = tmp_path / "uninterrupted", tmp_path / "killed"
    teachers.export(teachers.TorchTeacher.from_checkpoint(ckpt, "cpu"), ref, classes=list(range(10)),
                    per_class=40, seed=7, shard_size=20, batch_size=8, progress=False)
    n_shards = shards.check_complete(ref)["n_shards"]  # 20

    # the first run is the command itself, slowed by a sleep per batch so that the kill lands mid-run
    slowed = ("import sys, time\n"
              "from gankd_utils.teachers.torch_teacher import TorchTeacher\n"
              "gen = TorchTeacher.generate_uint8\n"
              "def slow(self, *a):\n    time.sleep(0.05)\n    return gen(self, *a)\n"
              "TorchTeacher.generate_uint8 = slow\n"
              "from gankd_utils.cli import main\n"
              "sys.exit(main(sys.argv[1:]))\n")
    proc = subprocess.Popen([sys.executable, "-c", slowed, *args, "--out", str(out)], env=_env(), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while len(list(out.glob("shard_*.npz"))) < 3 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    present = len(list(out.glob("shard_*.npz")))
    assert 3 <= present < n_shards, f"not killed mid-run ({present} of {n_shards} shards): {err[-2000:]!r}"
    assert json.loads((out / "manifest.json").read_text())["complete"] is False

    done = subprocess.run([sys.executable, "-m", "gankd_utils", *args, "--out", str(out)], env=_env(), cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "complete" in done.stdout and f"kept {present}" in done.stdout  # whole shards kept, the rest redone
    assert _folder_bytes(out) == _folder_bytes(ref)


def test_damaged_shards_are_detected_and_redone(small_teacher, tmp_path):
    out = tmp_path / "set"
    kw = dict(classes=[0, 1, 2], per_class=4, seed=0, shard_size=4, progress=False)
    teachers.export(small_teacher, out, **kw)
    reference = _folder_bytes(out)
    ds = ShardDataset(out)
    assert len(ds) == 12

    flipped = bytearray((out / "shard_00001.npz").read_bytes())
    flipped[len(flipped) // 2] ^= 0xFF
    (out / "shard_00001.npz").write_bytes(bytes(flipped))
    ds = ShardDataset(out)
    ds[0]  # shard 0 is fine
    with pytest.raises(ShardError, match="shard_00001.npz is corrupted or was changed"):
        ds[5]

    whole = (out / "shard_00002.npz").read_bytes()
    (out / "shard_00002.npz").write_bytes(whole[: len(whole) // 3])
    with pytest.raises(ShardError, match="shard_00002.npz is truncated"):
        ShardDataset(out)

    res = teachers.export(small_teacher, out, **kw)
    assert res["redone"] == [1, 2] and res["kept"] == [0]
    assert _folder_bytes(out) == reference

    (out / "shard_00000.npz").unlink()
    with pytest.raises(ShardError, match="1 of 3 shards are missing"):
        ShardDataset(out)


def test_workers_split_the_set_and_readers_wait_for_completion(small_teacher, tmp_path):
    kw = dict(classes=[0, 1, 2, 3], per_class=5, seed=2, shard_size=3, progress=False)
    single, split = tmp_path / "single", tmp_path / "split"
    teachers.export(small_teacher, single, **kw)
    first = teachers.export(small_teacher, split, worker=1, workers=3, **kw)
    assert first["written"] == [1, 4] and not first["complete"] and "shard_00000.npz" in first["missing"]
    with pytest.raises(ShardError, match="not a complete export.*missing"):
        ShardDataset(split)
    assert shards.read_manifest(split)["complete"] is False
    teachers.export(small_teacher, split, worker=0, workers=3, **kw)
    last = teachers.export(small_teacher, split, worker=2, workers=3, **kw)
    assert last["complete"] and last["written"] == [2, 5]
    assert _folder_bytes(split) == _folder_bytes(single)


def test_stale_temp_cleanup_keeps_the_temps_live_workers_write(small_teacher, tmp_path):
    import socket

    kw = dict(classes=[1, 3], per_class=3, shard_size=2, batch_size=2, progress=False)
    out = tmp_path / "set"
    teachers.export(small_teacher, out, worker=1, workers=2, **kw)  # shards 1 (of 0..2): worker 0's still to come
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead, live, host = int(gone.stdout), os.getpid(), socket.gethostname()  # a finished process, and this one
    temps = {name: out / name for name in (
        f".shard_00001.npz.{host}.{live}.7.tmp",  # another worker's shard, being written: kept
        f".shard_00000.npz.{host}.{live}.7.tmp",  # this worker's shard, written by a duplicate still running: kept
        f".shard_00001.npz.{host}.{dead}.7.tmp",  # a killed worker's: removed, whoever's shard it was
        f".manifest.json.{host}.{dead}.7.tmp",  # likewise
        f".shard_00002.npz.otherhost.{dead}.7.tmp",  # another host's, recent: may be live there, kept
        ".shard_00000.npz.a1b2c3.tmp",  # an older version's temp of this worker's shard: removed
        ".notes.tmp",  # not the export's: never touched, however old
    )}
    for p in temps.values():
        p.write_bytes(b"partial")
    os.utime(temps[".notes.tmp"], (time.time() - 10_000,) * 2)
    teachers.export(small_teacher, out, worker=0, workers=2, **kw)
    left = sorted(p.name for p in temps.values() if p.exists())
    assert left == sorted([f".shard_00000.npz.{host}.{live}.7.tmp", f".shard_00001.npz.{host}.{live}.7.tmp",
                           f".shard_00002.npz.otherhost.{dead}.7.tmp", ".notes.tmp"])
    assert shards.check_complete(out)["count"] == 6


@pytest.mark.tf
def test_biggan_export_split_between_a_command_and_a_python_worker(biggan, tf_modules, tmp_path):
    kw = dict(classes=[0, 1, 397], per_class=3, truncation=0.5, seed=1, shard_size=2, batch_size=2, progress=False)
    ref = tmp_path / "ref"
    teachers.export(biggan, ref, **kw)
    m = shards.check_complete(ref)
    assert (m["teacher"], m["handle"], m["resolution"], m["class_names"][-1]) == (
        "biggan-deep-128", str(tf_modules["tf1"]), 128, "puffer")
    out = tmp_path / "split"
    cmd = [sys.executable, "-m", "gankd_utils", "export", "--teacher", "biggan", "--handle", str(tf_modules["tf1"]),
           "--classes", "0,1,397", "--per-class", "3", "--truncation", "0.5", "--seed", "1", "--shard-size", "2",
           "--batch-size", "2", "--device", "cpu", "--out", str(out), "--worker", "0", "--workers", "2"]
    done = subprocess.run(cmd, env=_env(), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "incomplete: 2 shards still to come" in done.stdout
    last = teachers.export(biggan, out, worker=1, workers=2, **kw)  # the other worker, in this process
    assert last["complete"] and last["written"] == [1, 3]
    assert _folder_bytes(out) == _folder_bytes(ref)
