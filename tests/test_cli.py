"""The command line (gankd_utils.cli): sample, train, export and distill commands, their errors."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gankd_utils import checkpoint, cli, shards
from gankd_utils.models import CondDCGANGenerator, IITGNGenerator, TinyGANGenerator

REPO = Path(__file__).resolve().parents[1]
TINY = ["generator.ch=4", "generator.embed_dim=8", "discriminator.ch=4"]


def _cli(args, env=None, timeout=600):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    return subprocess.run([sys.executable, "-m", "gankd_utils"] + args, cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


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
    assert cli.main(["sample", "--checkpoint", str(tmp_path / "G"), "--classes", "0", "--per-class", "4",
                     "--seed", "1", "--out", str(out), "--device", "cpu", "--force"]) == 0
    with np.load(out, allow_pickle=False) as f:
        assert np.array_equal(f["images"], first[:4])


def test_sample_unconditional_and_errors(tmp_path, capsys):
    checkpoint.save_model(tmp_path / "U", IITGNGenerator("student"))
    out = tmp_path / "u.npz"
    assert cli.main(["sample", "--checkpoint", str(tmp_path / "U"), "--n", "5", "--out", str(out),
                     "--device", "cpu"]) == 0
    with np.load(out, allow_pickle=False) as f:
        assert f["images"].shape == (5, 28, 28, 1) and f["labels"].tolist() == [-1] * 5
    new = tmp_path / "new.npz"  # the errors below come before anything is written
    with pytest.raises(SystemExit, match="unconditional"):
        cli.main(["sample", "--checkpoint", str(tmp_path / "U"), "--classes", "0-9", "--out", str(new)])
    checkpoint.save_model(tmp_path / "C", CondDCGANGenerator(32))
    with pytest.raises(SystemExit, match="--per-class"):
        cli.main(["sample", "--checkpoint", str(tmp_path / "C"), "--n", "3", "--out", str(new), "--device", "cpu"])
    assert cli.main(["sample", "--checkpoint", str(tmp_path / "C"), "--classes", "0-10", "--out", str(new)]) == 2
    assert "out of range 0..9" in capsys.readouterr().err
    assert cli.main(["sample", "--checkpoint", str(tmp_path / "nothing"), "--out", str(new)]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    assert not new.exists()


def test_sample_checks_its_options_before_loading_the_model(tmp_path, capsys, monkeypatch):
    checkpoint.save_model(tmp_path / "C", CondDCGANGenerator(32))
    mine = tmp_path / "mine.npz"
    mine.write_bytes(b"someone's file")

    def no_load(*a, **k):
        raise AssertionError("the model was loaded before the options were checked")

    monkeypatch.setattr(checkpoint, "load_model", no_load)
    base = ["sample", "--checkpoint", str(tmp_path / "C"), "--device", "cpu"]
    out = ["--out", str(tmp_path / "s.npz")]
    for extra, said in ((["--per-class", "0"], "--per-class must be >= 1, got 0"),
                        (["--per-class", "-3"], "--per-class must be >= 1, got -3"),
                        (["--n", "0"], "--n must be >= 1, got 0"),
                        (["--batch-size", "0"], "--batch-size must be >= 1, got 0"),
                        (["--device", "tpu"], "--device 'tpu' is not a device: use auto"),
                        (["--classes", "three"], "cannot read class list"),
                        (["--out", str(tmp_path / "s.png")], "--out must end in .npz"),
                        (["--out", str(mine)], "exists already: give another name, or --force")):
        assert cli.main(base + out + extra) == 2, extra
        assert said in capsys.readouterr().err, extra
    if not torch.cuda.is_available():
        assert cli.main(base + out + ["--device", "cuda"]) == 2
        assert "CUDA is not available here" in capsys.readouterr().err
    assert mine.read_bytes() == b"someone's file" and not (tmp_path / "s.npz").exists()
    monkeypatch.undo()
    assert cli.main(base + ["--out", str(mine), "--classes", "1", "--per-class", "2", "--force"]) == 0
    with np.load(mine, allow_pickle=False) as f:
        assert f["labels"].tolist() == [1, 1]


def test_train_command_runs_in_resumable_chunks(tmp_path, mnist_train, capsys, monkeypatch):
    # the smoke IITGN student: pause after 2 steps, then resume to the end of its epoch (in a results folder of
    # its own: other tests may have finished the same smoke run in the session's folder)
    monkeypatch.setenv("GANKD_RESULTS", str(tmp_path / "results"))
    args = ["train", "--dataset", "mnist", "--model", "iitgn_student_scratch", "--profile", "smoke",
            "--device", "cpu", "--quiet"]
    assert cli.main(args + ["--max-steps", "2"]) == 0
    assert "paused at step 2" in capsys.readouterr().out
    assert cli.main(args + ["--budget-s", "0"]) == 0  # a time budget: one step, then saved and paused
    assert "paused at step 3" in capsys.readouterr().out
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "finished at step 8" in out
    run = tmp_path / "results" / "03_mnist" / "runs" / "smoke-seed0" / "iitgn_student_scratch"
    assert str(run) in out and checkpoint.is_finished(run)  # the folder notebook 03 reads
    assert cli.main(args) == 0
    assert "loaded (already finished)" in capsys.readouterr().out
    assert cli.main(["train", "--chapter", "mnist", "--model", "nope", "--profile", "smoke"]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err


def test_train_command_online_kd_student_learns_from_the_teacher_of_teacher_seed(tmp_path, mnist_train, capsys,
                                                                                 monkeypatch):
    monkeypatch.setenv("GANKD_RESULTS", str(tmp_path / "results"))
    base = ["train", "--dataset", "mnist", "--profile", "smoke", "--device", "cpu", "--quiet"]
    kd = base + ["--model", "iitgn_student_kd", "--seed", "1"]
    # no finished teacher: a clear error that says how to train it, and nothing written for the student
    assert cli.main(kd + ["--teacher-seed", "0"]) == 2
    err = capsys.readouterr().err
    assert "iitgn_teacher has not finished" in err and "--model iitgn_teacher --profile smoke --seed 0" in err
    runs_root = tmp_path / "results" / "03_mnist" / "runs"
    assert not (runs_root / "smoke-seed1" / "iitgn_student_kd").exists()
    assert cli.main(base + ["--model", "iitgn_teacher", "--seed", "0"]) == 0
    capsys.readouterr()
    assert cli.main(kd) == 2  # by default the teacher of the student's own seed, which does not exist
    assert "iitgn_teacher has not finished in" in capsys.readouterr().err
    assert cli.main(kd + ["--teacher-seed", "0"]) == 0  # seed 1's student learns from seed 0's teacher
    assert "finished at step 8" in capsys.readouterr().out
    assert checkpoint.is_finished(runs_root / "smoke-seed1" / "iitgn_student_kd")
    assert not (runs_root / "smoke-seed1" / "iitgn_teacher").exists()


def test_train_command_needs_a_teacher_set_for_black_box_kd(cifar_root, capsys):
    assert cli.main(["train", "--dataset", "cifar10", "--model", "cgan_student_xs_kd", "--profile", "smoke",
                     "--device", "cpu", "--quiet"]) == 2
    assert "pass --teacher-set DIR" in capsys.readouterr().err


def test_export_request_errors(tmp_path, capsys):
    # exit code 2 and the message, before any model is loaded
    base = ["export", "--teacher", "biggan", "--per-class", "2", "--out", str(tmp_path / "b")]
    assert cli.main(base + ["--classes", "0-1000"]) == 2
    assert "out of range 0..999" in capsys.readouterr().err
    assert cli.main(base + ["--truncation", "0"]) == 2
    assert "truncation must lie in (0, 1]" in capsys.readouterr().err
    assert cli.main(base + ["--handle", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "could not be fetched" in err and "GANKD_BIGGAN_HANDLE" in err
    assert cli.main(["export", "--teacher", "checkpoint", "--per-class", "2", "--out", str(tmp_path / "c")]) == 2
    assert "needs --checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()
    if not torch.cuda.is_available():  # the package's clear message, not a traceback
        assert cli.main(base + ["--device", "cuda"]) == 2
        assert "CUDA is not available here; use auto or cpu" in capsys.readouterr().err
    (tmp_path / "file").write_text("mine")
    assert cli.main(["export", "--teacher", "biggan", "--per-class", "2", "--out", str(tmp_path / "file")]) == 2
    assert "is a file, not a folder: give --out a new folder" in capsys.readouterr().err
    assert (tmp_path / "file").read_text() == "mine"


def test_export_command_with_a_checkpoint_teacher(tmp_path, capsys):
    torch.manual_seed(0)
    ckpt = checkpoint.save_model(tmp_path / "G", CondDCGANGenerator(32))
    args = ["export", "--teacher", "checkpoint", "--checkpoint", str(ckpt), "--classes", "1,3", "--per-class", "3",
            "--shard-size", "4", "--batch-size", "2", "--out", str(tmp_path / "set"), "--device", "cpu"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "2 shards, complete; this run wrote 2 (6 images" in out
    m = shards.check_complete(tmp_path / "set")
    assert m["classes"] == [1, 3] and m["count"] == 6
    assert cli.main(args) == 0
    assert "this run wrote 0 (0 images), kept 2" in capsys.readouterr().out
    checkpoint.save_model(tmp_path / "U", IITGNGenerator("student"))
    assert cli.main(["export", "--teacher", "checkpoint", "--checkpoint", str(tmp_path / "U.safetensors"),
                     "--classes", "0", "--per-class", "2", "--out", str(tmp_path / "u"), "--device", "cpu"]) == 2
    assert "unconditional: drop --classes" in capsys.readouterr().err


def test_an_incomplete_export_advises_a_check_that_generates_nothing(tmp_path, capsys):
    torch.manual_seed(0)
    ckpt = checkpoint.save_model(tmp_path / "G", CondDCGANGenerator(32))
    out = tmp_path / "set"
    args = ["export", "--teacher", "checkpoint", "--checkpoint", str(ckpt), "--classes", "1,3", "--per-class", "3",
            "--shard-size", "2", "--batch-size", "2", "--out", str(out), "--device", "cpu"]
    assert cli.main(args + ["--worker", "0", "--workers", "2"]) == 0
    said = capsys.readouterr().out
    assert "rerun without" not in said  # a rerun would generate the other workers' shards too
    assert f"check with: python -m gankd_utils export --check --out {out}" in said
    before = sorted(p.name for p in out.iterdir())
    assert cli.main(["export", "--check", "--out", str(out)]) == 1  # the advice, as given: no teacher needed
    assert "incomplete, 1 shard(s) missing: shard_00001.npz" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == before  # nothing generated
    assert cli.main(args + ["--worker", "1", "--workers", "2"]) == 0
    capsys.readouterr()
    assert cli.main(["export", "--check", "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"{out}: complete"
    shard = out / "shard_00000.npz"
    shard.write_bytes(shard.read_bytes()[:300])  # truncated after the export: present, not whole
    assert cli.main(["export", "--check", "--out", str(out)]) == 1
    assert "1 shard(s) damaged: shard_00000.npz; delete them and run the export again" in capsys.readouterr().out
    assert cli.main(["export", "--check", "--out", str(tmp_path / "nothing")]) == 2
    assert "no manifest.json" in capsys.readouterr().err
    assert cli.main(["export", "--out", str(tmp_path / "x")]) == 2
    assert "needs --teacher and --per-class (or --check" in capsys.readouterr().err
    assert not (tmp_path / "nothing").exists() and not (tmp_path / "x").exists()


def test_distill_command_runs_on_a_tiny_shard_set(tmp_path, teacher_set):
    cfg_file = tmp_path / "run.json"
    cfg_file.write_text(json.dumps({"name": "cli", "teacher_set": str(teacher_set), "out": str(tmp_path / "run"),
                                    "train": {"epochs": 1, "batch_size": 8, "log_every": 2, "sample_every": 4}}))
    r = _cli(["distill", "--config", str(cfg_file), "--quiet"] + TINY)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "finished at step 10" in r.stdout
    run = tmp_path / "run"
    G = checkpoint.load_model(run / "G")
    assert isinstance(G, TinyGANGenerator) and G.hparams["resolution"] == 32 and G.n_classes == 10
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 5
    assert (run / "samples" / "step_0000004.png").exists() and (run / "samples" / "epoch_000.png").exists()
    bad = _cli(["distill", "teacher_set=" + str(tmp_path / "nowhere")])
    assert bad.returncode == 2 and "export one first" in bad.stderr
    none = _cli(["distill"])
    assert none.returncode == 2 and "teacher_set is not set" in none.stderr


def test_report_command(tmp_path, capsys):
    assert cli.main(["report", "--results", str(tmp_path)]) == 0
    assert "REPORT.md" in capsys.readouterr().out and (tmp_path / "REPORT.md").exists()


def test_run_and_report_take_only_profile_names_and_notebooks_that_exist(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GANKD_RESULTS", str(tmp_path))
    for cmd in (["run"], ["report"]):
        with pytest.raises(SystemExit) as e:
            cli.main(cmd + ["--profile", "foo"])
        assert e.value.code == 2 and "invalid choice: 'foo'" in capsys.readouterr().err
        monkeypatch.setenv("PROFILE", "fast")  # the same name through the environment
        assert cli.main(cmd) == 2
        assert "PROFILE='fast' is not a profile: choose one of smoke, quick, full" in capsys.readouterr().err
        monkeypatch.delenv("PROFILE")
    assert cli.main(["run", "--profile", "smoke", "--only", "03", "99"]) == 2
    err = capsys.readouterr().err
    assert "--only 99 matches no notebook" in err and "03_mnist_dcgan_kd.ipynb" in err
    assert list(tmp_path.iterdir()) == []  # no results/foo/, results/fast/ or results/smoke/executed/ made


def test_score_command_scores_finished_runs_alike_and_paused_ones_only_when_asked(tmp_path, mnist_train, capsys,
                                                                                 monkeypatch):
    monkeypatch.setenv("GANKD_RESULTS", str(tmp_path / "results"))
    base = ["--dataset", "mnist", "--profile", "smoke", "--device", "cpu"]
    score = ["score", *base, "--n-samples", "40", "--weights", "train"]
    # nothing trained yet: the error names the run and the command that trains it, and nothing is written
    assert cli.main(score + ["--model", "cdcgan_c32bias_scratch"]) == 2
    err = capsys.readouterr().err
    assert "cdcgan_c32bias_scratch has not finished" in err
    assert "train --dataset mnist --model cdcgan_c32bias_scratch --profile smoke --seed 0" in err
    assert "learn from the shipped teacher" not in err  # that remedy is a teacher's
    assert cli.main(score + ["--model", "cdcgan_c32_nope"]) == 2
    assert "unknown model(s) ['cdcgan_c32_nope']" in capsys.readouterr().err
    # --paused: a run still training is scored at its last checkpoint, and says so; without it, refused
    assert cli.main(score + ["--model", "cdcgan_c32bias_scratch", "--paused"]) == 2
    assert "has no checkpoint" in capsys.readouterr().err
    assert cli.main(["train", *base, "--model", "cdcgan_c32bias_scratch", "--max-steps", "3", "--quiet"]) == 0
    assert cli.main(score + ["--model", "cdcgan_c32bias_scratch"]) == 2
    assert "has not finished" in capsys.readouterr().err
    paused_json = tmp_path / "paused.json"
    assert cli.main(score + ["--model", "cdcgan_c32bias_scratch", "--paused", "--json", str(paused_json)]) == 0
    out = capsys.readouterr().out
    assert "| 3 (paused) |" in out and "paused: cdcgan_c32bias_scratch, scored at the last checkpoint" in out
    row = json.loads(paused_json.read_text())["rows"][0]
    assert row["steps"] == 3 and row["finished"] is False
    for seed in ("0", "1"):  # an ablation of chapter 03 trains and scores like the walk's models
        assert cli.main(["train", *base, "--model", "cdcgan_c32bias_scratch", "--seed", seed, "--quiet"]) == 0
    capsys.readouterr()
    out_json = tmp_path / "score.json"
    assert cli.main(score + ["--model", "cdcgan_c32bias_scratch", "--seeds", "0", "1", "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "40 samples per model, noise and labels from seed 0" in out
    assert "| cdcgan_c32bias_scratch |" in out and "| cdcgan_c32bias_scratch@1 |" in out
    got = json.loads(out_json.read_text())
    assert got["n_samples"] == 40 and [r["model"] for r in got["rows"]] == ["cdcgan_c32bias_scratch",
                                                                             "cdcgan_c32bias_scratch@1"]
    assert all(r["finished"] for r in got["rows"]) and "(paused)" not in out
    acc = [k for k in got["rows"][0] if k.startswith("acc40_")]
    assert acc and all(0 <= r[acc[0]] <= 1 for r in got["rows"])
    # the seeds' generators differ, so do their scores; the same run scored again gives the same numbers
    fid = next(k for k in got["rows"][0] if k.startswith("fid40_"))
    assert got["rows"][0][fid] != got["rows"][1][fid]
    assert got["rows"][0][fid] != row[fid]  # the finished run of seed 0 is not its checkpoint at step 3
    sheet = tmp_path / "figs" / "sheet"
    assert cli.main(score + ["--model", "cdcgan_c32bias_scratch", "--json", str(out_json), "--figure", str(sheet)]) == 0
    assert json.loads(out_json.read_text())["rows"][0][fid] == got["rows"][0][fid]
    assert "sheet.png" in capsys.readouterr().out
    from PIL import Image
    with Image.open(sheet.with_suffix(".png")) as im:  # one panel of 4 rows x 10 digits: wider than tall
        assert im.width > im.height > 50
    assert sheet.with_suffix(".pdf").stat().st_size > 1000
    # a figure path with another suffix is refused before anything loads or is written
    assert cli.main(score + ["--model", "cdcgan_c32bias_scratch", "--figure", str(tmp_path / "x.jpg")]) == 2
    assert "--figure takes a path without suffix" in capsys.readouterr().err
    assert not (tmp_path / "x.jpg").exists() and not (tmp_path / "x.png").exists()


def test_one_command_line_for_every_job(tmp_path, capsys):
    # every command is a subcommand of the one parser (STYLE: no argparse in the package outside cli.py), so
    # `python -m gankd_utils --help` lists them all and each fails the same way, "error: ..." and exit status 2
    pkg = REPO / "gankd_utils"
    parsers = sorted(p.relative_to(pkg).as_posix() for p in pkg.rglob("*.py") if "argparse" in p.read_text())
    assert parsers == ["cli.py"]
    sub = next(a for a in cli.build_parser()._actions if a.dest == "command")
    assert {"run", "full-run", "datapack", "weights"} <= set(sub.choices)
    for argv, err in ((["full-run"], "error: give --stage (or --unpack DIR)"),
                      (["full-run", "--stage", "mnist", "--profile", "smoke", "--only", "nope"],
                       "error: --only nope: stage mnist trains"),
                      (["datapack", "unpack", str(tmp_path / "none")], "error: "),
                      (["datapack", "pack", "--out", str(tmp_path / "p"), "--part-mib", "0"], "error: ")):
        assert cli.main(argv) == 2, argv
        assert err in capsys.readouterr().err, argv
    assert not (tmp_path / "p").exists()  # a refused pack writes nothing
    with pytest.raises(SystemExit):
        cli.main(["weights"])  # a subcommand of weights is required
    assert "verify" in capsys.readouterr().err
