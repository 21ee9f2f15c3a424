"""What a run carries between steps (gankd_utils.runstate): RunState, FeatureAdapter, the fast-path switch."""
import math
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from gankd_utils import config, repro
from gankd_utils.models import CondDCGANDiscriminator, CondDCGANGenerator, IITGNDiscriminator, IITGNGenerator
from gankd_utils.models.layers import dcgan_init
from gankd_utils.runstate import (FeatureAdapter, RunState, amp_dtype, autocast_in, fast_enabled, noise_kind,
                                  standing_model)

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def cfg(seed=0, **kw):
    return config.settings("mnist", "smoke", seed, train={"n_train": None, "batch_size": 8, **kw}).train


def cond_run(seed=0, **kw):
    G, D = dcgan_init(CondDCGANGenerator(32), 0), dcgan_init(CondDCGANDiscriminator(4), 1)
    return RunState(G, D, cfg(seed, **kw), CPU)


def test_fast_enabled():
    assert fast_enabled(cfg(fast="auto"), CUDA) and not fast_enabled(cfg(fast="auto"), CPU)
    assert fast_enabled(cfg(fast="on"), CPU) and fast_enabled(cfg(fast="on"), CUDA)
    assert not fast_enabled(cfg(fast="off"), CUDA) and not fast_enabled(cfg(fast="off"), CPU)
    with pytest.raises(ValueError, match="fast must be 'auto', 'on' or 'off', got 'true'"):
        fast_enabled(cfg(fast="true"), CPU)


def test_the_precision_of_a_run():
    assert amp_dtype(cfg(fast="auto"), CPU) is None and amp_dtype(cfg(fast="on"), CPU) == torch.bfloat16
    assert amp_dtype(cfg(fast="off"), CUDA) is None
    with autocast_in(amp_dtype(cfg(fast="off"), CPU), CPU):
        assert not torch.is_autocast_enabled("cpu")
    with autocast_in(amp_dtype(cfg(fast="on"), CPU), CPU):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16



@pytest.mark.parametrize("capability, dtype", [((7, 5), torch.float16), ((7, 0), torch.float16),
                                               ((8, 0), torch.bfloat16), ((9, 0), torch.bfloat16)])
def test_a_gpu_that_only_emulates_bf16_trains_in_fp16(monkeypatch, capability, dtype):
    # a T4 (7.5) or V100 (7.0): torch.cuda.is_bf16_supported() says yes there (emulation counts by default)
    asked = []
    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: asked.append(d) or capability)
    assert amp_dtype(cfg(fast="auto"), torch.device("cuda", 1)) == dtype
    assert asked == [torch.device("cuda", 1)]  # the training device's own, not the current device's


def test_two_ranks_with_a_gradient_scaler_skip_an_overflowing_step_alike(tmp_path):
    # fp16 on several GPUs: one rank's gradients overflow. The scaler must judge the averaged gradients, or the
    # rank that found no inf steps on the inf the average brought it, and the ranks' weights and scales part
    script = tmp_path / "ranks.py"
    script.write_text(textwrap.dedent('''
        import os, sys, types, torch, torch.distributed as td
        from gankd_utils.dist import Dist
        from gankd_utils.runstate import RunState
        rank = int(sys.argv[1])
        td.init_process_group("gloo", init_method="file://" + sys.argv[2], rank=rank, world_size=2)
        torch.manual_seed(0)
        lin = torch.nn.Linear(4, 1)
        opt = torch.optim.Adam(lin.parameters(), lr=1e-3)
        run = types.SimpleNamespace(scaler=torch.amp.GradScaler("cpu"), dist=Dist(rank, 2))
        x = torch.ones(2, 4) * (1e38 if rank == 0 else 1.0)  # rank 0's scaled gradients overflow
        RunState.backward_step(run, lin(x).sum(), opt)
        print(bool(torch.isfinite(lin.weight).all()), run.scaler.get_scale(), float(lin.weight.sum()))
        td.destroy_process_group()
    '''))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, str(script), str(r), str(tmp_path / "rdv")], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for r in (0, 1)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    finite, scale, total = zip(*(o[0].split() for o in outs))
    assert finite == ("True", "True")  # both skipped the step
    assert scale[0] == scale[1] == "32768.0" and total[0] == total[1]


def test_tf32_holds_only_while_a_gpu_run_trains():
    # set for good, it made whatever the process ran after a training (scores, timings) compute in TF32
    from gankd_utils.runstate import tf32

    flags = lambda: (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)  # noqa: E731
    before = flags()
    with tf32(True):
        assert flags() == (True, True)
    assert flags() == before
    with pytest.raises(KeyError):
        with tf32(True):
            raise KeyError("a step failed")
    assert flags() == before
    run = cond_run(fast="on")  # the CPU's fast path: no TF32 to set
    with run.precision():
        assert flags() == before


def test_cpu_runs_off_and_on_the_fast_path():
    slow = cond_run()  # auto on the CPU: off
    assert not slow.fast and slow.amp_dtype is None and slow.scaler is None
    assert slow.noise.device.type == "cpu"
    assert not slow.opt_g.defaults.get("fused")
    with slow.autocast():
        assert not torch.is_autocast_enabled("cpu")
    with pytest.warns(UserWarning, match="pays only on a CPU with bf16 instructions"):  # it depends on the CPU
        fast = cond_run(fast="on")  # bf16 autocast on the CPU, noise still from a CPU generator
    assert fast.fast and fast.amp_dtype == torch.bfloat16 and fast.scaler is None
    assert fast.noise.device.type == "cpu" and not fast.opt_g.defaults.get("fused")
    with fast.autocast():
        assert torch.is_autocast_enabled("cpu")


@pytest.mark.parametrize("has_bf16", [False, True, None])
def test_fast_on_a_cpu_without_bf16_instructions_says_so(monkeypatch, has_bf16):
    # bf16 on a CPU that emulates it costs 4-25x: the warning names this CPU's lack and the remedy
    monkeypatch.setattr(repro, "cpu_bf16", lambda *a: has_bf16)
    with pytest.warns(UserWarning, match="pays only on a CPU with bf16 instructions") as said:
        cond_run(fast="on")
    text = " ".join(str(w.message) for w in said)
    assert ("this one lists none" in text and "--fast off" in text) == (has_bf16 is False)


def test_feature_adapter():
    a = FeatureAdapter(64, 128)
    assert a.hparams == {"c_in": 64, "c_out": 128} and a(torch.randn(2, 64, 7, 7)).shape == (2, 128, 7, 7)
    T, S = IITGNGenerator("teacher"), IITGNGenerator("student")
    run = RunState(S, IITGNDiscriminator(), cfg(**config.IITGN), CPU, teacher=T, adapter=True)
    assert isinstance(run.adapter, FeatureAdapter) and run.adapter.hparams == {"c_in": 64, "c_out": 128}
    # the adapter learns with G: its parameters are in G's optimizer
    g_params = {id(p) for group in run.opt_g.param_groups for p in group["params"]}
    assert all(id(p) in g_params for p in run.adapter.parameters())
    same = RunState(S, IITGNDiscriminator(), cfg(**config.IITGN), CPU, teacher=IITGNGenerator("student"), adapter=True)
    assert same.adapter is None  # equal widths need no adapter


def test_noise_is_reproducible_and_the_rng_state_round_trips():
    a, b = cond_run(seed=3), cond_run(seed=3)
    za, ya = a.sample_zy(6)
    zb, yb = b.sample_zy(6)
    assert torch.equal(za, zb) and torch.equal(ya, yb) and za.shape == (6, 100) and ya.max() < 10
    state = a.rng_state()
    first = a.randn(2, 4)
    a.set_rng_state(state)
    assert torch.equal(first, a.randn(2, 4))
    assert not torch.equal(cond_run(seed=4).sample_zy(6)[0], za)


def test_a_noise_state_of_a_gpu_generator_continues_on_the_cpu_reseeded_and_says_so(capsys):
    """A fast-path CUDA run keeps its noise generator on the GPU (a Philox state: 16 bytes); resumed on a CPU, no
    generator takes that state: the run reseeds from (seed, step), the same each time, and says so."""
    a = cond_run(seed=3)
    own = a.rng_state()
    assert own["noise_kind"] == "cpu" and noise_kind(own) == "cpu"
    gpu = {**own, "noise": torch.zeros(16, dtype=torch.uint8), "noise_kind": "cuda",
           "cuda": torch.zeros(16, dtype=torch.uint8)}
    old = {k: v for k, v in gpu.items() if k != "noise_kind"}  # saved before the kind was recorded
    assert noise_kind(gpu) == noise_kind(old) == "cuda"
    draws = []
    for state in (gpu, old, gpu):
        run = cond_run(seed=3)
        torch.manual_seed(99)
        run.set_rng_state(state, step=40)
        assert torch.equal(torch.get_rng_state(), own["torch"])  # the global stream is restored as before
        draws.append(run.randn(2, 4))
        assert run.noise.device.type == "cpu" and run.rng_state()["noise_kind"] == "cpu"
        err = capsys.readouterr().err
        assert "saved on a cuda generator" in err and "noise changes from step 40 on" in err
        assert "data order and the weights continue exactly" in err and err.count("\n") == 1
    assert torch.equal(draws[0], draws[1]) and torch.equal(draws[0], draws[2])  # deterministic
    other = cond_run(seed=3)
    other.set_rng_state(gpu, step=41)
    assert not torch.equal(other.randn(2, 4), draws[0])  # seeded from the step too
    capsys.readouterr()
    same = cond_run(seed=3)  # a state of its own kind: restored exactly, silently
    first = a.randn(2, 4)
    same.set_rng_state(own, step=0)
    assert torch.equal(same.randn(2, 4), first) and capsys.readouterr().err == ""


def test_pixel_weight_per_epoch_floored_at_zero():
    run = cond_run(w_pixel=0.2, pixel_decay=0.05)
    weights = []
    for e in range(6):
        run.epoch = e
        weights.append(round(run.pixel_weight(), 6))
    assert weights == [0.2, 0.15, 0.1, 0.05, 0.0, 0.0]


def test_log_flush_and_trim_history():
    run = cond_run()
    for step in range(1, 4):
        run.step = step
        vals = {"d_loss": torch.tensor(float(step))}
        if step >= 2:
            vals["g_loss"] = torch.tensor(10.0 * step)  # a key first seen later (n_critic > 1)
        run.log(vals)
    assert run.history == {}  # nothing read from the device until flush
    rows = run.flush()
    assert [r["step"] for r in rows] == [1, 2, 3] and run.flush() == []
    h = run.history
    assert h["d_loss"] == [1.0, 2.0, 3.0] and math.isnan(h["g_loss"][0]) and h["g_loss"][1:] == [20.0, 30.0]
    run.step = 2
    run.trim_history()
    assert run.history["step"] == [1, 2] and len(run.history["g_loss"]) == 2


def test_ema_follows_the_generator():
    run = cond_run(ema_decay=0.5)
    assert run.G_ema is not None and not any(p.requires_grad for p in run.G_ema.parameters())
    with torch.no_grad():
        for p in run.G.parameters():
            p.add_(1.0)
    before = [p.clone() for p in run.G_ema.parameters()]
    run.update_ema()
    for e, b, g in zip(run.G_ema.parameters(), before, run.G.parameters()):
        assert torch.allclose(e, 0.5 * b + 0.5 * g)
    plain = cond_run()
    assert plain.G_ema is None and plain.model() is plain.G


def test_the_saved_model_of_an_ema_run_has_batchnorm_statistics_of_its_own():
    run = cond_run(ema_decay=0.5)
    with torch.no_grad():
        for p in run.G.parameters():
            p.add_(0.05)
        run.G(*run.sample_zy(8))  # the live G's running statistics move on
    run.update_ema()
    noise = run.noise.get_state()
    ema = {k: v.clone() for k, v in run.G_ema.state_dict().items()}
    a, b = run.model(), run.model()
    assert a is not run.G_ema and not a.training
    assert torch.equal(run.noise.get_state(), noise)  # the noise stream is untouched: resume stays exact
    assert all(torch.equal(v, run.G_ema.state_dict()[k]) for k, v in ema.items())  # the average itself too
    bn = next(k for k in ema if k.endswith("running_mean"))
    assert not torch.equal(a.state_dict()[bn], ema[bn])  # not the copied statistics
    assert a is b  # made once per update of the average: a step's snapshot, sheet and saved G share it
    again = standing_model(run.G_ema, run.cfg, run.device, run.autocast())
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in a.state_dict().items())  # and remade alike
    run.forget_model()  # what a resume calls once it has loaded the average
    assert run.model() is not a
    a = run.model()
    run.update_ema()  # an update in the same step
    assert run.model() is not a
    w = next(k for k in ema if k.endswith("weight"))
    assert torch.equal(a.state_dict()[w], ema[w])  # the weights are the average's
    with torch.no_grad():
        for p in run.G.parameters():
            p.add_(0.05)
    run.update_ema()
    run.step += 1
    c = run.model()  # a new average: a new model, with the new weights
    assert c is not a and not torch.equal(c.state_dict()[w], a.state_dict()[w])
    assert torch.equal(c.state_dict()[w], run.G_ema.state_dict()[w])
    plain = cond_run()
    assert plain.model() is plain.G
