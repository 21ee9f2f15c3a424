"""What a run skipped and why (gankd_utils.runlog)."""
from gankd_utils import runlog


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
