import numpy as np
import pytest

from gankd_utils import checkpoint, cli
from gankd_utils.models import CondDCGANGenerator, IITGNGenerator


def test_parse_classes():
    assert cli.parse_classes("0-3,7, 9") == [0, 1, 2, 3, 7, 9]
    assert cli.parse_classes("5") == [5]
    with pytest.raises(ValueError, match="out of range 0..9"):
        cli.parse_classes("8-12", 10)
    with pytest.raises(ValueError, match="cannot read"):
        cli.parse_classes("three")
    with pytest.raises(ValueError, match="cannot read"):
        cli.parse_classes("5-2")
    with pytest.raises(ValueError, match="empty"):
        cli.parse_classes(" , ")
    with pytest.raises(ValueError, match="out of range"):
        cli.parse_classes("-1")


def test_sample_conditional(tmp_path):
    checkpoint.save_model(tmp_path / "G", CondDCGANGenerator(32))
    out = tmp_path / "s.npz"
    assert cli.main(["sample", "--checkpoint", str(tmp_path / "G.safetensors"), "--classes", "0-2",
                     "--per-class", "4", "--seed", "1", "--out", str(out), "--device", "cpu"]) == 0
    with np.load(out, allow_pickle=False) as f:
        assert f["images"].shape == (12, 28, 28, 1) and f["images"].dtype == np.uint8
        assert f["labels"].tolist() == [0] * 4 + [1] * 4 + [2] * 4
        first = f["images"].copy()
    # same seed, same images; the class-0 images do not depend on which other classes were asked for
    cli.main(["sample", "--checkpoint", str(tmp_path / "G"), "--classes", "0", "--per-class", "4",
              "--seed", "1", "--out", str(out), "--device", "cpu"])
    with np.load(out, allow_pickle=False) as f:
        assert np.array_equal(f["images"], first[:4])


def test_sample_unconditional_and_errors(tmp_path, capsys):
    checkpoint.save_model(tmp_path / "U", IITGNGenerator("student"))
    out = tmp_path / "u.npz"
    assert cli.main(["sample", "--checkpoint", str(tmp_path / "U"), "--n", "5", "--out", str(out),
                     "--device", "cpu"]) == 0
    with np.load(out, allow_pickle=False) as f:
        assert f["images"].shape == (5, 28, 28, 1)
    with pytest.raises(SystemExit, match="unconditional"):
        cli.main(["sample", "--checkpoint", str(tmp_path / "U"), "--classes", "0-9", "--out", str(out)])
    checkpoint.save_model(tmp_path / "C", CondDCGANGenerator(32))
    assert cli.main(["sample", "--checkpoint", str(tmp_path / "C"), "--classes", "0-10", "--out", str(out)]) == 2
    assert "out of range 0..9" in capsys.readouterr().err
    assert cli.main(["sample", "--checkpoint", str(tmp_path / "nothing"), "--out", str(out)]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_train_command_runs_in_resumable_chunks(tmp_path, mnist_train, _results_root, capsys):
    # the smoke IITGN student: pause after 2 steps, then resume to the end of its epoch
    args = ["train", "--chapter", "mnist", "--model", "iitgn_student_scratch", "--profile", "smoke",
            "--device", "cpu", "--quiet"]
    assert cli.main(args + ["--max-steps", "2"]) == 0
    assert "paused at step 2" in capsys.readouterr().out
    assert cli.main(args) == 0
    assert "finished at step 8" in capsys.readouterr().out
    assert cli.main(args) == 0
    assert "loaded (already finished)" in capsys.readouterr().out
    assert cli.main(["train", "--chapter", "mnist", "--model", "nope", "--profile", "smoke"]) == 2
