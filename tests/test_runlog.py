"""What a run skipped and why (gankd_utils.runlog)."""
import json
from pathlib import Path

from gankd_utils import cli, config, evaluation, nbrun, runlog


def test_note_read_and_clear(tmp_path, monkeypatch):
    monkeypatch.setenv("GANKD_RESULTS", str(tmp_path))
    assert runlog.read_skipped() == []
    msg = runlog.note_skipped("03_mnist", "Inception FID", "offline", "GANKD_INCEPTION_WEIGHTS=...")
    assert msg == "SKIPPED [03_mnist] Inception FID: offline (to enable it: GANKD_INCEPTION_WEIGHTS=...)"
    runlog.note_skipped("05_tinygan", "BigGAN", "no handle")
    got = runlog.read_skipped()
    assert [e["where"] for e in got] == ["03_mnist", "05_tinygan"] and got[1]["setting"] is None
    assert runlog.format_entry(got[1]) == "SKIPPED [05_tinygan] BigGAN: no handle"
    runlog.clear_skipped()
    assert runlog.read_skipped() == []


def test_a_chapter_keeps_the_skips_of_its_own_run(tmp_path, monkeypatch):
    monkeypatch.setenv("GANKD_RESULTS", str(tmp_path))
    log = tmp_path / "run_summary" / "skipped.jsonl"
    log.parent.mkdir(parents=True)
    earlier = {"where": "06_compare", "what": "Inception FID / IS", "why": "offline", "setting": None,
               "time": "2026-01-01 00:00:00", "process": "an earlier kernel"}
    log.write_text(json.dumps(earlier) + "\n")  # an earlier run of the chapter (another profile, by hand)
    runlog.note_skipped("06_compare", "cifar10: cgan_teacher", "not trained yet")
    assert [e["what"] for e in runlog.read_skipped()] == ["Inception FID / IS", "cifar10: cgan_teacher"]
    assert [e["what"] for e in runlog.read_skipped(this_process=True)] == ["cifar10: cgan_teacher"]
    m = json.loads(evaluation.save_chapter_metrics("06_compare", config.settings("mnist", "smoke"), "cpu")
                   .read_text())
    assert [(e["what"], "process" in e) for e in m["skipped"]] == [("cifar10: cgan_teacher", False)]


def test_the_run_summary_names_each_skip_once(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GANKD_RESULTS", str(tmp_path))
    runlog.note_skipped("03_mnist", "left over", "from an earlier run")  # make run starts a fresh log

    def chapter(src, out, parameters=None, **kw):  # a chapter of two datasets notes one skip for each
        for _ in range(2):
            runlog.note_skipped("07_compress", "Inception FID / IS", "offline")
        runlog.note_skipped("07_compress", "cifar10/tinygan_student", "not trained yet")

    monkeypatch.setattr(nbrun, "run_notebook", chapter)
    monkeypatch.setattr(nbrun, "notebooks", lambda only=None: [Path("07_prune_quantize.ipynb")])
    assert cli.main(["run", "--profile", "smoke"]) == 0
    out = capsys.readouterr().out
    assert "skipped (2):" in out and out.count("SKIPPED [07_compress] Inception FID / IS: offline") == 1
    assert "SKIPPED [07_compress] cifar10/tinygan_student: not trained yet" in out and "left over" not in out


def test_a_failed_chapter_stops_the_run_unless_told_to_keep_going(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GANKD_RESULTS", str(tmp_path))
    ran = []

    def chapter(src, out, parameters=None, **kw):
        ran.append(src.name[:2])
        if src.name.startswith("04"):
            raise RuntimeError("cell 7 raised")

    monkeypatch.setattr(nbrun, "run_notebook", chapter)
    monkeypatch.setattr(nbrun, "notebooks", lambda only=None: [Path(f"{k}_x.ipynb") for k in ("03", "04", "05")])
    assert cli.main(["run", "--profile", "smoke"]) == 1
    out = capsys.readouterr().out
    assert ran == ["03", "04"] and "FAILED after" in out and "cell 7 raised" in out and "FAILED: 04_x.ipynb" in out
    assert "04_x.ipynb: 0.0 min (FAILED)" in out and "05_x.ipynb" not in out
    ran.clear()
    assert cli.main(["run", "--profile", "smoke", "--keep-going"]) == 1
    assert ran == ["03", "04", "05"] and "05_x.ipynb: 0.0 min\n" in capsys.readouterr().out
