"""results/REPORT.md (gankd_utils.report): a paragraph per chapter, tables and figures, non-full profiles flagged."""
import json
import subprocess
import sys

from gankd_utils import report


def _chapter(root, name, profile):
    d = root / name
    d.mkdir(parents=True)
    (d / "metrics.json").write_text(json.dumps({
        "profile": profile, "device": "cuda", "seed": 0,
        "protocols": [{"metrics": {"fid": "fid10k_mnistcls"}, "n_samples": 10000, "extractor": "mnistcls",
                       "reference": "mnist-train", "n_reference": 60000, "classifier_test_accuracy": 0.991}],
        "skipped": [{"what": "Inception FID", "why": "offline"}]}))
    (d / "table.md").write_text("| model | fid10k_mnistcls |\n|---|---|\n| a | 1.5 |")
    (d / "table.csv").write_text("model,fid10k_mnistcls\na,1.5\n")
    (d / "table_full.md").write_text("| model | family | fid10k_mnistcls |\n|---|---|---|\n| a | wide | 1.5 |")
    (d / "samples.png").write_bytes(b"png")
    return d


def test_report_collects_chapters_and_flags_profiles(tmp_path):
    _chapter(tmp_path, "03_mnist", "full")
    _chapter(tmp_path, "06_compare", "quick")
    (tmp_path / "04_cifar10").mkdir()  # ran, but wrote no metrics.json
    text = report.write_report(tmp_path).read_text()
    assert "| a | 1.5 |" in text and "](03_mnist/samples.png)" in text and "](03_mnist/table.csv)" in text
    assert "**full** profile on **cuda**" in text and "99.10%" in text and "Skipped: Inception FID" in text
    assert "Profiles in this report: full, quick" in text
    assert "**Not a result:** the quick profile" in text
    assert "_Not run (no `metrics.json`)._" in text  # 01, 05, 07
    assert "Ran without writing `metrics.json`" in text  # 04
    assert "| a | wide | 1.5 |" not in text and "table_full" not in text  # the lead table only
    assert [t for t, *_ in report.REPORT_SECTIONS] == ["01_biggan", "03_mnist", "04_cifar10", "05_tinygan",
                                                       "06_compare", "07_compress"]
    assert text.index("## 03 ·") < text.index("## 06 ·")


def test_report_of_full_runs_only_has_no_warning(tmp_path):
    _chapter(tmp_path, "03_mnist", "full")
    text = report.write_report(tmp_path).read_text()
    assert "Profiles in this report" not in text and "Not a result" not in text


def test_report_says_which_runs_had_not_converged(tmp_path):
    d = _chapter(tmp_path, "04_cifar10", "full")
    m = json.loads((d / "metrics.json").read_text())
    note = "Not converged on fid10k_cifar10cls over the last stretch: cgan_teacher still improving (+12%)."
    (d / "metrics.json").write_text(json.dumps({**m, "convergence_note": note}))
    (d / "table_convergence.md").write_text("| model | verdict |\n|---|---|\n| cgan_teacher | still improving |")
    text = report.write_report(tmp_path).read_text()
    section = text[text.index("## 04 ·"):text.index("## 05 ·")]
    assert note in section and "| cgan_teacher | still improving |" in section


def test_report_command(tmp_path):
    _chapter(tmp_path, "05_tinygan", "smoke")
    r = subprocess.run([sys.executable, "-m", "gankd_utils", "report", "--results", str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "REPORT.md" in r.stdout
    assert "05 · TinyGAN" in (tmp_path / "REPORT.md").read_text()
