"""Chapter 07's study (gankd_utils.study): every compression step of a tiny KD student, scored and timed alike."""
import math

import pytest
import torch

from gankd_utils import checkpoint, config, data, metrics, study
from gankd_utils.models import CondDCGANDiscriminator, CondDCGANGenerator, ConvClassifier
from gankd_utils.models.layers import dcgan_init
from gankd_utils.zoo import Entry

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

TEACHER = Entry("tiny_teacher", "mnist", "tiny", "teacher", lambda s: CondDCGANGenerator(40),
                lambda s: CondDCGANDiscriminator(4))
STUDENT = Entry("tiny_kd", "mnist", "tiny", "kd", lambda s: CondDCGANGenerator(32),
                lambda s: CondDCGANDiscriminator(4), config.COLUMBIA, teacher="tiny_teacher")
DISTILLED = Entry("tiny_distill", "mnist", "tiny", "kd", lambda s: CondDCGANGenerator(32),
                  lambda s: CondDCGANDiscriminator(4), config.DISTILL, teacher="tiny_teacher")
STEPS = ["fp32 torch", "fp16 file", "fp32 ONNX", "int8 ONNX", "unpruned + KD fine-tune", "pruned 50%",
         "pruned 50% + KD fine-tune",
         "pruned 50% + KD fine-tune, int8 ONNX", "unstructured 50% zeros (dense file)"]


def tiny_evaluator(n=16) -> metrics.Evaluator:
    g = torch.Generator().manual_seed(0)
    real = data.ImageSet(torch.randint(0, 256, (32, 1, 28, 28), dtype=torch.uint8, generator=g),
                         torch.arange(32) % 10, data.MNIST_CLASSES, "tiny")
    torch.manual_seed(0)
    ex = metrics.ClassifierExtractor(ConvClassifier(1, 10, width=4, feature_dim=16), "tinycls", 0.5, "tiny0")
    return metrics.Evaluator(ex, real, n, seed=0, batch_size=n)


@pytest.fixture
def part(tmp_path):
    """One dataset of runs.collect, built by hand: a teacher, its KD student, their run folders, the settings."""
    s = config.settings("mnist", "smoke", train={"batch_size": 16})
    G_t, G_s = dcgan_init(CondDCGANGenerator(40), 0).eval(), dcgan_init(CondDCGANGenerator(32), 1).eval()
    run_dirs = {"tiny_teacher": tmp_path / "runs" / "tiny_teacher", "tiny_kd": tmp_path / "runs" / "tiny_kd"}
    checkpoint.save_model(run_dirs["tiny_kd"] / "D", dcgan_init(CondDCGANDiscriminator(4), 2))  # the student's critic
    return {"models": {"tiny_teacher": G_t, "tiny_kd": G_s}, "entries": {"tiny_teacher": TEACHER, "tiny_kd": STUDENT},
            "run_dirs": run_dirs, "settings": s}


def test_compression_study_of_a_tiny_student(part, tmp_path, mnist_train):
    G = part["models"]["tiny_kd"]
    before = {k: v.clone() for k, v in G.state_dict().items()}
    threads = torch.get_num_threads()
    ev = tiny_evaluator()
    res = study.compression_study("tiny_kd", G, part, ev, tmp_path / "out", device="cpu", amounts=(0.5,),
                                  finetune_steps=2, rounds=2, threads=1, progress=False, min_channels=3)
    assert torch.get_num_threads() == threads
    assert all(torch.equal(before[k], v) for k, v in G.state_dict().items())  # the caller's student is untouched
    rows = {r["step"]: r for r in res["rows"]}
    assert list(rows) == STEPS and list(res["variants"]) == STEPS and res["fid"] == "fid16_tinycls"
    for step, r in rows.items():
        assert math.isfinite(r["fid"]) and r["fid"] == r["fid16_tinycls"], step
        assert r["ms_b1"] > 0 and r["img_s_b64"] > 0 and r["ms_b1_spread_pct"] >= 0, step
        assert r["img_s_b64_spread_pct"] >= 0 and r["file_bytes"] > 0 and r["runtime"], step
    base = rows["fp32 torch"]
    assert base["fid_change_pct"] == 0 and res["onnx_max_abs_diff"] < 1e-4
    assert rows["fp16 file"]["file_bytes"] < 0.55 * base["file_bytes"]
    pruned = rows["pruned 50% + KD fine-tune"]
    assert pruned["params"] < base["params"] and pruned["macs"] < base["macs"] and pruned["file_bytes"] < base["file_bytes"]
    assert rows["pruned 50%"]["params"] == pruned["params"]
    zeros = rows["unstructured 50% zeros (dense file)"]
    assert zeros["file_bytes"] == base["file_bytes"] and zeros["nonzero_params"] < 0.6 * base["params"]
    (p,) = res["targets"]["pruning"]
    assert p["amount"] == 0.5 and p["macs_removed_pct"] > 30 and isinstance(p["met"], bool)
    # the target prices the pruning against the student fine-tuned alike (the control), not the one as trained
    control = rows["unpruned + KD fine-tune"]
    assert control["params"] == base["params"] and p["control_fid"] == control["fid"]
    assert p["fid_change_vs_control_pct"] == pytest.approx(100 * (pruned["fid"] / control["fid"] - 1))
    assert p["met"] == (p["fid_change_vs_control_pct"] <= 10)
    assert checkpoint.read_sidecar(tmp_path / "out" / "runs" / "tiny_kd" / "finetune_0" / "G")["step"] == 2  # its own
    assert set(res["targets"]["int8"]) == {"speedup_b1", "speedup_b64", "fid_change_pct", "met"}
    out = tmp_path / "out" / "runs" / "tiny_kd"
    assert res["files"] == str(out)
    for f in ("G_fp16.safetensors", "G_fp32.onnx", "G_int8.onnx", "G_pruned50_ft.safetensors", "G_pruned50_ft.onnx",
              "G_pruned50_ft_int8.onnx"):
        assert (out / f).exists(), f
    ft = checkpoint.read_sidecar(out / "G_pruned50_ft")
    assert ft["amount"] == 0.5 and ft["finetune_steps"] == 2 and ft["min_channels"] == 3
    assert ft["model"]["kwargs"]["widths"] == [16, 8, 4, 3]  # halved, but no layer under 3 channels
    side = checkpoint.read_sidecar(out / "finetune_50" / "G")
    assert side["step"] == 2 and side["config"]["kd"] == "pixel" and side["config"]["name"] == "tiny_kd_finetune"


def test_finetune_inputs(part, mnist_train):
    with pytest.raises(ValueError, match="only KD students get a KD fine-tune"):
        study.finetune_inputs("tiny_teacher", part, "cpu", progress=False)
    got = study.finetune_inputs("tiny_kd", part, "cpu", progress=False)
    assert got["teacher"] is part["models"]["tiny_teacher"] and got["teacher_set"] is None
    assert got["cfg"].kd == "pixel" and got["cfg"].name == "tiny_kd" and len(got["real"]) == 60000
    assert got["cfg"].lr_g == part["settings"].train.lr_g  # no G sidecar: the profile's rates


def test_a_finetune_keeps_the_rates_the_student_was_trained_with(part, mnist_train):
    # a shipped full-profile student (G 2e-4) fine-tuned in quick, whose fresh students learn at other rates
    folder = part["run_dirs"]["tiny_kd"]
    checkpoint.save_model(folder / "G", part["models"]["tiny_kd"], config={"lr_g": 3e-4, "lr_d": 1e-4, "kd": "pixel"})
    quick = {**part, "settings": config.settings("mnist", "smoke", students={"tiny": {"lr_g": 5e-3, "lr_d": 5e-3}})}
    got = study.finetune_inputs("tiny_kd", quick, "cpu", progress=False)
    assert (got["cfg"].lr_g, got["cfg"].lr_d, got["cfg"].kd) == (3e-4, 1e-4, "pixel")
    assert study.trained_rates(folder.parent / "nowhere") == {}


def test_a_blackbox_finetune_learns_from_the_set_of_the_teacher_it_was_given(tmp_path, monkeypatch, cifar_root):
    # chapter 07 on shipped weights: the teacher set comes from the teacher `part` holds (its checkpoint),
    # never from a teacher trained now in the profile
    from gankd_utils import runs, shards
    from gankd_utils.models import ProjectionDiscriminator, ResNetGenerator

    monkeypatch.setenv("GANKD_TEACHERS", str(tmp_path / "teachers"))
    s = config.settings("cifar10", "smoke")
    teacher_dir, student_dir = tmp_path / "shipped" / "t", tmp_path / "shipped" / "s"
    T = ResNetGenerator(ch=4).eval()
    checkpoint.save_model(teacher_dir / "G", T, finished=True, step=1)
    checkpoint.save_model(student_dir / "D", ProjectionDiscriminator(ch=8))
    t_entry = Entry("t", "cifar10", "c", "teacher", lambda s: ResNetGenerator(ch=4),
                    lambda s: ProjectionDiscriminator(ch=8))
    s_entry = Entry("s_kd", "cifar10", "c", "kd", lambda s: ResNetGenerator(ch=4),
                    lambda s: ProjectionDiscriminator(ch=8), config.TINYGAN, teacher="t")
    part = {"models": {"t": T}, "entries": {"t": t_entry, "s_kd": s_entry},
            "run_dirs": {"t": teacher_dir, "s_kd": student_dir}, "settings": s}
    monkeypatch.setattr(runs, "train_or_load", lambda *a, **k: pytest.fail("no teacher may train here"))
    got = study.finetune_inputs("s_kd", part, "cpu", progress=False)
    assert got["teacher"] is None and len(got["teacher_set"]) == s.export.per_class * 10
    folder = runs.export_teacher(teacher_dir / "G.safetensors", s, "cpu", progress=False)["folder"]
    assert shards.read_manifest(folder)["count"] == len(got["teacher_set"])  # the same export, kept


def test_a_finetune_without_its_adversarial_term_learns_from_the_teacher_alone(part, tmp_path, mnist_train):
    import copy

    def finetune(adversarial: bool, d_seed: int, run: str) -> dict[str, torch.Tensor]:
        checkpoint.save_model(part["run_dirs"]["tiny_kd"] / "D", dcgan_init(CondDCGANDiscriminator(4), d_seed))
        G = copy.deepcopy(part["models"]["tiny_kd"])
        study.kd_finetune(G, "tiny_kd", part, 3, tmp_path / run, "cpu", progress=False, adversarial=adversarial)
        assert checkpoint.read_sidecar(tmp_path / run / "G")["config"]["w_adv"] == (1.0 if adversarial else 0.0)
        return G.state_dict()

    def same(a, b):
        return all(torch.equal(a[k], b[k]) for k in a)

    start = part["models"]["tiny_kd"].state_dict()
    alone_a, alone_b = finetune(False, 2, "a"), finetune(False, 3, "b")
    assert not same(alone_a, start)  # it trained
    assert same(alone_a, alone_b)  # and no discriminator reached the generator
    assert not same(finetune(True, 2, "c"), finetune(True, 3, "d"))  # the recipe's adversarial term does


def test_a_finetune_saves_its_raw_weights_not_an_average_that_began_at_its_start(part, tmp_path, mnist_train):
    # a student trained with a weight average (TinyGAN's, the CIFAR-10 students': 0.999): the fine-tune's own
    # average would begin as a copy of the (pruned, damaged) start and still hold 0.999^3 of it after 3 steps
    import copy

    averaged = Entry("tiny_kd", "mnist", "tiny", "kd", STUDENT.make_g, STUDENT.make_d,
                     {**config.COLUMBIA, "ema_decay": 0.999}, teacher="tiny_teacher")
    part = {**part, "entries": {**part["entries"], "tiny_kd": averaged}}
    assert study.finetune_inputs("tiny_kd", part, "cpu", progress=False)["cfg"].ema_decay == 0.999
    G = copy.deepcopy(part["models"]["tiny_kd"])
    start = {k: v.clone() for k, v in G.named_parameters()}
    study.kd_finetune(G, "tiny_kd", part, 3, tmp_path / "ft", "cpu", progress=False)
    assert checkpoint.read_sidecar(tmp_path / "ft" / "G")["config"]["ema_decay"] == 0.0
    moved = max((v - start[k]).abs().max().item() for k, v in G.named_parameters())
    assert moved > 1e-4  # Adam moves a weight by about lr (2e-4) a step; 0.1% of that through an average


def test_a_student_distilled_alone_fine_tunes_without_a_critic_of_its_own(part, tmp_path, mnist_train):
    import copy

    # as shipped: the generator alone (its run folder on a fresh machine holds no D)
    part = {**part, "entries": {**part["entries"], "tiny_distill": DISTILLED},
            "models": {**part["models"], "tiny_distill": copy.deepcopy(part["models"]["tiny_kd"])},
            "run_dirs": {**part["run_dirs"], "tiny_distill": tmp_path / "runs" / "tiny_distill"}}
    assert not (part["run_dirs"]["tiny_distill"] / "D.safetensors").exists()
    G = part["models"]["tiny_distill"]
    start = {k: v.clone() for k, v in G.state_dict().items()}
    study.kd_finetune(G, "tiny_distill", part, 3, tmp_path / "ft", "cpu", progress=False)
    side = checkpoint.read_sidecar(tmp_path / "ft" / "G")
    assert side["step"] == 3 and side["config"]["kd"] == "distill" and side["config"]["w_adv"] == 0.0
    assert any(not torch.equal(start[k], v) for k, v in G.state_dict().items())  # it learned from the teacher
    # a KD student that trained with a critic still needs its own: a missing one is an error, not a new critic
    (part["run_dirs"]["tiny_kd"] / "D.safetensors").unlink()
    with pytest.raises(checkpoint.CheckpointError, match="no checkpoint"):
        study.kd_finetune(copy.deepcopy(part["models"]["tiny_kd"]), "tiny_kd", part, 3, tmp_path / "ft2", "cpu",
                          progress=False)


def test_a_finished_finetune_is_loaded_when_it_starts_alike(part, tmp_path, mnist_train, monkeypatch):
    # the compress stage fine-tunes on one machine (a GPU), chapter 07 scores on another: it must load those
    # fine-tunes, and only those that started from the very same student, critic, recipe and steps
    import copy

    G0 = part["models"]["tiny_kd"]
    first = study.kd_finetune(copy.deepcopy(G0), "tiny_kd", part, 2, tmp_path / "ft", "cpu", progress=False)
    side = checkpoint.read_sidecar(tmp_path / "ft" / study.FINETUNED)
    assert side["steps"] == 2 and side["images"] == {"real": 60000} and len(side["start"]) == 64
    calls = []
    real_fit = study.fit
    monkeypatch.setattr(study, "fit", lambda *a, **k: calls.append(1) or real_fit(*a, **k))
    again = study.kd_finetune(copy.deepcopy(G0), "tiny_kd", part, 2, tmp_path / "ft", "cpu", progress=False)
    assert calls == [] and all(torch.equal(v, again.state_dict()[k]) for k, v in first.state_dict().items())
    # another start trains again: other student weights, other steps, another critic, a damaged result
    other = copy.deepcopy(G0)
    with torch.no_grad():
        next(other.parameters()).add_(0.01)
    study.kd_finetune(other, "tiny_kd", part, 2, tmp_path / "ft", "cpu", progress=False)
    assert calls == [1]
    study.kd_finetune(copy.deepcopy(G0), "tiny_kd", part, 3, tmp_path / "ft", "cpu", progress=False)
    assert calls == [1, 1]
    checkpoint.save_model(part["run_dirs"]["tiny_kd"] / "D", dcgan_init(CondDCGANDiscriminator(4), 5))
    study.kd_finetune(copy.deepcopy(G0), "tiny_kd", part, 3, tmp_path / "ft", "cpu", progress=False)
    assert calls == [1, 1, 1]
    with torch.no_grad():  # another teacher
        next(part["models"]["tiny_teacher"].parameters()).add_(0.01)
    study.kd_finetune(copy.deepcopy(G0), "tiny_kd", part, 3, tmp_path / "ft", "cpu", progress=False)
    assert calls == [1, 1, 1, 1]
    (tmp_path / "ft" / f"{study.FINETUNED}.safetensors").write_bytes(b"cut off")
    study.kd_finetune(copy.deepcopy(G0), "tiny_kd", part, 3, tmp_path / "ft", "cpu", progress=False)
    assert calls == [1, 1, 1, 1, 1]
    assert study.finished_finetune(tmp_path / "ft", side["start"]) is None  # the first start's result is replaced


def test_finetunes_are_the_studys_own(part, tmp_path, mnist_train, monkeypatch):
    # study.finetunes (the compress stage without its notebook) runs exactly the fine-tunes the study runs:
    # the study afterwards trains none of them again
    folders = study.finetunes("tiny_kd", part["models"]["tiny_kd"], part, tmp_path / "out", "cpu", amounts=(0.5,),
                              finetune_steps=2, progress=False, min_channels=3)
    assert [f.name for f in folders] == ["finetune_0", "finetune_50"]
    assert all((f / f"{study.FINETUNED}.safetensors").exists() for f in folders)
    monkeypatch.setattr(study, "fit", lambda *a, **k: pytest.fail("the study trained a fine-tune again"))
    res = study.compression_study("tiny_kd", part["models"]["tiny_kd"], part, tiny_evaluator(), tmp_path / "out",
                                  device="cpu", amounts=(0.5,), finetune_steps=2, rounds=1, threads=1, progress=False,
                                  min_channels=3)
    assert list(res["variants"]) == STEPS


def test_target_rows_say_both_batch_sizes_and_met_or_missed():
    studies = {"mnist/a": {"targets": {
        "int8": {"speedup_b1": 5.61, "speedup_b64": 1.28, "fid_change_pct": 0.2, "met": False},
        "pruning": [{"amount": 0.3, "macs_removed_pct": 40.0, "fid_change_pct": -13.8,
                     "fid_change_vs_control_pct": 5.0, "control_fid": 18.7, "met": True}]}}}
    int8, pruned = study.target_rows(studies)
    assert int8["target"] == "int8 ONNX >= 2x faster than fp32 torch at batch 1 and at batch 64, FID change <= 10%"
    assert int8["measured"] == "5.61x (b=1), 1.28x (b=64), FID +0.2%" and int8["met"] == "missed"
    assert pruned["met"] == "met" and pruned["measured"].startswith("40% MACs removed, FID +5.0% (control 18.7;")
