"""The training loop (gankd_utils.train): fit, its wrappers, checkpoints, resume, EMA, the fast path on the CPU."""
import json
import math
import signal
import threading

import pytest
import torch
from builders import bb_cfg, bb_pair, cfg, cond_pair, teacher_set, tiny_set

from gankd_utils import checkpoint, config, data, recipes
from gankd_utils.checkpoint import is_finished
from gankd_utils.models import (
    CondDCGANGenerator,
)
from gankd_utils.train import StopRequest, fit, train_blackbox, train_gan, train_online_kd


def _same_weights(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_one_step_changes_parameters_and_stays_finite(tmp_path):
    G, D = cond_pair()
    before = [p.detach().clone() for p in G.parameters()]
    res = train_gan(G, D, tiny_set(), cfg(max_steps=1), tmp_path / "run", "cpu", progress=False)
    assert res["steps"] == 1 and not res["resumed"] and not res["finished"] and res["fast"] is False
    assert all(torch.isfinite(p).all() for p in G.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, G.parameters()))
    assert all(torch.isfinite(torch.tensor(v)).all() for v in res["history"].values())
    assert not G.training  # handed back in eval mode


def test_two_fresh_runs_of_one_seed_agree_with_dropout_in_the_critic(tmp_path):
    # IITGN's critic draws dropout masks from the global RNG, whose start is random in each process: a fresh run
    # seeds it from cfg.seed, so what the global RNG held before makes no difference
    from gankd_utils.models import IITGNDiscriminator, IITGNGenerator
    got = []
    for disturb in (1, 2):
        torch.manual_seed(0)
        G, D = IITGNGenerator("student"), IITGNDiscriminator(width=8)
        torch.manual_seed(disturb)
        train_gan(G, D, tiny_set(), cfg(max_steps=3), tmp_path / str(disturb), "cpu", progress=False)
        got.append(G)
    assert _same_weights(*got)


def test_resume_matches_uninterrupted_run(tmp_path):
    # uninterrupted: 7 steps (crosses an epoch boundary: 6 batches per epoch)
    G1, D1 = cond_pair()
    full = train_gan(G1, D1, tiny_set(), cfg(max_steps=7, epochs=2), tmp_path / "a", "cpu", progress=False)
    # interrupted after 4 steps, then resumed in a fresh process-like state
    G2, D2 = cond_pair()
    part = train_gan(G2, D2, tiny_set(), cfg(max_steps=4, epochs=2), tmp_path / "b", "cpu", progress=False)
    assert part["steps"] == 4 and not part["finished"]
    torch.manual_seed(12345)  # disturb the global RNG: resume must restore it
    G3, D3 = cond_pair(99)  # other initial weights: they must be replaced by the checkpoint's
    res = train_gan(G3, D3, tiny_set(), cfg(max_steps=7, epochs=2), tmp_path / "b", "cpu", progress=False)
    assert res["resumed"] and res["steps"] == 7
    assert _same_weights(G1, G3)
    assert full["history"]["d_loss"] == res["history"]["d_loss"]


def _training(folder):
    return json.loads((folder / "G.json").read_text())["training"]


def test_a_resumed_run_records_each_process_that_trained_it_and_its_time(tmp_path):
    run = tmp_path / "run"
    G, D = cond_pair()
    train_gan(G, D, tiny_set(), cfg(max_steps=4, epochs=1, log_every=2), run, "cpu", progress=False)
    first = json.loads((run / "state" / "progress.json").read_text())["training"]
    assert [s["steps"] for s in first["segments"]] == [[0, 4]] and first["seconds"] == first["segments"][0]["seconds"]
    G, D = cond_pair()
    res = train_gan(G, D, tiny_set(), cfg(epochs=1, log_every=2), run, "cpu", progress=False)
    assert res["finished"] and res["steps"] == 6
    rec = _training(run)
    assert [s["steps"] for s in rec["segments"]] == [[0, 4], [4, 6]]
    assert rec["segments"][0] == first["segments"][0]  # the first process's record comes back as it was
    assert all(s["device"].startswith("cpu (") and s["world_size"] == 1 and s["seconds"] > 0 for s in rec["segments"])
    assert rec["seconds"] == pytest.approx(sum(s["seconds"] for s in rec["segments"]), abs=0.2)
    # metrics.jsonl counts the run's time, not the process's: it goes on from the first process's seconds
    secs = [json.loads(ln)["seconds"] for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(secs) == 3 and secs[2] >= first["seconds"] >= secs[1]


def test_the_training_record_says_how_many_images_the_data_held(tmp_path):
    # a data root holding part of a data set must show wherever the run is shipped: the record keeps what the
    # data held, before the profile's own n_train subset (a choice of the recipe, not of the machine)
    G, D = cond_pair()
    train_gan(G, D, tiny_set(96), cfg(max_steps=2, epochs=1, n_train=32), tmp_path / "a", "cpu", progress=False)
    assert [s["images"] for s in _training(tmp_path / "a")["segments"]] == [96]
    G, D = cond_pair()
    train_gan(G, D, tiny_set(80), cfg(max_steps=2, epochs=1), tmp_path / "b", "cpu", progress=False)
    assert [s["images"] for s in _training(tmp_path / "b")["segments"]] == [80]


def test_a_state_saved_without_the_record_resumes_with_its_time_unrecorded(tmp_path):
    run = tmp_path / "run"
    G, D = cond_pair()
    train_gan(G, D, tiny_set(), cfg(max_steps=4, epochs=1), run, "cpu", progress=False)
    prog = json.loads((run / "state" / "progress.json").read_text())
    del prog["training"]  # as an older version of the package saved it
    (run / "state" / "progress.json").write_text(json.dumps(prog))
    G, D = cond_pair()
    train_gan(G, D, tiny_set(), cfg(epochs=1), run, "cpu", progress=False)
    rec = _training(run)
    assert rec["seconds"] is None
    assert rec["segments"][0] == {"steps": [0, 4], "seconds": None, "device": None, "world_size": 1}
    assert rec["segments"][1]["steps"] == [4, 6] and rec["segments"][1]["seconds"] > 0


class Stopped(Exception):
    pass


def _stop(signum, frame):
    raise Stopped(signal.Signals(signum).name)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_saves_its_step_then_stops_and_resumes_exactly(tmp_path, monkeypatch, signum):
    """Ctrl-C / a notebook's stop (SIGINT) or SIGTERM mid-run: the step ends, the run saves as at a pause, and the
    signal then takes effect with the handler the process had (here one raising Stopped); nothing is lost."""
    G1, D1 = cond_pair()
    full = train_gan(G1, D1, tiny_set(), cfg(max_steps=7, epochs=2, ckpt_every=100), tmp_path / "a", "cpu",
                     progress=False)
    step_for = recipes.step_for
    seen = []

    def interrupted(c):
        step = step_for(c)

        def one(run, batch, update_g):
            out = step(run, batch, update_g)
            if run.step == 2:  # the third step: signal in the middle of the run, before any checkpoint
                seen.append(signal.getsignal(signum))
                signal.raise_signal(signum)
                seen.append(signal.getsignal(signum))
            return out
        return one

    monkeypatch.setattr(recipes, "step_for", interrupted)
    previous = signal.signal(signum, _stop)
    try:
        G2, D2 = cond_pair()
        with pytest.raises(Stopped, match=signal.Signals(signum).name):
            train_gan(G2, D2, tiny_set(), cfg(max_steps=7, epochs=2, ckpt_every=100), tmp_path / "b", "cpu",
                      progress=False)
        assert signal.getsignal(signum) is _stop  # the process's handler is back
    finally:
        signal.signal(signum, previous)
    assert seen[0] is not _stop and seen[1] is _stop  # caught while training; a second one would not be
    progress = json.loads((tmp_path / "b" / "state" / "progress.json").read_text())
    assert progress["step"] == 3  # the step it was in finished, and was saved
    assert json.loads((tmp_path / "b" / "G.json").read_text())["finished"] is False
    monkeypatch.setattr(recipes, "step_for", step_for)
    G3, D3 = cond_pair(99)
    res = train_gan(G3, D3, tiny_set(), cfg(max_steps=7, epochs=2, ckpt_every=100), tmp_path / "b", "cpu",
                    progress=False)
    assert res["resumed"] and res["steps"] == 7
    assert _same_weights(G1, G3) and full["history"]["d_loss"] == res["history"]["d_loss"]


def test_ctrl_c_then_the_parents_sigterm_still_saves_and_the_same_signal_twice_stops_at_once(tmp_path):
    previous = {s: signal.signal(s, _stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with StopRequest("x") as stop:
            signal.raise_signal(signal.SIGINT)  # Ctrl-C reached the process group: this run and its parent
            signal.raise_signal(signal.SIGTERM)  # the parent then terminates its runs: ignored, it is saving
            assert stop.signum == signal.SIGINT
            with pytest.raises(Stopped, match="SIGINT"):
                signal.raise_signal(signal.SIGINT)  # the same one again: at once
        with pytest.raises(Stopped, match="SIGINT"):
            stop.deliver("saved at step 3")  # the first one, handed on after the save
        assert all(signal.getsignal(s) is _stop for s in previous)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def test_a_signal_the_process_ignores_stays_ignored_and_other_threads_catch_none():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # e.g. a job started in the background by a shell
    try:
        with StopRequest("x") as stop:
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            signal.raise_signal(signal.SIGINT)
        assert stop.signum is None
    finally:
        signal.signal(signal.SIGINT, previous)
    got = []
    t = threading.Thread(target=lambda: got.append(StopRequest("x").enabled))
    t.start()
    t.join()
    assert got == [False] and StopRequest("x").enabled and not StopRequest("x", enabled=False).enabled


def test_fast_auto_is_off_on_the_cpu_and_resume_stays_bit_exact(tmp_path):
    """fast is bookkeeping: a run paused with fast='off' resumes under 'auto' (off on the CPU), bit for bit."""
    G1, D1 = cond_pair()
    full = train_gan(G1, D1, tiny_set(), cfg(max_steps=5, epochs=2, fast="auto"), tmp_path / "a", "cpu",
                     progress=False)
    assert full["fast"] is False
    G2, D2 = cond_pair()
    train_gan(G2, D2, tiny_set(), cfg(max_steps=3, epochs=2, fast="off"), tmp_path / "b", "cpu", progress=False)
    G3, D3 = cond_pair(7)
    res = train_gan(G3, D3, tiny_set(), cfg(max_steps=5, epochs=2, fast="auto"), tmp_path / "b", "cpu",
                    progress=False)
    assert res["resumed"] and res["fast"] is False and _same_weights(G1, G3)
    assert full["history"]["g_loss"] == res["history"]["g_loss"]


def test_channels_last_on_the_cpu_resumes_bit_exact_and_stays_close_to_the_default_layout(tmp_path):
    """The laptop profiles train CIFAR-10 in channels-last on the CPU: a paused run resumes bit for bit,
    and the layout changes only the rounding of the convolutions' sums, not what a step computes."""
    G1, D1 = cond_pair()
    full = train_gan(G1, D1, tiny_set(), cfg(max_steps=5, epochs=2, channels_last=True), tmp_path / "a", "cpu",
                     progress=False)
    w = next(p for p in G1.parameters() if p.ndim == 4)
    assert w.is_contiguous(memory_format=torch.channels_last)
    train_gan(*cond_pair(), tiny_set(), cfg(max_steps=3, epochs=2, channels_last=True), tmp_path / "b", "cpu",
              progress=False)
    G3, D3 = cond_pair(7)
    res = train_gan(G3, D3, tiny_set(), cfg(max_steps=5, epochs=2, channels_last=True), tmp_path / "b", "cpu",
                    progress=False)
    assert res["resumed"] and _same_weights(G1, G3)
    assert full["history"]["g_loss"] == res["history"]["g_loss"]
    G4, D4 = cond_pair()
    plain = train_gan(G4, D4, tiny_set(), cfg(max_steps=5, epochs=2), tmp_path / "c", "cpu", progress=False)
    assert plain["history"]["g_loss"] == pytest.approx(full["history"]["g_loss"], rel=1e-3)
    back = checkpoint.load_model(tmp_path / "a" / "G.safetensors")  # saved contiguous, reloads equal
    assert all(torch.equal(a, b) for a, b in zip(back.state_dict().values(), G1.state_dict().values()))


def test_fast_path_on_the_cpu_runs_bf16_autocast(tmp_path, monkeypatch):
    seen = []
    real_autocast = torch.autocast

    def spy(device_type, *a, **k):
        seen.append((device_type, k.get("dtype")))
        return real_autocast(device_type, *a, **k)

    monkeypatch.setattr(torch, "autocast", spy)
    G, D = cond_pair()
    res = train_gan(G, D, tiny_set(), cfg(max_steps=2, fast="on"), tmp_path / "f", "cpu", progress=False)
    assert res["fast"] is True and res["steps"] == 2
    assert seen and set(seen) == {("cpu", torch.bfloat16)}
    h = res["history"]
    assert all(math.isfinite(v) for k in ("d_loss", "g_loss", "g_adv") for v in h[k])
    assert all(torch.isfinite(p).all() and p.dtype == torch.float32 for p in G.parameters())


def test_fast_setting_is_checked(tmp_path):
    G, D = cond_pair()
    with pytest.raises(ValueError, match="fast must be 'auto', 'on' or 'off'"):
        train_gan(G, D, tiny_set(), cfg(max_steps=1, fast="yes"), tmp_path / "x", "cpu", progress=False)


def test_resume_refuses_other_settings(tmp_path):
    G, D = cond_pair()
    train_gan(G, D, tiny_set(), cfg(max_steps=2), tmp_path / "r", "cpu", progress=False)
    with pytest.raises(ValueError, match="other settings"):
        train_gan(*cond_pair(), tiny_set(), cfg(max_steps=2, lr_g=1e-3), tmp_path / "r", "cpu", progress=False)
    # resume=False starts afresh instead
    res = train_gan(*cond_pair(), tiny_set(), cfg(max_steps=2, lr_g=1e-3), tmp_path / "r", "cpu", resume=False,
                    progress=False)
    assert not res["resumed"] and res["steps"] == 2 and len(res["history"]["step"]) == 2


def test_checkpoint_round_trip(tmp_path):
    G, D = cond_pair()
    train_gan(G, D, tiny_set(), cfg(max_steps=2, epochs=1), tmp_path / "run", "cpu", progress=False)
    assert not is_finished(tmp_path / "run")  # paused by max_steps after 2 of 6 steps
    G2 = checkpoint.load_model(tmp_path / "run" / "G.safetensors")
    assert type(G2) is CondDCGANGenerator and G2.hparams == G.hparams
    z, y = torch.randn(4, 100), torch.arange(4)
    assert torch.equal(G.eval()(z, y), G2(z, y))
    side = checkpoint.read_sidecar(tmp_path / "run" / "G")
    assert side["step"] == 2 and side["config"]["max_steps"] == 2 and side["finished"] is False
    assert json.loads((tmp_path / "run" / "config.json").read_text())["batch_size"] == 16


def test_finished_run_is_marked(tmp_path):
    G, D = cond_pair()
    res = train_gan(G, D, tiny_set(32), cfg(epochs=1), tmp_path / "run", "cpu", progress=False)
    assert res["finished"] and res["steps"] == 2 and is_finished(tmp_path / "run")
    assert (tmp_path / "run" / "samples" / "epoch_000.png").exists()


def test_logs_and_sample_sheets(tmp_path):
    G, D = cond_pair()
    train_gan(G, D, tiny_set(), cfg(epochs=1, log_every=2, sample_every=4), tmp_path / "run", "cpu", progress=False)
    lines = [json.loads(ln) for ln in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [ln["step"] for ln in lines] == [2, 4, 6] and all("d_loss" in ln and "seconds" in ln for ln in lines)
    assert (tmp_path / "run" / "samples" / "step_0000004.png").exists()
    hist = json.loads((tmp_path / "run" / "history.json").read_text())
    assert hist["step"] == [1, 2, 3, 4, 5, 6]  # every step in the history


def test_wrong_trainer_for_recipe(tmp_path):
    G, D = cond_pair()
    with pytest.raises(ValueError, match="train_online_kd"):
        train_gan(G, D, tiny_set(), cfg(**config.COLUMBIA), tmp_path, "cpu")
    with pytest.raises(ValueError, match=r"train_online_kd needs cfg\.kd in"):
        train_online_kd(G, D, G, tiny_set(), cfg(), tmp_path, "cpu")
    with pytest.raises(ValueError, match=r"train_blackbox needs cfg\.kd in"):
        train_blackbox(G, D, tiny_set(), cfg(), tmp_path, "cpu")


def test_streamed_source_takes_no_n_train(tmp_path):
    class Source:  # Batches' interface without an ImageSet behind it
        def __len__(self):
            return 1

        def epoch(self, e, skip=0):
            return iter(())

    G, D = bb_pair()
    with pytest.raises(ValueError, match="n_train subsets an in-memory ImageSet"):
        fit(G, D, Source(), bb_cfg(n_train=8), tmp_path, "cpu", progress=False)


def test_pixel_weight_decays_per_epoch_not_per_step(tmp_path):
    G, D = bb_pair()
    res = train_blackbox(G, D, teacher_set(24), bb_cfg(epochs=3, w_pixel=0.2, pixel_decay=0.05), tmp_path / "r",
                         "cpu", progress=False)
    h = res["history"]
    per_epoch = {}
    for e, w in zip(h["epoch"], h["w_pixel"]):
        per_epoch.setdefault(int(e), set()).add(round(w, 6))
    assert per_epoch == {0: {0.2}, 1: {0.15}, 2: {0.1}}


def test_blackbox_resume_matches_uninterrupted(tmp_path):
    # 4 batches per epoch: paused at step 3, resumed across the epoch boundary to step 6
    G1, D1 = bb_pair()
    train_blackbox(G1, D1, teacher_set(32), bb_cfg(max_steps=6, epochs=2), tmp_path / "a", "cpu", progress=False)
    G2, D2 = bb_pair()
    train_blackbox(G2, D2, teacher_set(32), bb_cfg(max_steps=3, epochs=2), tmp_path / "b", "cpu", progress=False)
    G3, D3 = bb_pair(7)
    res = train_blackbox(G3, D3, teacher_set(32), bb_cfg(max_steps=6, epochs=2), tmp_path / "b", "cpu",
                         progress=False)
    assert res["resumed"] and res["steps"] == 6
    assert _same_weights(G1, G3)


def test_ema_is_saved_and_differs_from_raw_weights(tmp_path):
    G, D = bb_pair()
    s = teacher_set(48)
    real = data.ImageSet(s.images, s.labels, s.classes, "real")
    c = config.settings("mnist", "smoke", train={**config.SNGAN, "n_train": None, "batch_size": 8, "n_fixed": 10,
                                                 "max_steps": 3, "ema_decay": 0.5, "diffaug": "translation"}).train
    train_gan(G, D, real, c, tmp_path / "g", "cpu", progress=False)
    side = checkpoint.read_sidecar(tmp_path / "g" / "G")
    assert side["ema"] is True
    ema = checkpoint.load_weights(tmp_path / "g" / "state" / "G_ema")
    saved = checkpoint.load_weights(tmp_path / "g" / "G")
    raw = checkpoint.load_weights(tmp_path / "g" / "state" / "G")
    k = next(k for k in saved if k.endswith("weight") and saved[k].ndim > 1)
    assert torch.equal(saved[k], ema[k]) and not torch.equal(saved[k], raw[k])
    # the saved average has BatchNorm statistics of its own, not the live G's that the average copies
    bn = [k for k in saved if k.endswith("running_mean")]
    assert bn and all(torch.equal(ema[k], raw[k]) for k in bn) and any(not torch.equal(saved[k], ema[k]) for k in bn)


def test_snapshots_are_kept_evenly_survive_a_resume_and_go_with_a_fresh_run(tmp_path):
    from gankd_utils.train import snapshot_steps, snapshots
    assert snapshot_steps(12, 4) == {3, 6, 9} and snapshot_steps(12, 1) == set() == snapshot_steps(12, 0)
    assert snapshot_steps(2, 4) == {1}  # never step 0, never the end (that is G itself)
    c = cfg(epochs=2, snapshots=3)  # 12 steps: kept at 4 and 8
    G1, D1 = cond_pair()
    train_gan(G1, D1, tiny_set(), c, tmp_path / "a", "cpu", progress=False)
    G2, D2 = cond_pair()
    train_gan(G2, D2, tiny_set(), cfg(epochs=2, snapshots=3, max_steps=5), tmp_path / "b", "cpu", progress=False)
    assert [s for s, _ in snapshots(tmp_path / "b")] == [4]
    train_gan(G2, D2, tiny_set(), c, tmp_path / "b", "cpu", progress=False)
    a, b = snapshots(tmp_path / "a"), snapshots(tmp_path / "b")
    assert [s for s, _ in a] == [s for s, _ in b] == [4, 8]
    for (_, x), (_, y) in zip(a, b):
        assert checkpoint.load_weights(x).keys() == checkpoint.load_weights(y).keys()
        assert all(torch.equal(checkpoint.load_weights(x)[k], checkpoint.load_weights(y)[k])
                   for k in checkpoint.load_weights(x))
    assert checkpoint.read_sidecar(a[0][1])["step"] == 4
    train_gan(*cond_pair(), tiny_set(), cfg(epochs=2, snapshots=3, max_steps=2), tmp_path / "a", "cpu",
              progress=False, resume=False)
    assert snapshots(tmp_path / "a") == []  # a fresh run keeps no older run's generators


def test_a_run_saved_with_a_gpu_noise_generator_resumes_on_the_cpu_deterministically(tmp_path, capsys):
    """A fast-path CUDA run keeps its noise generator on the GPU; continued on a CPU, the run goes on (reseeded from
    the seed and the step, the same on every resume) and says that the noise changes, instead of failing."""
    c, ends = cfg(max_steps=5, epochs=1), []
    for name in ("a", "b"):
        train_gan(*cond_pair(), tiny_set(), cfg(max_steps=2, epochs=1), tmp_path / name, "cpu", progress=False)
        p = tmp_path / name / "state" / "state.pt"
        st = checkpoint.load_state(p)
        assert st["rng"]["noise_kind"] == "cpu"
        # what a fast-path CUDA run saves: a Philox state (8-byte seed, 8-byte offset) and the GPU's global state
        st["rng"].update(noise=torch.zeros(16, dtype=torch.uint8), noise_kind="cuda",
                         cuda=torch.zeros(16, dtype=torch.uint8))
        if name == "b":  # a state saved before the kind was recorded: told by its size
            del st["rng"]["noise_kind"]
        checkpoint.save_state(p, st)
        capsys.readouterr()
        G, D = cond_pair(7)
        res = train_gan(G, D, tiny_set(), c, tmp_path / name, "cpu", progress=False)
        assert res["resumed"] and res["steps"] == 5
        assert "noise changes from step 2 on" in capsys.readouterr().err
        assert checkpoint.load_state(p)["rng"]["noise_kind"] == "cpu"  # saved on from now on as a CPU state
        ends.append(G)
    assert _same_weights(*ends)
    # same device, same kind: exact and silent (test_resume_matches_uninterrupted_run checks it bit for bit)
    train_gan(*cond_pair(), tiny_set(), cfg(max_steps=6, epochs=1), tmp_path / "a", "cpu", progress=False)
    assert "noise" not in capsys.readouterr().err


def test_the_gradient_scaler_is_saved_with_the_resume_state(tmp_path):
    """fp16 (a GPU without bf16) trains through a gradient scaler: a resume goes on with its scale, and a state
    saved without one still loads (the scaler then starts afresh)."""
    from gankd_utils.runstate import RunState
    G, D = cond_pair()
    run = RunState(G, D, cfg(), torch.device("cpu"))
    run.scaler = torch.amp.GradScaler("cpu")
    run.scaler.load_state_dict({**run.scaler.state_dict(), "scale": 512.0, "_growth_tracker": 7})
    run.step = 3
    checkpoint.save_resume(tmp_path / "r", run, [run.rng_state()])
    back = RunState(*cond_pair(), cfg(), torch.device("cpu"))
    back.scaler = torch.amp.GradScaler("cpu")
    assert checkpoint.load_resume(tmp_path / "r", back) and back.step == 3
    assert back.scaler.state_dict()["scale"] == 512.0 and back.scaler.state_dict()["_growth_tracker"] == 7
    p = tmp_path / "r" / "state" / "state.pt"
    checkpoint.save_state(p, {k: v for k, v in checkpoint.load_state(p).items() if k != "scaler"})
    fresh = RunState(*cond_pair(), cfg(), torch.device("cpu"))
    fresh.scaler = torch.amp.GradScaler("cpu")
    assert checkpoint.load_resume(tmp_path / "r", fresh) and fresh.scaler.state_dict()["scale"] == 65536.0


def test_a_retrain_cut_off_part_way_leaves_no_finished_generator_of_the_old_run(tmp_path, monkeypatch):
    """A fresh start moves the finished result it replaces to previous/ before training: a retrain killed part way
    never leaves the old generator counted as finished beside the new run's history."""
    from gankd_utils import runs, train
    r, c = tmp_path / "r", cfg(epochs=1, log_every=1)
    G, D = cond_pair()
    train_gan(G, D, tiny_set(), c, r, "cpu", progress=False)
    old = {n: (r / n).read_bytes() for n in train.RESULT if (r / n).exists()}
    assert set(old) == {"G.json", "G.safetensors", "D.json", "D.safetensors", "history.json"}

    def killed(*a, **k):
        raise RuntimeError("killed")  # a kill or an out-of-memory at step 3 of the retrain

    monkeypatch.setattr(train, "save_sample_sheet", killed)
    for _ in range(2):  # twice: a retrain of a retrain cut off keeps the finished result it set aside
        with pytest.raises(RuntimeError, match="killed"):
            train_gan(*cond_pair(5), tiny_set(), cfg(epochs=1, log_every=1, sample_every=3), r, "cpu",
                      progress=False, resume=False)
        assert not is_finished(r) and runs.load_finished(r, c) is None and runs.load_finished(r) is None
        assert not any((r / n).exists() for n in ("G.json", "G.safetensors", "D.json", "D.safetensors"))
        assert {n: (r / "previous" / n).read_bytes() for n in old} == old  # nothing lost, all of it together
        assert not (r / "previous.new").exists()
        assert runs.load_run(r).steps == 2  # the new run's own paused state, with its own history
    monkeypatch.undo()
    new = train_gan(*cond_pair(5), tiny_set(), c, r, "cpu", progress=False, resume=False)
    assert new["finished"] and is_finished(r) and not (r / "previous").exists()  # superseded once the new one is done
    assert not _same_weights(G, checkpoint.load_model(r / "G"))


def test_setting_a_result_aside_finishes_a_move_cut_off_part_way(tmp_path):
    from gankd_utils.train import set_aside_result
    r = tmp_path / "r"
    assert set_aside_result(r) is None
    r.mkdir()
    for n in ("G.safetensors", "D.json", "D.safetensors", "history.json"):
        (r / n).write_text(n)
    (r / "previous.new").mkdir()  # cut off after G.json moved
    (r / "previous.new" / "G.json").write_text('{"finished": true}')
    assert set_aside_result(r) == r / "previous"
    assert sorted(p.name for p in r.iterdir()) == ["previous"]
    assert sorted(p.name for p in (r / "previous").iterdir()) == ["D.json", "D.safetensors", "G.json",
                                                                  "G.safetensors", "history.json"]


def test_no_training_in_the_shipped_weights_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("GANKD_WEIGHTS", str(tmp_path / "weights"))
    with pytest.raises(ValueError, match="refusing to train in .*shipped weights folder"):
        train_gan(*cond_pair(), tiny_set(), cfg(max_steps=1), tmp_path / "weights" / "mnist" / "m", "cpu",
                  progress=False)
    assert not (tmp_path / "weights").exists()
