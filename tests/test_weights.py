"""Shipped weights: ship -> verify -> load, sha256 checks, the WEIGHTS parameter, the manifest format."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import torch

from gankd_utils import checkpoint, cli, config, metrics, paths, report, weights
from gankd_utils.metrics.size import count_params
from gankd_utils.models import CondDCGANDiscriminator, CondDCGANGenerator


@pytest.fixture
def wroot(tmp_path, monkeypatch) -> Path:
    """A private weights folder (GANKD_WEIGHTS) and results folder; an empty hash cache."""
    monkeypatch.setenv("GANKD_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("GANKD_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setattr(weights, "_HASHES", {})
    return tmp_path / "weights"


def make_run(folder: Path, seed: int = 0, finished: bool = True, step: int = 3, with_d: bool = False):
    """A run folder holding a tiny gankd generator (non-default BatchNorm statistics too)."""
    torch.manual_seed(seed)
    G = CondDCGANGenerator(c=8)
    with torch.no_grad():
        for m in G.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
    G.eval()
    checkpoint.save_model(folder / "G", G, finished=finished, step=step, config={"seed": seed, "profile": "smoke"})
    if with_d:
        D = CondDCGANDiscriminator(width=8)
        checkpoint.save_model(folder / "D", D, finished=finished, step=step, config={"seed": seed})
        return G, D
    return G


def flip_byte(p: Path) -> None:
    b = bytearray(p.read_bytes())
    b[len(b) // 2] ^= 0x01
    p.write_bytes(bytes(b))


def age(root: Path, seconds: float = 60.0) -> None:
    """Set every file's mtime into the past (files this old are cached after one hash)."""
    t = time.time() - seconds
    for f in root.rglob("*"):
        if f.is_file():
            os.utime(f, (t, t))


def snapshot(folder: Path, skip: Path) -> dict[str, tuple[int, bytes]]:
    return {str(f): (f.stat().st_mtime_ns, f.read_bytes()) for f in sorted(folder.rglob("*"))
            if f.is_file() and skip not in f.parents}


# ---------------------------------------------------------------- where and what

def test_weights_root_follows_the_settings(tmp_path, monkeypatch):
    monkeypatch.delenv("GANKD_WEIGHTS", raising=False)
    monkeypatch.setenv("GANKD_RESULTS", str(tmp_path / "res"))
    assert weights.weights_root() == tmp_path / "res" / "weights"
    monkeypatch.setenv("GANKD_WEIGHTS", str(tmp_path / "elsewhere"))
    assert weights.weights_root() == tmp_path / "elsewhere"


def test_ship_then_load_gives_the_same_generator(wroot, tmp_path):
    G = make_run(tmp_path / "run")
    assert weights.ship({"mnist/tiny": tmp_path / "run"}, device="test-cpu") == wroot
    assert (wroot / "mnist" / "tiny" / "G.safetensors").is_file()
    H = weights.load("mnist", "tiny")
    assert isinstance(H, CondDCGANGenerator) and not H.training
    a, b = G.state_dict(), H.state_dict()
    assert sorted(a) == sorted(b)
    assert all(torch.equal(a[k], b[k]) for k in a)
    g = torch.Generator().manual_seed(1)
    z, y = torch.randn(6, 100, generator=g), torch.arange(6) % 10
    with torch.no_grad():
        assert torch.equal(G(z, y), H(z, y))
    assert weights.path("mnist", "tiny") == wroot / "mnist" / "tiny" / "G"
    m = weights.manifest()
    assert m["format"] == "gankd-weights/1" and m["profile"] == "full" and m["device"] == "test-cpu"
    assert m["models"]["mnist/tiny"] == {
        "dataset": "mnist", "model": "tiny", "files": ["mnist/tiny/G.json", "mnist/tiny/G.safetensors"],
        "seed": 0, "steps": 3, "params": count_params(G), "note": "", "device": "test-cpu"}
    assert sorted(m["files"]) == ["mnist/tiny/G.json", "mnist/tiny/G.safetensors"]


def test_ship_the_discriminator_and_drop_it_again(wroot, tmp_path):
    _, D = make_run(tmp_path / "run", with_d=True)
    weights.ship({"mnist/tiny": tmp_path / "run"}, parts=("G", "D"))
    E = weights.load("mnist", "tiny", part="D")
    assert isinstance(E, CondDCGANDiscriminator)
    assert all(torch.equal(v, E.state_dict()[k]) for k, v in D.state_dict().items())
    assert len(weights.verify("mnist/tiny")) == 4
    weights.ship({"mnist/tiny": tmp_path / "run"})  # G only: the D files leave the manifest and the folder
    assert sorted(weights.manifest()["files"]) == ["mnist/tiny/G.json", "mnist/tiny/G.safetensors"]
    assert not (wroot / "mnist" / "tiny" / "D.safetensors").exists()
    assert "D.safetensors" not in (wroot / "SHA256SUMS").read_text()
    with pytest.raises(weights.ShippedWeightsError, match="without D"):
        weights.load("mnist", "tiny", part="D")


def test_the_training_curves_travel_with_a_shipped_model(wroot, tmp_path):
    """A stage on a fresh machine restores a shipped model with its history.json: the chapter still plots its curves."""
    make_run(tmp_path / "run")
    curves = {"d_loss": [1.4, 0.9, 0.7], "g_adv": [0.7, 1.8, 2.2]}
    (tmp_path / "run" / "history.json").write_text(json.dumps(curves))
    weights.ship({"mnist/tiny": tmp_path / "run"})
    m = weights.manifest()
    assert "mnist/tiny/history.json" in m["models"]["mnist/tiny"]["files"] and "mnist/tiny/history.json" in m["files"]
    assert weights.parts_of("mnist", "tiny") == ["G"]  # curves are not a checkpoint
    weights.restore("mnist/tiny", tmp_path / "fresh")
    assert json.loads((tmp_path / "fresh" / "history.json").read_text()) == curves
    (wroot / "mnist" / "tiny" / "history.json").write_text(json.dumps({"d_loss": [0.0]}))  # altered after shipping
    with pytest.raises(weights.ShippedWeightsError, match="history.json"):
        weights.restore("mnist/tiny", tmp_path / "other")
    make_run(tmp_path / "bare")  # a run that kept no curves ships without them
    weights.ship({"mnist/bare": tmp_path / "bare"})
    weights.restore("mnist/bare", tmp_path / "bare_back")
    assert not (tmp_path / "bare_back" / "history.json").exists()


def test_the_scored_snapshots_travel_with_a_shipped_model_and_keep_where_it_was_trained(wroot, tmp_path):
    """quality.json (a chapter's scores of the run's snapshots) ships and comes back like history.json; when a later
    chapter run adds it to a model already shipped, the entry still names the machine that trained the model."""
    make_run(tmp_path / "run")
    weights.ship({"mnist/tiny": tmp_path / "run"}, device="trainer")
    assert weights.quality_file(wroot / "mnist" / "tiny") is None  # none scored yet
    curve = {"protocol": "p", "points": [{"step": 1, "fid": 9.0}, {"step": 3, "fid": 4.0}]}
    (tmp_path / "run" / "quality.json").write_text(json.dumps(curve))
    assert weights.quality_file(tmp_path / "run") == tmp_path / "run" / "quality.json"  # a run folder: no manifest
    weights.ship({"mnist/tiny": tmp_path / "run"}, device="scorer")
    m = weights.manifest()
    assert "mnist/tiny/quality.json" in m["models"]["mnist/tiny"]["files"] and "mnist/tiny/quality.json" in m["files"]
    assert m["models"]["mnist/tiny"]["device"] == "trainer"  # the same weights: still trained there
    assert weights.parts_of("mnist", "tiny") == ["G"]
    weights.restore("mnist/tiny", tmp_path / "fresh")
    assert json.loads((tmp_path / "fresh" / "quality.json").read_text()) == curve
    assert json.loads(weights.quality_file(wroot / "mnist" / "tiny").read_text()) == curve  # checked, then read
    make_run(tmp_path / "run", seed=5)  # other weights: a new entry, this call's machine
    weights.ship({"mnist/tiny": tmp_path / "run"}, device="retrainer")
    assert weights.manifest()["models"]["mnist/tiny"]["device"] == "retrainer"
    (wroot / "mnist" / "tiny" / "quality.json").write_text(json.dumps({"protocol": "p", "points": []}))  # altered
    with pytest.raises(weights.ShippedWeightsError, match="quality.json"):
        weights.quality_file(wroot / "mnist" / "tiny")
    with pytest.raises(weights.ShippedWeightsError, match="quality.json"):
        weights.restore("mnist/tiny", tmp_path / "other")
    make_run(tmp_path / "bare")
    weights.ship({"mnist/bare": tmp_path / "bare"})
    (wroot / "mnist" / "bare" / "quality.json").write_text(json.dumps(curve))  # put there by hand: not shipped
    with pytest.raises(weights.ShippedWeightsError, match="not listed in MANIFEST.json"):
        weights.quality_file(wroot / "mnist" / "bare")


def test_a_restore_cut_off_part_way_leaves_no_folder_that_counts_as_finished(wroot, tmp_path, monkeypatch):
    """G.json says the run finished: it is written last, after D and the curves, and one of another model goes
    first, so a copy cut off between leaves a folder that is trained again, not one taken as done."""
    make_run(tmp_path / "run", with_d=True)
    (tmp_path / "run" / "history.json").write_text(json.dumps({"d_loss": [1.0]}))
    weights.ship({"mnist/tiny": tmp_path / "run"}, parts=("G", "D"))
    make_run(tmp_path / "fresh", seed=5)  # another model's finished G already there
    write = weights._write_if_changed
    written = []

    def cut_off(p, data):
        if p.name == "history.json":
            raise KeyboardInterrupt
        written.append(p.name)
        write(p, data)

    monkeypatch.setattr(weights, "_write_if_changed", cut_off)
    with pytest.raises(KeyboardInterrupt):
        weights.restore("mnist/tiny", tmp_path / "fresh", parts=("G", "D"))
    assert not checkpoint.is_finished(tmp_path / "fresh") and "G.json" not in written
    monkeypatch.setattr(weights, "_write_if_changed", write)
    weights.restore("mnist/tiny", tmp_path / "fresh", parts=("G", "D"))
    assert checkpoint.is_finished(tmp_path / "fresh")
    for name in ("G.json", "G.safetensors", "D.json", "D.safetensors", "history.json"):
        assert (tmp_path / "fresh" / name).read_bytes() == (wroot / "mnist" / "tiny" / name).read_bytes()


def test_a_shipped_checkpoint_whose_name_has_a_dot_is_restored_whole(wroot, tmp_path):
    checkpoint.save_model(tmp_path / "cls" / "mnistcls_v1.5", CondDCGANGenerator(c=8), finished=True, step=1)
    weights.ship({"mnist/classifier": tmp_path / "cls"}, parts=("mnistcls_v1.5",))
    assert weights.parts_of("mnist", "classifier") == ["mnistcls_v1.5"]
    weights.restore("mnist/classifier", tmp_path / "back", parts=("mnistcls_v1.5",))
    assert sorted(p.name for p in (tmp_path / "back").iterdir()) == ["mnistcls_v1.5.json", "mnistcls_v1.5.safetensors"]


def test_available_has_and_summary(wroot, tmp_path):
    Ga = make_run(tmp_path / "a", seed=1)
    make_run(tmp_path / "b", seed=2, step=7)
    make_run(tmp_path / "c", seed=3)
    assert weights.available() == [] and not weights.has("mnist", "a") and weights.summary() == []
    weights.ship({"mnist/b": tmp_path / "b", "cifar10/c": tmp_path / "c"}, device="cpu (2 cores)")
    weights.ship({"mnist/a": tmp_path / "a"}, note="KD student", device="cuda (H100)")  # added beside the others
    assert weights.available() == ["cifar10/c", "mnist/a", "mnist/b"]
    assert weights.available("mnist") == ["mnist/a", "mnist/b"]
    assert weights.has("mnist", "a") and not weights.has("cifar10", "a")
    rows = {r["key"]: r for r in weights.summary()}
    assert sorted(rows) == ["cifar10/c", "mnist/a", "mnist/b"]
    data = (wroot / "mnist" / "a" / "G.safetensors").read_bytes()
    assert rows["mnist/a"] == {"key": "mnist/a", "params": count_params(Ga), "MB": round(len(data) / 1e6, 3),
                               "sha256": hashlib.sha256(data).hexdigest()[:12], "steps": 3, "kept_step": None,
                               "hours": None, "device": "cuda (H100)"}
    assert rows["mnist/b"]["steps"] == 7
    assert rows["mnist/b"]["device"] == "cpu (2 cores)"  # each model keeps where it was trained
    m = weights.manifest()
    assert m["models"]["mnist/a"]["note"] == "KD student" and m["models"]["mnist/b"]["seed"] == 2


def test_a_run_trained_on_two_machines_names_both_with_its_steps_and_time(wroot, tmp_path, capsys):
    G = make_run(tmp_path / "a")
    cpu, gpu = "cpu (Intel Xeon, 2 cores)", "cuda:0 (NVIDIA H100)"
    training = {"seconds": 7200.0 + 1800.0 + 360.0, "segments": [
        {"steps": [0, 1000], "seconds": 7200.0, "device": cpu, "world_size": 1},
        {"steps": [1000, 2500], "seconds": 1800.0, "device": cpu, "world_size": 1},
        {"steps": [2500, 3000], "seconds": 360.0, "device": gpu, "world_size": 1}]}
    checkpoint.save_model(tmp_path / "a" / "G", G, finished=True, step=3000, config={"seed": 0}, training=training)
    weights.ship({"mnist/a": tmp_path / "a"}, device=gpu)  # shipped by the machine that finished it
    entry = weights.manifest()["models"]["mnist/a"]
    assert entry["device"] == f"{cpu} steps 0-2500; {gpu} steps 2500-3000"  # consecutive segments of one merged
    assert entry["training"] == training
    assert weights.summary()[0]["hours"] == 2.6
    # a run that hands on a generator it kept before its last step (a teacher's best): the list says which
    checkpoint.save_model(tmp_path / "a" / "G", G, finished=True, step=3000, config={"seed": 0}, training=training,
                          kept={"step": 1500, "by": "fid"})
    weights.ship({"mnist/a": tmp_path / "a"}, device=gpu)
    assert weights.manifest()["models"]["mnist/a"]["kept_step"] == 1500
    assert [(r["steps"], r["kept_step"]) for r in weights.summary()] == [(3000, 1500)]
    capsys.readouterr()
    assert cli.main(["weights", "list"]) == 0
    assert "steps 3000 (G: step 1500)  sha256" in capsys.readouterr().out
    assert cli.main(["weights", "list"]) == 0
    assert f"trained on {cpu} steps 0-2500; {gpu} steps 2500-3000 in 2.6 h" in capsys.readouterr().out
    # one machine: its name alone; a segment of a state saved before the record was kept has no time
    assert weights.trained_on({"segments": training["segments"][:2]}) == cpu
    old = {"seconds": None, "segments": [{"steps": [0, 1000], "seconds": None, "device": None, "world_size": 1},
                                         {"steps": [1000, 3000], "seconds": 50.0, "device": cpu, "world_size": 1}]}
    assert weights.trained_on(old, "x") == f"unrecorded steps 0-1000; {cpu} steps 1000-3000"
    assert weights.trained_on({"segments": old["segments"][:1]}, "x") == "x"
    assert weights._hours(old) is None


def test_load_of_a_model_not_shipped_lists_what_is(wroot, tmp_path):
    with pytest.raises(weights.ShippedWeightsError, match="MANIFEST.json does not exist"):
        weights.load("mnist", "tiny")
    make_run(tmp_path / "run")
    weights.ship({"mnist/tiny": tmp_path / "run"})
    with pytest.raises(weights.ShippedWeightsError, match=r"mnist/nope is not shipped.*lists: mnist/tiny"):
        weights.load("mnist", "nope")


# ---------------------------------------------------------------- checks

@pytest.mark.parametrize("name", ["G.safetensors", "G.json"])
def test_a_flipped_byte_is_caught_and_named(wroot, tmp_path, name):
    make_run(tmp_path / "run")
    weights.ship({"mnist/tiny": tmp_path / "run"})
    weights.load("mnist", "tiny")
    flip_byte(wroot / "mnist" / "tiny" / name)
    with pytest.raises(weights.ShippedWeightsError) as e:
        weights.load("mnist", "tiny")
    msg = str(e.value)
    assert f"mnist/tiny/{name} does not match its sha256 in MANIFEST.json" in msg
    # GANKD_WEIGHTS outside the repository: git cannot restore it, the files are copied back
    assert f"copy the shipped files back into {wroot}" in msg and 'WEIGHTS = "train"' in msg
    assert "git checkout" not in msg
    assert isinstance(e.value, FileNotFoundError)
    with pytest.raises(weights.ShippedWeightsError, match=f"mnist/tiny/{name}"):
        weights.verify()
    with pytest.raises(weights.ShippedWeightsError, match=f"mnist/tiny/{name}"):
        weights.path("mnist", "tiny")


def test_a_missing_file_is_named(wroot, tmp_path):
    make_run(tmp_path / "run")
    weights.ship({"mnist/tiny": tmp_path / "run"})
    (wroot / "mnist" / "tiny" / "G.json").unlink()
    with pytest.raises(weights.ShippedWeightsError, match=r"mnist/tiny/G\.json is missing"):
        weights.load("mnist", "tiny")


def test_a_git_lfs_pointer_is_recognised(wroot, tmp_path):
    make_run(tmp_path / "run")
    weights.ship({"mnist/tiny": tmp_path / "run"})
    (wroot / "mnist" / "tiny" / "G.safetensors").write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:" + "0" * 64 + "\nsize 9999\n")
    with pytest.raises(weights.ShippedWeightsError, match=r"mnist/tiny/G\.safetensors is a git-lfs pointer"):
        weights.load("mnist", "tiny")


def test_a_truncated_file_is_named(wroot, tmp_path):
    make_run(tmp_path / "run")
    weights.ship({"mnist/tiny": tmp_path / "run"})
    p = wroot / "mnist" / "tiny" / "G.safetensors"
    p.write_bytes(p.read_bytes()[:-10])
    with pytest.raises(weights.ShippedWeightsError, match=r"mnist/tiny/G\.safetensors does not match MANIFEST.json"):
        weights.verify("mnist/tiny")


def test_hashes_are_cached_per_file_version(wroot, tmp_path, monkeypatch):
    make_run(tmp_path / "run")
    weights.ship({"mnist/tiny": tmp_path / "run"})
    calls = []

    def counting(p):
        calls.append(Path(p).name)
        return hashlib.sha256(Path(p).read_bytes()).hexdigest()

    monkeypatch.setattr(weights, "sha256_file", counting)
    weights.verify()
    weights.verify()
    assert len(calls) == 4  # files written a moment ago may change within one mtime tick: not cached
    age(wroot)
    calls.clear()
    out = weights.verify()
    weights.verify()
    weights.load("mnist", "tiny")
    assert sorted(calls) == ["G.json", "G.safetensors"]
    assert out == {r: hashlib.sha256((wroot / r).read_bytes()).hexdigest() for r in out}
    flip_byte(wroot / "mnist" / "tiny" / "G.safetensors")  # same size; a new mtime
    with pytest.raises(weights.ShippedWeightsError, match=r"G\.safetensors does not match"):
        weights.verify()


# ---------------------------------------------------------------- ship

def test_an_unfinished_run_is_refused(wroot, tmp_path):
    make_run(tmp_path / "run", finished=False)
    with pytest.raises(ValueError, match=r"G\.json is not a finished run.*mnist/tiny"):
        weights.ship({"mnist/tiny": tmp_path / "run"})
    assert not wroot.exists()


def test_a_run_without_checkpoint_is_refused(wroot, tmp_path):
    make_run(tmp_path / "run")
    with pytest.raises(checkpoint.CheckpointError, match=r"cannot ship mnist/tiny: no checkpoint at .*D\.safetensors"):
        weights.ship({"mnist/tiny": tmp_path / "run"}, parts=("G", "D"))
    with pytest.raises(ValueError, match="dataset/model"):
        weights.ship({"tiny": tmp_path / "run"})
    for parts in ((), ("G", "G"), ("../G",)):
        with pytest.raises(ValueError, match="parts must name distinct checkpoints"):
            weights.ship({"mnist/tiny": tmp_path / "run"}, parts=parts)
    assert not wroot.exists()


def test_no_shipping_into_or_from_a_run_folder(wroot, tmp_path):
    make_run(tmp_path / "run")
    make_run(tmp_path / "other")
    runs = {"mnist/tiny": tmp_path / "run"}
    for root in (tmp_path / "run", tmp_path / "run" / "weights", tmp_path / "other" / "weights"):
        with pytest.raises(ValueError, match="refusing to ship into"):
            weights.ship(runs, root=root)
    make_run(wroot / "scratch")
    with pytest.raises(ValueError, match="inside the weights folder"):
        weights.ship({"mnist/tiny": wroot / "scratch"})
    assert not (tmp_path / "run" / "weights").exists() and not (tmp_path / "other" / "weights").exists()
    assert not (wroot / "MANIFEST.json").exists()


def test_mixing_profiles_is_refused(wroot, tmp_path):
    make_run(tmp_path / "run")
    weights.ship({"mnist/tiny": tmp_path / "run"})
    with pytest.raises(ValueError, match="mix profiles"):
        weights.ship({"mnist/tiny": tmp_path / "run"}, profile="quick")
    assert weights.manifest()["profile"] == "full"


def test_sha256sums_match_the_files(wroot, tmp_path):
    make_run(tmp_path / "a", with_d=True)
    make_run(tmp_path / "b", seed=1, with_d=True)
    weights.ship({"mnist/a": tmp_path / "a", "cifar10/b": tmp_path / "b"}, parts=("G", "D"))
    lines = (wroot / "SHA256SUMS").read_text().splitlines()
    pairs = [line.split("  ", 1) for line in lines]
    rels = [rel for _, rel in pairs]
    assert rels == sorted(rels) and len(rels) == 8
    assert {rel: sha for sha, rel in pairs} == {
        r: hashlib.sha256((wroot / r).read_bytes()).hexdigest()
        for r in (p.relative_to(wroot).as_posix() for p in wroot.rglob("*") if p.suffix in (".json", ".safetensors"))
        if r != "MANIFEST.json"}
    assert {rel: sha for sha, rel in pairs} == {r: e["sha256"] for r, e in weights.manifest()["files"].items()}
    if shutil.which("sha256sum"):
        assert subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=wroot, check=False).returncode == 0


def test_reshipping_the_same_files_changes_nothing_but_created(wroot, tmp_path):
    make_run(tmp_path / "run", with_d=True)
    weights.ship({"mnist/tiny": tmp_path / "run"}, parts=("G", "D"), device="cpu", note="n")
    m1 = weights.manifest()
    before = snapshot(wroot, skip=tmp_path / "nowhere")
    time.sleep(0.02)
    weights.ship({"mnist/tiny": tmp_path / "run"}, parts=("G", "D"), device="cpu", note="n")
    m2 = weights.manifest()
    after = snapshot(wroot, skip=tmp_path / "nowhere")
    m1.pop("created"), m2.pop("created")
    assert m1 == m2
    man = str(wroot / "MANIFEST.json")
    assert {k: v for k, v in before.items() if k != man} == {k: v for k, v in after.items() if k != man}
    assert sorted(before) == sorted(after)


def test_a_model_shipped_again_from_another_machine_still_names_the_one_that_trained_it(wroot, tmp_path):
    make_run(tmp_path / "a", seed=0)
    make_run(tmp_path / "b", seed=1)
    weights.ship({"mnist/a": tmp_path / "a", "mnist/b": tmp_path / "b"}, device="machine 1", note="first")
    # a later stage on another machine restores both and ships them again: the same bytes, nothing new
    weights.ship({"mnist/a": tmp_path / "a", "mnist/b": tmp_path / "b"}, device="machine 2", note="second")
    m = weights.manifest()
    assert m["device"] == "machine 1"
    assert {k: (e["device"], e["note"]) for k, e in m["models"].items()} == {"mnist/a": ("machine 1", "first"),
                                                                            "mnist/b": ("machine 1", "first")}
    make_run(tmp_path / "b", seed=2)  # b trained anew there: its entry, and only its, names machine 2
    weights.ship({"mnist/a": tmp_path / "a", "mnist/b": tmp_path / "b"}, device="machine 2", note="second")
    m = weights.manifest()
    assert m["device"] == "machine 2" and m["models"]["mnist/b"]["device"] == "machine 2"
    assert m["models"]["mnist/b"]["seed"] == 2 and m["models"]["mnist/a"]["device"] == "machine 1"
    assert len(weights.verify()) == 4  # G.safetensors + G.json of each, their sums as written


def test_nothing_is_written_outside_the_weights_folder(wroot, tmp_path):
    make_run(tmp_path / "run", with_d=True)
    age(tmp_path)
    before = snapshot(tmp_path, skip=wroot)
    weights.ship({"mnist/tiny": tmp_path / "run"}, parts=("G", "D"))
    weights.verify()
    weights.load("mnist", "tiny")
    weights.summary()
    weights.resolve("auto", "mnist", "tiny")
    assert snapshot(tmp_path, skip=wroot) == before
    written = sorted(p.relative_to(wroot).as_posix() for p in wroot.rglob("*") if p.is_file())
    assert written == ["MANIFEST.json", "SHA256SUMS"] + sorted(weights.manifest()["files"])
    assert all(p.endswith((".json", ".safetensors")) for p in weights.manifest()["files"])


# ---------------------------------------------------------------- WEIGHTS parameter

def test_resolve_choices(wroot, tmp_path):
    assert weights.resolve("auto", "mnist", "tiny") == "train"
    assert weights.resolve("train", "mnist", "tiny") == "train"
    with pytest.raises(weights.ShippedWeightsError, match=r'MANIFEST.json does not exist.*WEIGHTS = "train"'):
        weights.resolve("shipped", "mnist", "tiny")
    make_run(tmp_path / "run")
    weights.ship({"mnist/tiny": tmp_path / "run"})
    assert weights.resolve("auto", "mnist", "tiny") == "shipped"
    assert weights.resolve(" Shipped ", "mnist", "tiny") == "shipped"
    assert weights.resolve("train", "mnist", "tiny") == "train"
    assert weights.resolve("auto", "mnist", "other") == "train"
    with pytest.raises(weights.ShippedWeightsError, match=r'mnist/other is not shipped.*lists: mnist/tiny.*"train"'):
        weights.resolve("shipped", "mnist", "other")
    with pytest.raises(ValueError, match="'auto', 'shipped', 'train'"):
        weights.resolve("yes", "mnist", "tiny")
    (wroot / "MANIFEST.json").write_text("{")
    assert weights.resolve("train", "mnist", "tiny") == "train"  # training never reads the shipped folder
    with pytest.raises(weights.ManifestError):
        weights.resolve("auto", "mnist", "tiny")


# ---------------------------------------------------------------- manifest format

GOOD_SHA = "ab" * 32


@pytest.mark.parametrize("text, match", [
    ("{not json", "is not valid JSON"),
    ('["gankd-weights/1"]', "format 'list'"),
    ('{"format": "gankd-weights/2", "files": {}, "models": {}}', "format 'gankd-weights/2'"),
    ('{"format": "gankd-weights/1", "models": {}}', "lacks its 'files' and 'models'"),
    (json.dumps({"format": "gankd-weights/1", "files": {"../G.safetensors": {"sha256": GOOD_SHA, "bytes": 1}},
                 "models": {}}), "must be relative"),
    ('{"format": "gankd-weights/1", "files": {"m/x/G.json": {"sha256": "xyz", "bytes": 1}}, "models": {}}',
     "64-hex"),
    ('{"format": "gankd-weights/1", "files": {}, "models": {"mnist/x": {"files": ["mnist/x/G.json"]}}}',
     "without a sha256 entry"),
    ('{"format": "gankd-weights/1", "files": {}, "models": {"mnist": {"files": []}}}', "dataset/model"),
])
def test_manifest_format_errors(wroot, text, match):
    assert weights.manifest() is None
    wroot.mkdir()
    (wroot / "MANIFEST.json").write_text(text)
    with pytest.raises(weights.ManifestError, match=match) as e:
        weights.manifest()
    assert "MANIFEST.json" in str(e.value)
    assert isinstance(e.value, weights.ShippedWeightsError) and isinstance(e.value, ValueError)
    with pytest.raises(weights.ManifestError):
        weights.available()


def test_merge_checks_every_manifest_it_is_given(wroot, tmp_path):
    """Manifests from archives are checked as the one on disk is, before anything is written: a wrong format or a
    path out of the folder would otherwise be written out, after which every load of shipped weights fails."""
    make_run(tmp_path / "run")
    weights.ship({"mnist/tiny": tmp_path / "run"})
    good = weights.manifest()
    before = (wroot / "MANIFEST.json").read_bytes()
    bad_path = {**good, "files": {"../x.json": {"sha256": GOOD_SHA, "bytes": 2}},
                "models": {"mnist/m": {"files": ["../x.json"]}}}
    for other, match in (({**good, "format": "gankd-weights/2"}, "format 'gankd-weights/2'"),
                         (bad_path, "lists '../x.json': file paths must be relative"),
                         ({k: v for k, v in good.items() if k != "files"}, "lacks its 'files' and 'models'"),
                         ({**good, "models": {"mnist/m": {}}}, "the model mnist/m needs a 'files' list"),
                         ([1, 2], "format 'list'")):
        with pytest.raises(weights.ManifestError, match=f"MANIFEST.json of stage2.results.tar.gz.*{match}"):
            weights.merge([good, other], sources=["stage1.results.tar.gz", "stage2.results.tar.gz"])
        with pytest.raises(weights.ManifestError, match=f"the manifest 2 of 2 given to merge.*{match}"):
            weights.merge([good, other])  # unnamed: by its place
        assert (wroot / "MANIFEST.json").read_bytes() == before  # nothing written
    with pytest.raises(ValueError, match="1 sources named for 2 manifests"):
        weights.merge([good, good], sources=["a"])
    assert weights.merge([good], sources=["a"]) == wroot / "MANIFEST.json" and weights.manifest()["models"] == \
        good["models"]


def test_a_well_formed_manifest_is_read(wroot):
    wroot.mkdir()
    m = {"format": "gankd-weights/1", "profile": "full", "device": "x", "created": "now",
         "files": {"mnist/x/G.json": {"sha256": GOOD_SHA, "bytes": 3}},
         "models": {"mnist/x": {"dataset": "mnist", "model": "x", "files": ["mnist/x/G.json"]}}}
    (wroot / "MANIFEST.json").write_text(json.dumps(m))
    assert weights.manifest() == m
    assert weights.available() == ["mnist/x"]


# ---------------------------------------------------------------- command line

def test_command_line(wroot, tmp_path, capsys):
    assert cli.main(["weights", "verify"]) == 1
    assert "MANIFEST.json does not exist" in capsys.readouterr().err
    make_run(tmp_path / "run")
    weights.ship({"mnist/tiny": tmp_path / "run"})
    assert cli.main(["weights", "verify"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out] == ["OK", "OK"]
    assert [line.split()[-1] for line in out] == ["mnist/tiny/G.json", "mnist/tiny/G.safetensors"]
    assert cli.main(["weights", "list"]) == 0
    assert capsys.readouterr().out.startswith("mnist/tiny")
    flip_byte(wroot / "mnist" / "tiny" / "G.safetensors")
    assert cli.main(["weights", "verify", "mnist/tiny"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("OK") and out[1].startswith("FAILED  mnist/tiny/G.safetensors: ")
    assert cli.main(["weights", "--root", str(tmp_path / "empty"), "verify"]) == 1


def test_git_keeps_shipped_files_byte_for_byte():
    """Line-ending conversion (core.autocrlf) would break every sha256 of the shipped JSON files."""
    repo = Path(__file__).resolve().parent.parent
    if not shutil.which("git") or not (repo / ".git").exists():
        pytest.skip("not a git checkout")
    out = subprocess.run(["git", "check-attr", "text", "--", "results/weights/mnist/m/G.json",
                          "results/weights/SHA256SUMS"], cwd=repo, capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["results/weights/mnist/m/G.json: text: unset",
                                "results/weights/SHA256SUMS: text: unset"]


def test_the_committed_weights_match_their_sums_and_the_classifiers_meet_their_bars():
    """What the repository ships: every file's sha256 as listed; each evaluator classifier is the one the
    ``full`` profile trains (its cache name), and the report reads it as meeting its bar."""
    repo_results = Path(__file__).resolve().parent.parent / "results"
    root = repo_results / "weights"
    if not (root / weights.MANIFEST).is_file():
        pytest.skip("no shipped weights in this checkout")
    m = weights.manifest(root)
    assert m["profile"] == "full"
    assert set(weights.verify(root=root)) == set(m["files"])  # raises, naming the file, on any mismatch
    for ds in ("mnist", "cifar10"):
        ev = config.settings(ds, "full").eval
        stem, _ = metrics.classifier_path(ds, ev.cls_epochs, ev.cls_n_train, 0, ev.cls_width)
        assert weights.parts_of(ds, "classifier", root) == [stem.name]  # fullrun.restore_classifier finds it
    rows = [r for r in report.quality_bars(repo_results) if "evaluator classifier" in r["bar"]]
    assert len(rows) == 2 and all(r["from"].startswith("shipped weights (full") for r in rows), rows
    assert all(r["verdict"] == "met" for r in rows), rows


def test_the_repository_own_weights_folder_is_restored_with_git(tmp_path):
    hint = weights._restore_hint(paths.REPO_ROOT / "results" / "weights")
    assert "`git checkout -- results/weights`" in hint and "copy" not in hint
    assert "git checkout" not in weights._restore_hint(tmp_path / "weights")
