"""Where gankd reads and writes (gankd_utils.paths): every location is one environment variable."""
from pathlib import Path

import pytest

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


def test_each_profile_but_full_writes_its_chapters_in_a_folder_of_its_own(tmp_path, monkeypatch):
    monkeypatch.setenv("GANKD_RESULTS", str(tmp_path / "r"))
    assert paths.profile_root("full") == tmp_path / "r"  # the committed record of the walk
    assert paths.profile_root("quick") == tmp_path / "r" / "quick"
    d = paths.chapter_dir("03_mnist", "smoke", "ckpt")
    assert d == tmp_path / "r" / "smoke" / "03_mnist" / "ckpt" and d.is_dir()
    assert paths.chapter_dir("03_mnist", "full") == tmp_path / "r" / "03_mnist"
    for bad in ("", "../elsewhere", ".hidden", "a/b", "fast", "Full"):
        with pytest.raises(ValueError, match="not a profile name: choose one of smoke, quick, full"):
            paths.profile_root(bad)
    with pytest.raises(ValueError, match="'fast' is not a profile name"):
        paths.chapter_dir("06_compare", "fast")  # a typo makes no folder
    assert not (tmp_path / "elsewhere").exists() and not (tmp_path / "r" / "fast").exists()


def test_shown_names_no_machine_folders(tmp_path, monkeypatch):
    monkeypatch.delenv("GANKD_RESULTS", raising=False)
    assert paths.shown(paths.REPO_ROOT / "results" / "weights") == "results/weights"
    monkeypatch.setenv("GANKD_RESULTS", str(tmp_path / "r"))
    assert paths.shown(tmp_path / "r" / "03_mnist" / "runs") == "03_mnist/runs"  # relative to the results root
    monkeypatch.delenv("GANKD_TEACHERS", raising=False)
    monkeypatch.delenv("GANKD_DATA_ROOT", raising=False)
    assert paths.shown(tmp_path / "elsewhere") == str(tmp_path / "elsewhere")
    # a teacher set or a data file outside the project: named by the setting that points there
    monkeypatch.setenv("GANKD_TEACHERS", str(tmp_path / "t"))
    monkeypatch.setenv("GANKD_DATA_ROOT", str(tmp_path / "d"))
    assert paths.shown(tmp_path / "t" / "cifar10_cgan_teacher_full_s0") == "$GANKD_TEACHERS/cifar10_cgan_teacher_full_s0"
    assert paths.shown(tmp_path / "t") == "$GANKD_TEACHERS"
    assert paths.shown(tmp_path / "d" / "cifar10" / "test.npz") == "$GANKD_DATA_ROOT/cifar10/test.npz"
    assert paths.shown(tmp_path / "elsewhere") == str(tmp_path / "elsewhere")


@pytest.mark.parametrize("empty", ["", "   "])
def test_an_empty_setting_counts_as_unset(monkeypatch, empty):
    """``GANKD_RESULTS=`` (an empty line of a .env file) would otherwise mean the current folder."""
    for var in ("GANKD_DATA_ROOT", "GANKD_TEACHERS", "GANKD_RESULTS", "GANKD_WEIGHTS"):
        monkeypatch.setenv(var, empty)
    assert paths.data_root() == paths.REPO_ROOT / "data"
    assert paths.teachers_dir() == paths.REPO_ROOT / "data" / "teachers"
    assert paths.results_root() == paths.REPO_ROOT / "results"
    from gankd_utils import weights
    assert weights.weights_root() == paths.REPO_ROOT / "results" / "weights"
    assert paths.setting("GANKD_RESULTS") is None
    monkeypatch.setenv("GANKD_RESULTS", " /somewhere ")
    assert paths.setting("GANKD_RESULTS") == "/somewhere" and paths.results_root() == Path("/somewhere")
