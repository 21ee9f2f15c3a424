"""Settings (gankd_utils.config): one table per dataset, resolved once by ``settings``."""
import dataclasses
import json

import pytest

from gankd_utils import cli, config, zoo
from gankd_utils.config import CompressConfig, DistillConfig, EvalConfig, ExportConfig, Settings, TrainConfig

# The per-profile values before the settings were one table per dataset (config.get / CHAPTERS /
# DISTILL_PROFILES / COMPRESS_PROFILES): the tables must give the same configs.
OLD_PROFILES = {
    "smoke": {"train": dict(n_train=512, epochs=1, batch_size=64, ckpt_every=4, n_fixed=20),
              "eval": dict(n_samples=500, n_ref=2000, batch_size=250, cls_epochs=2, cls_n_train=3000, cls_width=8,
                           timing_repeats=3)},
    "quick": {"train": dict(n_train=20_000, epochs=1, batch_size=64, ckpt_every=100),
              "eval": dict(n_samples=2_000, n_ref=10_000, batch_size=500, cls_epochs=1, cls_n_train=None,
                           timing_repeats=10)},
    "full": {"train": dict(), "eval": dict()},
}
OLD_CIFAR10 = {
    "smoke": {"train": dict(dataset="cifar10", n_train=64, batch_size=8, epochs=1, ckpt_every=4),
              "eval": dict(n_samples=100, n_ref=500, batch_size=100, cls_epochs=1, cls_n_train=2000, cls_width=8,
                           speed_batch=8, timing_repeats=2),
              "export": dict(per_class=8, shard_size=40)},
    "quick": {"train": dict(dataset="cifar10", n_train=5_000, batch_size=64, epochs=1, ckpt_every=100),
              "eval": dict(n_samples=1_000, n_ref=5_000, cls_epochs=2, cls_n_train=20_000, cls_width=16),
              "export": dict(per_class=250, shard_size=1000)},
    "full": {"train": dict(dataset="cifar10", batch_size=64, epochs=60, ckpt_every=2000),
             "eval": dict(n_samples=10_000, cls_epochs=30, cls_width=64),
             "export": dict(per_class=5_000, shard_size=5_000)},
}
OLD_DISTILL = {
    "smoke": dict(generator={"ch": 8, "embed_dim": 16}, discriminator={"ch": 8},
                  train=dict(epochs=1, batch_size=8, ckpt_every=4, log_every=1, n_fixed=20, n_critic=2)),
    "quick": dict(train=dict(epochs=8, batch_size=32, ckpt_every=100, log_every=10)),
    "full": dict(train=dict(epochs=50, batch_size=64, ckpt_every=2000, log_every=50, sample_every=5000)),
}
OLD_COMPRESS = {
    "smoke": dict(amounts=(0.5,), finetune_steps=3, repeats=2),
    "quick": dict(amounts=(0.3, 0.5), finetune_steps=150, repeats=5),
    "full": dict(amounts=(0.3, 0.5), finetune_steps=3000, repeats=20),
}


def _old(kind, profile, chapter=None):
    cls = {"train": TrainConfig, "eval": EvalConfig}[kind]
    diff = OLD_CIFAR10[profile].get(kind, {}) if chapter else {}
    return dataclasses.replace(cls(), **{**OLD_PROFILES[profile][kind], **diff})


@pytest.mark.parametrize("profile", ["smoke"])  # full and quick were re-planned since (each to a time budget)
@pytest.mark.parametrize("dataset", ["mnist", "cifar10"])
def test_tables_give_the_old_profiles_values(dataset, profile):
    s = config.settings(dataset, profile)
    chapter = "cifar10" if dataset == "cifar10" else None
    assert s.train.snapshots == 2  # added since: smoke keeps one snapshot, so CI runs the full profile's path
    assert s.train.channels_last == (dataset == "cifar10")  # added since: CIFAR-10 trains channels-last on the CPU
    assert dataclasses.replace(s.train, snapshots=0, channels_last=False) == _old("train", profile, chapter)
    assert s.eval == _old("eval", profile, chapter)
    assert s.compress == CompressConfig(**OLD_COMPRESS[profile])
    if dataset == "cifar10":
        assert s.export == dataclasses.replace(ExportConfig(), **OLD_CIFAR10[profile]["export"])
        old = OLD_DISTILL[profile]
        assert {k: v for k, v in s.distill.items() if k != "train"} == {k: v for k, v in old.items() if k != "train"}
        assert s.distill["train"] == {**old["train"], "seed": 0, "snapshots": 2, "channels_last": True}


def test_quoted_values():
    c = config.settings("cifar10", "smoke")
    assert (c.train.n_train, c.train.batch_size, c.train.dataset, c.eval.speed_batch) == (64, 8, "cifar10", 8)
    m = config.settings("mnist", "quick")
    assert (m.eval.n_samples, m.eval.timing_repeats, m.train.n_train, m.train.dataset) == (2000, 10, 20_000, "mnist")
    assert config.settings("mnist", "smoke").export == ExportConfig(per_class=4, shard_size=16)
    for dataset in ("mnist", "cifar10"):  # full: every part there, bigger than quick
        full, quick = config.settings(dataset, "full"), config.settings(dataset, "quick")
        assert full.train.n_train is None and full.eval.n_samples == 10_000 and full.export.per_class >= 1000
        assert full.compress.finetune_steps > quick.compress.finetune_steps


def test_imagenet_table():
    s = config.settings("imagenet", "smoke")
    assert s.train is None and s.eval is None and s.compress is None
    assert s.export.classes == (0, 1, 2) and s.export.per_class == 2 and s.export.batch_size == 4
    assert s.view == {"per_class": 2, "steps": 4, "sweep_n": 3, "explorer_n": 4}
    assert config.settings("imagenet", "full").export.classes == tuple(range(398))  # TinyGAN's animals
    assert config.settings("imagenet", "quick", view={"steps": 3}).view["steps"] == 3


def test_profiles_are_small_diffs():
    smoke, full = config.settings("mnist", "smoke").train, config.settings("mnist", "full").train
    changed = {f.name for f in dataclasses.fields(smoke) if getattr(smoke, f.name) != getattr(full, f.name)}
    assert changed and changed <= set(config.MNIST["smoke"]["train"])


def test_seed_and_overrides():
    s = config.settings("mnist", "smoke", seed=3, train={"epochs": 2, "name": "x"}, eval={"n_samples": 7},
                        compress={"amounts": (0.1,)})
    assert isinstance(s, Settings) and (s.dataset, s.profile, s.seed) == ("mnist", "smoke", 3)
    assert (s.train.epochs, s.train.name, s.train.seed, s.train.n_train) == (2, "x", 3, 512)
    assert s.eval.n_samples == 7 and s.eval.n_ref == 2000 and s.compress.amounts == (0.1,)
    d = config.settings("cifar10", "smoke", seed=5, distill={"generator": {"ch": 4}, "train": {"epochs": 3}})
    assert d.distill["generator"] == {"ch": 4, "embed_dim": 16}  # tables merge key by key
    assert d.distill["train"]["epochs"] == 3 and d.distill["train"]["batch_size"] == 8 and d.distill["train"]["seed"] == 5
    assert config.settings("cifar10", "smoke").distill["generator"] == {"ch": 8, "embed_dim": 16}  # not mutated
    assert s.to_dict()["train"]["epochs"] == 2


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(dataset="svhn", profile="smoke"), ValueError, "unknown dataset"),
    (dict(dataset="mnist", profile="huge"), ValueError, "unknown profile"),
    (dict(dataset="mnist", profile="smoke", train={"epoch": 3}), TypeError, "TrainConfig has no setting"),
    (dict(dataset="mnist", profile="smoke", eval={"samples": 3}), TypeError, "EvalConfig has no setting"),
    (dict(dataset="mnist", profile="smoke", export={"per_klass": 3}), TypeError, "ExportConfig has no setting"),
    (dict(dataset="mnist", profile="smoke", compress={"amount": 3}), TypeError, "CompressConfig has no setting"),
    (dict(dataset="mnist", profile="smoke", eval={"seed": 1}), TypeError, "eval seed"),
    (dict(dataset="mnist", profile="smoke", train={"seed": 3}), TypeError, "train seed"),
    (dict(dataset="mnist", profile="smoke", training={}), TypeError, "takes overrides for"),
])
def test_unknown_names_raise(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        config.settings(**kwargs)


def test_student_seeds():
    s = config.settings("mnist", "smoke", seed=5)
    assert s.student_seeds == 1 and s.seeds("teacher") == (5,) and s.seeds("kd") == (5,)
    m = config.settings("mnist", "smoke", seed=5, student_seeds=3)
    assert m.seeds("teacher") == (5,) and m.seeds("scratch") == (5, 6, 7) and m.seeds("kd") == (5, 6, 7)
    c = config.settings("cifar10", "smoke", seed=1)
    t = c.for_seed(4)
    assert (t.seed, t.train.seed, t.distill["train"]["seed"]) == (4, 4, 4)
    assert dataclasses.replace(t.train, seed=1) == c.train and t.eval == c.eval and c.seed == 1
    assert config.settings("imagenet", "smoke").for_seed(2).train is None


def test_fast_setting():
    assert TrainConfig().fast == "auto"
    assert config.settings("mnist", "smoke", train={"fast": "on"}).train.fast == "on"


def test_distill_config_train_config():
    cfg = DistillConfig(train={"epochs": 3, "betas": [0.1, 0.2]})
    t = cfg.train_config()
    assert t.kd == "blackbox" and t.epochs == 3 and t.betas == (0.1, 0.2) and t.name == "tinygan_student"
    assert t.dataset == "teacher_set" and t.n_critic == config.TINYGAN["n_critic"]
    with pytest.raises(ValueError, match="do not exist"):
        DistillConfig(train={"epoch": 3}).train_config()


def test_config_saved_as_json(tmp_path):
    cfg = config.settings("mnist", "quick", train={"name": "x"}).train
    config.save_json(cfg, tmp_path / "config.json")
    assert json.loads((tmp_path / "config.json").read_text())["name"] == "x"
    config.save_json(config.settings("cifar10", "smoke"), tmp_path / "settings.json")
    back = json.loads((tmp_path / "settings.json").read_text())
    assert back["train"]["batch_size"] == 8 and back["distill"]["generator"]["ch"] == 8
    config.save_json({"a": 1}, tmp_path / "d.json")
    assert json.loads((tmp_path / "d.json").read_text()) == {"a": 1}


def test_default_profile_without_cuda(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert config.default_profile() == "quick"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert config.default_profile() == "full"


def test_the_quick_plan_is_the_laptop_walk():
    # planned from step costs measured on 2 CPU cores (config.py says which): students train at a short,
    # equal budget from the shipped teachers; chapter 07 prunes once with a short fine-tune
    from gankd_utils import runs, zoo

    m, c = config.settings("mnist", "quick"), config.settings("cifar10", "quick")
    mz, cz = zoo.mnist_zoo(), zoo.cifar10_zoo()
    assert runs.planned_steps(mz["cdcgan_c32_kd"], m, 60_000) == runs.planned_steps(mz["cdcgan_c32_scratch"], m,
                                                                                     60_000) == 312
    assert runs.planned_steps(cz["tinygan_student"], c, 1_280) == 8 * (1_280 // 32)
    assert c.export.per_class * 10 == 1_280  # the teacher set of chapters 04 and 05
    assert runs.planned_steps(cz["cgan_student_s_kd"], c, 1_280) == 80
    for s in (m, c):
        assert s.compress.amounts == (0.5,) and s.compress.finetune_steps == 100


@pytest.mark.parametrize("profile", config.PROFILE_NAMES)
def test_kd_students_and_their_scratch_twins_get_the_same_budget(profile):
    # black-box KD students learn from the teacher set, their twins from real images: the same steps
    from gankd_utils import runs, zoo

    for dataset, n_real in (("mnist", 60_000), ("cifar10", 50_000)):
        s = config.settings(dataset, profile)
        entries = zoo.zoo(dataset)
        for name, e in entries.items():
            if e.role != "kd" or name not in entries or not name.endswith("_kd"):
                continue
            n_kd = s.export.per_class * 10 if e.kd == "blackbox" else n_real
            assert runs.planned_steps(e, s, n_kd) == runs.planned_steps(entries[name[:-3] + "_scratch"], s, n_real), \
                (profile, name)


def test_cifar10_students_average_like_their_twins_and_quick_samples_their_raw_weights():
    """A chapter-04 KD student keeps its scratch twin's weight average (full); quick drops it for both (80 steps are
    too few for a 0.999 average); the teacher keeps it, and the TinyGAN student keeps TinyGAN's recipe (none)."""
    z = zoo.cifar10_zoo()
    quick, full = config.settings("cifar10", "quick"), config.settings("cifar10", "full")
    ema = {n: zoo.train_config(e, quick).ema_decay for n, e in z.items()}
    assert ema["cgan_teacher"] == 0.999
    assert ema["cgan_student_s_scratch"] == ema["cgan_student_xs_scratch"] == 0.0
    assert ema["cgan_student_s_kd"] == ema["cgan_student_xs_kd"] == 0.0
    assert ema["tinygan_student"] == 0.0
    ema_full = {n: zoo.train_config(e, full).ema_decay for n, e in z.items()}
    assert ema_full["cgan_teacher"] == ema_full["cgan_student_s_scratch"] == ema_full["cgan_student_s_kd"] == 0.999
    assert ema_full["cgan_student_xs_scratch"] == ema_full["cgan_student_xs_kd"] == 0.999
    assert ema_full["tinygan_student"] == 0.0


def test_quick_columbia_students_learn_at_their_own_rate():
    """quick: the Columbia students (scratch and KD alike) get G lr 1e-3; teachers and the IITGN family keep 2e-4."""
    s = config.settings("mnist", "quick")
    z = zoo.mnist_zoo()
    lr = {n: zoo.train_config(e, s).lr_g for n, e in z.items()}
    assert lr["cdcgan_c64_scratch"] == lr["cdcgan_c64_kd"] == lr["cdcgan_c32_scratch"] == lr["cdcgan_c32_kd"] == 1e-3
    assert lr["cdcgan_c512_teacher"] == lr["iitgn_teacher"] == lr["iitgn_student_kd"] == 2e-4
    assert zoo.train_config(z["cdcgan_c64_kd"], s).kd == "pixel" and zoo.train_config(z["cdcgan_c64_kd"], s).lr_d == 2e-4
    full = config.settings("mnist", "full")
    assert full.students == {} and zoo.train_config(z["cdcgan_c32_kd"], full).lr_g == 2e-4
    mine = config.settings("mnist", "full", students={"iitgn": {"lr_d": 1e-4}})
    assert zoo.train_config(z["iitgn_student_scratch"], mine).lr_d == 1e-4
    assert zoo.train_config(z["iitgn_teacher"], mine).lr_d == 2e-4
    with pytest.raises(TypeError, match=r"students\['columbia'\] sets \['kd'\]"):
        config.settings("mnist", "quick", students={"columbia": {"kd": "none"}})
    with pytest.raises(TypeError, match="lr_gen"):
        config.settings("mnist", "quick", students={"columbia": {"lr_gen": 1.0}})


def test_speed_settings_reach_every_training_and_never_change_what_it_learns():
    """--fast / --compile / --channels-last: over every model's training config, the TinyGAN student's too; a
    run trained with them resumes (and a finished one is reused) without them, and bad values are refused."""
    import argparse

    from gankd_utils import checkpoint

    speed = {"fast": "on", "channels_last": True, "compile": "on"}
    for dataset in ("mnist", "cifar10"):
        plain, fast = config.settings(dataset, "full"), config.settings(dataset, "full", speed=speed)
        assert plain.speed == {} and fast.for_seed(2).speed == speed and fast.paused_at(5).speed == speed
        for name, e in zoo.zoo(dataset).items():
            a, b = zoo.train_config(e, plain), zoo.train_config(e, fast)
            assert (b.fast, b.channels_last, b.compile) == ("on", True, "on"), name
            assert (a.fast, a.channels_last, a.compile) == ("auto", False, "off"), name  # the full profile's
            assert checkpoint.resume_key(a) == checkpoint.resume_key(b), name
    quick = config.settings("cifar10", "quick", speed={"channels_last": False})  # quick trains CIFAR-10 channels-last
    assert not zoo.train_config(zoo.cifar10_zoo()["tinygan_student"], quick).channels_last
    for bad, match in (({"fast": "yes"}, r"fast='yes': choose fast from \('auto', 'on', 'off'\)"),
                       ({"channels_last": "on"}, "channels_last='on': choose"),
                       ({"channels_last": 1}, "channels_last=1: choose"),
                       ({"epochs": 3}, "'epochs': the speed settings are fast, compile, channels_last")):
        with pytest.raises(ValueError, match=match):
            config.settings("cifar10", "full", speed=bad)
    # the command line: flags -> speed -> flags (what runs._launch gives a train process) -> the same speed
    ap = argparse.ArgumentParser()
    cli.speed_arguments(ap)
    assert config.speed_of(ap.parse_args([])) == {}
    got = config.speed_of(ap.parse_args(["--fast", "on", "--channels-last", "on", "--compile", "on"]))
    assert got == speed and config.speed_of(ap.parse_args(config.speed_flags(got))) == speed
    assert config.speed_of(ap.parse_args(["--channels-last", "off"])) == {"channels_last": False}
