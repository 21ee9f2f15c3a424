"""Run folders, train-or-load, teacher exports, collect (gankd_utils.runs), on tiny models."""
import dataclasses
import json
import time

import numpy as np
import pytest
import torch

from gankd_utils import checkpoint, config, data, runs, shards, weights, zoo
from gankd_utils.models import CondDCGANDiscriminator, CondDCGANGenerator, ProjectionDiscriminator, ResNetGenerator
from gankd_utils.zoo import Entry


def tiny_set(n=32, seed=0) -> data.ImageSet:
    g = torch.Generator().manual_seed(seed)
    return data.ImageSet(torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=g),
                         torch.arange(n) % 10, data.MNIST_CLASSES, "tiny")


def settings(seed=0, **train):
    """MNIST smoke settings shrunk to two steps of 16 images on ``tiny_set``."""
    return config.settings("mnist", "smoke", seed, train={"n_train": None, "batch_size": 16, "ckpt_every": 2,
                                                          "n_fixed": 10, **train})


TEACHER = Entry("tiny_teacher", "mnist", "tiny", "teacher", lambda s: CondDCGANGenerator(40),
                lambda s: CondDCGANDiscriminator(4))
SCRATCH = Entry("tiny_scratch", "mnist", "tiny", "scratch", lambda s: CondDCGANGenerator(32),
                lambda s: CondDCGANDiscriminator(4))
KD = Entry("tiny_kd", "mnist", "tiny", "kd", lambda s: CondDCGANGenerator(32), lambda s: CondDCGANDiscriminator(4),
           config.COLUMBIA, teacher="tiny_teacher")
BLACKBOX = Entry("tiny_bb", "cifar10", "c", "kd", lambda s: ResNetGenerator(ch=4), lambda s: ProjectionDiscriminator(8),
                 config.TINYGAN, teacher="t", init="xavier")


def _weights(G):
    return {k: v.clone() for k, v in G.state_dict().items()}


def _equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_train_then_load(tmp_path, monkeypatch):
    first = runs.train_or_load(SCRATCH, settings(), tiny_set(), device="cpu", progress=False, folder=tmp_path / "r")
    assert isinstance(first, runs.Trained) and not first.loaded and first.finished and first.steps == 2
    assert first.name == "tiny_scratch" and first.run_dir == tmp_path / "r" and first.seconds > 0
    assert first.config == zoo.train_config(SCRATCH, settings()) and len(first.history["d_loss"]) == 2
    assert not first.G.training
    again = runs.train_or_load(SCRATCH, settings(), tiny_set(), device="cpu", progress=False, folder=tmp_path / "r")
    assert again.loaded and again.finished and again.steps == 2 and again.name == "tiny_scratch"
    assert _equal(_weights(first.G), _weights(again.G))  # the same generator, not a new training
    assert again.history == json.loads((tmp_path / "r" / "history.json").read_text())
    row = again.summary()
    assert row == {"model": "tiny_scratch", "loaded": True, "steps": 2, "finished": True, "seconds": 0.0,
                   "run_dir": str(tmp_path / "r")}
    monkeypatch.setenv("GANKD_RESULTS", str(tmp_path))  # inside the results root: named relative to it
    assert again.summary()["run_dir"] == "r"
    # bookkeeping settings (when to log, save, pause, how fast) do not make it another training
    same = runs.train_or_load(SCRATCH, settings(log_every=1, ckpt_every=7, fast="off", max_steps=50), tiny_set(),
                              device="cpu", progress=False, folder=tmp_path / "r")
    assert same.loaded and _equal(_weights(first.G), _weights(same.G))


def test_other_settings_are_never_loaded_and_retrain_replaces_them(tmp_path):
    first = runs.train_or_load(SCRATCH, settings(), tiny_set(), device="cpu", progress=False, folder=tmp_path / "r")
    other = settings(lr_g=1e-3)
    assert checkpoint.resume_key(zoo.train_config(SCRATCH, other)) != checkpoint.resume_key(first.config)
    assert runs.load_finished(tmp_path / "r", zoo.train_config(SCRATCH, other)) is None
    with pytest.raises(ValueError, match="other settings.*RETRAIN=True"):  # neither loaded nor resumed silently
        runs.train_or_load(SCRATCH, other, tiny_set(), device="cpu", progress=False, folder=tmp_path / "r")
    new = runs.train_or_load(SCRATCH, other, tiny_set(), device="cpu", progress=False, folder=tmp_path / "r",
                             retrain=True)
    assert not new.loaded and new.finished and new.config.lr_g == 1e-3
    assert not _equal(_weights(first.G), _weights(new.G))
    side = checkpoint.read_sidecar(tmp_path / "r" / "G")
    assert side["config"]["lr_g"] == 1e-3
    back = runs.train_or_load(SCRATCH, other, tiny_set(), device="cpu", progress=False, folder=tmp_path / "r")
    assert back.loaded and _equal(_weights(new.G), _weights(back.G))


def test_a_paused_run_resumes_instead_of_loading(tmp_path):
    paused = runs.train_or_load(SCRATCH, settings(max_steps=1), tiny_set(), device="cpu", progress=False,
                                folder=tmp_path / "r")
    assert not paused.finished and paused.steps == 1
    assert runs.load_finished(tmp_path / "r") is None
    run = runs.load_run(tmp_path / "r")  # a paused run still has a generator
    assert run.loaded and not run.finished and run.steps == 1
    done = runs.train_or_load(SCRATCH, settings(), tiny_set(), device="cpu", progress=False, folder=tmp_path / "r")
    assert not done.loaded and done.finished and done.steps == 2
    assert runs.load_run(tmp_path / "r").finished
    with pytest.raises(FileNotFoundError, match="holds no generator checkpoint"):
        runs.load_run(tmp_path / "empty")


def test_online_kd_needs_its_teacher_and_a_gan_needs_real_images(tmp_path):
    s = settings()
    with pytest.raises(ValueError, match="train or load it first"):
        runs.train_or_load(KD, s, tiny_set(), device="cpu", progress=False, folder=tmp_path / "kd")
    with pytest.raises(ValueError, match="pass real"):
        runs.train_or_load(SCRATCH, s, None, device="cpu", progress=False, folder=tmp_path / "s")
    with pytest.raises(ValueError, match="pass teacher_set"):
        runs.train_or_load(BLACKBOX, config.settings("cifar10", "smoke"), None, device="cpu", progress=False,
                           folder=tmp_path / "b")
    t = runs.train_or_load(TEACHER, s, tiny_set(), device="cpu", progress=False, folder=tmp_path / "t")
    kd = runs.train_or_load(KD, s, tiny_set(), {"tiny_teacher": t.G}, device="cpu", progress=False,
                            folder=tmp_path / "kd")
    assert kd.finished and "kd_pixel" in kd.history


def test_run_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("GANKD_RESULTS", str(tmp_path))
    s = config.settings("mnist", "quick", seed=3)
    assert runs.run_root("03_mnist", "quick", 3) == tmp_path / "03_mnist" / "runs" / "quick-seed3"
    e = zoo.mnist_zoo()["cdcgan_c32_kd"]
    assert runs.run_dir(e, s) == tmp_path / "03_mnist" / "runs" / "quick-seed3" / "cdcgan_c32_kd"
    tg = zoo.cifar10_zoo()["tinygan_student"]
    assert runs.run_dir(tg, dataclasses.replace(s, seed=0, profile="full")) == \
        tmp_path / "05_tinygan" / "runs" / "full-seed0" / "tinygan_student"


def test_default_folder_is_the_entry_run_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("GANKD_RESULTS", str(tmp_path))
    t = runs.train_or_load(SCRATCH, settings(), tiny_set(), device="cpu", progress=False)
    assert t.run_dir == tmp_path / "03_mnist" / "runs" / "smoke-seed0" / "tiny_scratch"
    assert checkpoint.is_finished(t.run_dir)


def test_export_teacher_names_the_set_by_profile_seed_and_hash(tmp_path, monkeypatch):
    monkeypatch.setenv("GANKD_TEACHERS", str(tmp_path / "teachers"))
    torch.manual_seed(0)
    ckpt = checkpoint.save_model(tmp_path / "G", ResNetGenerator(ch=4), config={"dataset": "cifar10"})
    s = config.settings("cifar10", "smoke", seed=2)  # 8 per class, shards of 40
    res = runs.export_teacher(ckpt, s, device="cpu", progress=False)
    folder = res["folder"]
    assert folder.parent == tmp_path / "teachers" and folder.name.startswith("cifar10_cgan_teacher_smoke_s2_")
    m = shards.check_complete(folder)
    assert (m["count"], m["n_shards"], m["seed"], m["classes"]) == (80, 2, 2, list(range(10)))
    assert m["class_names"][0] == "airplane"  # the names of the dataset the teacher was trained on
    again = runs.export_teacher(ckpt, s, device="cpu", progress=False)
    assert again["folder"] == folder and again["written"] == [] and again["kept"] == [0, 1]


def test_a_smaller_data_root_gets_a_teacher_set_of_its_own_size(tmp_path, monkeypatch):
    """KD students' epochs run over the teacher set, scratch students' over the real images: on a data root
    holding part of CIFAR-10 the teacher set shrinks to it, so both train as many steps."""
    monkeypatch.setenv("GANKD_TEACHERS", str(tmp_path / "teachers"))
    (tmp_path / "data" / "cifar10").mkdir(parents=True)
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 3)  # 3 images per class, fewer than smoke's 8
    np.savez(tmp_path / "data" / "cifar10" / "train_00.npz", labels=labels,
             images=rng.integers(0, 256, (30, 32, 32, 3), dtype=np.uint8))
    monkeypatch.setenv("GANKD_DATA_ROOT", str(tmp_path / "data"))
    s = config.settings("cifar10", "smoke", seed=2)
    assert runs.teacher_set_per_class(s) == 3
    assert runs.teacher_set_per_class(s, root=tmp_path / "none") == s.export.per_class == 8  # the whole set
    assert runs.teacher_set_per_class(config.settings("mnist", "smoke")) == 4  # MNIST's set is the profile's
    torch.manual_seed(0)
    ckpt = checkpoint.save_model(tmp_path / "G", ResNetGenerator(ch=4), config={"dataset": "cifar10"})
    res = runs.export_teacher(ckpt, s, device="cpu", progress=False)
    assert res["folder"].name.endswith("_n3")  # never mixed with an export of the whole size
    assert shards.check_complete(res["folder"])["count"] == 30


def test_collect_loads_what_is_finished_and_leaves_out_the_rest(tmp_path, monkeypatch):
    monkeypatch.setenv("GANKD_RESULTS", str(tmp_path))
    s = config.settings("mnist", "smoke")
    e = zoo.mnist_zoo()["cdcgan_c32_kd"]
    G, _ = zoo.build(e, s)
    checkpoint.save_model(runs.run_dir(e, s) / "G", G, finished=True, step=5, config=zoo.train_config(e, s))
    said = []
    got = runs.collect("smoke", 0, device="cpu", train_missing=False, say=said.append)
    assert set(got) == {"mnist", "cifar10"}
    mnist = got["mnist"]
    assert list(mnist["models"]) == ["cdcgan_c32_kd"] and mnist["sources"]["cdcgan_c32_kd"].startswith("loaded from")
    assert torch.equal(mnist["models"]["cdcgan_c32_kd"].out.weight, G.out.weight)
    assert mnist["entries"].keys() == zoo.mnist_zoo().keys() and mnist["settings"] == s
    assert mnist["run_dirs"]["cdcgan_c32_kd"] == runs.run_dir(e, s)
    assert got["cifar10"]["models"] == {} and all("left out" in m for m in said)
    assert len(said) == len(zoo.mnist_zoo()) + len(zoo.cifar10_zoo()) - 1  # every model but the finished one
    assert got["cifar10"]["left_out"] == list(zoo.cifar10_zoo()) and "cdcgan_c32_kd" not in mnist["left_out"]
    # speed settings (how a training computes: chapter 07's fine-tunes) reach every dataset's settings, and the
    # finished run is still the one loaded: they never change what a run learns
    fast = runs.collect("smoke", 0, device="cpu", train_missing=False, say=lambda m: None,
                        speed={"channels_last": True, "compile": "on"})
    assert all(p["settings"].speed == {"channels_last": True, "compile": "on"} for p in fast.values())
    assert list(fast["mnist"]["models"]) == ["cdcgan_c32_kd"]
    assert zoo.train_config(e, fast["mnist"]["settings"]).channels_last is True


def test_seed_keys():
    assert runs.seed_key("m", 0, 0) == "m" and runs.seed_key("m", 2, 0) == "m@2"
    assert runs.base_name("m@2") == "m" == runs.base_name("m")


def test_train_all_trains_students_with_every_seed_teachers_once(tmp_path, monkeypatch):
    monkeypatch.setenv("GANKD_RESULTS", str(tmp_path))
    s = config.settings("mnist", "smoke", 0, student_seeds=2,
                        train={"n_train": None, "batch_size": 16, "ckpt_every": 2, "n_fixed": 10})
    entries = {"tiny_teacher": TEACHER, "tiny_scratch": SCRATCH, "tiny_kd": KD}
    got = runs.train_all(entries, s, tiny_set(), device="cpu", progress=False, parallel=1)
    assert list(got) == ["tiny_teacher", "tiny_scratch", "tiny_scratch@1", "tiny_kd", "tiny_kd@1"]
    assert all(t.finished and not t.loaded for t in got.values())
    assert got["tiny_scratch@1"].config.seed == 1 and got["tiny_scratch"].config.seed == 0
    assert got["tiny_scratch@1"].run_dir == tmp_path / "03_mnist" / "runs" / "smoke-seed1" / "tiny_scratch"
    assert not _equal(_weights(got["tiny_scratch"].G), _weights(got["tiny_scratch@1"].G))
    again = runs.train_all(entries, s, tiny_set(), device="cpu", progress=False, parallel=1)
    assert all(t.loaded for t in again.values())


def test_parallel_runs_train_in_their_own_processes_as_they_would_here(tmp_path, mnist_train, monkeypatch):
    # what the GPU walk does (parallel > 1): every run in a `train` process of its own, the KD students of
    # every seed learning from the one teacher of the first seed; the result is the in-process one, bit for bit
    monkeypatch.setitem(config.MNIST["smoke"], "student_seeds", 2)
    # the processes' CPU threads as here: another thread count sums in another order (not bit for bit)
    monkeypatch.setenv("OMP_NUM_THREADS", str(torch.get_num_threads()))
    s = config.settings("mnist", "smoke", 0)
    names = ("iitgn_teacher", "iitgn_student_scratch", "iitgn_student_kd")
    entries = {n: zoo.mnist_zoo()[n] for n in names}
    got = {}
    for parallel in (2, 1):
        monkeypatch.setenv("GANKD_RESULTS", str(tmp_path / f"p{parallel}"))
        with monkeypatch.context() as m:
            if parallel > 1:  # every run trains in a process of its own, none here
                m.setattr(runs, "fit", lambda *a, **k: pytest.fail("a parallel run trained in the calling process"))
            got[parallel] = runs.train_all(entries, s, mnist_train, device="cpu", progress=False, parallel=parallel)
    assert list(got[2]) == ["iitgn_teacher", "iitgn_student_scratch", "iitgn_student_scratch@1", "iitgn_student_kd",
                            "iitgn_student_kd@1"]
    assert all(t.finished and not t.loaded for p in (1, 2) for t in got[p].values())  # trained by this call
    seed1 = tmp_path / "p2" / "03_mnist" / "runs" / "smoke-seed1"
    assert sorted(p.name for p in seed1.iterdir()) == ["iitgn_student_kd", "iitgn_student_scratch"]
    for key in got[1]:
        assert _equal(_weights(got[1][key].G), _weights(got[2][key].G)), key
    assert not _equal(_weights(got[2]["iitgn_student_kd"].G), _weights(got[2]["iitgn_student_kd@1"].G))


def test_train_all_leaves_every_run_as_it_is_when_the_deadline_has_come(tmp_path, monkeypatch):
    monkeypatch.setenv("GANKD_RESULTS", str(tmp_path))
    s = settings()
    paused = runs.train_or_load(TEACHER, settings(max_steps=1), tiny_set(), device="cpu", progress=False)
    assert paused.steps == 1 and not paused.finished
    got = runs.train_all({"tiny_teacher": TEACHER, "tiny_kd": KD}, s, tiny_set(), device="cpu", progress=False,
                         parallel=1, deadline=time.monotonic())
    assert got["tiny_teacher"].steps == 1 and not got["tiny_teacher"].finished  # its checkpoint, not trained on
    assert _equal(_weights(got["tiny_teacher"].G), _weights(paused.G))
    assert got["tiny_kd"].steps == 0 and not got["tiny_kd"].finished and not runs.run_dir(KD, s).exists()
    done = runs.train_all({"tiny_teacher": TEACHER, "tiny_kd": KD}, s, tiny_set(), device="cpu", progress=False,
                          parallel=1, deadline=time.monotonic() + 600)
    assert all(t.finished for t in done.values())


def _ship_tiny(tmp_path, monkeypatch, entry, s):
    """Train ``entry`` a little, ship it, and drop its run folder: only the shipped files remain."""
    monkeypatch.setenv("GANKD_WEIGHTS", str(tmp_path / "weights"))
    t = runs.train_or_load(entry, s, tiny_set(), device="cpu", progress=False, folder=tmp_path / "run")
    weights.ship({f"{entry.dataset}/{entry.name}": t.run_dir}, profile=s.profile)
    return t


def test_weights_choice_full_takes_everything_smaller_profiles_only_teachers(tmp_path, monkeypatch):
    monkeypatch.setenv("GANKD_WEIGHTS", str(tmp_path / "weights"))
    smoke, full = settings(), config.settings("mnist", "full")
    assert runs.weights_choice(TEACHER, smoke, "auto") == "train"  # nothing shipped
    with pytest.raises(weights.ShippedWeightsError):
        runs.weights_choice(TEACHER, smoke, "shipped")
    assert runs.weights_choice(SCRATCH, smoke, "shipped") == "train"  # quick / smoke students always train
    assert runs.weights_choice(SCRATCH, full, "train") == "train"
    assert "trains its own teachers" in runs.weights_note({"tiny_teacher": TEACHER}, smoke)
    _ship_tiny(tmp_path, monkeypatch, TEACHER, smoke)
    assert runs.weights_choice(TEACHER, smoke, "auto") == "shipped"
    assert "Shipped weights" in runs.weights_note({"tiny_teacher": TEACHER}, smoke)


def test_in_the_full_profile_a_shipped_model_stands_for_its_own_seed_only(tmp_path, monkeypatch):
    _ship_tiny(tmp_path, monkeypatch, SCRATCH, settings())  # trained with seed 0
    assert weights.shipped_seed("mnist", "tiny_scratch") == 0 and weights.shipped_seed("mnist", "nope") is None
    full = config.settings("mnist", "full")
    assert runs.weights_choice(SCRATCH, full, "auto") == runs.weights_choice(SCRATCH, full, "shipped") == "shipped"
    for choice in ("auto", "shipped"):  # seed 1 of the same student is another training
        assert runs.weights_choice(SCRATCH, full.for_seed(1), choice) == "train"
    _ship_tiny(tmp_path, monkeypatch, TEACHER, settings())
    assert runs.weights_choice(TEACHER, settings().for_seed(3), "auto") == "shipped"  # smaller profiles: the teacher


def test_shipped_teacher_is_loaded_not_trained_and_never_overwritten(tmp_path, monkeypatch):
    monkeypatch.setenv("GANKD_RESULTS", str(tmp_path / "results"))
    s = settings()
    trained = _ship_tiny(tmp_path, monkeypatch, TEACHER, s)
    shipped_file = tmp_path / "weights" / "mnist" / "tiny_teacher" / "G.safetensors"
    before = shipped_file.read_bytes()
    t = runs.train_or_load(TEACHER, s, tiny_set(), device="cpu", progress=False, weights_="auto")
    assert t.loaded and t.finished and t.run_dir == shipped_file.parent
    assert _equal(_weights(trained.G), _weights(t.G))
    # the KD student learns from the shipped teacher and trains in its own run folder
    got = runs.train_all({"tiny_teacher": TEACHER, "tiny_kd": KD}, s, tiny_set(), device="cpu", progress=False,
                         parallel=1, weights_="auto")
    assert got["tiny_teacher"].loaded and not got["tiny_kd"].loaded
    assert got["tiny_kd"].run_dir == runs.run_dir(KD, s) and shipped_file.read_bytes() == before
    shipped_file.write_bytes(before[:-1] + bytes([before[-1] ^ 1]))  # an altered file is refused, by name
    with pytest.raises(weights.ShippedWeightsError, match="tiny_teacher/G.safetensors"):
        runs.train_or_load(TEACHER, s, tiny_set(), device="cpu", progress=False, weights_="auto")


def test_collect_prefers_the_shipped_models(tmp_path, monkeypatch):
    monkeypatch.setenv("GANKD_RESULTS", str(tmp_path / "results"))
    s = config.settings("mnist", "smoke")
    e = zoo.mnist_zoo()["cdcgan_c32_kd"]
    G, _ = zoo.build(e, s)
    folder = tmp_path / "run"
    checkpoint.save_model(folder / "G", G, finished=True, step=5, config=zoo.train_config(e, s))
    checkpoint.save_model(folder / "D", zoo.build(e, s)[1], finished=True, step=5, config=zoo.train_config(e, s))
    monkeypatch.setenv("GANKD_WEIGHTS", str(tmp_path / "weights"))
    weights.ship({"mnist/cdcgan_c32_kd": folder}, parts=("G", "D"), profile="smoke")
    got = runs.collect("smoke", 0, device="cpu", train_missing=False, say=lambda m: None, weights_="auto")["mnist"]
    assert list(got["models"]) == ["cdcgan_c32_kd"] and got["sources"]["cdcgan_c32_kd"].startswith("shipped")
    assert (got["run_dirs"]["cdcgan_c32_kd"] / "D.safetensors").exists()  # chapter 07's fine-tune finds its D
    with pytest.raises(weights.ShippedWeightsError, match="not shipped"):
        runs.collect("smoke", 0, device="cpu", train_missing=False, say=lambda m: None, weights_="shipped")
    # chapter 07 asks for its students only: they and their families' teachers, so other shipped files may be
    # absent (a GPU machine that received only what the stage reads)
    (tmp_path / "weights" / "mnist" / "cdcgan_c32_kd" / "D.safetensors").unlink()  # a file nobody asks for now
    said = []
    got = runs.collect("smoke", 0, device="cpu", train_missing=False, say=said.append, weights_="auto",
                       only=["mnist/cdcgan_c64_scratch"])
    assert got["mnist"]["models"] == {} and got["cifar10"]["models"] == {}
    assert said == ["cdcgan_c64_scratch: no finished checkpoint in "  # a scratch student: no teacher
                    "03_mnist/runs/smoke-seed0/cdcgan_c64_scratch; left out"]  # named relative to the results root
    assert got["mnist"]["left_out"] == ["cdcgan_c64_scratch"]
    said.clear()
    runs.collect("smoke", 0, device="cpu", train_missing=False, say=said.append, weights_="train",
                 only=["mnist/cdcgan_c32_kd"])
    assert [m.split(":")[0] for m in said] == ["cdcgan_c512_teacher", "cdcgan_c32_kd"]  # the student and its teacher


def test_planned_steps():
    s = settings()
    assert runs.planned_steps(SCRATCH, s, 32) == 2  # 1 epoch of 32 images at batch 16
    assert runs.planned_steps(SCRATCH, s.paused_at(1), 32) == 1


def _launches_recorded(monkeypatch) -> list[list[str]]:
    """The command lines runs.train_all starts its processes with, recorded instead of run (each "finishes" at
    once, untrained, and the caller loads nothing)."""
    from types import SimpleNamespace

    cmds: list[list[str]] = []

    class Launched:
        def __init__(self, cmd, env):
            cmds.append(cmd)

        def poll(self):
            return 0

        def wait(self):
            return 0
    monkeypatch.setattr(runs.subprocess, "Popen", Launched)
    monkeypatch.setattr(runs, "train_or_load", lambda *a, **k: SimpleNamespace(finished=False, loaded=True, G=None))
    return cmds


def test_parallel_runs_are_given_the_speed_settings(tmp_path, monkeypatch):
    # runs trained side by side rebuild their settings from a command line: --fast / --channels-last go along
    # (else a CPU walk with fast="on" would train its parallel runs in fp32)
    from gankd_utils import cli

    monkeypatch.setenv("GANKD_RESULTS", str(tmp_path))
    s = config.settings("mnist", "smoke", 0, speed={"fast": "on", "channels_last": True})
    cmds = _launches_recorded(monkeypatch)
    names = ("cdcgan_c64_scratch", "cdcgan_c32_scratch")
    runs.train_all({n: zoo.mnist_zoo()[n] for n in names}, s, device="cpu", progress=False, parallel=2)
    assert sorted(c[c.index("--model") + 1] for c in cmds) == sorted(names)  # in processes, not here
    for cmd in cmds:
        args = cli.build_parser().parse_args(cmd[cmd.index("train"):])
        assert config.speed_of(args) == s.speed


def test_runs_side_by_side_pause_at_the_callers_deadline_on_the_clock(tmp_path, monkeypatch):
    # a length of time given to a child began when the child parsed it: its start-up (imports, data, CUDA, the
    # teacher set) came on top, past the stage's budget. A time on the clock includes it
    import time
    from types import SimpleNamespace

    from gankd_utils import cli

    monkeypatch.setenv("GANKD_RESULTS", str(tmp_path))
    s = config.settings("mnist", "smoke", 0)
    cmds = _launches_recorded(monkeypatch)
    deadline = time.monotonic() + 100.0
    runs.train_all({"cdcgan_c32_scratch": zoo.mnist_zoo()["cdcgan_c32_scratch"]}, s, device="cpu", progress=False,
                   parallel=2, deadline=deadline)
    args = cli.build_parser().parse_args(cmds[0][cmds[0].index("train"):])
    assert args.budget_s is None
    assert args.deadline_at == pytest.approx(time.time() + (deadline - time.monotonic()), abs=2.0)
    # the train command pauses at the earlier of the two
    seen = {}
    monkeypatch.setattr(runs, "train_or_load", lambda *a, deadline=None, **k: seen.update(d=deadline) or
                        SimpleNamespace(finished=False, loaded=False, G=None, steps=0, run_dir=tmp_path))
    train = ["train", "--dataset", "mnist", "--model", "cdcgan_c32_scratch", "--profile", "smoke", "--quiet"]
    for extra, left in ((["--deadline-at", f"{time.time() + 50:.3f}"], 50), (["--budget-s", "20"], 20),
                        (["--budget-s", "80", "--deadline-at", f"{time.time() + 30:.3f}"], 30)):
        cli.main(train + extra)
        assert seen["d"] - time.monotonic() == pytest.approx(left, abs=2.0)


@pytest.mark.filterwarnings("ignore:fast='on' on the CPU")
def test_a_paused_fast_run_is_scored_as_the_model_it_saved(tmp_path, monkeypatch):
    """The average's BatchNorm statistics are re-estimated in the precision the run trained in (bf16 autocast with
    fast='on' on the CPU), whatever fast the scoring settings ask for (bookkeeping, not the training's key)."""
    monkeypatch.setenv("GANKD_RESULTS", str(tmp_path))
    trained = settings(ema_decay=0.5, fast="on", max_steps=1)
    paused = runs.train_or_load(SCRATCH, trained, tiny_set(), device="cpu", progress=False)
    assert not paused.finished and paused.steps == 1
    saved = checkpoint.load_model(runs.run_dir(SCRATCH, trained) / "G")  # the model the run saved at its pause
    looked = runs.load_paused(SCRATCH, settings(ema_decay=0.5, max_steps=1), "cpu")
    assert looked.steps == 1 and not looked.finished and not looked.G.training
    assert _equal(_weights(saved), _weights(looked.G))  # running means and variances included
    # in fp32 the statistics differ: the precision is what makes them equal
    fp32 = runs.standing_model(checkpoint.load_model(runs.run_dir(SCRATCH, trained) / "state" / "G_ema"),
                               zoo.train_config(SCRATCH, trained))
    stats = [k for k in fp32.state_dict() if k.endswith("running_mean")]
    assert stats and not all(torch.equal(fp32.state_dict()[k], looked.G.state_dict()[k]) for k in stats)


class Stopped(Exception):
    pass


def test_sigterm_to_a_parent_stops_its_runs_side_by_side_first_then_takes_effect():
    """kill / a scheduler's stop reaching only the process that started runs side by side: they get SIGTERM (and
    save, train.StopRequest) and are waited for; then the signal takes effect with the process's own handler."""
    import signal
    import subprocess
    import sys

    def stop(signum, frame):
        raise Stopped(signal.Signals(signum).name)

    previous = signal.signal(signal.SIGTERM, stop)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with pytest.raises(Stopped, match="SIGTERM"):
            with runs._sigterm_raises(), runs._stopping([child]):
                signal.raise_signal(signal.SIGTERM)
                time.sleep(30)  # not reached: the signal raised inside
        assert child.returncode == -signal.SIGTERM  # stopped, and waited for
        assert signal.getsignal(signal.SIGTERM) is stop
    finally:
        signal.signal(signal.SIGTERM, previous)
        child.kill()
        child.wait()
