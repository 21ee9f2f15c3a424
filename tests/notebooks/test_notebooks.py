"""Notebooks: committed clean, and each runs top to bottom in the smoke profile (papermill)."""
import json
import math
import os
import shutil
from pathlib import Path

import pytest

from gankd_utils import nbrun, runs, shards, teachers, zoo
from gankd_utils.evaluation import convergence_note

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent
NOTEBOOKS = nbrun.notebooks()


def test_there_are_notebooks():
    assert any(p.name.startswith("03_") for p in NOTEBOOKS)
    assert [p.name[:2] for p in NOTEBOOKS] == sorted(p.name[:2] for p in NOTEBOOKS)
    assert nbrun.notebooks(["03", "05"]) == [p for p in NOTEBOOKS if p.name[:2] in ("03", "05")]


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_stripped_with_a_parameters_cell(nb):
    cells = json.loads(nb.read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), \
        f"{nb.name} has outputs: run `make strip` (executed copies belong under results/executed/)"
    tagged = [i for i, c in enumerate(code) if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert tagged and tagged[0] <= 1, f"{nb.name}: the first code cells must include one tagged 'parameters'"
    assert "PROFILE" in "".join(code[tagged[0]]["source"])
    assert "import gankd_utils" in "".join(code[0]["source"]), "import gankd_utils first (import order)"


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(TF_CPP_MIN_LOG_LEVEL="2", GANKD_OFFLINE="1", **extra)
    return env


def _run_nb(name: str, tmp_path: Path, monkeypatch, **params) -> Path:
    """Run notebook ``name`` in the smoke profile with its own results and data folders; return the results folder."""
    results, data_root = tmp_path / "results", tmp_path / "data"
    monkeypatch.setenv("GANKD_RESULTS", str(results))
    monkeypatch.setenv("GANKD_DATA_ROOT", str(data_root))
    monkeypatch.setenv("GANKD_OFFLINE", "1")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    monkeypatch.setenv("PYTHONPATH", _env()["PYTHONPATH"])
    nbrun.run_notebook(REPO / "notebooks" / f"{name}.ipynb", tmp_path / f"{name}.ipynb",
                       {"PROFILE": "smoke", **params}, timeout=300)
    return results


# ---------------------------------------------------------------- 01, 02: BigGAN and the export

@pytest.mark.notebook
@pytest.mark.tf
def test_notebook_01_runs_against_a_tf1_hub_module(tf_modules, tmp_path, monkeypatch):
    results = _run_nb("01_biggan_tfhub", tmp_path, monkeypatch, HANDLE=str(tf_modules["tf1"]))
    saved = {p.name for p in (results / "smoke" / "01_biggan").iterdir()}
    for stem in ("truncated_noise", "samples", "explorer", "interpolation", "truncation_sweep"):
        assert {f"{stem}.png", f"{stem}.pdf"} <= saved, stem


@pytest.mark.notebook
def test_notebook_01_offline_skips_biggan_and_says_why(tmp_path, monkeypatch):
    monkeypatch.delenv(teachers.HANDLE_ENV, raising=False)
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "empty_cache"))
    results = _run_nb("01_biggan_tfhub", tmp_path, monkeypatch)
    assert {p.name for p in (results / "smoke" / "01_biggan").iterdir()} == {"truncated_noise.png", "truncated_noise.pdf"}
    skipped = [json.loads(line) for line in (results / "run_summary" / "skipped.jsonl").read_text().splitlines()]
    assert skipped[0]["where"] == "01_biggan_tfhub" and "biggan-deep-128/1" in skipped[0]["why"]
    assert "GANKD_BIGGAN_HANDLE=" in skipped[0]["why"] and skipped[0]["setting"] is None  # the advice, once


@pytest.mark.notebook
@pytest.mark.tf
def test_notebook_02_exports_biggan_and_a_torch_generator(tf_modules, tmp_path, monkeypatch):
    results = _run_nb("02_teacher_export", tmp_path, monkeypatch, HANDLE=str(tf_modules["tf2"]))
    sets = {p.name: p for p in (tmp_path / "data" / "teachers").iterdir()}
    assert set(sets) == {"biggan-deep-128_smoke_t1_s0", "untrained_conddcgan_c64_smoke_s0"}
    for folder in sets.values():
        shards.check_complete(folder)
    assert shards.ShardDataset(sets["biggan-deep-128_smoke_t1_s0"])[0][0].shape == (3, 128, 128)
    saved = {p.name for p in (results / "smoke" / "02_export").iterdir()}
    assert {"biggan_export.png", "shuffled_batch.png", "shuffled_batch.pdf"} <= saved


# ---------------------------------------------------------------- 03-07: the chapters

@pytest.mark.notebook
def test_notebook_03_smoke(tmp_path, mnist_train, _results_root):
    out = nbrun.run_notebook(nbrun.NOTEBOOK_DIR / "03_mnist_dcgan_kd.ipynb", tmp_path / "03.ipynb",
                             {"PROFILE": "smoke", "SEED": 1})
    assert out.exists()
    res = _results_root / "smoke" / "03_mnist"  # a smoke run's chapter: its own folder, never the full run's
    runs_dir = _results_root / "03_mnist" / "runs"  # run folders are shared, named by profile
    assert not (_results_root / "03_mnist" / "metrics.json").exists()
    m = json.loads((res / "metrics.json").read_text())
    assert m["profile"] == "smoke" and m["seed"] == 1 and len(m["models"]) == 10
    proto = m["protocols"][0]
    assert proto["extractor"] == "mnistcls" and proto["n_samples"] == 500
    fid = proto["metrics"]["fid"]
    assert fid == "fid500_mnistcls"
    for name, row in m["models"].items():
        assert math.isfinite(row[fid]) and row[fid] > 0, name
        assert row["params"] > 0 and row["cpu_img_per_s"] > 0 and row["cpu_latency_spread_pct"] >= 0, name
    assert m["models"]["cdcgan_c32_kd"]["compression_x"] >= 50
    assert m["models"]["cdcgan_c64_kd"]["acc500_mnistcls"] is not None
    assert m["models"]["iitgn_student_kd"].get("acc500_mnistcls") is None  # unconditional: no class accuracy
    assert {g["student"] for g in m["kd_gap_closed"]} <= {"iitgn_student_kd", "cdcgan_c64_kd", "cdcgan_c32_kd",
                                                          "cdcgan_c64_distill", "cdcgan_c32_distill"}
    # the distillation-only students: their own runs, scored like the others, at their Columbia twins' budgets
    for c in (64, 32):
        assert m["models"][f"cdcgan_c{c}_distill"]["acc500_mnistcls"] is not None
        assert m["training"][f"cdcgan_c{c}_distill"]["steps"] == m["training"][f"cdcgan_c{c}_kd"]["steps"]
    for stem in ("samples_iitgn", "samples_columbia", "curves_columbia", "explorer_default"):
        assert (res / f"{stem}.png").exists() and (res / f"{stem}.pdf").exists(), stem
    for stem in ("table", "table_full"):  # the lead columns, and every column beside them
        assert (res / f"{stem}.csv").exists() and (res / f"{stem}.md").exists(), stem
    lead = (res / "table.md").read_text().splitlines()[0]
    assert fid in lead and "mb_fp16" not in lead and "mb_fp16" in (res / "table_full.md").read_text()
    assert (runs_dir / "smoke-seed1" / "cdcgan_c32_kd" / "G.safetensors").exists()
    # quality over training: smoke keeps one snapshot per run, scored with the finished model
    assert (res / "quality_over_training.png").exists() and (res / "table_convergence.md").exists()
    assert len(m["convergence"]) == 10 and all(r["from_step"] == 4 and r["to_step"] == 8 for r in m["convergence"])
    assert m["convergence_note"] == convergence_note(m["convergence"])
    # a smoke run ends early, covering few real images without having collapsed: only full runs are called so
    assert not [r["model"] for r in m["convergence"] if r["verdict"] == "collapsed"]
    # the executed copy keeps its figures as pictures, not as "<Figure ...>" text
    cells = json.loads(out.read_text())["cells"]
    # ... and names no machine's folders: the notebook relative to the project, run folders to the results root
    assert json.loads(out.read_text())["metadata"]["papermill"]["input_path"] == "notebooks/03_mnist_dcgan_kd.ipynb"
    assert m["training"]["cdcgan_c32_kd"]["run_dir"] == "03_mnist/runs/smoke-seed1/cdcgan_c32_kd"
    pngs = [c for c in cells if any("image/png" in o.get("data", {}) for o in c.get("outputs", []))]
    assert any("quality_over_training(" in "".join(c["source"]) for c in pngs) and len(pngs) >= 5
    assert (res / "progress" / "cdcgan_c32_kd.gif").exists()
    # a rerun loads the finished checkpoints instead of training again; runs without sample sheets
    # (as restored from the shipped weights) give no progress GIF, and the notebook says so
    for sheets in (runs_dir / "smoke-seed1").glob("*/samples"):
        shutil.rmtree(sheets)
    rerun = nbrun.run_notebook(nbrun.NOTEBOOK_DIR / "03_mnist_dcgan_kd.ipynb", tmp_path / "03b.ipynb",
                               {"PROFILE": "smoke", "SEED": 1, "FAMILIES": ["columbia"]})
    assert "no progress GIF here" in rerun.read_text()
    m2 = json.loads((res / "metrics.json").read_text())
    assert all(r["loaded"] for r in m2["training"].values())
    assert m2["models"]["cdcgan_c32_kd"][fid] == pytest.approx(m["models"]["cdcgan_c32_kd"][fid])


@pytest.mark.notebook
def test_notebook_04_smoke(tmp_path, cifar_root, _results_root, monkeypatch):
    monkeypatch.setenv("GANKD_TEACHERS", str(tmp_path / "teachers"))  # exports never land in the data root
    nbrun.run_notebook(nbrun.NOTEBOOK_DIR / "04_cifar10_cgan_kd.ipynb", tmp_path / "04.ipynb", {"PROFILE": "smoke"})
    res = _results_root / "smoke" / "04_cifar10"
    m = json.loads((res / "metrics.json").read_text())
    assert m["profile"] == "smoke" and len(m["models"]) == 5
    fid = m["protocols"][0]["metrics"]["fid"]
    assert fid == "fid100_cifar10cls"
    for name, row in m["models"].items():
        assert math.isfinite(row[fid]), name
        assert 0 <= row["acc100_cifar10cls"] <= 1 and 0 <= row["precision100_cifar10cls"] <= 1
    assert m["models"]["cgan_student_xs_kd"]["compression_x"] >= 10
    assert {g["student"] for g in m["kd_gap_closed"]} == {"cgan_student_s_kd", "cgan_student_xs_kd"}
    assert m["teacher_set"]["images"] == 80  # 8 per class, exported through chapter 02's exporter
    # the teacher run's generators (step 4, and its last, 8) scored on the chapter's pipeline: the best is the teacher
    teacher_run = _results_root / "04_cifar10" / "runs" / "smoke-seed0" / "cgan_teacher"
    curve = json.loads((teacher_run / "quality.json").read_text())["points"]
    best = min(curve, key=lambda p: (p[fid], -p["step"]))
    assert [p["step"] for p in curve] == [4, 8]
    assert runs.kept_step(teacher_run) == (None if best["step"] == 8 else best["step"])
    assert m["models"]["cgan_teacher"][fid] == pytest.approx(best[fid])  # the table scores the teacher handed on
    kd_hist = json.loads((_results_root / "04_cifar10" / "runs" / "smoke-seed0" / "cgan_student_s_kd" / "history.json").read_text())
    assert {"kd_pixel", "kd_dfeat", "d_realbranch"} <= set(kd_hist)
    for stem in ("samples_student_s", "samples_student_xs", "curves_kd"):
        assert (res / f"{stem}.png").exists() and (res / f"{stem}.pdf").exists(), stem
    assert (res / "table.md").exists() and (res / "table_full.md").exists()
    assert os.listdir(tmp_path / "teachers")


@pytest.mark.notebook
def test_notebook_05_smoke(tmp_path, cifar_root, _results_root, monkeypatch):
    monkeypatch.setenv("GANKD_TEACHERS", str(tmp_path / "teachers"))
    nbrun.run_notebook(nbrun.NOTEBOOK_DIR / "05_tinygan_distill.ipynb", tmp_path / "05.ipynb", {"PROFILE": "smoke"})
    res = _results_root / "smoke" / "05_tinygan"
    m = json.loads((res / "metrics.json").read_text())
    assert m["profile"] == "smoke" and m["teacher"]["resolution"] == 32 and m["teacher"]["count"] == 80
    assert m["run"]["finished"] and m["run"]["steps"] == 10  # 80 images / batch 8, one epoch
    student, teacher = m["models"]["tinygan_student"], m["models"]["cgan_teacher"]
    assert student["params"] < teacher["params"] and student["compression_x"] > 1
    assert math.isfinite(student["fid100_cifar10cls"]) and 0 <= student["acc100_cifar10cls"] <= 1
    assert m["run"]["run_dir"] == "05_tinygan/runs/smoke-seed0/tinygan_student"  # the zoo entry's folder, by the
    run = _results_root / m["run"]["run_dir"]  # results root (metrics.json names no machine's folders)
    assert (run / "metrics.jsonl").exists() and (run / "config.json").exists()
    for stem in ("teacher_vs_student", "explorer_default", "curves", "table"):
        assert any((res / f"{stem}.{ext}").exists() for ext in ("png", "md")), stem


@pytest.mark.notebook
def test_notebook_06_smoke(tmp_path, mnist_train, cifar_root, _results_root, monkeypatch):
    monkeypatch.setenv("GANKD_TEACHERS", str(tmp_path / "teachers"))
    nbrun.run_notebook(nbrun.NOTEBOOK_DIR / "06_compare.ipynb", tmp_path / "06.ipynb", {"PROFILE": "smoke"})
    res = _results_root / "smoke" / "06_compare"
    m = json.loads((res / "metrics.json").read_text())
    assert m["profile"] == "smoke"
    names = set(m["models"])
    assert {"mnist/cdcgan_c32_kd", "mnist/iitgn_teacher", "cifar10/cgan_teacher", "cifar10/tinygan_student"} <= names
    assert len(names) == 10 + 6 and {"mnist/cdcgan_c64_distill", "mnist/cdcgan_c32_distill"} <= names
    fids = {p["metrics"]["fid"] for p in m["protocols"]}
    assert fids >= {"fid500_mnistcls", "fid100_cifar10cls"}
    for key, row in m["models"].items():  # one pipeline per dataset: every row has its dataset's protocol columns
        fid = "fid500_mnistcls" if key.startswith("mnist/") else "fid100_cifar10cls"
        assert math.isfinite(row[fid]) and row["mb_int8"] < row["mb_fp32"] and row["cpu_latency_ms_b1"] > 0, key
    for ds in ("mnist", "cifar10"):
        for stem in (f"table_{ds}", f"table_{ds}_full"):
            assert (res / f"{stem}.csv").exists() and (res / f"{stem}.md").exists(), stem
        for stem in (f"pareto_{ds}", f"speed_{ds}"):
            assert (res / f"{stem}.png").exists() and (res / f"{stem}.pdf").exists(), stem
    for stem in ("grid_mnist_cdcgan_c512_teacher", "grid_mnist_cdcgan_c64_scratch"):  # each panel its own file
        assert (res / f"{stem}.png").exists(), stem
    report = (_results_root / "smoke" / "REPORT.md").read_text()
    assert "Profiles in this report" in report and "smoke" in report and "06_compare/pareto_mnist.png" in report


@pytest.mark.notebook
def test_notebook_07_smoke(tmp_path, mnist_train, cifar_root, _results_root, monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("GANKD_TEACHERS", str(tmp_path / "teachers"))
    nbrun.run_notebook(nbrun.NOTEBOOK_DIR / "07_prune_quantize.ipynb", tmp_path / "07.ipynb",
                       {"PROFILE": "smoke", "STUDENTS": ["mnist/cdcgan_c32_kd", "cifar10/cgan_student_xs_kd"],
                        "SPEED": {"channels_last": True}})  # how the fine-tunes compute (the compress stage's flags)
    res = _results_root / "smoke" / "07_compress"
    m = json.loads((res / "metrics.json").read_text())
    assert m["profile"] == "smoke" and set(m["students"]) == {"mnist/cdcgan_c32_kd", "cifar10/cgan_student_xs_kd"}
    assert m["min_channels"] == 4  # the profile's floor, recorded with the amounts
    for key, st in m["students"].items():
        rows = {r["step"]: r for r in st["rows"]}
        assert st["onnx_max_abs_diff"] < 1e-3, key  # ONNX Runtime computes what torch computes
        base, fp16 = rows["fp32 torch"], rows["fp16 file"]
        assert fp16["file_bytes"] < 0.55 * base["file_bytes"]
        pruned = rows["pruned 50% + KD fine-tune"]
        assert pruned["params"] < base["params"] and pruned["macs"] < base["macs"]
        assert pruned["file_bytes"] < base["file_bytes"]  # a genuinely smaller dense model
        zeros = rows["unstructured 50% zeros (dense file)"]
        assert zeros["file_bytes"] == base["file_bytes"] and zeros["nonzero_params"] < 0.6 * base["params"]
        assert all(math.isfinite(r["fid"]) and r["ms_b1"] > 0 and r["ms_b1_spread_pct"] >= 0 for r in st["rows"]), key
        assert {"int8", "pruning"} <= set(st["targets"])
    # the CIFAR-10 student's convolutions run as int8: a smaller file
    xs = {r["step"]: r for r in m["students"]["cifar10/cgan_student_xs_kd"]["rows"]}
    assert xs["int8 ONNX"]["file_bytes"] < 0.6 * xs["fp32 ONNX"]["file_bytes"]
    assert (res / "targets.md").exists() and (res / "grid_mnist_cdcgan_c32_kd.png").exists()
    assert "07 · Beyond KD" in (_results_root / "smoke" / "REPORT.md").read_text()


@pytest.mark.notebook
@pytest.mark.tf
def test_notebook_05_biggan_path(tmp_path, _results_root, tf_modules, monkeypatch):
    """TEACHER='biggan' on a BigGAN-deep-signature module: export at 128 px, distil, explore, table."""
    module = tf_modules["tf1"]  # tests/tf_fixtures.py, built once by the conftest fixture
    monkeypatch.setenv("GANKD_TEACHERS", str(tmp_path / "teachers"))
    monkeypatch.setenv("GANKD_RESULTS", str(tmp_path / "results"))
    nbrun.run_notebook(nbrun.NOTEBOOK_DIR / "05_tinygan_distill.ipynb", tmp_path / "05.ipynb",
                       {"PROFILE": "smoke", "TEACHER": "biggan", "BIGGAN_HANDLE": str(module), "DEVICE": "cpu",
                        "BIGGAN_CLASSES": "1,207"})
    m = json.loads((tmp_path / "results" / "smoke" / "05_tinygan" / "metrics.json").read_text())
    assert (m["teacher"]["resolution"], m["teacher"]["n_classes"], m["teacher"]["classes"]) == (128, 1000, [1, 207])
    assert m["teacher"]["count"] == 16 and m["run"]["finished"]  # 8 per class (smoke export size)
    assert list(m["models"]) == ["tinygan_student"]  # a TF teacher has no torch row
    assert (tmp_path / "results" / "smoke" / "05_tinygan" / "explorer_default.png").exists()


@pytest.mark.notebook
def test_notebooks_06_and_07_leave_out_untrained_models_and_say_so(tmp_path, monkeypatch):
    """TRAIN_MISSING = False: compare and compress what exists (here nothing); the chapter and REPORT.md name the rest."""
    monkeypatch.delenv("GANKD_WEIGHTS", raising=False)
    results = _run_nb("06_compare", tmp_path, monkeypatch, TRAIN_MISSING=False, WEIGHTS="train")
    m = json.loads((results / "smoke" / "06_compare" / "metrics.json").read_text())
    assert m["models"] == {} and m["left_out"] == [f"mnist/{n}" for n in zoo.mnist_zoo()] + [
        f"cifar10/{n}" for n in zoo.cifar10_zoo()]
    results = _run_nb("07_prune_quantize", tmp_path, monkeypatch, TRAIN_MISSING=False, WEIGHTS="train")
    m = json.loads((results / "smoke" / "07_compress" / "metrics.json").read_text())
    assert m["students"] == {} and {s["what"] for s in m["skipped"]} == {
        "mnist/cdcgan_c32_kd", "cifar10/cgan_student_s_kd", "cifar10/tinygan_student"}
    report = (results / "smoke" / "REPORT.md").read_text()
    assert "**Partial: chapters 06, 07**" in report and "left out, as not trained yet: mnist/cdcgan_c32_kd, " in report
    first = next(iter(zoo.mnist_zoo()))
    assert f"left out, as not trained yet: mnist/{first}, " in report  # chapter 06's, in its own section
    assert report.count("cifar10/tinygan_student") == 2  # once in each chapter: the skip 07 noted is not repeated
    assert m["left_out"] == ["mnist/cdcgan_c32_kd", "cifar10/cgan_student_s_kd", "cifar10/tinygan_student"]
    assert not list(results.rglob("*.safetensors"))  # nothing was trained


@pytest.mark.notebook
def test_the_runner_talks_to_its_kernel_over_private_sockets(tmp_path):
    """No unencrypted TCP ports (ipykernel warns of them at every start): IPC sockets in a private folder, removed."""
    import nbformat

    probe = "import json, ipykernel.connect as c\ninfo = json.loads(c.get_connection_info())\nprint(info['transport'], info['ip'])"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(probe)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "probe.ipynb")
    out = nbformat.read(nbrun.run_notebook(tmp_path / "probe.ipynb", tmp_path / "ran.ipynb"), as_version=4)
    transport, ip = next(c for c in out.cells if "get_connection_info" in c.source).outputs[0]["text"].split()
    if os.name == "posix":
        assert transport == "ipc" and Path(ip).parent.name.startswith("gankd-kernel-")
        assert not Path(ip).parent.exists()  # the sockets' folder goes when the notebook is done
    else:
        assert transport == "tcp"
