"""The fast path on a CUDA GPU: bf16 autocast, fused Adam, device noise, resume, torch.compile, channels_last.

Every test here skips without CUDA (CI has no GPU); on a GPU machine run ``pytest tests/test_cuda.py``
before a long run. CPU behaviour of the same code is in test_runstate, test_recipes and test_train.
"""
from __future__ import annotations

import math
import warnings

import pytest
import torch
from builders import bb_cfg, bb_pair, cfg, cond_pair, teacher_set, tiny_set

from gankd_utils import checkpoint, recipes, runstate
from gankd_utils.runstate import RunState, cuda_bf16
from gankd_utils.train import train_blackbox, train_gan

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
CUDA = torch.device("cuda")


def test_the_fast_path_is_on_by_default_and_uses_the_gpu():
    G, D = cond_pair()
    run = RunState(G.to(CUDA), D.to(CUDA), cfg(), CUDA)
    assert run.fast and run.noise.device.type == "cuda" and run.opt_g.defaults.get("fused")
    assert run.amp_dtype == (torch.bfloat16 if cuda_bf16(CUDA) else torch.float16)
    before = torch.backends.cuda.matmul.allow_tf32
    with run.precision():
        assert torch.backends.cuda.matmul.allow_tf32
    assert torch.backends.cuda.matmul.allow_tf32 == before
    z, y = run.sample_zy(8)
    assert z.device.type == "cuda" and y.device.type == "cuda"


def test_training_on_cuda_is_finite_and_resumes_on_the_same_streams(tmp_path, capsys):
    full = train_gan(*cond_pair(), tiny_set(), cfg(max_steps=6, epochs=2), tmp_path / "a", "cuda", progress=False)
    train_gan(*cond_pair(), tiny_set(), cfg(max_steps=3, epochs=2), tmp_path / "b", "cuda", progress=False)
    res = train_gan(*cond_pair(), tiny_set(), cfg(max_steps=6, epochs=2), tmp_path / "b", "cuda", progress=False)
    a, b = full["history"], res["history"]
    assert a["step"] == b["step"] and a["epoch"] == b["epoch"]  # the same data order, one row per step
    assert all(math.isfinite(v) for v in a["d_loss"] + a["g_loss"])
    # bf16 and cuDNN's kernel choice: close, not bitwise
    assert b["d_loss"] == pytest.approx(a["d_loss"], rel=0.05, abs=0.05)
    # the noise stream itself continued: the GPU generator's state (seed and offset) at step 6 is the
    # uninterrupted run's, not a reseeded one
    sa, sb = (checkpoint.load_state(tmp_path / r / "state" / "state.pt")["rng"] for r in ("a", "b"))
    assert sa["noise_kind"] == sb["noise_kind"] == "cuda" and torch.equal(sa["noise"], sb["noise"])
    assert "cannot continue" not in capsys.readouterr().err


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_a_run_saved_off_the_fast_path_resumes_on_it_in_the_other_layout(tmp_path, monkeypatch, dtype):
    # fp16 + gradient scaler is the path of a GPU without native bf16; forced here on any GPU
    monkeypatch.setattr(runstate, "amp_dtype", lambda c, d: dtype if runstate.fast_enabled(c, d) else None)
    train_blackbox(*bb_pair(), teacher_set(), bb_cfg(max_steps=3, epochs=3, fast="off"), tmp_path / "r", "cuda",
                   progress=False)
    G, D = bb_pair()
    res = train_blackbox(G, D, teacher_set(), bb_cfg(max_steps=6, epochs=3, channels_last=True), tmp_path / "r", "cuda",
                         progress=False)
    assert res["resumed"] and res["steps"] == 6 and res["fast"]
    assert all(math.isfinite(v) for v in res["history"]["g_loss"] + res["history"]["d_loss"])
    assert next(p for p in G.parameters() if p.ndim == 4).is_contiguous(memory_format=torch.channels_last)
    run = RunState(*(m.to(CUDA) for m in bb_pair()), bb_cfg(max_steps=6, epochs=3), CUDA)
    checkpoint.load_resume(tmp_path / "r", run)  # fused Adam's step counts on the GPU, its moments in G's layout
    assert run.opt_g.param_groups[0]["fused"] and all(
        st["step"].device.type == "cuda" and st["exp_avg"].stride() == p.stride() for p, st in run.opt_g.state.items())


def test_a_training_step_never_waits_for_the_host():
    # the fast path's promise: logged values stay on the GPU; nothing per step copies to or from the host
    for pair, config, batch_of in ((cond_pair, cfg(), lambda ts: (ts.images[:16], ts.labels[:16])),
                                   (bb_pair, bb_cfg(diffaug="color,translation,cutout"),
                                    lambda ts: (ts.images[:8], ts.labels[:8], ts.z[:8]))):
        run = RunState(*(m.to(CUDA) for m in pair()), config, CUDA)
        ts = tiny_set() if pair is cond_pair else teacher_set()
        x, y, *z = batch_of(ts)
        batch = (x.to(CUDA).float() / 127.5 - 1, y.to(CUDA), *(t.to(CUDA) for t in z))
        step = recipes.step_for(config)
        with run.precision():
            for i in range(3):  # warm-up (cuDNN's choices, lazy inits)
                run.log(step(run, batch, i % config.n_critic == 0))
            torch.cuda.synchronize()
            torch.cuda.set_sync_debug_mode("error")
            try:
                for i in range(4):
                    run.log(step(run, batch, i % config.n_critic == 0))
            finally:
                torch.cuda.set_sync_debug_mode("default")
        assert len(run.flush()) == 7


def test_blackbox_kd_on_cuda_with_the_real_branch(tmp_path):
    G, D = bb_pair()
    real = teacher_set(seed=5)
    res = train_blackbox(G, D, teacher_set(), bb_cfg(max_steps=3, diffaug="color,translation,cutout"),
                         tmp_path / "bb", "cuda", real=real, progress=False)
    h = res["history"]
    assert len(h["g_loss"]) == 3 and all(math.isfinite(v) for v in h["g_loss"] + h["d_realbranch"])


def test_compile_and_channels_last_on_cuda(tmp_path):
    eager = train_blackbox(*bb_pair(), teacher_set(), bb_cfg(max_steps=3), tmp_path / "e", "cuda",
                           progress=False)["history"]
    with_switches = bb_cfg(max_steps=3, compile="on", channels_last=True)
    G, D = bb_pair()
    res = train_blackbox(G, D, teacher_set(), with_switches, tmp_path / "c", "cuda", progress=False)
    assert next(p for p in G.parameters() if p.ndim == 4).is_contiguous(memory_format=torch.channels_last)
    assert res["history"]["kd_pixel"][0] == pytest.approx(eager["kd_pixel"][0], rel=0.05)
    run = RunState(*(m.to(CUDA) for m in bb_pair()), with_switches, CUDA)
    ts = teacher_set()
    batch = (ts.images[:8].to(CUDA).float() / 127.5 - 1, ts.labels[:8].to(CUDA), ts.z[:8].to(CUDA))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        recipes.blackbox_kd_step(run, batch, True)
    assert not [str(w.message) for w in caught if "torch.compile of" in str(w.message)]
    assert run.g.failed is None  # inductor compiled G on this GPU
    assert run.d is run.D  # the spectrally normalised D runs eagerly (see runstate)
