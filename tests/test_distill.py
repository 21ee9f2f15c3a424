"""The distill command: config file and overrides, streaming, resume, data parallel (gloo, 2 processes), BigGAN path."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import gankd_utils  # noqa: F401  (import order)
from gankd_utils import checkpoint, config, data, distill, teachers
from gankd_utils.models import ResNetGenerator, TinyGANGenerator

REPO = Path(__file__).resolve().parents[1]
TINY = ["generator.ch=4", "generator.embed_dim=8", "discriminator.ch=4"]


def _cli(args, env=None, launcher=None, timeout=600):
    env = {**os.environ, **(env or {})}
    cmd = (launcher or [sys.executable]) + ["-m", "gankd_utils"] + args
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def teacher_set(tmp_path_factory):
    """A complete 32 px export of a small class-conditional torch teacher: 10 classes x 8 images."""
    out = tmp_path_factory.mktemp("teacher") / "set"
    torch.manual_seed(0)
    t = teachers.TorchTeacher(ResNetGenerator(ch=4), "cpu", name="tiny_cgan")
    teachers.export(t, out, classes=list(range(10)), per_class=8, seed=0, shard_size=20, batch_size=40,
                    progress=False)
    return out


def _cfg(teacher_set, out, **train):
    return distill.load_config(None, TINY, teacher_set=str(teacher_set), out=str(out),
                               train={"epochs": 2, "batch_size": 8, "ckpt_every": 3, "log_every": 1, **train})


def test_config_file_overrides_and_tinygan_defaults(tmp_path, teacher_set):
    f = tmp_path / "run.json"
    f.write_text(json.dumps({"name": "a", "teacher_set": str(teacher_set), "train": {"epochs": 7}}))
    cfg = distill.load_config(f, ["train.batch_size=16", "generator.ch=8", "stream=memory"])
    t = cfg.train_config()
    assert (t.epochs, t.batch_size, cfg.generator["ch"], cfg.generator["embed_dim"]) == (7, 16, 8, 128)
    # every loss weight defaults to TinyGAN's (config.TINYGAN names the source)
    for k, v in config.TINYGAN.items():
        assert getattr(t, k) == (tuple(v) if isinstance(v, (list, tuple)) else v), k
    assert t.kd == "blackbox" and t.w_pixel == 0.2 and t.pixel_decay == 0.01 and t.n_critic == 5


@pytest.mark.parametrize("overrides, match", [
    (["nonsense=1"], "unknown distill setting"),
    (["train.epoch=3"], "do not exist"),
    (["teacher_set"], "not key=value"),
    (["name.x=1"], "dotted keys"),
    (["stream=disk"], "stream must be"),
])
def test_config_errors_say_what_to_do(overrides, match):
    with pytest.raises(ValueError, match=match):
        distill.load_config(None, overrides)


def test_config_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        distill.load_config(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        distill.load_config(bad)


def test_teacher_set_checks(tmp_path, teacher_set):
    with pytest.raises(FileNotFoundError, match="export one first"):
        distill.teacher_info(tmp_path / "missing")
    info = distill.teacher_info(teacher_set)
    assert (info["resolution"], info["z_dim"], info["n_classes"], info["count"]) == (32, 128, 10, 80)


def test_streamed_batches_match_the_manifest_and_split_by_rank(teacher_set):
    ds = teachers.ShardDataset(teacher_set)
    whole = data.load_shards(teacher_set)
    seen = []
    for rank in (0, 1):
        src = teachers.ShardBatches(ds, 8, seed=3, rank=rank, world=2)
        assert len(src) == 5
        for x, y, z in src.epoch(0):
            assert x.shape == (8, 3, 32, 32) and z.shape == (8, 128)
            for xi, yi, zi in zip(x, y, z):  # every item is a real (image, label, z) triple of the export
                k = int(torch.nonzero((whole.z == zi).all(1))[0])
                assert int(whole.labels[k]) == int(yi)
                assert torch.equal(data.to_uint8(xi), whole.images[k])
                seen.append(k)
    assert len(seen) == len(set(seen)) == 80  # ranks see disjoint data, every item once per epoch
    again = [b[2] for b in teachers.ShardBatches(ds, 8, seed=3).epoch(1, skip=2)]
    full = [b[2] for b in teachers.ShardBatches(ds, 8, seed=3).epoch(1)][2:]
    assert all(torch.equal(a, b) for a, b in zip(again, full))  # skip resumes mid-epoch


def test_in_memory_batches_split_by_rank():
    imgs = torch.arange(40, dtype=torch.uint8).view(40, 1, 1, 1).expand(40, 1, 2, 2).contiguous()
    s = data.ImageSet(imgs, torch.zeros(40, dtype=torch.int64), ("a",), "t")
    got = [data.to_uint8(x[:, 0, 0, 0]).tolist() for r in (0, 1) for x, _ in data.Batches(s, 4, 0, rank=r, world=2)
           .epoch(0)]
    flat = [v for b in got for v in b]
    assert len(flat) == len(set(flat)) == 40
    single = [data.to_uint8(x[:, 0, 0, 0]).tolist() for x, _ in data.Batches(s, 4, 0).epoch(0)]
    assert got[0] == single[0] and got[5] == single[1]  # rank r takes slice r of each global batch


def test_resume_after_interruption_matches_an_uninterrupted_run(tmp_path, teacher_set):
    full = distill.run(_cfg(teacher_set, tmp_path / "full", max_steps=None), progress=False)
    distill.run(_cfg(teacher_set, tmp_path / "cut", max_steps=7), progress=False)
    (tmp_path / "cut" / "G.json").unlink()  # the paused run left a checkpoint at step 7; go on from there
    part = distill.run(_cfg(teacher_set, tmp_path / "cut", max_steps=None), progress=False)
    assert part["resumed"] and full["steps"] == part["steps"] == 20
    a, b = full["G"].state_dict(), part["G"].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    lines = [json.loads(ln) for ln in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert [ln["step"] for ln in lines] == list(range(1, 21))  # one line per step, none repeated


def test_streamed_and_in_memory_training_agree(tmp_path, teacher_set):
    mem = distill.run(_cfg(teacher_set, tmp_path / "m", max_steps=4), progress=False)
    cfg = distill.load_config(None, TINY + ["stream=stream"], teacher_set=str(teacher_set), out=str(tmp_path / "s"),
                              train={"epochs": 2, "batch_size": 8, "max_steps": 4})
    st = distill.run(cfg, progress=False)
    assert st["streamed"] and not mem["streamed"]
    h1, h2 = mem["history"], st["history"]
    assert len(h1["step"]) == len(h2["step"]) == 4 and all(np.isfinite(h2["g_loss"][i]) for i in range(4))


def test_real_image_folder_branch(tmp_path, teacher_set):
    from PIL import Image

    for c in (0, 3):
        (tmp_path / "real" / str(c)).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((40, 48, 3), 30 * i + c, np.uint8)).save(tmp_path / "real" / str(c) / f"{i}.png")
    real = data.load_image_folder(tmp_path / "real", 32)
    assert real.images.shape == (6, 3, 32, 32) and sorted(set(real.labels.tolist())) == [0, 3]
    res = distill.run(_cfg(teacher_set, tmp_path / "r", max_steps=2) if False else
                      distill.load_config(None, TINY, teacher_set=str(teacher_set), out=str(tmp_path / "r"),
                                          real=str(tmp_path / "real"), train={"batch_size": 8, "max_steps": 2}),
                      progress=False)
    assert "d_realbranch" in res["history"]
    (tmp_path / "real" / "n0001").mkdir()
    with pytest.raises(ValueError, match="name them by class id"):
        data.load_image_folder(tmp_path / "real", 32)


def test_command_runs_on_a_tiny_shard_set(tmp_path, teacher_set):
    cfg_file = tmp_path / "run.json"
    cfg_file.write_text(json.dumps({"name": "cli", "teacher_set": str(teacher_set), "out": str(tmp_path / "run"),
                                    "train": {"epochs": 1, "batch_size": 8, "log_every": 2, "sample_every": 4}}))
    r = _cli(["distill", "--config", str(cfg_file), "--quiet"] + TINY)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "finished at step 10" in r.stdout
    run = tmp_path / "run"
    G = checkpoint.load_model(run / "G")
    assert isinstance(G, TinyGANGenerator) and G.hparams["resolution"] == 32 and G.n_classes == 10
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 5
    assert (run / "samples" / "step_0000004.png").exists() and (run / "samples" / "epoch_000.png").exists()
    bad = _cli(["distill", "teacher_set=" + str(tmp_path / "nowhere")])
    assert bad.returncode == 2 and "export one first" in bad.stderr


def test_two_process_data_parallel_run_on_cpu(tmp_path, teacher_set):
    run = tmp_path / "ddp"
    args = ["distill", f"teacher_set={teacher_set}", f"out={run}", "train.epochs=2", "train.batch_size=4",
            "train.ckpt_every=3", "device=cpu", "--quiet"] + TINY
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    r = _cli(args, launcher=launcher, env={"OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-3000:])
    assert r.stdout.count("finished at step") == 1  # only rank 0 reports
    assert "finished at step 20 (2 process(es)" in r.stdout  # 80 images / (4 x 2 ranks) x 2 epochs
    weights = sorted(p.relative_to(run).as_posix() for p in run.rglob("*.safetensors"))
    assert weights == ["D.safetensors", "G.safetensors", "state/D.safetensors", "state/G.safetensors"]
    assert json.loads((run / "G.json").read_text())["world_size"] == 2
    assert len(checkpoint.load_state(run / "state" / "state.pt")["rng_ranks"]) == 1
    # resuming with another number of processes is refused with a clear message
    one = _cli(["distill", f"teacher_set={teacher_set}", f"out={run}", "train.epochs=2", "train.batch_size=4",
                "device=cpu"] + TINY)
    assert one.returncode == 2 and "same number of processes" in one.stderr


@pytest.mark.tf
def test_biggan_path_at_128_through_export_and_distill(tmp_path):
    """The real commands on a BigGAN-deep-signature TF module (the true weights cannot be had offline)."""
    sys.path.insert(0, str(Path(__file__).parent))
    import tf_fixtures

    module = tf_fixtures.make_tf1_hub_module(tmp_path / "biggan")
    out = tmp_path / "biggan_set"
    r = _cli(["export", "--teacher", "biggan", "--handle", str(module), "--classes", "1,207", "--per-class", "4",
              "--truncation", "0.5", "--out", str(out), "--shard-size", "4", "--batch-size", "4", "--device", "cpu"],
             env={"GANKD_OFFLINE": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    info = distill.teacher_info(out)
    assert (info["resolution"], info["n_classes"], info["classes"]) == (128, 1000, [1, 207])
    r = _cli(["distill", f"teacher_set={out}", f"out={tmp_path / 'student'}", "train.batch_size=4",
              "train.max_steps=2", "train.n_fixed=4", "device=cpu", "--quiet"] + TINY)
    assert r.returncode == 0, r.stderr[-2000:]
    G = checkpoint.load_model(tmp_path / "student" / "G")
    assert G.hparams["resolution"] == 128 and G.n_classes == 1000
    with torch.no_grad():
        x = G(torch.randn(2, 128), torch.tensor([1, 207]))
    assert x.shape == (2, 3, 128, 128)


def test_train_or_load_and_load_run(tmp_path, teacher_set):
    cfg = _cfg(teacher_set, tmp_path / "r", max_steps=None)
    first = distill.train_or_load(cfg, progress=False)
    again = distill.train_or_load(cfg, progress=False)
    assert not first["loaded"] and again["loaded"] and again["finished"] and again["steps"] == 20
    a, b = first["G"].state_dict(), again["G"].state_dict()
    assert all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)
    with pytest.raises(ValueError, match="other settings"):  # never loads or resumes a run of other settings
        distill.train_or_load(_cfg(teacher_set, tmp_path / "r", max_steps=None, lr_g=1e-4), progress=False)
    paused = distill.load_run(tmp_path / "r")
    assert paused["finished"] and paused["steps"] == 20
    with pytest.raises(FileNotFoundError, match="holds no student checkpoint"):
        distill.load_run(tmp_path / "empty")


@pytest.mark.parametrize("name", ["tinygan_cifar10.json", "tinygan_biggan128.json"])
def test_example_configs_load(name):
    cfg = distill.load_config(REPO / "configs" / name)
    assert cfg.train_config().kd == "blackbox" and cfg.generator["ch"] == 32


def test_example_cifar10_config_is_notebook_05_full_profile():
    """A run of configs/tinygan_cifar10.json is the run notebook 05 loads in the full profile (same settings)."""
    from gankd_utils.train import _resumable_settings

    cmd = distill.load_config(REPO / "configs" / "tinygan_cifar10.json")
    nb = distill.profile_config("full", "x", name="tinygan_cifar10", train={"seed": 0})
    assert _resumable_settings(cmd.train_config().to_dict()) == _resumable_settings(nb.train_config().to_dict())
    assert (cmd.generator, cmd.discriminator) == (nb.generator, nb.discriminator)
    assert cmd.out.endswith("runs/full-seed0/tinygan_cifar10")
