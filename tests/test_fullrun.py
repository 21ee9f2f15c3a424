"""The staged full walk: a stage pauses on its budget and goes on, ships its weights, packs archives of at most
16 MiB parts, and a fresh results folder continues from the unpacked archives."""
from __future__ import annotations

import json
import shutil
import tarfile

import pytest
import torch

from gankd_utils import checkpoint, cli, config, fullrun, paths, runs, train, weights, zoo


@pytest.fixture
def results(tmp_path, monkeypatch):
    root = tmp_path / "results"
    monkeypatch.setenv("GANKD_RESULTS", str(root))
    monkeypatch.delenv("GANKD_WEIGHTS", raising=False)
    monkeypatch.setenv("GANKD_TEACHERS", str(tmp_path / "teachers"))
    return root


def test_unknown_stage_and_missing_teacher_are_refused(results, cifar_root, capsys):
    with pytest.raises(ValueError, match="unknown stage"):
        fullrun.run_stage("nope", "smoke")
    with pytest.raises(FileNotFoundError, match="cifar10-teacher stage"):
        fullrun.run_stage("tinygan", "smoke", notebook=False)
    # the command says what to do, not a traceback
    assert cli.main(["full-run", "--stage", "cifar10-students", "--profile", "smoke"]) == 2
    assert "error: the CIFAR-10 teacher is not finished (nor shipped): run the cifar10-teacher" in capsys.readouterr().err


def test_scratch_students_alone_export_no_teacher_set(results, cifar_root, monkeypatch):
    # `--only` scratch students learn from the real images alone: exporting the teacher's set for them would only
    # cost time (11 min on 2 CPU cores); a KD student among them still gets it
    monkeypatch.setattr(runs, "finished_sidecar", lambda *a, **k: {"finished": True})
    asked = []
    monkeypatch.setattr(runs, "cifar10_teacher_set",
                        lambda *a, **k: asked.append(1) or {"set": "the set", "folder": "its folder"})
    given = {}

    def train_all(entries, s, real, teacher_set=None, teacher_set_dir=None, **kw):
        given[tuple(entries)] = (teacher_set, teacher_set_dir)
        return {}

    monkeypatch.setattr(runs, "train_all", train_all)
    monkeypatch.setattr(fullrun, "_ship", lambda *a, **k: None)  # nothing trained: nothing to ship
    scratch = ["cgan_student_s_scratch", "cgan_student_xs_scratch"]
    fullrun.run_stage("cifar10-students", "smoke", only=scratch, say=lambda m: None)
    assert asked == [] and given == {tuple(scratch): (None, None)}
    fullrun.run_stage("cifar10-students", "smoke", only=["cgan_student_s_scratch", "cgan_student_s_kd"],
                      say=lambda m: None)
    assert asked == [1] and given[("cgan_student_s_scratch", "cgan_student_s_kd")] == ("the set", "its folder")


def test_compare_and_compress_stages_open_no_shipped_file_themselves(results, tmp_path):
    # their notebooks read what they need; a machine that was sent only those files must not fail before them
    run = tmp_path / "run"
    e = zoo.mnist_zoo()["cdcgan_c32_scratch"]
    s = config.settings("mnist", "smoke")
    checkpoint.save_model(run / "G", zoo.build(e, s)[0], finished=True, step=1, config={"seed": 0})
    weights.ship({"mnist/cdcgan_c32_scratch": run}, profile="smoke")
    (weights.weights_root() / "mnist" / "cdcgan_c32_scratch" / "G.safetensors").unlink()
    done = fullrun.run_stage("compare", "smoke", notebook=False, say=lambda m: None)
    assert done["finished"] and done["trained"] == [] and not (results / "03_mnist" / "runs").exists()
    # compress without its notebook fine-tunes the students it finds (none trained in smoke here), no other file
    done = fullrun.run_stage("compress", "smoke", notebook=False, say=lambda m: None)
    assert done["finished"] and done["trained"] == [] and done["finetuned"] == []
    assert not list((results / "03_mnist" / "runs").rglob("*.safetensors"))


def test_split_parts_join_back(tmp_path, monkeypatch):
    monkeypatch.setattr(fullrun, "PART_BYTES", 1000)
    blob = bytes(range(256)) * 10  # 2560 bytes: three parts
    parts = fullrun._write_split(blob, tmp_path / "x.tar.gz")
    assert [p.name for p in parts] == ["x.tar.gz.part00", "x.tar.gz.part01", "x.tar.gz.part02"]
    assert all(p.stat().st_size <= 1000 for p in parts)
    assert b"".join(p.read_bytes() for p in parts) == blob
    assert fullrun._write_split(b"small", tmp_path / "y.tar.gz") == [tmp_path / "y.tar.gz"]


def test_unpack_refuses_paths_outside_the_results_folder(results, tmp_path):
    bad = tmp_path / "packs"
    bad.mkdir()
    evil = tmp_path / "evil.txt"
    evil.write_text("x")
    with tarfile.open(bad / "a.results.tar.gz", "w:gz") as tar:
        tar.add(evil, arcname="../escaped.txt")
    with pytest.raises(ValueError, match="refusing"):
        fullrun.unpack(bad)
    assert not (results.parent / "escaped.txt").exists()


def test_unpack_names_the_archive_of_a_bad_weights_manifest(results, tmp_path):
    # an archive's manifest is checked before it is merged: the error names the archive, the manifest stays as it was
    packs = tmp_path / "packs"
    packs.mkdir()
    rel = weights.weights_root().resolve().relative_to(results.resolve())
    outside = {"format": "gankd-weights/1", "files": {"../x.json": {}}, "models": {}}
    for stem, text in (("a.results.tar.gz", "not json"), ("b.results.tar.gz", json.dumps(outside))):
        src = tmp_path / stem
        src.write_text(text)
        with tarfile.open(packs / stem, "w:gz") as tar:
            tar.add(src, arcname=str(rel / weights.MANIFEST))
        with pytest.raises(ValueError, match=stem.replace(".", r"\.")):
            fullrun.unpack(packs)
        (packs / stem).unlink()
    assert not (weights.weights_root() / weights.MANIFEST).exists()


@pytest.mark.parametrize("budget_s", [1e-9, 0])  # 0 is no time at all (it meant no limit), as for train
def test_mnist_stage_with_its_budget_spent_trains_nothing_and_says_paused(results, mnist_train, budget_s):
    said = []
    res = fullrun.run_stage("mnist", "smoke", budget_s=budget_s, notebook=False, say=said.append)
    assert not res["finished"] and res["trained"] == [] and not weights.available("mnist")
    assert "cdcgan_c512_teacher" in res["paused"] and "paused" in said[0] and "run the same command again" in said[0]


def test_teacher_stage_pauses_resumes_ships_and_a_fresh_folder_continues(results, tmp_path, cifar_root, monkeypatch):
    paused = fullrun.run_stage("cifar10-teacher", "smoke", budget_s=1e-6, notebook=False, say=lambda m: None)
    assert not paused["finished"] and paused["paused"] == ["cgan_teacher"]
    s = config.settings("cifar10", "smoke")
    entry = zoo.cifar10_zoo()["cgan_teacher"]
    folder = runs.run_dir(entry, s)
    assert (folder / "state" / "state.pt").exists() and not checkpoint.is_finished(folder)
    assert not weights.has("cifar10", "cgan_teacher")
    packs = tmp_path / "packs"
    files = fullrun.pack("cifar10-teacher", packs, paused["paused"])
    assert any(".resume." in f.name for f in files) and all(f.stat().st_size <= fullrun.PART_BYTES for f in files)

    done = fullrun.run_stage("cifar10-teacher", "smoke", notebook=False)
    assert done["finished"] and done["trained"] == ["cgan_teacher"]  # resumed, then finished
    assert weights.has("cifar10", "cgan_teacher") and weights.verify("cifar10/cgan_teacher")
    # its snapshots were scored as chapter 04 scores them, and the curve ships with it
    curve = json.loads(weights.quality_file(results / "weights" / "cifar10" / "cgan_teacher").read_text())
    from gankd_utils import data, evaluation
    ev = evaluation.evaluators(s, data.load_cifar10(train=True), "cpu", where="04_cifar10", say=lambda m: None)[0]
    assert curve["protocol"] == ev.protocol_id() and curve["points"][-1]["step"] == done_steps(folder)
    assert len(curve["points"]) == 1 + len(evaluation.kept_snapshots(runs.load_finished(folder, zoo.train_config(
        entry, s))))
    # the best of its generators on that curve is the teacher it ships (chapter 04 takes the same)
    fid = ev.names()["fid"]
    best = min(curve["points"], key=lambda p: (p[fid], -p["step"]))
    assert runs.kept_step(folder) == (None if best["step"] == done_steps(folder) else best["step"])
    shipped = results / "weights" / "cifar10" / "cgan_teacher"
    assert (shipped / "G.safetensors").read_bytes() == (folder / "G.safetensors").read_bytes()
    assert runs.kept_step(shipped) == runs.kept_step(folder)
    files = fullrun.pack("cifar10-teacher", packs)
    with tarfile.open(fileobj=__import__("io").BytesIO(b"".join(
            f.read_bytes() for f in sorted(packs.glob("cifar10-teacher.results.tar.gz*")))), mode="r:gz") as tar:
        names = tar.getnames()
    assert "weights/cifar10/cgan_teacher/G.safetensors" in names and "weights/MANIFEST.json" in names
    assert not any("/runs/" in n for n in names)  # run folders (resume state) are never in a results archive

    # a fresh machine: another results folder, only the archives
    fresh = tmp_path / "fresh"
    monkeypatch.setenv("GANKD_RESULTS", str(fresh))
    assert fullrun.unpack(packs)
    assert weights.has("cifar10", "cgan_teacher")
    g = fresh / "weights" / "cifar10" / "cgan_teacher" / "G.safetensors"
    blob = g.read_bytes()
    g.unlink()  # a machine that received only what its stage reads
    assert fullrun.restore_shipped("cifar10", s, ["tinygan_student"]) == []  # reads no other model's files
    with pytest.raises(weights.ShippedWeightsError, match="missing"):
        fullrun.restore_shipped("cifar10", s)
    g.write_bytes(blob)
    assert fullrun.restore_shipped("cifar10", s) == ["cifar10/cgan_teacher"]
    again = runs.load_finished(runs.run_dir(entry, s), zoo.train_config(entry, s))
    assert again is not None and again.finished
    assert evaluation.saved_curve(again, ev) == curve["points"]  # chapter 04 there still has the teacher's curve
    shipped = json.loads((fresh / "weights" / "MANIFEST.json").read_text())
    assert shipped["profile"] == "smoke" and "cifar10/cgan_teacher" in shipped["models"]


def done_steps(folder) -> int:
    return checkpoint.read_sidecar(folder / "G")["step"]


def test_the_evaluator_classifier_ships_and_every_profile_then_scores_with_it(results, tmp_path):
    from gankd_utils import evaluation, metrics
    from gankd_utils.models import ConvClassifier

    full = config.settings("mnist", "full")
    ev = full.eval
    stem, settings = metrics.classifier_path("mnist", ev.cls_epochs, ev.cls_n_train, 0, ev.cls_width)
    net = ConvClassifier(1, 10, width=4).eval()  # stands in for the trained one (the cache is what is read)
    checkpoint.save_model(stem, net, settings=settings, test_accuracy=0.991, finished=True)
    said = []
    part = fullrun.ship_classifier(full, "cpu")
    assert part == stem.name and weights.parts_of("mnist", "classifier") == [part]
    assert weights.verify("mnist/classifier")  # sha256 listed and checked
    row = weights.summary()[0]  # its one file stands where a generator's G would
    assert row["key"] == "mnist/classifier" and row["MB"] > 0 and len(row["sha256"]) == 12
    assert row["device"].startswith("cpu (") and row["params"] == sum(p.numel() for p in net.parameters())
    quick = config.settings("mnist", "quick")
    clf = evaluation.evaluator_classifier(quick, "cpu", "auto", say=said.append)
    assert clf.test_accuracy == 0.991 and clf.name == "mnistcls" and "the full run's, shipped" in said[0]
    x = torch.rand(3, 1, 28, 28) * 2 - 1
    assert torch.equal(clf.model(x), net(x))
    assert fullrun.ship_classifier(full, "cpu") == part  # shipped already: nothing changes
    # a fresh machine: the cache is empty; the stage puts the shipped classifier there, so a notebook that reads
    # the run folders (WEIGHTS = "train") scores with it instead of training another
    cached = stem.with_suffix(".safetensors").read_bytes()
    for f in (stem.with_suffix(".safetensors"), stem.with_suffix(".json")):
        f.unlink()
    assert not fullrun.restore_classifier(quick) and not stem.with_suffix(".json").exists()  # another profile's
    assert fullrun.restore_classifier(full) and stem.with_suffix(".safetensors").read_bytes() == cached
    assert not fullrun.restore_classifier(full)  # there already
    assert evaluation.evaluator_classifier(full, "cpu", "train").test_accuracy == 0.991
    # "train" never reads the shipped file: the quick profile's own classifier (here: a cached stand-in)
    qstem, qset = metrics.classifier_path("mnist", quick.eval.cls_epochs, quick.eval.cls_n_train, 0,
                                          quick.eval.cls_width)
    checkpoint.save_model(qstem, ConvClassifier(1, 10, width=4), settings=qset, test_accuracy=0.5, finished=True)
    assert evaluation.evaluator_classifier(quick, "cpu", "train", say=said.append).test_accuracy == 0.5
    shipped = weights.weights_root() / "mnist" / "classifier" / f"{part}.safetensors"
    shipped.write_bytes(shipped.read_bytes()[:-1] + b"\0")  # altered: a clear error naming the file
    with pytest.raises(weights.ShippedWeightsError, match=rf"{part}\.safetensors does not match"):
        evaluation.evaluator_classifier(quick, "cpu", "auto")
    assert fullrun.SHIPS["cifar10-students"] == ("cifar10/cgan_student", "cifar10/classifier")


def test_a_training_stage_runs_its_notebook_on_the_run_folders(results, monkeypatch):
    pytest.importorskip("papermill")
    got = {}
    monkeypatch.setattr(fullrun.nbrun, "run_notebook", lambda nb, out, params: got.setdefault(nb.name[:2], params))
    for stage in ("mnist", "cifar10-students", "tinygan", "compare", "compress"):
        fullrun._notebook(stage, "full", 0)
    assert got["03"] == got["04"] == got["05"] == {"PROFILE": "full", "SEED": 0, "WEIGHTS": "train"}
    # these compare and compress what was shipped, and leave out (never train) a model an earlier stage has not
    assert got["06"] == got["07"] == {"PROFILE": "full", "SEED": 0, "TRAIN_MISSING": False}
    got.clear()  # the command's speed settings reach chapter 07's fine-tunes (the only training a notebook of
    fast = {"compile": "on", "channels_last": True}  # these stages does), and no other notebook
    for stage in ("mnist", "compare", "compress"):
        fullrun._notebook(stage, "full", 0, fast)
    assert got["07"]["SPEED"] == fast and "SPEED" not in got["03"] and "SPEED" not in got["06"]


def test_a_resume_archive_holds_each_paused_run_folder_once(results, tmp_path):
    for seed in (0, 1):
        state = results / "03_mnist" / "runs" / f"full-seed{seed}" / "cdcgan_c64_kd" / "state"
        state.mkdir(parents=True)
        (state / "state.pt").write_bytes(b"x" * 10)
    files = fullrun.pack("mnist", tmp_path / "packs", ["cdcgan_c64_kd", "cdcgan_c64_kd@1"])
    resume = [f for f in files if ".resume." in f.name]
    with tarfile.open(resume[0], "r:gz") as tar:
        names = tar.getnames()
    assert sorted(names) == ["03_mnist/runs/full-seed0/cdcgan_c64_kd/state/state.pt",
                             "03_mnist/runs/full-seed1/cdcgan_c64_kd/state/state.pt"]


def test_a_smaller_profile_packs_and_unpacks_into_its_own_folder(results, tmp_path, monkeypatch):
    (paths.chapter_dir("03_mnist", "smoke") / "table.md").write_text("smoke table")
    (paths.chapter_dir("executed", "smoke") / "03_mnist_dcgan_kd.ipynb").write_text("{}")
    (paths.profile_root("smoke") / "REPORT.md").write_text("smoke report")
    (paths.chapter_dir("03_mnist", "full") / "table.md").write_text("full table")  # the committed full run's
    fullrun.pack("mnist", tmp_path / "packs", profile="smoke")
    with tarfile.open(tmp_path / "packs" / "mnist.results.tar.gz", mode="r:gz") as tar:
        names = set(tar.getnames())
    assert names == {"smoke/03_mnist/table.md", "smoke/executed/03_mnist_dcgan_kd.ipynb", "smoke/REPORT.md"}
    fresh = tmp_path / "fresh"
    monkeypatch.setenv("GANKD_RESULTS", str(fresh))
    fullrun.unpack(tmp_path / "packs")
    assert (fresh / "smoke" / "03_mnist" / "table.md").read_text() == "smoke table"
    assert not (fresh / "03_mnist").exists() and not (fresh / "REPORT.md").exists()


def test_student_seeds_trains_only_the_shipped_seed_of_a_student(results, mnist_train, monkeypatch, capsys):
    # a small machine ships a student's first seed without training the seeds that never ship
    monkeypatch.setitem(config.MNIST["smoke"], "student_seeds", 2)
    with pytest.raises(ValueError, match="give it with --only"):
        fullrun.run_stage("mnist", "smoke", student_seeds=1, notebook=False)
    with pytest.raises(ValueError, match="between 1 and the smoke profile's 2"):
        fullrun.run_stage("mnist", "smoke", only=["cdcgan_c32_scratch"], student_seeds=3)
    assert cli.main(["full-run", "--stage", "mnist", "--profile", "smoke", "--only", "cdcgan_c32_scratch",
                         "--student-seeds", "1"]) == 0
    assert "trained now: cdcgan_c32_scratch\n" in capsys.readouterr().out
    assert (results / "03_mnist" / "runs" / "smoke-seed0" / "cdcgan_c32_scratch" / "G.json").exists()
    assert not (results / "03_mnist" / "runs" / "smoke-seed1").exists()
    assert weights.available() == ["mnist/cdcgan_c32_scratch"] and weights.shipped_seed("mnist", "cdcgan_c32_scratch") == 0


def test_only_trains_and_ships_the_named_models(results, mnist_train, capsys):
    # one model of a stage on a small machine: a KD student brings its teacher along, but only the student ships
    with pytest.raises(ValueError, match="stage mnist trains iitgn_teacher"):
        fullrun.run_stage("mnist", "smoke", only=["cgan_teacher"])
    assert fullrun.stage_models("tinygan") == ["tinygan_student"]
    assert cli.main(["full-run", "--stage", "mnist", "--profile", "smoke", "--only", "cdcgan_c32_kd"]) == 0
    out = capsys.readouterr().out
    assert "cdcgan_c32_kd finished and shipped (no notebook" in out
    assert weights.available() == ["mnist/cdcgan_c32_kd"]  # not its teacher, not the evaluator classifier
    s = config.settings("mnist", "smoke")
    teacher = runs.run_dir(zoo.mnist_zoo()["cdcgan_c512_teacher"], s)
    assert runs.finished_sidecar(teacher) is not None  # trained, as the student's teacher
    for made in ("executed", "smoke/executed", "03_mnist/table.csv", "smoke/03_mnist/table.csv"):
        assert not (results / made).exists(), made
    shipped = weights.manifest()["models"]["mnist/cdcgan_c32_kd"]["files"]
    assert "mnist/cdcgan_c32_kd/history.json" in shipped  # its curves travel with it


def test_the_speed_flags_reach_every_training_of_a_stage(results, monkeypatch, capsys):
    # e.g. the CIFAR-10 teacher on a CPU with bf16 instructions: --fast on --channels-last on
    got = []
    monkeypatch.setattr(fullrun.runs, "train_all", lambda entries, settings, real=None, **kw: got.append(settings) or {})
    assert cli.main(["full-run", "--stage", "mnist", "--profile", "smoke", "--fast", "on", "--channels-last", "on",
                         "--no-notebook"]) == 0
    assert got[-1].speed == {"fast": "on", "channels_last": True}
    fullrun.run_stage("mnist", "smoke", notebook=False)
    assert got[-1].speed == {}  # the profile's own
    with pytest.raises(SystemExit):
        cli.main(["full-run", "--stage", "mnist", "--fast", "bf16"])
    assert "invalid choice: 'bf16'" in capsys.readouterr().err


def test_parallel_reaches_the_runs_and_a_bad_count_is_refused(results, mnist_train, monkeypatch, capsys):
    # --parallel 2 on a 2-core CPU: the stage's runs train two at a time, one thread each (runs.train_all)
    got = {}

    def fake_train_all(entries, settings, real=None, **kw):
        got.update(kw)
        return {}
    monkeypatch.setattr(fullrun.runs, "train_all", fake_train_all)
    assert cli.main(["full-run", "--stage", "mnist", "--profile", "smoke", "--parallel", "2", "--no-notebook"]) == 0
    assert got["parallel"] == 2 and "stage mnist: finished" in capsys.readouterr().out
    got.clear()
    fullrun.run_stage("mnist", "smoke", notebook=False)
    assert got["parallel"] is None  # the default: 4 on CUDA, else 1
    with pytest.raises(ValueError, match="parallel=0: give how many runs train at once"):
        fullrun.run_stage("mnist", "smoke", notebook=False, parallel=0)


def test_every_seed_ships_and_a_fresh_machine_trains_none_again(results, mnist_train, monkeypatch, capsys):
    # a student's other seeds ship as model.seedN (G alone); a fresh results folder restores each seed's run
    monkeypatch.setitem(config.MNIST["smoke"], "student_seeds", 2)
    argv = ["--stage", "mnist", "--profile", "smoke", "--only", "cdcgan_c32_scratch"]
    assert cli.main(["full-run", *argv]) == 0
    assert "trained now: cdcgan_c32_scratch, cdcgan_c32_scratch@1\n" in capsys.readouterr().out
    assert weights.available() == ["mnist/cdcgan_c32_scratch", "mnist/cdcgan_c32_scratch.seed1"]
    m = weights.manifest()["models"]
    assert m["mnist/cdcgan_c32_scratch.seed1"]["files"] == ["mnist/cdcgan_c32_scratch.seed1/G.json",
                                                           "mnist/cdcgan_c32_scratch.seed1/G.safetensors"]
    assert "mnist/cdcgan_c32_scratch/history.json" in m["mnist/cdcgan_c32_scratch"]["files"]
    assert [weights.shipped_seed("mnist", n) for n in ("cdcgan_c32_scratch", "cdcgan_c32_scratch.seed1")] == [0, 1]
    assert [weights.name_for_seed("mnist", "cdcgan_c32_scratch", k) for k in (0, 1, 2)] == \
        ["cdcgan_c32_scratch", "cdcgan_c32_scratch.seed1", None]
    with pytest.raises(ValueError, match="a seed is an integer"):
        weights.seed_name("cdcgan_c32_scratch", -1)
    run1 = results / "03_mnist" / "runs" / "smoke-seed1" / "cdcgan_c32_scratch"
    trained1 = checkpoint.load_model(run1 / "G")

    # the full profile takes each seed's own shipped run; a seed that is not shipped trains
    e = zoo.mnist_zoo()["cdcgan_c32_scratch"]
    full = config.settings("mnist", "full")
    assert [runs.weights_choice(e, full.for_seed(k)) for k in (0, 1, 2)] == ["shipped", "shipped", "train"]
    got = runs.load_shipped(e, full.for_seed(1)).G
    assert all(torch.equal(a, b) for a, b in zip(got.state_dict().values(), trained1.state_dict().values()))

    # a fresh machine: the run folders are gone, the shipped weights stay; nothing trains again
    shutil.rmtree(results / "03_mnist" / "runs")
    assert cli.main(["full-run", *argv]) == 0
    assert "trained now: none\n" in capsys.readouterr().out
    assert runs.finished_sidecar(run1) is not None and not (run1 / "history.json").exists()
    restored = checkpoint.load_model(run1 / "G")
    assert all(torch.equal(a, b) for a, b in zip(restored.state_dict().values(), trained1.state_dict().values()))


def test_a_distillation_only_student_trains_with_its_teacher_and_ships_no_critic():
    entries = zoo.mnist_zoo()
    assert list(fullrun._pick(entries, ["cdcgan_c32_distill"])) == ["cdcgan_c512_teacher", "cdcgan_c32_distill"]
    assert fullrun._shipped_parts(entries["cdcgan_c32_distill"]) == ("G",)  # its D never learned anything
    assert fullrun._shipped_parts(entries["cdcgan_c32_kd"]) == ("G", "D")  # chapter 07 continues this critic
    assert fullrun._shipped_parts(entries["cdcgan_c32_scratch"]) == ("G",)
    assert {"cdcgan_c64_distill", "cdcgan_c32_distill"} <= set(fullrun.stage_models("mnist"))


def test_the_curves_a_stage_notebook_scored_ship_after_it(results, mnist_train, monkeypatch):
    # chapter 03 scores each run's snapshots and saves the curve in the run folder; the stage then ships it, so
    # that a later run of the chapter from the shipped weights still shows whether the model had converged
    e = zoo.mnist_zoo()["cdcgan_c32_scratch"]
    monkeypatch.setattr(zoo, "mnist_zoo", lambda: {"cdcgan_c32_scratch": e})
    monkeypatch.setitem(zoo.ZOOS, "mnist", zoo.mnist_zoo)
    monkeypatch.setitem(config.MNIST["smoke"], "student_seeds", 1)
    run = runs.run_dir(e, config.settings("mnist", "smoke"))
    curve = {"protocol": "p", "points": [{"step": 1}, {"step": 8}]}
    monkeypatch.setattr(fullrun, "_notebook", lambda stage, profile, seed, speed=None: (run / "quality.json").write_text(
        json.dumps(curve)))
    assert fullrun.run_stage("mnist", "smoke", say=lambda m: None)["finished"]
    key = "mnist/cdcgan_c32_scratch"
    assert f"{key}/quality.json" in weights.manifest()["models"][key]["files"]
    assert json.loads(weights.quality_file(results / "weights" / key).read_text()) == curve
    # without the notebook nothing was scored, so nothing more ships
    shutil.rmtree(results / "weights")
    (run / "quality.json").unlink()
    fullrun.run_stage("mnist", "smoke", notebook=False, say=lambda m: None)
    assert f"{key}/quality.json" not in weights.manifest()["models"][key]["files"]


def test_compress_without_its_notebook_fine_tunes_and_carries_them(results, tmp_path, monkeypatch, capsys):
    # a GPU lent for minutes, without papermill: the stage runs chapter 07's fine-tunes alone, and carries them
    # (never committed) to the machine whose notebook 07 then loads them
    from gankd_utils import study

    asked = {}

    def collect(profile, seed, device, train_missing, say, weights_, only, speed):
        asked.update(profile=profile, train_missing=train_missing, weights_=weights_, only=only, speed=speed)
        return {"mnist": {"models": {"cdcgan_c32_kd": "G"}}, "cifar10": {"models": {}}}

    def finetunes(name, G, part, out_dir, device, amounts, steps, min_channels):
        tuned.append((name, G, tuple(amounts), steps, min_channels))
        folder = out_dir / "runs" / name / "finetune_50"
        folder.mkdir(parents=True)
        (folder / f"{study.FINETUNED}.safetensors").write_bytes(b"weights")
        (folder / "metrics.jsonl").write_text("{}")  # the rest of the run folder stays behind

    tuned = []
    monkeypatch.setattr(runs, "collect", collect)
    monkeypatch.setattr(study, "finetunes", finetunes)
    assert cli.main(["full-run", "--stage", "compress", "--no-notebook", "--device", "cpu", "--compile", "on",
                     "--pack", str(tmp_path / "packs")]) == 0
    sizes = config.settings("mnist", "full").compress
    assert tuned == [("cdcgan_c32_kd", "G", tuple(sizes.amounts), sizes.finetune_steps, sizes.min_channels)]
    assert asked == {"profile": "full", "train_missing": False, "weights_": "auto",
                     "only": list(fullrun.COMPRESS_STUDENTS), "speed": {"compile": "on"}}
    out = capsys.readouterr().out
    assert "cifar10/cgan_student_s_kd left out" in out and "fine-tuned mnist/cdcgan_c32_kd" in out
    with tarfile.open(tmp_path / "packs" / "compress.finetunes.tar.gz", "r:gz") as tar:
        assert tar.getnames() == ["07_compress/runs/cdcgan_c32_kd/finetune_50/finetuned.safetensors"]
    fresh = tmp_path / "fresh"
    monkeypatch.setenv("GANKD_RESULTS", str(fresh))
    fullrun.unpack(tmp_path / "packs")
    assert (fresh / "07_compress/runs/cdcgan_c32_kd/finetune_50/finetuned.safetensors").read_bytes() == b"weights"


def test_the_stage_fine_tunes_the_students_notebook_07_compresses():
    nb = json.loads((paths.REPO_ROOT / "notebooks" / "07_prune_quantize.ipynb").read_text())
    params = next("".join(c["source"]) for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    line = next(x for x in params.splitlines() if x.startswith("STUDENTS ="))
    assert tuple(json.loads(line.split("=", 1)[1].split("#")[0])) == fullrun.COMPRESS_STUDENTS


def test_resume_archive_carries_the_paused_run_but_not_the_result_a_retrain_set_aside(results, tmp_path):
    run = results / "04_cifar10" / "runs" / "full" / "cgan_student_s_kd"
    for rel in ("state/state.pt", "G.json", "history.json", f"{train.PREVIOUS}/G.safetensors",
                f"{train.PREVIOUS}/G.json", f"{train.PREVIOUS}/history.json"):
        (run / rel).parent.mkdir(parents=True, exist_ok=True)
        (run / rel).write_bytes(b"x")
    files = fullrun.pack("cifar10-students", tmp_path / "packs", ["cgan_student_s_kd"])
    resume = [f for f in files if ".resume." in f.name]
    with tarfile.open(resume[0], mode="r:gz") as tar:
        names = sorted(tar.getnames())
    base = "04_cifar10/runs/full/cgan_student_s_kd"
    assert names == [f"{base}/G.json", f"{base}/history.json", f"{base}/state/state.pt"]
    assert (run / train.PREVIOUS / "G.safetensors").exists()  # packing leaves the folder as it was
