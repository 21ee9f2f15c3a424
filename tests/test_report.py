"""results/REPORT.md (gankd_utils.report): a paragraph per chapter, tables and figures, non-full profiles flagged."""
import json
import subprocess
import sys

import pytest

from gankd_utils import evaluation, report


def _chapter(root, name, profile, **more):
    d = root / name
    d.mkdir(parents=True)
    (d / "metrics.json").write_text(json.dumps({
        "profile": profile, "device": "cuda", "seed": 0, **more,
        "protocols": [{"metrics": {"fid": "fid10k_mnistcls"}, "n_samples": 10000, "extractor": "mnistcls",
                       "reference": "mnist-train", "n_reference": 60000, "classifier_test_accuracy": 0.991}],
        "skipped": [{"what": "Inception FID", "why": "offline"}] * (2 if name == "06_compare" else 1)}))
    (d / "table.md").write_text("| model | fid10k_mnistcls |\n|---|---|\n| a | 1.5 |")
    (d / "table.csv").write_text("model,fid10k_mnistcls\na,1.5\n")
    (d / "table_full.md").write_text("| model | family | fid10k_mnistcls |\n|---|---|---|\n| a | wide | 1.5 |")
    (d / "samples.png").write_bytes(b"png")
    return d


def test_report_collects_chapters_and_flags_profiles(tmp_path):
    _chapter(tmp_path, "03_mnist", "full")
    _chapter(tmp_path, "06_compare", "quick", machine="cuda:0 (Some GPU)", cpu="cpu (AMD EPYC, 16 cores)")
    (tmp_path / "04_cifar10").mkdir()  # ran, but wrote no metrics.json: its figures only
    (tmp_path / "04_cifar10" / "curves.png").write_bytes(b"png")
    text = report.write_report(tmp_path).read_text()
    assert "| a | 1.5 |" in text and "](03_mnist/samples.png)" in text and "](03_mnist/table.csv)" in text
    assert "**full** profile on **cuda**" in text and "99.10%" in text  # an older metrics.json: the device only
    assert "**quick** profile on **cuda:0 (Some GPU)**" in text  # names its machine
    assert "CPU timings on cpu (AMD EPYC, 16 cores)." in text  # and the CPU its latency figures came from
    assert text.count("Skipped: Inception FID (offline).") == 2  # 03 and 06: once each, though 06 listed it twice
    assert "Profiles in this report: full, quick" in text
    assert "**Not a result:** the quick profile" in text
    assert "_Not run (no `metrics.json`)._" in text  # 01, 05, 07
    assert "Ran without writing `metrics.json`" in text  # 04
    assert "**Not in this report yet: chapters 01, 04, 05, 07**" in text  # said once, at the top
    assert "| a | wide | 1.5 |" not in text and "table_full" not in text  # the lead table only
    assert [t for t, *_ in report.REPORT_SECTIONS] == ["01_biggan", "03_mnist", "04_cifar10", "05_tinygan",
                                                       "06_compare", "07_compress"]
    assert text.index("## 03 ·") < text.index("## 06 ·")


def test_report_flags_a_full_run_on_a_subset_of_the_data(tmp_path):
    d = _chapter(tmp_path, "04_cifar10", "full")
    m = json.loads((d / "metrics.json").read_text())
    m["protocols"][0].update(reference="cifar10-train", n_reference=20_000)
    (d / "metrics.json").write_text(json.dumps(m))
    text = report.write_report(tmp_path).read_text()
    assert "**On a subset:** the data held 20,000 of the 50,000 images of cifar10-train" in text
    assert "teacher set was cut to its size" in text
    m["protocols"][0]["n_reference"] = 50_000
    (d / "metrics.json").write_text(json.dumps(m))
    assert "On a subset" not in report.write_report(tmp_path).read_text()


def test_report_of_full_runs_only_has_no_warning(tmp_path):
    _chapter(tmp_path, "03_mnist", "full")
    text = report.write_report(tmp_path).read_text()
    assert "Profiles in this report" not in text and "Not a result" not in text
    for folder, *_ in report.REPORT_SECTIONS[2:]:  # 01 is written below, 03 above
        _chapter(tmp_path, folder, "full")
    assert "Not in this report yet: chapters 01**" in report.write_report(tmp_path).read_text()
    _chapter(tmp_path, "01_biggan", "full")
    assert "Not in this report yet" not in report.write_report(tmp_path).read_text()  # every chapter is in


def test_report_says_which_runs_had_not_converged(tmp_path):
    d = _chapter(tmp_path, "04_cifar10", "full")
    m = json.loads((d / "metrics.json").read_text())
    note = "Not converged on fid10k_cifar10cls over the last stretch: cgan_teacher still improving (+12%)."
    (d / "metrics.json").write_text(json.dumps({**m, "convergence_note": note}))
    (d / "table_convergence.md").write_text("| model | verdict |\n|---|---|\n| cgan_teacher | still improving |")
    text = report.write_report(tmp_path).read_text()
    section = text[text.index("## 04 ·"):text.index("## 05 ·")]
    assert note in section and "| cgan_teacher | still improving |" in section


def test_report_names_a_collapsed_seed_in_its_chapter(tmp_path):
    d = _chapter(tmp_path, "03_mnist", "full")
    m = json.loads((d / "metrics.json").read_text())
    gone = evaluation.collapsed_runs([{"model": "cdcgan_c32_kd@2", "recall10k_mnistcls": 0.0},
                                      {"model": "cdcgan_c32_scratch@2", "recall10k_mnistcls": 0.104}],
                                     "recall10k_mnistcls")
    assert gone == [{"model": "cdcgan_c32_kd@2", "recall": 0.0}]
    (d / "metrics.json").write_text(json.dumps({**m, "collapsed": gone, "collapse_note": evaluation.collapse_note(gone)}))
    text = report.write_report(tmp_path).read_text()
    section = text[text.index("## 03 ·"):text.index("## 04 ·")]
    assert "Collapsed (recall below 0.05" in section and "cdcgan_c32_kd@2 (recall 0.000)" in section
    assert "scratch@2" not in section and evaluation.collapse_note([]) == ""


def test_report_command(tmp_path):
    _chapter(tmp_path, "05_tinygan", "smoke")
    r = subprocess.run([sys.executable, "-m", "gankd_utils", "report", "--results", str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "REPORT.md" in r.stdout
    assert "05 · TinyGAN" in (tmp_path / "REPORT.md").read_text()


def _full(root, chapter, models, acc_name, fid_name, clf_acc, gaps=()):
    d = root / chapter
    d.mkdir(parents=True, exist_ok=True)
    (d / "metrics.json").write_text(json.dumps({
        "profile": "full", "device": "cuda", "seed": 0,
        "protocols": [{"metrics": {"fid": fid_name, "acc": acc_name}, "classifier_test_accuracy": clf_acc}],
        "models": {k: {"role": role, acc_name: acc, fid_name: fid, "seeds": seeds}
                   for k, (role, acc, fid, seeds) in models.items()},
        "kd_gap_closed": list(gaps)}))


def test_quality_bars_read_the_chapters_and_say_met_missed_or_not_measured(tmp_path):
    bars = {r["bar"]: r for r in report.quality_bars(tmp_path)}  # nothing ran yet
    assert all(r["verdict"] == "not measured yet" for r in bars.values()) and len(bars) == 11
    _full(tmp_path, "03_mnist", {"cdcgan_c512_teacher": ("teacher", 0.981, 2.0, 1),
                                 "cdcgan_c64_kd": ("kd", 0.93, 3.0, 3), "cdcgan_c32_kd": ("kd", 0.85, 4.0, 3),
                                 "cdcgan_c32_distill": ("kd", 0.92, 3.5, 3),
                                 "cdcgan_c32_scratch": ("scratch", 0.5, 9.0, 2)},
          "acc10k_mnistcls", "fid10k_mnistcls", 0.9912,
          gaps=[{"student": "cdcgan_c32_kd", "gap_closed": -0.25}])
    _full(tmp_path, "04_cifar10", {"cgan_teacher": ("teacher", 0.71, 5.0, 1),
                                   "cgan_student_s_kd": ("kd", 0.5, 4.5, 1)},
          "acc10k_cifar10cls", "fid10k_cifar10cls", 0.88)
    bars = {r["bar"]: r for r in report.quality_bars(tmp_path)}
    assert bars["MNIST evaluator classifier: test accuracy"]["measured"] == "99.12%"
    assert bars["MNIST evaluator classifier: test accuracy"]["verdict"] == "met"
    assert bars["CIFAR-10 evaluator classifier: test accuracy"]["verdict"] == "missed"
    assert bars["cDCGAN c=512 teacher: class accuracy"]["verdict"] == "met"
    assert bars["cDCGAN c=64 KD student: class accuracy"]["verdict"] == "met"
    assert bars["cDCGAN c=32 KD student: class accuracy"]["verdict"] == "missed"
    assert bars["cDCGAN c=32 KD student by distillation alone: class accuracy"]["verdict"] == "met"
    assert bars["cDCGAN c=64 KD student by distillation alone: class accuracy"]["verdict"] == "n/a"  # not in the chapter
    assert bars["CIFAR-10 teacher: class accuracy"]["verdict"] == "met"
    fid04 = bars["CIFAR-10 teacher: classifier-FID below every student's (04)"]
    assert fid04["verdict"] == "missed" and "cgan_student_s_kd 4.5" in fid04["measured"]
    assert bars["CIFAR-10 teacher: classifier-FID below every student's (05)"]["verdict"] == "not measured yet"
    assert bars["MNIST students: seeds each (mean and spread)"]["measured"] == "2"  # the scratch student's 2
    assert bars["MNIST students: seeds each (mean and spread)"]["verdict"] == "missed"
    gap = bars["cdcgan_c32_kd: share of the scratch-to-teacher gap KD closed"]
    assert gap["measured"] == "-0.25" and gap["verdict"] == "n/a"  # reported whatever its sign
    text = report.write_report(tmp_path).read_text()
    assert text.index("## Quality bars") < text.index("## 01 ·")
    assert "| cDCGAN c=32 KD student: class accuracy | >= 90% | 85.00% | missed |" in text


def test_a_kd_student_without_a_gap_to_close_is_shown_with_the_reason(tmp_path):
    """evaluation.kd_gap_closed gives no share (None) where the teacher is no better than scratch, and says why."""
    rows = [{"model": "t", "family": "f", "role": "teacher", "fid": 10.0},
            {"model": "cdcgan_c32_scratch", "family": "f", "role": "scratch", "fid": 8.0},
            {"model": "cdcgan_c32_kd", "family": "f", "role": "kd", "fid": 6.0}]
    gaps = evaluation.kd_gap_closed(rows, "fid") + [{"student": "cdcgan_c64_kd", "gap_closed": None}]  # no note
    _full(tmp_path, "03_mnist", {"t": ("teacher", 0.98, 10.0, 1)}, "acc10k_mnistcls", "fid10k_mnistcls", 0.99,
          gaps=gaps)
    bars = {r["bar"]: r for r in report.quality_bars(tmp_path)}
    gap = bars["cdcgan_c32_kd: share of the scratch-to-teacher gap KD closed"]
    assert gap["measured"] == "- (teacher worse than scratch)" and gap["verdict"] == "n/a"
    assert bars["cdcgan_c64_kd: share of the scratch-to-teacher gap KD closed"]["measured"] == "- (no gap to close)"
    assert "| - (teacher worse than scratch) |" in report.write_report(tmp_path).read_text()


def test_a_shipped_evaluator_classifier_is_its_own_quality_bar(tmp_path):
    from gankd_utils import checkpoint, weights
    from gankd_utils.models import ConvClassifier

    _chapter(tmp_path, "03_mnist", "quick")  # a laptop walk scored with the shipped classifier
    run = tmp_path / "cache"
    checkpoint.save_model(run / "mnistcls_x", ConvClassifier(1, 10, width=4), settings={}, test_accuracy=0.9957,
                          finished=True)
    weights.ship({"mnist/classifier": run}, root=tmp_path / "weights", parts=("mnistcls_x",),
                 device="cpu (Some CPU, 2 cores)")
    bars = {r["bar"]: r for r in report.quality_bars(tmp_path)}
    clf = bars["MNIST evaluator classifier: test accuracy"]
    assert (clf["measured"], clf["verdict"]) == ("99.57%", "met")  # a full-profile result, not the quick chapter's
    assert clf["from"] == "shipped weights (full, cpu (Some CPU, 2 cores))"
    assert bars["cDCGAN c=512 teacher: class accuracy"]["verdict"].endswith("(quick profile: not a result)")
    assert bars["CIFAR-10 evaluator classifier: test accuracy"]["verdict"] == "not measured yet"


def test_a_shipped_models_full_run_score_is_its_bar_where_the_chapter_has_no_full_result(tmp_path):
    """A model shipped by a full run carries its scored snapshots (quality.json): the bar reads the score of the
    generator shipped (the step the run kept, not its last) until the chapter itself runs in full."""
    import torch

    from gankd_utils import checkpoint, weights
    from gankd_utils.models import CondDCGANGenerator

    run = tmp_path / "run"
    torch.manual_seed(0)
    checkpoint.save_model(run / "G", CondDCGANGenerator(c=8), finished=True, step=400, config={"seed": 0},
                          **{checkpoint.KEPT: {"step": 200, "by": "fid10k_cifar10cls"}})
    (run / "quality.json").write_text(json.dumps({"protocol": "p", "points": [
        {"step": 200, "fid10k_cifar10cls": 60.0, "acc10k_cifar10cls": 0.55},
        {"step": 400, "fid10k_cifar10cls": 70.0, "acc10k_cifar10cls": 0.65}]}))
    weights.ship({"cifar10/cgan_teacher": run}, root=tmp_path / "weights", device="cpu (Some CPU, 2 cores)")
    bar = "CIFAR-10 teacher: class accuracy"
    row = {r["bar"]: r for r in report.quality_bars(tmp_path)}[bar]
    assert (row["measured"], row["verdict"]) == ("55.00%", "missed")  # the kept step's 55%, not the last one's 65%
    assert row["from"] == "shipped weights (full, cpu (Some CPU, 2 cores); step 200 of 400, `acc10k_cifar10cls`)"
    _chapter(tmp_path, "04_cifar10", "quick")  # a laptop walk's chapter: not a result, the shipped score stays
    assert {r["bar"]: r for r in report.quality_bars(tmp_path)}[bar]["measured"] == "55.00%"
    (tmp_path / "04_cifar10" / "metrics.json").unlink()
    _full(tmp_path, "04_cifar10", {"cgan_teacher": ("teacher", 0.61, 50.0, 1)}, "acc10k_cifar10cls",
          "fid10k_cifar10cls", 0.92)  # the chapter in full: its own number
    row = {r["bar"]: r for r in report.quality_bars(tmp_path)}[bar]
    assert (row["measured"], row["verdict"]) == ("61.00%", "met") and row["from"].startswith("04_cifar10 (full")
    (tmp_path / "04_cifar10" / "metrics.json").unlink()
    pts = json.loads((run / "quality.json").read_text())["points"][1:]  # the kept step's score taken out by hand
    (tmp_path / "weights" / "cifar10" / "cgan_teacher" / "quality.json").write_text(json.dumps({"points": pts}))
    with pytest.raises(weights.ShippedWeightsError, match="quality.json"):  # altered after shipping: refused
        report.quality_bars(tmp_path)


def test_models_shipped_from_a_data_root_holding_a_subset_are_flagged_at_the_top(tmp_path):
    """A model trained where the data root held part of CIFAR-10 and scored elsewhere on all of it: the report's
    chapter (scored on the whole set) cannot tell, so the weights' training record says it."""
    import torch

    from gankd_utils import checkpoint, weights
    from gankd_utils.models import CondDCGANGenerator

    def ship(model, held):
        run = tmp_path / model
        training = {"seconds": 1.0, "segments": [
            {"steps": [0, 10], "seconds": 0.5, "device": "cuda:0 (GPU)", "world_size": 1, "images": held[0]},
            {"steps": [10, 20], "seconds": 0.5, "device": "cpu (CPU, 2 cores)", "world_size": 1, "images": held[1]}]}
        torch.manual_seed(0)
        checkpoint.save_model(run / "G", CondDCGANGenerator(c=8), finished=True, step=20, config={"seed": 0},
                              training=training)
        weights.ship({f"cifar10/{model}": run}, root=tmp_path / "weights", device="cuda:0 (GPU)")

    ship("cgan_student_s_scratch", (50_000, 50_000))
    assert report.trained_on_subset(tmp_path / "weights") == []
    assert "Trained on a subset" not in report.write_report(tmp_path).read_text()
    ship("cgan_student_s_kd", (19_356, 50_000))  # a segment on the subset is enough
    assert report.trained_on_subset(tmp_path / "weights") == ["`cifar10/cgan_student_s_kd` (19,356 of 50,000 images)"]
    text = report.write_report(tmp_path).read_text()
    assert "> **Trained on a subset:** `cifar10/cgan_student_s_kd` (19,356 of 50,000 images)" in text
    assert "cgan_student_s_scratch` (" not in text


def test_quality_bars_read_the_shipped_weights_of_the_results_in_use(tmp_path, monkeypatch):
    from gankd_utils import checkpoint, weights
    from gankd_utils.models import ConvClassifier

    run = tmp_path / "cache"
    checkpoint.save_model(run / "mnistcls_x", ConvClassifier(1, 10, width=4), settings={}, test_accuracy=0.992,
                          finished=True)
    weights.ship({"mnist/classifier": run}, root=tmp_path / "elsewhere", parts=("mnistcls_x",), device="cpu")
    monkeypatch.setenv("GANKD_RESULTS", str(tmp_path / "res"))
    monkeypatch.setenv("GANKD_WEIGHTS", str(tmp_path / "elsewhere"))  # the results in use read their weights there
    for where in (None, tmp_path / "res"):
        assert report.quality_bars(where)[0]["measured"] == "99.20%"
    assert report.quality_bars(tmp_path / "other")[0]["verdict"] == "not measured yet"  # other results: their own


def test_a_profile_report_reads_and_writes_its_own_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("GANKD_RESULTS", str(tmp_path))
    monkeypatch.delenv("GANKD_WEIGHTS", raising=False)
    _chapter(tmp_path, "03_mnist", "full")
    (tmp_path / "REPORT.md").write_text("the full run's report")
    _chapter(tmp_path / "quick", "05_tinygan", "quick")
    out = report.write_report(profile="quick")
    assert out == tmp_path / "quick" / "REPORT.md"
    assert (tmp_path / "REPORT.md").read_text() == "the full run's report"  # never written over
    text = out.read_text()
    assert "the files under `results/quick/`" in text and "**quick** walk's report" in text
    assert "05 · TinyGAN" in text and "](05_tinygan/samples.png)" in text
    assert "Not in this report yet: chapters 01, 03, 04, 06, 07" in text  # the full run's 03 is not the quick walk's
    # the CLI: the profile as `make run` has it (PROFILE), or --profile
    monkeypatch.setenv("PROFILE", "quick")
    r = subprocess.run([sys.executable, "-m", "gankd_utils", "report"], capture_output=True, text=True)
    assert r.returncode == 0 and str(tmp_path / "quick" / "REPORT.md") in r.stdout
    r = subprocess.run([sys.executable, "-m", "gankd_utils", "report", "--profile", "full"], capture_output=True,
                       text=True)
    assert r.returncode == 0 and "**full** profile" in (tmp_path / "REPORT.md").read_text()


def test_a_chapter_that_left_models_out_is_flagged_as_partial(tmp_path):
    _chapter(tmp_path, "06_compare", "full", left_out=["cifar10/cgan_teacher", "cifar10/tinygan_student"])
    m = json.loads((tmp_path / "06_compare" / "metrics.json").read_text())
    m["skipped"].append({"what": "cifar10/tinygan_student", "why": "no trained student to compress"})
    (tmp_path / "06_compare" / "metrics.json").write_text(json.dumps(m))
    _chapter(tmp_path, "03_mnist", "full")
    text = report.write_report(tmp_path).read_text()
    assert "> **Partial: chapters 06**: they leave out models not trained yet" in text
    assert "**Partial:** left out, as not trained yet: cifar10/cgan_teacher, cifar10/tinygan_student." in text
    assert "Skipped: cifar10/tinygan_student" not in text and "Skipped: Inception FID" in text  # said once, above
    _chapter(tmp_path / "b", "06_compare", "full")
    assert "Partial" not in report.write_report(tmp_path / "b").read_text()
    # a model the chapter left out that has shipped since is named as such, with the remedy: not as untrained
    import torch

    from gankd_utils import checkpoint, weights
    from gankd_utils.models import CondDCGANGenerator

    torch.manual_seed(0)
    checkpoint.save_model(tmp_path / "run" / "G", CondDCGANGenerator(c=8), finished=True, step=4, config={"seed": 0})
    weights.ship({"cifar10/tinygan_student": tmp_path / "run"}, root=tmp_path / "weights", device="cpu")
    text = report.write_report(tmp_path).read_text()
    assert "**Partial:** left out, as not trained yet: cifar10/cgan_teacher." in text
    assert ("left out, as not trained when the chapter ran, and shipped since: cifar10/tinygan_student (run the "
            "chapter again to include it)") in text
    assert "> **Partial: chapters 06**" in text  # still partial until it runs again


def test_the_compression_chapter_says_what_it_pruned_and_how_it_fine_tuned(tmp_path):
    _chapter(tmp_path, "07_compress", "full", amounts=[0.3, 0.5], min_channels=4, finetune_steps=1000, cpu_threads=2)
    text = report.write_report(tmp_path).read_text()
    section = text[text.index("## 07 ·"):]
    assert ("Channel pruning by 30% / 50% (no layer under 4 channels), each followed by 1000 KD fine-tune steps; "
            "CPU timings with 2 threads.") in section
    _chapter(tmp_path / "b", "07_compress", "full", amounts=[0.5], finetune_steps=3)  # written before the floor
    text = report.write_report(tmp_path / "b").read_text()
    assert "Channel pruning by 50%, each followed by 3 KD fine-tune steps." in text and "no layer under" not in text
    _chapter(tmp_path / "d", "07_compress", "full", amounts=[0.5], finetune_steps=3, finetune_adversarial=False)
    assert "by 3 KD fine-tune steps (distillation alone: no adversarial term)." in report.write_report(
        tmp_path / "d").read_text()
    _chapter(tmp_path / "c", "03_mnist", "full")
    assert "Channel pruning" not in report.write_report(tmp_path / "c").read_text()


def test_a_chapter_folder_holding_only_training_runs_has_not_run(tmp_path):
    _chapter(tmp_path, "03_mnist", "full")
    (tmp_path / "04_cifar10" / "runs" / "full-seed0").mkdir(parents=True)  # runs other commands left there
    section = lambda text: text[text.index("## 04 ·"):text.index("## 05 ·")]  # noqa: E731
    assert "_Not run (no `metrics.json`)._" in section(report.write_report(tmp_path).read_text())
    (tmp_path / "executed").mkdir()
    (tmp_path / "executed" / "04_cifar10_cgan_kd.ipynb").write_text("{}")  # its executed notebook: it ran
    assert "Ran without writing `metrics.json`" in section(report.write_report(tmp_path).read_text())
    (tmp_path / "executed" / "04_cifar10_cgan_kd.ipynb").unlink()
    (tmp_path / "04_cifar10" / "samples.png").write_bytes(b"png")  # an output of its own: it ran
    text = section(report.write_report(tmp_path).read_text())
    assert "Ran without writing `metrics.json`" in text and "](04_cifar10/samples.png)" in text


def test_report_says_a_chapter_scores_the_mean_over_seeds_and_chapter_06_one_seed(tmp_path):
    models = {"t": {"seeds": 1, "role": "teacher"}, "s": {"seeds": 3, "role": "kd"}}
    gone = [{"model": "s@2", "recall": 0.0}]
    _chapter(tmp_path, "03_mnist", "full", models=models, per_seed={"s": {}, "s@1": {}, "s@2": {}}, collapsed=gone,
             collapse_note="Collapsed (...; the means over seeds include it, the per-seed rows show each seed): s@2.")
    _chapter(tmp_path, "06_compare", "full", models={"mnist/s": {"role": "kd"}})
    text = report.write_report(tmp_path).read_text()
    ch03, ch06 = text[text.index("## 03 ·"):text.index("## 04 ·")], text[text.index("## 06 ·"):]
    assert "(seed 0)" not in ch03 and "mean over its 3 seeds" in ch03 and "`*_std` columns" in ch03
    assert "`metrics.json` under `per_seed`" in ch03
    # the collapse note is said again from the runs it names: it points where each seed's scores are
    assert "per-seed rows" not in ch03 and "s@2 (recall 0.000)" in ch03 and "under `per_seed`): s@2" in ch03
    assert "seed 0 of each model" in ch06 and "mean and spread over its seeds" in ch06
    assert "Each model's scores are its seed-0 run's." in ch06


def test_chapter_07_shows_its_targets_and_the_protocol_of_each_step_table(tmp_path):
    d = _chapter(tmp_path, "07_compress", "full")
    m = json.loads((d / "metrics.json").read_text())
    m["protocols"].append({"metrics": {"fid": "fid10k_cifar10cls"}, "n_samples": 10000, "extractor": "cifar10cls",
                           "reference": "cifar10-train", "n_reference": 50000})
    (d / "metrics.json").write_text(json.dumps(m))
    (d / "targets.md").write_text("| student | target | measured | met |\n|---|---|---|---|\n"
                                  "| mnist/a | x | y | missed |")
    for ds in ("mnist", "cifar10"):
        (d / f"table_{ds}_a.md").write_text(f"| step | fid | fid_change_pct |\n|---|---|---|\n| fp32 torch | 1 | 0 |")
    text = report.write_report(tmp_path).read_text()
    ch07 = text[text.index("## 07 ·"):]
    assert "| mnist/a | x | y | missed |" in ch07 and ch07.index("**targets**") < ch07.index("**table_cifar10_a**")
    assert ("**targets** ([CSV](07_compress/targets.csv)): the chapter's verdict on its targets (the int8 target "
            "asks for 2x at batch 1 and at batch 64 alike); each FID is measured with the student's dataset's "
            "protocol (`fid10k_mnistcls`, `fid10k_cifar10cls`)") in ch07
    assert "**table_mnist_a** ([CSV](07_compress/table_mnist_a.csv)): `fid` is `fid10k_mnistcls`" in ch07
    assert "**table_cifar10_a** ([CSV](07_compress/table_cifar10_a.csv)): `fid` is `fid10k_cifar10cls`" in ch07
    assert "**table** ([CSV](07_compress/table.csv))\n" in ch07  # its columns name their protocol
