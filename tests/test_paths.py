"""Where gankd reads and writes (gankd_utils.paths): every location is one environment variable."""
from pathlib import Path

from gankd_utils import paths


def test_locations_follow_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("GANKD_DATA_ROOT", str(tmp_path / "d"))
    monkeypatch.delenv("GANKD_TEACHERS", raising=False)
    assert paths.data_root() == tmp_path / "d" and paths.teachers_dir() == tmp_path / "d" / "teachers"
    monkeypatch.setenv("GANKD_TEACHERS", str(tmp_path / "t"))
    assert paths.teachers_dir() == tmp_path / "t"
    monkeypatch.setenv("GANKD_RESULTS", str(tmp_path / "r"))
    p = paths.results_dir("03_mnist", "runs")
    assert p == tmp_path / "r" / "03_mnist" / "runs" and p.is_dir() and paths.results_root() == tmp_path / "r"
    monkeypatch.delenv("GANKD_RESULTS")
    assert paths.results_root() == paths.REPO_ROOT / "results"
    assert (Path(paths.REPO_ROOT) / "gankd_utils" / "paths.py").exists()


def test_offline_flag(monkeypatch):
    for v, want in (("1", True), ("yes", True), ("ON", True), ("0", False), ("", False)):
        monkeypatch.setenv("GANKD_OFFLINE", v)
        assert paths.offline() is want
    monkeypatch.delenv("GANKD_OFFLINE")
    assert not paths.offline()
