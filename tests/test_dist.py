"""Data parallel without a framework (gankd_utils.dist): one process does nothing, two on the CPU agree (gloo)."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gankd_utils import checkpoint, dist

REPO = Path(__file__).resolve().parents[1]
TINY = ["generator.ch=4", "generator.embed_dim=8", "discriminator.ch=4"]


def test_one_process_is_not_distributed(monkeypatch):
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    d = dist.from_env()
    assert d == dist.Dist() and not d.enabled and d.is_main
    t = torch.ones(3)
    assert d.mean(t) is t and torch.equal(t, torch.ones(3)) and d.gather({"a": 1}) == [{"a": 1}]
    p = torch.nn.Parameter(torch.ones(2))
    p.grad = torch.full((2,), 4.0)
    d.sync_grads([p])
    d.broadcast_module(torch.nn.Linear(2, 2))
    d.barrier()
    assert torch.equal(p.grad, torch.full((2,), 4.0))
    d2, dev = dist.setup("cpu")
    assert d2 == d and dev == torch.device("cpu")
    dist.teardown(d2)


def test_launcher_environment(monkeypatch):
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    d = dist.from_env()
    assert (d.rank, d.world, d.local_rank, d.enabled, d.is_main) == (3, 4, 1, True, False)


def _cli(args, launcher):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(launcher + ["-m", "gankd_utils"] + args, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)


def test_two_process_data_parallel_run_on_cpu(tmp_path, teacher_set):
    run = tmp_path / "ddp"
    args = ["distill", f"teacher_set={teacher_set}", f"out={run}", "train.epochs=2", "train.batch_size=4",
            "train.ckpt_every=3", "device=cpu", "--quiet"] + TINY
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    r = _cli(args, launcher)
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-3000:])
    assert r.stdout.count("finished at step") == 1  # only rank 0 reports
    assert "finished at step 20 (2 process(es)" in r.stdout  # 80 images / (4 x 2 ranks) x 2 epochs
    weights = sorted(p.relative_to(run).as_posix() for p in run.rglob("*.safetensors"))
    assert weights == ["D.safetensors", "G.safetensors", "state/D.safetensors", "state/G.safetensors"]
    side = json.loads((run / "G.json").read_text())
    assert side["world_size"] == 2 and [s["world_size"] for s in side["training"]["segments"]] == [2]
    assert len(checkpoint.load_state(run / "state" / "state.pt")["rng_ranks"]) == 1
    # resuming with another number of processes is refused with a clear message
    one = _cli(["distill", f"teacher_set={teacher_set}", f"out={run}", "train.epochs=2", "train.batch_size=4",
                "device=cpu"] + TINY, [sys.executable])
    assert one.returncode == 2 and "same number of processes" in one.stderr


FAILING_RANK = """
import sys
import torch
from gankd_utils import distill


def train_blackbox(G, D, source, tcfg, out, device, real=None, resume=True, progress=True, dist=None):
    if dist.rank == 1:
        raise RuntimeError("rank 1 failed on purpose")
    dist.mean(torch.ones(1))  # rank 0 goes on to its next collective, as a training does
    return {"steps": 0, "finished": False, "history": {}, "seconds": 0.0}


distill.train_blackbox = train_blackbox
distill.run(distill.load_config(None, sys.argv[1:]), progress=False)
"""


def test_a_failing_rank_ends_the_run_with_its_error(tmp_path, teacher_set):
    """One rank raising must not leave it waiting in a final barrier: it exits with its traceback, and the
    launcher stops the run with a failure (before, both ranks waited for ever)."""
    script = tmp_path / "fail.py"
    script.write_text(FAILING_RANK)
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    # a session of its own: a hang is ended with every rank, not only the launcher
    p = subprocess.Popen(launcher + [str(script), f"teacher_set={teacher_set}", f"out={tmp_path / 'run'}",
                                     "train.batch_size=4", "device=cpu"] + TINY,
                         cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = p.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        pytest.fail("a rank that raised left the run hanging")
    assert p.returncode != 0
    assert "rank 1 failed on purpose" in output
