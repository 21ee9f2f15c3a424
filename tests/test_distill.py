"""TinyGAN distillation from a teacher's shard folder (gankd_utils.distill): config, run, resume, streaming."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gankd_utils import checkpoint, config, distill, runs, shards, train, zoo

REPO = Path(__file__).resolve().parents[1]
TINY = ["generator.ch=4", "generator.embed_dim=8", "discriminator.ch=4"]


def _cli(args, env=None, timeout=600):
    env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "gankd_utils"] + args, cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


def _cfg(teacher_set, out, **train_):
    return distill.load_config(None, TINY, teacher_set=str(teacher_set), out=str(out),
                               train={"epochs": 2, "batch_size": 8, "ckpt_every": 3, "log_every": 1, **train_})


def _equal(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k].cpu(), sb[k].cpu()) for k in sa)


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
    assert distill.load_config(None, ["name=x", "out=some/where"]).out == "some/where"  # a bare string stays one


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


@pytest.mark.parametrize("overrides, match", [
    (["train.epochs=-1"], r"train.epochs must be a whole number >= 1, got -1"),
    (["train.epochs=abc"], r"train.epochs must be a whole number >= 1, got 'abc'"),
    (["train.epochs=0"], r"train.epochs must be a whole number >= 1"),
    (["train.epochs=2.5"], r"train.epochs must be a whole number"),
    (["train.epochs=true"], r"train.epochs must be a whole number"),
    (["train.batch_size=0"], r"train.batch_size must be a whole number >= 1"),
    (["train.max_steps=-3"], r"train.max_steps must be a whole number >= 1 or null"),
    (["train.lr_g=0"], r"train.lr_g must be a number > 0"),
    (["train.lr_d=NaN"], r"train.lr_d must be a number > 0"),
    (["train.w_real=-0.1"], r"train.w_real must be a number >= 0"),
    (["train.ema_decay=1"], r"train.ema_decay must be a number in \[0, 1\)"),
    (["train.betas=5"], r"train.betas must be two numbers"),
    (["train.betas=[0.5]"], r"train.betas must be two numbers"),
    (["train.loss=l2"], r"train.loss must be one of bce, hinge"),
    (["train.fast=yes"], r"train.fast must be one of auto, on, off"),
    (["train.channels_last=1"], r"train.channels_last must be true or false"),
    (["train=3"], r"train must be a table"),
    (["generator=3"], r"generator must be a table"),
    (["memory_limit_gb=-1"], r"memory_limit_gb must be a number > 0"),
    (["real_per_class=0"], r"real_per_class must be a whole number >= 1"),
    (["name="], r"name must not be empty"),
])
def test_bad_training_values_are_refused_when_the_config_loads(overrides, match):
    """train.epochs=-1 saved an untrained G marked finished, train.epochs=abc failed with a TypeError deep inside."""
    with pytest.raises(ValueError, match=match):
        distill.load_config(None, overrides)
    assert distill.load_config(None, ["train.max_steps=null", "train.betas=[0.0, 0.99]"]).train_config().betas == (
        0.0, 0.99)


def test_a_refused_run_leaves_the_folders_distill_json(tmp_path, teacher_set):
    run = tmp_path / "run"
    distill.run(_cfg(teacher_set, run, max_steps=3), progress=False)  # paused: its resume state stays
    before = (run / "distill.json").read_bytes()
    with pytest.raises(ValueError, match="other settings"):
        distill.run(_cfg(teacher_set, run, max_steps=3, lr_g=1e-3), progress=False)
    assert (run / "distill.json").read_bytes() == before


def test_config_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        distill.load_config(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        distill.load_config(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(ValueError, match="must hold a JSON object"):
        distill.load_config(bad)


def test_run_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("GANKD_RESULTS", str(tmp_path))
    assert distill.run_dir_of(config.DistillConfig(name="n")) == tmp_path / "05_tinygan" / "runs" / "n"
    assert distill.run_dir_of(config.DistillConfig(out="x/y")) == Path("x/y")


def test_teacher_set_checks(tmp_path, teacher_set):
    with pytest.raises(FileNotFoundError, match="export one first"):
        distill.run(distill.load_config(None, teacher_set=str(tmp_path / "missing")), progress=False)


def test_resume_after_interruption_matches_an_uninterrupted_run(tmp_path, teacher_set, monkeypatch):
    resumed = []
    load_resume = checkpoint.load_resume

    def spy(run_dir, run):
        resumed.append(load_resume(run_dir, run))
        return resumed[-1]

    monkeypatch.setattr(train.checkpoint, "load_resume", spy)
    full = distill.run(_cfg(teacher_set, tmp_path / "full", max_steps=None), progress=False)
    distill.run(_cfg(teacher_set, tmp_path / "cut", max_steps=7), progress=False)
    (tmp_path / "cut" / "G.json").unlink()  # the paused run left a checkpoint at step 7; go on from there
    part = distill.run(_cfg(teacher_set, tmp_path / "cut", max_steps=None), progress=False)
    assert resumed == [False, False, True]
    assert isinstance(part, runs.Trained) and not part.loaded and part.finished
    assert full.steps == part.steps == 20 and part.run_dir == tmp_path / "cut" and part.name == "tinygan_student"
    assert _equal(full.G, part.G)
    lines = [json.loads(ln) for ln in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert [ln["step"] for ln in lines] == list(range(1, 21))  # one line per step, none repeated
    saved = json.loads((tmp_path / "cut" / "distill.json").read_text())
    assert saved["teacher"]["count"] == 80 and saved["world_size"] == 1 and saved["streamed"] is False


def test_streamed_and_in_memory_training_agree(tmp_path, teacher_set):
    mem = distill.run(_cfg(teacher_set, tmp_path / "m", max_steps=4), progress=False)
    cfg = distill.load_config(None, TINY + ["stream=stream"], teacher_set=str(teacher_set), out=str(tmp_path / "s"),
                              train={"epochs": 2, "batch_size": 8, "max_steps": 4})
    st = distill.run(cfg, progress=False)
    assert json.loads((tmp_path / "s" / "distill.json").read_text())["streamed"] is True
    assert json.loads((tmp_path / "m" / "distill.json").read_text())["streamed"] is False
    h1, h2 = mem.history, st.history
    assert len(h1["step"]) == len(h2["step"]) == 4 and all(np.isfinite(h2["g_loss"][i]) for i in range(4))


def test_real_image_folder_branch(tmp_path, teacher_set):
    for c in (0, 3):
        (tmp_path / "real" / str(c)).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((40, 48, 3), 30 * i + c, np.uint8)).save(tmp_path / "real" / str(c) / f"{i}.png")
    cfg = distill.load_config(None, TINY, teacher_set=str(teacher_set), out=str(tmp_path / "r"),
                              real=str(tmp_path / "real"), train={"batch_size": 8, "max_steps": 2})
    real = distill.load_real(cfg, shards.teacher_info(teacher_set))
    assert real.images.shape == (6, 3, 32, 32) and sorted(set(real.labels.tolist())) == [0, 3]
    res = distill.run(cfg, progress=False)
    assert "d_realbranch" in res.history
    assert distill.load_real(distill.load_config(None), {}) is None
    with pytest.raises(ValueError, match="give an ImageFolder instead"):
        distill.load_real(distill.load_config(None, real="cifar10"), {"resolution": 64}) if (
            Path(os.environ.get("GANKD_DATA_ROOT", "")) / "cifar10" / "test.npz").exists() else pytest.skip("no CIFAR-10")


def test_the_command_and_the_notebook_train_the_same_student(tmp_path, teacher_set):
    """distill.run (the command) and runs.train_or_load of the zoo's TinyGAN entry (notebook 05): one training."""
    s = config.settings("cifar10", "smoke", distill={"generator": {"ch": 4, "embed_dim": 8},
                                                     "discriminator": {"ch": 4}, "train": {"max_steps": 3}})
    cmd = distill.run(distill.load_config(None, teacher_set=str(teacher_set), out=str(tmp_path / "cmd"),
                                          generator=s.distill["generator"], discriminator=s.distill["discriminator"],
                                          train=s.distill["train"]), progress=False)
    entry = zoo.cifar10_zoo()["tinygan_student"]
    nb = runs.train_or_load(entry, s, None, teacher_set=shards.load_shards(teacher_set), device="cpu",
                            progress=False, folder=tmp_path / "nb")
    assert cmd.steps == nb.steps == 3 and _equal(cmd.G, nb.G)
    assert checkpoint.resume_key(cmd.config) == checkpoint.resume_key(nb.config)


def test_a_finished_run_loads_only_with_its_own_settings(tmp_path, teacher_set):
    cfg = _cfg(teacher_set, tmp_path / "r", max_steps=None)
    first = distill.run(cfg, progress=False)
    again = runs.load_finished(tmp_path / "r", cfg.train_config())
    assert again.loaded and again.finished and again.steps == 20 and _equal(first.G, again.G)
    other = _cfg(teacher_set, tmp_path / "r", max_steps=None, lr_g=1e-4)
    assert runs.load_finished(tmp_path / "r", other.train_config()) is None
    with pytest.raises(ValueError, match="other settings"):  # never resumes a run of other settings
        distill.run(other, progress=False)
    done = runs.load_run(tmp_path / "r")
    assert done.finished and done.steps == 20 and _equal(first.G, done.G)
    with pytest.raises(FileNotFoundError, match="holds no generator checkpoint"):
        runs.load_run(tmp_path / "empty")


@pytest.mark.tf
def test_biggan_path_at_128_through_export_and_distill(tmp_path):
    """The real commands on a BigGAN-deep-signature TF module (the true weights cannot be had offline)."""
    import tf_fixtures

    module = tf_fixtures.make_tf1_hub_module(tmp_path / "biggan")
    out = tmp_path / "biggan_set"
    r = _cli(["export", "--teacher", "biggan", "--handle", str(module), "--classes", "1,207", "--per-class", "4",
              "--truncation", "0.5", "--out", str(out), "--shard-size", "4", "--batch-size", "4", "--device", "cpu"],
             env={"GANKD_OFFLINE": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    info = shards.teacher_info(out)
    assert (info["resolution"], info["n_classes"], info["classes"]) == (128, 1000, [1, 207])
    assert info["class_names"] == ["goldfish", "golden retriever"]
    r = _cli(["distill", f"teacher_set={out}", f"out={tmp_path / 'student'}", "train.batch_size=4",
              "train.max_steps=2", "train.n_fixed=4", "device=cpu", "--quiet"] + TINY)
    assert r.returncode == 0, r.stderr[-2000:]
    G = checkpoint.load_model(tmp_path / "student" / "G")
    assert G.hparams["resolution"] == 128 and G.n_classes == 1000
    with torch.no_grad():
        x = G(torch.randn(2, 128), torch.tensor([1, 207]))
    assert x.shape == (2, 3, 128, 128)


@pytest.mark.parametrize("name", ["tinygan_cifar10.json", "tinygan_biggan128.json"])
def test_example_configs_load(name):
    cfg = distill.load_config(REPO / "configs" / name)
    assert cfg.train_config().kd == "blackbox" and cfg.generator["ch"] == 32


def test_example_cifar10_config_is_notebook_05_full_profile():
    """A run of configs/tinygan_cifar10.json trains what notebook 05 trains in the full profile (same settings)."""
    cmd = distill.load_config(REPO / "configs" / "tinygan_cifar10.json")
    s = config.settings("cifar10", "full", seed=0)
    entry = zoo.cifar10_zoo()["tinygan_student"]
    G, D = zoo.build(entry, s)
    assert {k: G.hparams[k] for k in cmd.generator} == cmd.generator
    assert {k: D.hparams[k] for k in cmd.discriminator} == cmd.discriminator
    assert checkpoint.resume_key(cmd.train_config()) == checkpoint.resume_key(zoo.train_config(entry, s))
    assert cmd.train_config().snapshots == zoo.train_config(entry, s).snapshots == 4  # notebook 05's curve


def test_example_cifar10_config_writes_beside_the_full_profile_runs():
    cmd = distill.load_config(REPO / "configs" / "tinygan_cifar10.json")
    assert cmd.out.endswith("runs/full-seed0/tinygan_student") and cmd.real == "cifar10"  # where notebook 05 looks
    assert Path(cmd.out).parent.as_posix().endswith("05_tinygan/runs/full-seed0")  # runs.run_root("05_tinygan", "full")
