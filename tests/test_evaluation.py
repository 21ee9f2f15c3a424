"""Scoring models with one pipeline (gankd_utils.evaluation), on tiny generators and a tiny evaluator."""
import json
import math
import os
import shutil

import pytest
import torch

from gankd_utils import checkpoint, config, data, evaluation, metrics, runlog, runs, train, viz
from gankd_utils.models import CondDCGANDiscriminator, CondDCGANGenerator, ConvClassifier, IITGNGenerator
from gankd_utils.models.layers import dcgan_init
from gankd_utils.zoo import Entry


def tiny_set(n=64, seed=0) -> data.ImageSet:
    g = torch.Generator().manual_seed(seed)
    return data.ImageSet(torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=g),
                         torch.arange(n) % 10, data.MNIST_CLASSES, "tiny")


def tiny_evaluator(n=32) -> metrics.Evaluator:
    torch.manual_seed(0)
    clf = ConvClassifier(in_channels=1, n_classes=10, width=4, feature_dim=16)
    ex = metrics.ClassifierExtractor(clf, "tinycls", 0.5, "tiny0")
    return metrics.Evaluator(ex, tiny_set(), n, seed=0, batch_size=n)


def _entry(name, family, role, teacher=None):
    return Entry(name, "mnist", family, role, lambda s: None, lambda s: None, teacher=teacher)


ENTRIES = {"t": _entry("t", "cdc", "teacher"), "s_kd": _entry("s_kd", "cdc", "kd", "t"),
           "u": _entry("u", "iitgn", "scratch")}


@pytest.fixture
def models():
    return {"t": dcgan_init(CondDCGANGenerator(64), 0).eval(), "s_kd": dcgan_init(CondDCGANGenerator(32), 1).eval(),
            "u": dcgan_init(IITGNGenerator("student"), 2).eval()}


def test_evaluate_models_gives_one_row_per_model(models, capsys):
    ev = tiny_evaluator()
    threads = torch.get_num_threads()
    rows = evaluation.evaluate_models(models, ENTRIES, [ev], speed_batch=4, rounds=2, threads=1, progress=False)
    assert torch.get_num_threads() == threads  # the thread count is restored after timing
    assert [r["model"] for r in rows] == ["t", "s_kd", "u"]
    by = {r["model"]: r for r in rows}
    names = ev.names()
    assert names["fid"] == "fid32_tinycls"
    for r in rows:
        for k in (names["fid"], names["kid"], names["precision"], names["recall"], "cpu_latency_ms_b1",
                  "cpu_img_per_s", "params", "mb_fp32", "macs_m"):
            assert isinstance(r[k], float | int) and math.isfinite(r[k]) and (r[k] >= 0), (r["model"], k)
        assert r["cpu_latency_ms_b1"] > 0 and r["cpu_img_per_s"] > 0 and r["cpu_latency_spread_pct"] >= 0
        assert r["gpu_img_per_s"] is None  # every model sits on the CPU
        assert r["mb_int8"] < r["mb_fp16"] < r["mb_fp32"] and r["params"] == metrics.count_params(models[r["model"]])
    assert 0 <= by["t"][names["acc"]] <= 1 and 0 <= by["s_kd"][names["acc"]] <= 1
    assert by["u"][names["acc"]] is None  # unconditional: no class accuracy
    assert by["s_kd"]["compression_x"] == pytest.approx(by["t"]["params"] / by["s_kd"]["params"])
    assert by["t"]["compression_x"] == 1.0 and by["u"]["compression_x"] is None  # no teacher in its family
    assert (by["s_kd"]["family"], by["s_kd"]["role"]) == ("cdc", "kd")
    # the same pipeline gives the same numbers again (same samples, same reference), scored anew ...
    fresh = tiny_evaluator()
    fresh.cache_scores = False
    again = evaluation.evaluate_models({"s_kd": models["s_kd"]}, ENTRIES, [fresh], speed_batch=4, rounds=1,
                                       progress=False)
    assert again[0][names["fid"]] == pytest.approx(by["s_kd"][names["fid"]])
    # ... or read from the scores kept the first time, which the table's maker is told
    kept = evaluation.evaluate_models({"s_kd": models["s_kd"]}, ENTRIES, [tiny_evaluator()], speed_batch=4,
                                      rounds=1, progress=True)
    assert kept[0][names["fid"]] == by["s_kd"][names["fid"]]
    assert "1 of 1 scorings read from" in capsys.readouterr().out
    assert all(next(G.parameters()).device.type == "cpu" and not G.training for G in models.values())


def test_metric_columns():
    ev = tiny_evaluator(16)
    assert evaluation.metric_columns([ev]) == ["fid16_tinycls", "kid16_tinycls", "precision16_tinycls",
                                               "recall16_tinycls", "acc16_tinycls"]

    class FakeInception:
        name = "inception"

    inc = metrics.Evaluator(FakeInception(), tiny_set(), 1000, reference="mnisttrain")
    assert evaluation.metric_columns([inc]) == ["fid1k_inception_mnisttrain", "kid1k_inception_mnisttrain",
                                                "precision1k_inception_mnisttrain", "recall1k_inception_mnisttrain",
                                                "is1k_inception"]


def test_kd_gap_closed():
    rows = [{"model": "t", "family": "f", "role": "teacher", "fid": 10.0},
            {"model": "a_scratch", "family": "f", "role": "scratch", "fid": 30.0},
            {"model": "a_kd", "family": "f", "role": "kd", "fid": 15.0, "compression_x": 12.0},
            {"model": "b_kd", "family": "f", "role": "kd", "fid": 15.0},  # no scratch twin: left out
            {"model": "c_scratch", "family": "f", "role": "scratch", "fid": 10.0},
            {"model": "c_kd", "family": "f", "role": "kd", "fid": 12.0},  # twin as good as the teacher: no gap
            {"model": "a_distill", "family": "f", "role": "kd", "fid": 35.0}]  # the same twin as a_kd; worse
    a, c, d = evaluation.kd_gap_closed(rows, "fid")
    assert a == {"student": "a_kd", "compression_x": 12.0, "teacher": 10.0, "scratch": 30.0, "kd": 15.0,
                 "gap_closed": pytest.approx(0.75)}
    assert c["student"] == "c_kd" and c["gap_closed"] is None and c["note"] == "teacher no better than scratch"
    assert d["student"] == "a_distill" and d["scratch"] == 30.0 and d["gap_closed"] == pytest.approx(-0.25)
    assert "note" not in a and "note" not in d


def _gap(teacher, scratch, kd, lower_is_better=True):
    rows = [{"model": "t", "family": "f", "role": "teacher", "fid": teacher},
            {"model": "a_scratch", "family": "f", "role": "scratch", "fid": scratch},
            {"model": "a_kd", "family": "f", "role": "kd", "fid": kd}]
    return evaluation.kd_gap_closed(rows, "fid", lower_is_better)[0]


def test_kd_gap_closed_only_where_the_teacher_is_better_than_scratch():
    assert _gap(10.0, 20.0, 12.0)["gap_closed"] == pytest.approx(0.8)
    assert _gap(0.9, 0.5, 0.8, lower_is_better=False)["gap_closed"] == pytest.approx(0.75)  # accuracy: higher
    assert _gap(0.9, 0.5, 0.4, lower_is_better=False)["gap_closed"] == pytest.approx(-0.25)
    # a gap of rounding size is no gap: not a share of millions
    for near in (_gap(10.0, 10.0 + 1e-9, 12.0), _gap(10.0, 10.0 - 1e-9, 12.0)):
        assert near["gap_closed"] is None and near["note"] == "teacher no better than scratch"
    # the scratch twin better than the teacher: the share's sign would flip (KD beat scratch, and read as worse)
    for g in (_gap(10.0, 8.0, 6.0), _gap(0.5, 0.9, 0.95, lower_is_better=False)):
        assert g["gap_closed"] is None and g["note"] == "teacher worse than scratch"
    # a value missing: no share, and the row says which
    missing = _gap(None, 20.0, 12.0)
    assert missing["gap_closed"] is None and missing["note"] == "no fid for the teacher" and missing["scratch"] == 20.0
    missing = _gap(10.0, None, 12.0)
    assert missing["gap_closed"] is None and missing["note"] == "no fid for the scratch twin" and missing["kd"] == 12.0


def test_gpu_timing_leaves_the_callers_models_where_they_were(monkeypatch):
    """The GPU timing moves every model to the GPU: afterwards each is back on its device, in its layout and mode.
    The "meta" device stands in for the GPU (it runs the real speed_table, and moving back from it is impossible:
    only the tensors kept from before can put a model back)."""
    monkeypatch.setattr(evaluation, "_timing_gpu", lambda models: torch.device("meta"))
    t = dcgan_init(CondDCGANGenerator(64), 0).eval().to(memory_format=torch.channels_last)
    s = dcgan_init(CondDCGANGenerator(32), 1).train()  # a notebook's student left in train mode
    s.body[0].weight.grad = torch.ones_like(s.body[0].weight)
    models = {"t": t, "s_kd": s}
    before = {n: {k: v.clone() for k, v in G.state_dict().items()} for n, G in models.items()}
    rows = evaluation.evaluate_models(models, ENTRIES, [], speed_batch=2, rounds=1, progress=False)
    assert all(r["gpu_img_per_s"] > 0 for r in rows)  # timed on the stand-in
    for n, G in models.items():
        assert all(v.device.type == "cpu" for v in G.state_dict().values()), n
        assert all(torch.equal(v, before[n][k]) for k, v in G.state_dict().items()), n
    assert t.body[3].weight.is_contiguous(memory_format=torch.channels_last) and not t.training
    assert s.training and all(m.training for m in s.modules())
    assert s.body[0].weight.grad.device.type == "cpu" and torch.equal(s.body[0].weight.grad,
                                                                      torch.ones_like(s.body[0].weight))

    def failing(models, device, *a, **k):  # a timing that fails half-way: the models are put back all the same
        for G in models.values():
            G.to(device)
        raise RuntimeError("out of memory")

    monkeypatch.setattr(metrics, "speed_table", lambda models, device, *a, **k: (
        {n: {"ms_b1": 1.0, "ms_b1_spread_pct": 0.0, "img_per_s": 1.0} for n in models} if str(device) == "cpu"
        else failing(models, device)))
    with pytest.raises(RuntimeError, match="out of memory"):
        evaluation.evaluate_models(models, ENTRIES, [], speed_batch=2, rounds=1, progress=False)
    assert all(p.device.type == "cpu" for G in models.values() for p in G.parameters())


def test_evaluators_and_chapter_metrics(tmp_path, monkeypatch):
    """The chapter pipeline: the classifier of the settings, and the Inception skip recorded and said (offline)."""
    monkeypatch.setenv("GANKD_OFFLINE", "1")
    monkeypatch.delenv("GANKD_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    asked = {}

    def fake_classifier(dataset, **kw):  # the real one trains for a while (tests/test_metrics.py covers it)
        asked.update(dataset=dataset, **kw)
        return tiny_evaluator().extractor

    monkeypatch.setattr(metrics, "get_classifier", fake_classifier)
    s = config.settings("mnist", "smoke", seed=3)
    said = []
    evs = evaluation.evaluators(s, tiny_set(), "cpu", where="99_test", say=said.append)
    assert asked == {"dataset": "mnist", "epochs": 2, "n_train": 3000, "width": 8, "device": "cpu", "seed": 3}
    assert len(evs) == 1 and evs[0].n == 500 and evs[0].seed == 3 and evs[0].batch_size == 250
    assert evs[0].names()["fid"] == "fid500_tinycls"
    assert len(said) == 1 and said[0].startswith("SKIPPED [99_test] Inception FID / IS")
    assert "GANKD_INCEPTION_WEIGHTS" in said[0]  # the message says how to enable it
    assert evaluation.evaluators(s, tiny_set(), "cpu", where="99_test", classifier=False, say=said.append) == []
    path = evaluation.save_chapter_metrics("99_test", s, "cpu", evs, models={"a": {"fid": float("nan")}})
    m = json.loads(path.read_text())
    assert path.parent.name == "99_test" and (m["chapter"], m["profile"], m["seed"], m["device"]) == (
        "99_test", "smoke", 3, "cpu")
    assert m["machine"].startswith("cpu (") and m["machine"].endswith(f", {os.cpu_count()} cores)")  # names the CPU
    assert m["cpu"] == m["machine"]
    assert m["protocols"][0]["metrics"]["fid"] == "fid500_tinycls" and m["models"] == {"a": {"fid": None}}
    assert [e["where"] for e in m["skipped"]] == ["99_test", "99_test"]
    assert [e["where"] for e in runlog.read_skipped() if e["where"] == "99_test"] == ["99_test", "99_test"]


def test_seeds_of_a_model_share_its_entry_and_average_into_one_row(models):
    ev = tiny_evaluator()
    seeded = {"t": models["t"], "s_kd": models["s_kd"], "s_kd@1": dcgan_init(CondDCGANGenerator(32), 9).eval()}
    per_seed = evaluation.evaluate_models(seeded, ENTRIES, [ev], speed_batch=4, rounds=1, progress=False)
    by = {r["model"]: r for r in per_seed}
    assert by["s_kd@1"]["role"] == "kd" and by["s_kd@1"]["compression_x"] == by["s_kd"]["compression_x"]
    rows = evaluation.mean_over_seeds(per_seed)
    assert [r["model"] for r in rows] == ["t", "s_kd"]
    t, s = rows
    fid = ev.names()["fid"]
    assert t["seeds"] == 1 and f"{fid}_std" not in t and t[fid] == by["t"][fid]
    assert s["seeds"] == 2 and s[fid] == pytest.approx((by["s_kd"][fid] + by["s_kd@1"][fid]) / 2)
    assert s[f"{fid}_std"] == pytest.approx(abs(by["s_kd"][fid] - by["s_kd@1"][fid]) / 2 ** 0.5)
    assert s["params"] == by["s_kd"]["params"] and s["role"] == "kd" and "params_std" not in s
    assert evaluation.kd_gap_closed(rows, fid) == []  # no scratch twin here


def _tiny_run_with_snapshots(tmp_path, monkeypatch) -> runs.Trained:
    """A finished 8-step run of a tiny conditional DCGAN that kept its generator at steps 2, 4 and 6."""
    monkeypatch.setenv("GANKD_RESULTS", str(tmp_path))
    s = config.settings("mnist", "smoke", train={"n_train": None, "batch_size": 16, "ckpt_every": 2, "n_fixed": 10,
                                                 "epochs": 2, "snapshots": 4})
    student = Entry("tiny_scratch", "mnist", "tiny", "scratch", lambda s: CondDCGANGenerator(32),
                    lambda s: CondDCGANDiscriminator(4))
    return runs.train_or_load(student, s, tiny_set(), device="cpu", progress=False)


def test_scored_snapshots_are_saved_and_stand_for_a_run_that_kept_none(tmp_path, monkeypatch):
    """A model loaded from the shipped weights kept no snapshots, but its curve, saved where it was trained and
    shipped with it, still shows whether it had converged; only when the same pipeline scored it."""
    t = _tiny_run_with_snapshots(tmp_path, monkeypatch)
    curves = evaluation.snapshot_curves({"tiny_scratch": t}, tiny_evaluator(), progress=False)
    saved = json.loads((t.run_dir / "quality.json").read_text())
    assert saved["points"] == curves["tiny_scratch"] and saved["protocol"] == tiny_evaluator().protocol_id()
    elsewhere = tmp_path / "elsewhere"  # the finished run without its snapshots, as a fresh machine has it
    elsewhere.mkdir()
    shutil.copy(t.run_dir / "quality.json", elsewhere / "quality.json")
    bare = runs.Trained(t.G, "shipped", elsewhere, True, 8, True)
    assert evaluation.snapshot_curves({"m": bare}, tiny_evaluator(), progress=False) == {"m": curves["tiny_scratch"]}
    over = evaluation.quality_over_training({"tiny_scratch": bare}, tiny_evaluator(), tmp_path / "out",
                                            labels={"tiny_scratch": "tiny"}, progress=False)
    assert [r["model"] for r in over["convergence"]] == ["tiny_scratch"] and over["convergence"][0]["from_step"] == 6
    # another pipeline (sample count), another end step or a damaged file: no curve, never a wrong one
    assert tiny_evaluator(n=16).protocol_id() != tiny_evaluator().protocol_id()
    assert evaluation.snapshot_curves({"m": bare}, tiny_evaluator(n=16), progress=False) == {}
    longer = runs.Trained(t.G, "shipped", elsewhere, True, 10, True)
    assert evaluation.snapshot_curves({"m": longer}, tiny_evaluator(), progress=False) == {}
    (elsewhere / "quality.json").write_text("{not json")
    assert evaluation.snapshot_curves({"m": bare}, tiny_evaluator(), progress=False) == {}
    assert evaluation.quality_over_training({"tiny_scratch": bare}, tiny_evaluator(), tmp_path / "out2",
                                            labels={"tiny_scratch": "tiny"}, progress=False)["curves"] == {}


def _weights_sum(G) -> float:
    return round(float(sum(p.detach().double().sum() for p in G.state_dict().values())), 6)


class _Scripted:
    """An evaluator that gives each generator of a run the classifier-FID scripted for its step: a run that
    peaks where the script says (it knows the generators by their weights)."""

    def __init__(self, run_dir, fid_by_step):
        self.by = {_weights_sum(checkpoint.load_model(stem)): fid_by_step[s] for s, stem in train.snapshots(run_dir)}
        self.calls = 0

    def names(self):
        return {"fid": "fid9_script", "acc": "acc9_script", "recall": "recall9_script"}

    def protocol_id(self):
        return "scripted"

    def __call__(self, G):
        self.calls += 1
        return {"fid9_script": self.by[_weights_sum(G)], "recall9_script": 0.5}


def test_a_finished_run_hands_on_its_best_generator_and_keeps_its_last_one(tmp_path, monkeypatch):
    t = _tiny_run_with_snapshots(tmp_path, monkeypatch)  # kept steps 2, 4, 6; last 8
    last = _weights_sum(t.G)
    g_bytes = (t.run_dir / "G.safetensors").read_bytes()
    runs.keep_generator(t.run_dir, 8)  # the last one: G unchanged, and now also kept as step 8's snapshot
    assert (t.run_dir / "G.safetensors").read_bytes() == g_bytes and runs.kept_step(t.run_dir) is None
    assert [s for s, _ in train.snapshots(t.run_dir)] == [2, 4, 6, 8]
    fids = {2: 50.0, 4: 20.0, 6: 30.0, 8: 40.0}  # the run peaked at step 4, then fell off
    ev = _Scripted(t.run_dir, fids)
    kept = evaluation.keep_best(t, ev)
    assert runs.kept_step(t.run_dir) == 4 and _weights_sum(kept.G) == _weights_sum(
        checkpoint.load_model(train.snapshot_path(t.run_dir, 4)))
    assert kept.steps == 8 and kept.finished and kept.name == t.name  # the run's length, not the kept step
    side = json.loads((t.run_dir / "G.json").read_text())
    assert side["finished"] and side["step"] == 8 and side["config"] == json.loads(
        json.dumps(t.config.to_dict()))  # the run's settings and record stay: it is still the same finished run
    assert side["kept"] == {"step": 4, "by": "fid9_script", "fid9_script": 20.0, "protocol": "scripted",
                            "of": [2, 4, 6, 8], "last": {"step": 8, "fid9_script": 40.0}}
    again = runs.load_finished(t.run_dir, t.config)  # what every later reader (teacher set, students) gets
    assert _weights_sum(again.G) == _weights_sum(kept.G) and again.steps == 8
    # the curve still ends with the last step's generator, not the kept one; and it is not scored twice
    assert evaluation.last_generator(again) is not again.G and _weights_sum(evaluation.last_generator(again)) == last
    assert evaluation.kept_snapshots(again) == evaluation.kept_snapshots(t)  # step 8 is the run's end, not a snapshot
    over = evaluation.quality_over_training({"tiny_scratch": again}, ev, tmp_path / "out",
                                            labels={"tiny_scratch": "tiny"}, progress=False)
    assert [(p["step"], p["fid9_script"]) for p in over["curves"]["tiny_scratch"]] == sorted(fids.items())
    assert over["convergence"][0]["verdict"] == "got worse"  # the run's verdict, whatever was kept
    assert ("tiny_scratch is the generator of step 4 of its 8-step run, the best of the 4 it kept on fid9_script "
            "(20; its last step scored 40)") in over["note"]
    calls = ev.calls
    assert _weights_sum(evaluation.keep_best(again, ev).G) == _weights_sum(kept.G) and ev.calls == calls  # saved curve
    # a call cut off after G was replaced, before its sidecar said so, is mended by the next; the last G survives
    six = train.snapshot_path(t.run_dir, 6).with_suffix(".safetensors")
    (t.run_dir / "G.safetensors").write_bytes(six.read_bytes())
    runs.keep_generator(t.run_dir, 4, side["kept"])
    assert _weights_sum(runs.load_finished(t.run_dir).G) == _weights_sum(kept.G)
    # where the last step is best, the last generator is the model again
    (t.run_dir / "quality.json").unlink()
    back = evaluation.keep_best(again, _Scripted(t.run_dir, {2: 50.0, 4: 20.0, 6: 30.0, 8: 20.0}))
    assert runs.kept_step(t.run_dir) is None and _weights_sum(back.G) == last
    assert (t.run_dir / "G.safetensors").read_bytes() == g_bytes and evaluation.kept_note({"m": back}) == ""
    with pytest.raises(FileNotFoundError, match=r"kept no generator at step 5 \(it has \[2, 4, 6, 8\]\)"):
        runs.keep_generator(t.run_dir, 5)


def test_keep_best_leaves_a_run_without_snapshots_or_unfinished_as_it_is(tmp_path, monkeypatch):
    t = _tiny_run_with_snapshots(tmp_path, monkeypatch)
    shipped_like = runs.Trained(t.G, "shipped", tmp_path / "elsewhere", True, 8, True)
    assert evaluation.keep_best(shipped_like, tiny_evaluator()) is shipped_like  # never writes a shipped folder
    paused = runs.Trained(t.G, "paused", t.run_dir, True, 8, False)
    assert evaluation.keep_best(paused, tiny_evaluator()) is paused and runs.kept_step(t.run_dir) is None
    side = json.loads((t.run_dir / "G.json").read_text())
    (t.run_dir / "G.json").write_text(json.dumps({**side, "finished": False}))
    with pytest.raises(ValueError, match="only once it has finished"):
        runs.keep_generator(t.run_dir, 4)


def test_learning_curves_score_each_student_at_every_chunk_and_leave_it_finished(tmp_path, monkeypatch):
    monkeypatch.setenv("GANKD_RESULTS", str(tmp_path))
    s = config.settings("mnist", "smoke", train={"n_train": None, "batch_size": 16, "ckpt_every": 2, "n_fixed": 10})
    student = Entry("tiny_scratch", "mnist", "tiny", "scratch", lambda s: CondDCGANGenerator(32),
                    lambda s: CondDCGANDiscriminator(4))
    teacher = Entry("tiny_teacher", "mnist", "tiny", "teacher", lambda s: CondDCGANGenerator(40),
                    lambda s: CondDCGANDiscriminator(4))
    real = tiny_set()  # 64 images: 4 steps of 16
    curves = evaluation.learning_curves({"tiny_teacher": teacher, "tiny_scratch": student}, s, tiny_evaluator(), real,
                                        points=2, device="cpu", progress=False)
    assert list(curves) == ["tiny_scratch"]  # teachers are not scored
    pts = curves["tiny_scratch"]
    assert [p["step"] for p in pts] == [2, 4]
    assert all(math.isfinite(p["fid32_tinycls"]) and 0 <= p["acc32_tinycls"] <= 1 for p in pts)
    assert pts[0]["fid32_tinycls"] != pts[1]["fid32_tinycls"]  # scored after each chunk, not twice the same G
    done = runs.train_or_load(student, s, real, device="cpu", progress=False)
    assert done.loaded and done.finished and done.steps == 4  # the curve's last chunk is the finished run
    # and the chapter's table, scoring the finished run loaded from its folder, gets the curve's last scores
    # without scoring it again (metrics.scorecache: the same generator, the same pipeline)
    monkeypatch.setattr(metrics.Evaluator, "samples", lambda *a: pytest.fail("the finished run was scored again"))
    assert tiny_evaluator()(done.G) == {k: v for k, v in pts[-1].items() if k != "step"}


def test_snapshot_curves_score_every_kept_generator_then_the_finished_one(tmp_path, monkeypatch):
    t = _tiny_run_with_snapshots(tmp_path, monkeypatch)
    assert [step for step, _ in train.snapshots(t.run_dir)] == [2, 4, 6]
    shipped_like = runs.Trained(t.G, "shipped", tmp_path / "elsewhere", True, 8, True)
    curves = evaluation.snapshot_curves({"tiny_scratch": t, "shipped": shipped_like}, tiny_evaluator(),
                                        progress=False)
    assert list(curves) == ["tiny_scratch"]  # a model without snapshots is left out
    pts = curves["tiny_scratch"]
    assert [p["step"] for p in pts] == [2, 4, 6, 8] and len({p["fid32_tinycls"] for p in pts}) == 4
    assert pts[-1]["fid32_tinycls"] == tiny_evaluator()(t.G)["fid32_tinycls"]  # the last point is the finished G
    # what chapters 03-05 call: the same curves, the figure and table_convergence saved, the note for REPORT.md
    over = evaluation.quality_over_training({"tiny_scratch": t}, tiny_evaluator(), tmp_path / "out",
                                            labels={"tiny_scratch": "tiny"}, progress=False)
    assert over["curves"] == curves and [r["model"] for r in over["convergence"]] == ["tiny_scratch"]
    assert over["convergence"][0]["from_step"] == 6 and over["note"] == evaluation.convergence_note(over["convergence"])
    assert {f.name for f in (tmp_path / "out").iterdir()} >= {"quality_over_training.png", "quality_over_training.pdf",
                                                             "table_convergence.md", "table_convergence.csv"}
    # seed 0 from the shipped weights (no snapshots), seed 1 trained here: seed 1's run stands for the model,
    # under its own key, in the model's colour
    seeds = {"tiny_scratch": shipped_like, "tiny_scratch@1": t, "tiny_scratch@2": t}
    colors = viz.palette(["tiny"])
    by_seed = evaluation.quality_over_training(seeds, tiny_evaluator(), tmp_path / "seeds", labels={"tiny_scratch": "tiny"},
                                               colors=colors, progress=False)
    assert list(by_seed["curves"]) == ["tiny_scratch@1"] and by_seed["curves"]["tiny_scratch@1"] == curves["tiny_scratch"]
    assert [r["model"] for r in by_seed["convergence"]] == ["tiny_scratch@1"]
    legend = [t_.get_text() for t_ in by_seed["figure"].legends[0].get_texts()]
    assert legend == ["tiny (seed 1)"]
    line = by_seed["figure"].axes[0].get_lines()[0]
    assert line.get_linestyle() == "--" and tuple(line.get_color()[:3]) == tuple(colors["tiny"][:3])
    none = evaluation.quality_over_training({"shipped": shipped_like}, tiny_evaluator(), tmp_path / "none",
                                            labels={"shipped": "s"}, progress=False)
    assert none == {"curves": {}, "convergence": [], "note": "", "figure": None}
    assert not (tmp_path / "none").exists()


def test_convergence_verdicts_from_the_last_stretch_of_training():
    curves = {"flat": [{"step": 1, "fid": 40.0}, {"step": 2, "fid": 20.0}, {"step": 3, "fid": 19.5}],
              "falling": [{"step": 1, "fid": 40.0}, {"step": 3, "fid": 30.0}],
              "worse": [{"step": 1, "fid": 20.0}, {"step": 3, "fid": 25.0}],
              "one": [{"step": 3, "fid": 25.0}], "acc_only": [{"step": 1, "acc": 0.5}, {"step": 2, "acc": 0.9}]}
    rows = {r["model"]: r for r in evaluation.convergence(curves, "fid")}
    assert sorted(rows) == ["falling", "flat", "worse"]  # one point, or no fid: no verdict
    assert rows["flat"]["verdict"] == "converged" and rows["flat"]["change"] == 0.025
    assert rows["falling"]["verdict"] == "still improving" and rows["falling"]["change"] == 0.25
    assert rows["worse"]["verdict"] == "got worse" and rows["worse"]["change"] == -0.25
    acc = evaluation.convergence(curves, "acc", lower_is_better=False)
    assert acc[0]["model"] == "acc_only" and acc[0]["verdict"] == "still improving"
    note = evaluation.convergence_note(list(rows.values()))
    assert note.startswith("Not converged on fid") and "falling still improving (+25%)" in note
    assert "worse got worse (-25%)" in note and "flat" not in note
    assert evaluation.convergence_note([rows["flat"]]).startswith("Every run had converged on fid")
    assert evaluation.convergence_note([]) == ""


def test_a_run_whose_recall_ended_near_zero_is_called_collapsed_whatever_its_fid_did():
    # the shape of a real full-profile c=32 MNIST KD run that collapsed: FID 204 -> 179 ("still improving"
    # by FID alone), class accuracy at chance, recall 0.000; its scratch twin ended at recall 0.104
    curves = {"gone": [{"step": 3510, "fid": 204.2, "recall": 0.0, "acc": 0.100},
                       {"step": 4680, "fid": 179.0, "recall": 0.0, "acc": 0.100}],
              "weak": [{"step": 3510, "fid": 90.0, "recall": 0.09}, {"step": 4680, "fid": 84.6, "recall": 0.104}],
              "flat": [{"step": 3510, "fid": 20.0, "recall": 0.8}, {"step": 4680, "fid": 19.9, "recall": 0.8}]}
    assert {r["model"]: r["verdict"] for r in evaluation.convergence(curves, "fid")} == {
        "gone": "still improving", "weak": "still improving", "flat": "converged"}  # no recall named: FID alone
    rows = {r["model"]: r for r in evaluation.convergence(curves, "fid", recall="recall")}
    assert rows["gone"]["verdict"] == "collapsed" and rows["gone"]["recall_end"] == 0.0
    assert rows["weak"]["verdict"] == "still improving" and rows["flat"]["verdict"] == "converged"
    note = evaluation.convergence_note(list(rows.values()))
    assert note.startswith("Collapsed (recall below 0.05") and "gone (recall 0.000)" in note
    assert "weak still improving (+6%)" in note and "gone still" not in note and "flat" not in note
    only = evaluation.convergence_note([rows["gone"], rows["flat"]])
    assert "Every other run had converged on fid" in only and "Not converged" not in only
    # the threshold is a parameter: at 0.2 the nearly collapsed twin counts as collapsed too
    assert evaluation.convergence(curves, "fid", recall="recall", collapsed_below=0.2)[1]["verdict"] == "collapsed"


def test_a_seed_without_a_score_is_left_out_of_the_mean_and_counted():
    rows = [{"model": "s", "role": "kd", "params": 10, "fid5_x": 10.0, "acc5_x": None, "recall5_x": 0.5},
            {"model": "s@1", "role": "kd", "params": 10, "fid5_x": None, "acc5_x": None, "recall5_x": 0.7},
            {"model": "s@2", "role": "kd", "params": 10, "fid5_x": 20.0, "acc5_x": 0.9, "recall5_x": float("nan")}]
    (row,) = evaluation.mean_over_seeds(rows)
    assert row["seeds"] == 3 and row["params"] == 10 and row["role"] == "kd"
    # the seeds that have a number, averaged; never seed 0's number standing for all, never NaN
    assert row["fid5_x"] == 15.0 and row["fid5_x_std"] == pytest.approx(50 ** 0.5)
    assert row["recall5_x"] == pytest.approx(0.6) and row["recall5_x_std"] == pytest.approx(0.02 ** 0.5)
    assert row["acc5_x"] == 0.9 and "acc5_x_std" not in row  # one seed: its number, no spread
    assert row["note"] == ("fid5_x: 2 of 3 seeds; acc5_x: 1 of 3 seeds (that seed's number, not a mean); "
                           "recall5_x: 2 of 3 seeds")
    none = evaluation.mean_over_seeds([{"model": "t", "fid5_x": None}, {"model": "t@1", "fid5_x": None}])
    assert none == [{"model": "t", "seeds": 2, "fid5_x": None}]  # nothing to average, and no note
    full = evaluation.mean_over_seeds([{"model": "u", "fid5_x": 1.0}, {"model": "u@1", "fid5_x": 3.0}])
    assert "note" not in full[0] and full[0]["fid5_x"] == 2.0


def test_only_a_full_run_is_called_collapsed_and_every_other_needs_another(tmp_path, monkeypatch):
    """A smoke or quick run ends early, covering few real images without having collapsed: its convergence
    table gives no "collapsed" verdict; and a note on runs that all collapsed speaks of no "other" run."""
    ev = tiny_evaluator()
    fid, recall = ev.names()["fid"], ev.names()["recall"]
    curve = [{"step": 2, fid: 90.0, recall: 0.0}, {"step": 4, fid: 80.0, recall: 0.0}]
    monkeypatch.setattr(evaluation, "kept_snapshots", lambda t: [(2, None)])
    monkeypatch.setattr(evaluation, "snapshot_curves", lambda trained, e, progress=True: {k: curve for k in trained})
    monkeypatch.setattr(evaluation, "kept_note", lambda trained: "")
    verdicts = {}
    for profile in ("smoke", "quick", "full"):
        t = runs.Trained(None, "tiny_scratch", tmp_path / f"{profile}-seed0" / "tiny_scratch", False, 4, True)
        over = evaluation.quality_over_training({"tiny_scratch": t}, ev, tmp_path / profile,
                                                labels={"tiny_scratch": "tiny"}, progress=False)
        verdicts[profile] = over["convergence"][0]["verdict"]
    assert verdicts == {"smoke": "still improving", "quick": "still improving", "full": "collapsed"}
    shipped = runs.Trained(None, "tiny_scratch", tmp_path / "weights" / "mnist" / "tiny_scratch", True, 4, True)
    assert evaluation._profile_of({"a": shipped}) == "full"  # the shipped weights: a full run's
    t = runs.Trained(None, "tiny_scratch", tmp_path / "full-seed0" / "tiny_scratch", False, 4, True)
    named = evaluation.quality_over_training({"tiny_scratch": t}, ev, tmp_path / "named",
                                             labels={"tiny_scratch": "tiny"}, progress=False, profile="smoke")
    assert named["convergence"][0]["verdict"] == "still improving"  # the profile named wins
    note = evaluation.convergence_note(
        evaluation.convergence({"a": curve, "b": curve}, fid, recall=recall))
    assert note.startswith("Collapsed") and "Every other" not in note and "converged on" not in note
