"""Checkpoints (gankd_utils.checkpoint): safetensors + sidecar, resume state, resume_key, is_finished."""
import io
import json

import pytest
import torch
from builders import cfg, cond_pair, tiny_set

from gankd_utils import checkpoint, config
from gankd_utils.checkpoint import CheckpointError
from gankd_utils.models import CondDCGANGenerator
from gankd_utils.models.layers import dcgan_init
from gankd_utils.train import train_gan


def test_save_and_load_model(tmp_path):
    G = dcgan_init(CondDCGANGenerator(32), 0)
    w = checkpoint.save_model(tmp_path / "G", G, step=3, note="x", where=tmp_path, betas=(0.5, 0.9))
    assert w == tmp_path / "G.safetensors" and (tmp_path / "G.json").exists()
    side = checkpoint.read_sidecar(tmp_path / "G.json")  # any of the two names, or the stem
    assert side["gankd"] == checkpoint.FORMAT and side["model"] == {"arch": "CondDCGANGenerator",
                                                                     "kwargs": G.hparams}
    assert side["step"] == 3 and side["where"] == str(tmp_path) and side["betas"] == [0.5, 0.9]
    L = checkpoint.load_model(tmp_path / "G")
    assert not L.training and all(torch.equal(a, b) for a, b in zip(G.state_dict().values(),
                                                                    L.state_dict().values()))
    other = checkpoint.load_into(CondDCGANGenerator(32), tmp_path / "G")
    assert torch.equal(other.out.weight, G.out.weight)


def test_corrupt_and_foreign_checkpoints(tmp_path):
    G, _ = cond_pair()
    checkpoint.save_model(tmp_path / "G", G)
    # truncated weights
    w = tmp_path / "G.safetensors"
    w.write_bytes(w.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        checkpoint.load_model(tmp_path / "G")
    # weights of another width under this spec
    checkpoint.save_model(tmp_path / "H", CondDCGANGenerator(64))
    side = json.loads((tmp_path / "H.json").read_text())
    side["model"]["kwargs"]["c"] = 32
    (tmp_path / "H.json").write_text(json.dumps(side))
    with pytest.raises(CheckpointError, match="does not fit CondDCGANGenerator"):
        checkpoint.load_model(tmp_path / "H")
    # a safetensors file without our sidecar
    (tmp_path / "H.json").unlink()
    with pytest.raises(CheckpointError, match="not saved by gankd"):
        checkpoint.load_model(tmp_path / "H")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        checkpoint.load_model(tmp_path / "missing")


def test_damaged_and_foreign_sidecars(tmp_path):
    checkpoint.save_model(tmp_path / "G", CondDCGANGenerator(32))
    (tmp_path / "G.json").write_text("{oops")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        checkpoint.read_sidecar(tmp_path / "G")
    (tmp_path / "G.json").write_text(json.dumps({"model": {}}))
    with pytest.raises(CheckpointError, match="not a gankd checkpoint sidecar"):
        checkpoint.read_sidecar(tmp_path / "G")
    (tmp_path / "G.json").write_text(json.dumps({"gankd": 1, "model": {"arch": "CondDCGANGenerator",
                                                                        "kwargs": {"c": 30}}}))
    with pytest.raises(CheckpointError, match="cannot rebuild the model"):
        checkpoint.load_model(tmp_path / "G")


def test_a_name_with_a_dot_is_never_cut_short(tmp_path):
    """``cls_v1.5`` is a name of its own, not ``cls_v1`` with a suffix: it must not overwrite that checkpoint."""
    checkpoint.save_model(tmp_path / "cls_v1", CondDCGANGenerator(32), step=1)
    w = checkpoint.save_model(tmp_path / "cls_v1.5", CondDCGANGenerator(32), step=2)
    assert w == tmp_path / "cls_v1.5.safetensors" and (tmp_path / "cls_v1.5.json").exists()
    assert checkpoint.read_sidecar(tmp_path / "cls_v1")["step"] == 1
    for name in ("cls_v1.5", "cls_v1.5.json", "cls_v1.5.safetensors"):  # the stem, or either file
        assert checkpoint.read_sidecar(tmp_path / name)["step"] == 2
        assert isinstance(checkpoint.load_model(tmp_path / name), CondDCGANGenerator)


def test_bad_sidecars_and_progress_files_say_what_is_wrong(tmp_path):
    checkpoint.save_model(tmp_path / "G", CondDCGANGenerator(32), finished=True)
    good = (tmp_path / "G.json").read_text()
    (tmp_path / "G.json").write_bytes(b"\x80\xff\x00binary")
    with pytest.raises(CheckpointError, match="G.json is not valid JSON"):
        checkpoint.read_sidecar(tmp_path / "G")
    with pytest.raises(CheckpointError, match="G.json is not valid JSON.*train it again"):
        checkpoint.is_finished(tmp_path)
    (tmp_path / "G.json").write_text("[1, 2]")
    with pytest.raises(CheckpointError, match="holds a JSON list, not a gankd checkpoint sidecar"):
        checkpoint.is_finished(tmp_path)
    (tmp_path / "G.json").write_text(json.dumps({**json.loads(good), "model": "CondDCGANGenerator"}))
    with pytest.raises(CheckpointError, match="cannot rebuild the model.*'model' is 'CondDCGANGenerator'"):
        checkpoint.load_model(tmp_path / "G")
    (tmp_path / "G.json").write_text(good)
    assert checkpoint.is_finished(tmp_path)
    # a damaged progress.json beside a resume state
    G, D = cond_pair()
    train_gan(G, D, tiny_set(32), cfg(max_steps=1, epochs=1), tmp_path / "r", "cpu", progress=False)
    prog = tmp_path / "r" / "state" / "progress.json"
    for text, match in (("{oops", "not a resume state's progress \\(Expecting"), ("[]", "a JSON list, not an object"),
                        ('{"config": 3}', "its 'config' is not an object"), (None, "is missing beside its state.pt")):
        if text is None:
            prog.unlink()
        else:
            prog.write_text(text)
        with pytest.raises(CheckpointError, match=match) as e:
            train_gan(*cond_pair(), tiny_set(32), cfg(max_steps=2, epochs=1), tmp_path / "r", "cpu", progress=False)
        assert "start the run afresh" in str(e.value)


def test_resume_state_is_never_unpickled(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    p = tmp_path / "state.pt"
    torch.save({"x": Evil()}, p)
    with pytest.raises(CheckpointError, match="not a gankd resume state"):
        checkpoint.load_state(p)
    checkpoint.save_state(p, {"step": 3, "t": torch.ones(2), "nested": {"a": [1, 2]}})
    back = checkpoint.load_state(p)
    assert back["step"] == 3 and torch.equal(back["t"], torch.ones(2)) and back["nested"] == {"a": [1, 2]}


def test_resume_key_keeps_what_defines_the_training():
    base = cfg()
    key = checkpoint.resume_key(base)
    assert not set(key) & checkpoint.BOOKKEEPING
    assert checkpoint.BOOKKEEPING == {"name", "max_steps", "ckpt_every", "log_every", "sample_every", "snapshots",
                                      "fast", "compile", "channels_last"}
    assert {"lr_g", "batch_size", "epochs", "seed", "kd", "n_train", "dataset"} <= set(key)
    for change in (dict(name="other"), dict(max_steps=7), dict(ckpt_every=9), dict(log_every=1),
                   dict(sample_every=5), dict(fast="on"), dict(fast="off"), dict(compile="on"),
                   dict(channels_last=True), dict(snapshots=4)):
        assert checkpoint.resume_key(cfg(**change)) == key, change
    for change in (dict(lr_g=1e-3), dict(epochs=3), dict(batch_size=8), dict(n_train=64), dict(loss="hinge"),
                   dict(betas=(0.0, 0.9)), dict(ema_decay=0.9), dict(diffaug="translation")):
        assert checkpoint.resume_key(cfg(**change)) != key, change
    assert checkpoint.resume_key(config.settings("mnist", "smoke", 1).train) != key  # another seed
    # a TrainConfig and its dict (as saved in JSON: tuples become lists) give the same key
    assert checkpoint.resume_key(json.loads(json.dumps(base.to_dict()))) == key


def test_resume_refuses_another_number_of_processes(tmp_path):
    G, D = cond_pair()
    train_gan(G, D, tiny_set(32), cfg(max_steps=1, epochs=1), tmp_path / "r", "cpu", progress=False)
    st = checkpoint.load_state(tmp_path / "r" / "state" / "state.pt")
    assert st["world"] == 1 and st["rng_ranks"] == [] and st["step"] == 1
    checkpoint.save_state(tmp_path / "r" / "state" / "state.pt", {**st, "world": 2})
    with pytest.raises(ValueError, match="2 process\\(es\\), this one has 1: resume with the same number"):
        train_gan(*cond_pair(), tiny_set(32), cfg(max_steps=2, epochs=1), tmp_path / "r", "cpu", progress=False)


def test_is_finished_and_the_resume_layout(tmp_path):
    assert not checkpoint.is_finished(tmp_path / "nothing")
    G, D = cond_pair()
    train_gan(G, D, tiny_set(32), cfg(max_steps=1, epochs=1), tmp_path / "r", "cpu", progress=False)
    assert not checkpoint.is_finished(tmp_path / "r")
    names = sorted(p.name for p in (tmp_path / "r" / "state").iterdir())
    assert names == ["D.json", "D.safetensors", "G.json", "G.safetensors", "progress.json", "state.pt"]
    prog = json.loads((tmp_path / "r" / "state" / "progress.json").read_text())
    assert (prog["step"], prog["epoch"], prog["batch"], prog["config"]["max_steps"]) == (1, 0, 1, 1)
    train_gan(G, D, tiny_set(32), cfg(epochs=1), tmp_path / "r", "cpu", progress=False)
    assert checkpoint.is_finished(tmp_path / "r")


def _same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_a_cut_off_save_leaves_the_last_whole_resume_state(tmp_path, monkeypatch):
    """A resume state is written whole or not at all: a save that fails part way (a crash, a second Ctrl-C) leaves
    the one before it, from which the run resumes exactly, and so does one cut off between its two renames."""
    G1, D1 = cond_pair()
    train_gan(G1, D1, tiny_set(), cfg(max_steps=7, epochs=2, ckpt_every=2), tmp_path / "a", "cpu", progress=False)
    G2, D2 = cond_pair()
    train_gan(G2, D2, tiny_set(), cfg(max_steps=2, epochs=2, ckpt_every=2), tmp_path / "b", "cpu", progress=False)
    assert sorted(p.name for p in (tmp_path / "b").glob("state*")) == ["state"]  # nothing left beside it

    save_state = checkpoint.save_state

    def cut_off(path, state):  # G, D written, the optimizers' file not: as if killed there
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint, "save_state", cut_off)
    with pytest.raises(KeyboardInterrupt):
        train_gan(*cond_pair(), tiny_set(), cfg(max_steps=7, epochs=2, ckpt_every=2), tmp_path / "b", "cpu",
                  progress=False)
    monkeypatch.setattr(checkpoint, "save_state", save_state)
    assert (tmp_path / "b" / "state.new" / "G.safetensors").exists()  # the half-written one
    assert json.loads((tmp_path / "b" / "state" / "progress.json").read_text())["step"] == 2
    assert checkpoint.read_sidecar(tmp_path / "b" / "state" / "G")["step"] == 2  # its G is still step 2's

    # cut off between the renames: only the older state, as state.old
    (tmp_path / "b" / "state").rename(tmp_path / "b" / "state.old")
    assert checkpoint.state_dir(tmp_path / "b") == tmp_path / "b" / "state.old"  # found, and left where it is
    assert (tmp_path / "b" / "state.old").exists() and not (tmp_path / "b" / "state").exists()
    G3, D3 = cond_pair(99)
    res = train_gan(G3, D3, tiny_set(), cfg(max_steps=7, epochs=2, ckpt_every=2), tmp_path / "b", "cpu",
                    progress=False)
    assert res["resumed"] and res["steps"] == 7 and _same(G1, G3)
    assert sorted(p.name for p in (tmp_path / "b").glob("state*")) == ["state"]


def test_a_save_cut_off_after_its_history_resumes_with_the_history_of_its_state(tmp_path, monkeypatch):
    """The history is written just before the swap: cut off there, it is ahead of the state, and is cut back."""
    G1, D1 = cond_pair()
    full = train_gan(G1, D1, tiny_set(), cfg(max_steps=7, epochs=2, ckpt_every=2, log_every=1), tmp_path / "a",
                     "cpu", progress=False)
    train_gan(*cond_pair(), tiny_set(), cfg(max_steps=2, epochs=2, ckpt_every=2, log_every=1), tmp_path / "b", "cpu",
              progress=False)
    replace = checkpoint.os.replace

    def cut_off(src, dst):
        if str(src).endswith("state.new"):
            raise KeyboardInterrupt
        replace(src, dst)

    monkeypatch.setattr(checkpoint.os, "replace", cut_off)
    with pytest.raises(KeyboardInterrupt):
        train_gan(*cond_pair(), tiny_set(), cfg(max_steps=7, epochs=2, ckpt_every=2, log_every=1), tmp_path / "b",
                  "cpu", progress=False)
    monkeypatch.setattr(checkpoint.os, "replace", replace)
    history = json.loads((tmp_path / "b" / "history.json").read_text())
    assert max(history["step"]) == 4 and checkpoint.state_dir(tmp_path / "b").name == "state.old"  # ahead of it
    from gankd_utils import runs
    paused = runs.load_run(tmp_path / "b")  # a reader: the step of the state, the history up to it
    assert paused.steps == 2 and max(paused.history["step"]) == 2
    G3, D3 = cond_pair(99)
    res = train_gan(G3, D3, tiny_set(), cfg(max_steps=7, epochs=2, ckpt_every=2, log_every=1), tmp_path / "b",
                    "cpu", progress=False)
    assert res["resumed"] and _same(G1, G3) and res["history"] == full["history"]


def test_a_resumed_optimizer_keeps_how_it_was_built_to_compute_and_its_parameters_layout():
    # a state saved by a run without fused Adam, in channels-last, resumed by one with fused Adam (a GPU's fast
    # path) in the default layout: torch's load_state_dict took the saved fused=None and kept the moments' strides
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(8, 4, 3, 3).to(memory_format=torch.channels_last))
    opt = torch.optim.Adam([w], lr=1e-3)
    w.grad = torch.randn_like(w)
    opt.step()
    buf = io.BytesIO()
    torch.save(opt.state_dict(), buf)
    buf.seek(0)
    saved = torch.load(buf, map_location="cpu", weights_only=True)
    w2 = torch.nn.Parameter(w.detach().contiguous().clone())
    opt2 = torch.optim.Adam([w2], lr=1e-3, fused=True)
    checkpoint.load_optimizer(opt2, saved)
    assert opt2.param_groups[0]["fused"] is True and opt2.param_groups[0]["lr"] == 1e-3
    for k in ("exp_avg", "exp_avg_sq"):
        m = opt2.state[w2][k]
        assert m.stride() == w2.stride() and torch.equal(m, saved["state"][0][k])
    # the fp16 path's gradient scaler steps a fused optimizer (it failed on the unfused one it had become)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 4)
    with torch.autocast("cpu", dtype=torch.float16):
        loss = (w2 * 2).float().sum()
    scaler.scale(loss).backward()
    before = w2.detach().clone()
    scaler.step(opt2)
    scaler.update()
    assert not torch.equal(w2, before) and torch.isfinite(w2).all()
