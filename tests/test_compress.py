"""ONNX export, int8 / fp16 files, channel pruning and honest unstructured pruning (gankd_utils.compress)."""
import copy

import numpy as np
import pytest
import torch

from gankd_utils import checkpoint, compress, repro
from gankd_utils.metrics import count_macs, count_nonzero, count_params, speed_table, state_bytes
from gankd_utils.models import (
    CGAN_PRESETS,
    CondDCGANGenerator,
    IITGNGenerator,
    ResNetGenerator,
    TinyGANGenerator,
)
from gankd_utils.models.layers import init_weights, is_spectral_normed, sn

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


def _seeded(G, seed=0):
    init_weights(G, torch.Generator().manual_seed(seed))
    return G.eval()


@pytest.fixture(scope="module")
def gens():
    torch.manual_seed(0)  # CondDCGANGenerator uses torch's default init
    return {"dc32": CondDCGANGenerator(c=32).eval(),
            "xs": _seeded(ResNetGenerator(**CGAN_PRESETS["student_xs"])),
            "tiny32": _seeded(TinyGANGenerator(resolution=32, n_classes=10, ch=8))}


@pytest.fixture(scope="module")
def onnx_files(gens, tmp_path_factory):
    d = tmp_path_factory.mktemp("onnx")
    return {name: compress.export_onnx(gens[name], d / f"{name}.onnx") for name in ("dc32", "xs")}


def _state_equal(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ---------------------------------------------------------------------------------------------------------------
# ONNX


@pytest.mark.parametrize("name", ["dc32", "xs"])
def test_onnx_matches_torch_at_batch_sizes_other_than_the_export(gens, onnx_files, name):
    G, path = gens[name], onnx_files[name]
    session = compress.ort_session(path, threads=1)
    assert [i.name for i in session.get_inputs()] == ["z", "y"]
    assert [o.name for o in session.get_outputs()] == ["image"]
    for n in (1, 5):  # exported with a batch of 2: both prove the dynamic batch dimension
        assert compress.onnx_max_abs_diff(G, path, n=n, seed=n, session=session) < 1e-4
        z, y = compress.example_inputs(G, n)
        x = compress.onnx_generate(session, z, y)
        assert x.shape == (n, *G.img_shape) and x.dtype == np.float32
        assert np.isfinite(x).all() and x.min() >= -1 and x.max() <= 1


def test_export_leaves_the_model_alone_and_bakes_spectral_norm(gens, tmp_path):
    G = copy.deepcopy(gens["dc32"])
    sn(G.out)  # a spectrally normalised layer, as a discriminator-style generator would have
    G.train()
    before = copy.deepcopy(G)
    path = compress.export_onnx(G, tmp_path / "sub" / "g.onnx")
    assert path.exists() and not list(path.parent.glob("*.tmp"))  # written atomically, no temp file left
    assert G.training and is_spectral_normed(G.out) and _state_equal(G, before)
    assert compress.onnx_max_abs_diff(G, path, n=3) < 1e-4
    G(*compress.example_inputs(G, 2))  # still a working model (its layer class was not altered)
    # the ConditionalBatchNorm's affine-free BN gets an identity affine only in the exported copy
    xs = gens["xs"]
    assert not xs.blocks[0].bn1.bn.affine


def test_onnx_errors_are_clear(gens, onnx_files, tmp_path):
    with pytest.raises(FileNotFoundError, match="export it first"):
        compress.ort_session(tmp_path / "missing.onnx")
    with pytest.raises(FileNotFoundError, match="no ONNX model"):
        compress.quantize_onnx_int8(tmp_path / "missing.onnx", tmp_path / "q.onnx", [])
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(RuntimeError, match="cannot load"):
        compress.ort_session(bad)
    session = compress.ort_session(onnx_files["xs"])
    with pytest.raises(ValueError, match=r"z must have shape \(N, 128\)"):
        compress.onnx_generate(session, np.zeros((2, 100), np.float32), np.zeros(2, np.int64))
    with pytest.raises(ValueError, match="class-conditional"):
        compress.onnx_generate(session, np.zeros((2, 128), np.float32))
    with pytest.raises(ValueError, match="integer class ids"):
        compress.onnx_generate(session, np.zeros((2, 128), np.float32), np.zeros(2, np.float32))


# ---------------------------------------------------------------------------------------------------------------
# int8 and fp16


def test_int8_model_runs_in_range_and_is_smaller(gens, onnx_files, tmp_path):
    G, src = gens["xs"], onnx_files["xs"]
    dst = compress.quantize_onnx_int8(src, tmp_path / "xs.int8.onnx", compress.calibration_batches(G, 2, 16))
    assert dst.stat().st_size < 0.6 * src.stat().st_size
    q = compress.quantized_ops(dst)
    assert set(q) == {"Conv", "Gemm"} and q["Conv"] == 16  # 3 blocks x (2 x (depthwise + pointwise) + shortcut) + out
    z, y = compress.example_inputs(G, 3, 7)
    x8 = compress.onnx_generate(compress.ort_session(dst), z, y)
    x32 = compress.onnx_generate(compress.ort_session(src), z, y)
    assert x8.shape == (3, 3, 32, 32) and np.isfinite(x8).all() and x8.min() >= -1 and x8.max() <= 1
    assert np.abs(x8 - x32).mean() < 0.1  # int8 rounding, not a broken graph
    with pytest.raises(ValueError, match="calibration is empty"):
        compress.quantize_onnx_int8(src, tmp_path / "q.onnx", [])


def test_int8_leaves_conv_transpose_in_fp32(gens, onnx_files, tmp_path):
    G = gens["dc32"]
    dst = compress.quantize_onnx_int8(onnx_files["dc32"], tmp_path / "dc.int8.onnx",
                                      compress.calibration_batches(G, 1, 8))
    assert compress.quantized_ops(dst) == {"Conv": 1}  # the 1x1 output conv; see INT8_OP_TYPES for why
    assert compress.onnx_max_abs_diff(G, dst, n=2) < 0.1


def test_fp16_file_is_half_the_size_and_loads_as_fp32(gens, tmp_path):
    G = gens["xs"]
    f32 = checkpoint.save_model(tmp_path / "g32", G)
    f16 = compress.to_fp16_safetensors(G, tmp_path / "g16")
    assert 0.45 < f16.stat().st_size / f32.stat().st_size < 0.55
    H = compress.load_fp16_safetensors(f16)
    assert type(H) is type(G) and all(p.dtype == torch.float32 for p in H.parameters())
    z, y = compress.example_inputs(G, 4)
    with torch.no_grad():
        assert (G(z, y) - H(z, y)).abs().max() < 1e-2


# ---------------------------------------------------------------------------------------------------------------
# structured pruning


def test_default_constructor_keeps_the_architecture_and_hparams():
    for G, kw in ((CondDCGANGenerator(c=32), "widths"), (ResNetGenerator(ch=4), "inner"),
                  (TinyGANGenerator(32, n_classes=10, ch=8), "inner")):
        assert kw not in G.hparams  # old sidecars and new ones of unpruned models look the same
    explicit = CondDCGANGenerator(c=32, widths=[32, 16, 8, 4])
    assert {k: v.shape for k, v in explicit.state_dict().items()} == \
           {k: v.shape for k, v in CondDCGANGenerator(c=32).state_dict().items()}
    with pytest.raises(ValueError, match="widths"):
        CondDCGANGenerator(c=32, widths=[8, 0, 4, 2])
    with pytest.raises(ValueError, match="inner"):
        ResNetGenerator(ch=4, inner=[4, 4])


@pytest.mark.parametrize("name", ["dc32", "xs", "tiny32"])
def test_prune_nothing_gives_identical_images(gens, name):
    G = gens[name]
    P = compress.prune_channels(G, 0.0)
    args = compress.example_inputs(G, 3)
    with torch.no_grad():
        assert torch.equal(G(*args), P(*args))
    assert count_params(P) == count_params(G)


@pytest.mark.parametrize("name,criterion", [("dc32", "l1"), ("xs", "bn"), ("tiny32", "l1")])
def test_pruned_model_is_smaller_and_survives_a_checkpoint(gens, tmp_path, name, criterion):
    G = gens[name]
    before = copy.deepcopy(G)
    P = compress.prune_channels(G, 0.5, criterion)
    assert _state_equal(G, before)  # the caller's model is untouched
    args = compress.example_inputs(G, 2)
    assert count_params(P) < count_params(G)
    assert count_macs(P, *args) < count_macs(G, *args)
    assert state_bytes(P) < state_bytes(G)
    assert count_nonzero(P) < count_nonzero(G)
    key = "widths" if name == "dc32" else "inner"
    assert key in P.hparams
    path = checkpoint.save_model(tmp_path / "pruned", P)
    L = checkpoint.load_model(path)
    with torch.no_grad():
        x = P(*args)
        assert torch.equal(x, L(*args))
    assert x.shape == (2, *G.img_shape) and x.min() >= -1 and x.max() <= 1


def test_heavy_pruning_keeps_one_channel_and_residual_width(gens):
    P = compress.prune_channels(gens["dc32"], 0.99)
    assert P.hparams["widths"] == [1, 1, 1, 1]
    R = compress.prune_channels(gens["xs"], 0.5)
    assert R.hparams["inner"] == [20, 20, 20] and R.width == gens["xs"].width == 40


def test_min_channels_spares_the_narrowest_layers(gens):
    G = gens["dc32"]  # widths 32/16/8/4
    assert compress.prune_channels(G, 0.3).hparams["widths"] == [22, 11, 6, 3]
    P = compress.prune_channels(G, 0.3, min_channels=4)
    assert P.hparams["widths"] == [22, 11, 6, 4]  # the 4-channel layer keeps all of its channels
    assert compress.prune_channels(G, 0.5, min_channels=4).hparams["widths"] == [16, 8, 4, 4]
    assert compress.prune_channels(G, 0.5, min_channels=6).hparams["widths"] == [16, 8, 6, 4]  # floor, not growth
    # the spared layer's weights are the original's: only the wider layers' outputs were cut
    idx = compress.prune_channels(G, 0.3, min_channels=4).out.weight
    assert idx.shape[1] == 4 and torch.equal(idx, G.out.weight)
    R = compress.prune_channels(gens["xs"], 0.5, min_channels=30)
    assert R.hparams["inner"] == [30, 30, 30]


def test_prune_bad_inputs(gens):
    for amount in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError, match=r"\[0, 1\)"):
            compress.prune_channels(gens["dc32"], amount)
        with pytest.raises(ValueError, match=r"\[0, 1\)"):
            compress.prune_unstructured(gens["dc32"], amount)
    with pytest.raises(ValueError, match="criterion"):
        compress.prune_channels(gens["dc32"], 0.5, criterion="l2")
    for floor in (0, -1, 2.5):
        with pytest.raises(ValueError, match="min_channels"):
            compress.prune_channels(gens["dc32"], 0.5, min_channels=floor)
    with pytest.raises(TypeError, match="IITGNGenerator"):
        compress.prune_channels(IITGNGenerator("student"), 0.5)


# ---------------------------------------------------------------------------------------------------------------
# unstructured pruning and the report


def test_unstructured_pruning_is_reported_honestly(gens):
    G = gens["xs"]
    before = copy.deepcopy(G)
    Z = compress.prune_unstructured(G, 0.5)
    assert _state_equal(G, before)  # the caller's model keeps its weights
    assert count_params(Z) == count_params(G) and state_bytes(Z) == state_bytes(G)  # zeros still take bytes
    dense, sparse = compress.sparse_report(G), compress.sparse_report(Z)
    assert sparse["dense_bytes"] == dense["dense_bytes"]
    assert sparse["nonzero_params"] < 0.6 * dense["nonzero_params"]
    assert sparse["zlib_bytes"] < 0.8 * dense["zlib_bytes"]


def test_compression_row(gens, onnx_files, tmp_path):
    G, path = gens["xs"], onnx_files["xs"]
    row = compress.compression_row("xs onnx", G, onnx_path=path)
    assert set(row) == {"name", "file", "file_bytes", "params", "nonzero_params", "macs", "zlib_bytes"}  # no timings
    assert row["file_bytes"] == path.stat().st_size and row["params"] == count_params(G)
    assert row["macs"] == count_macs(G, *compress.example_inputs(G, 2))
    torch_row = compress.compression_row("xs torch", G)
    assert torch_row["file_bytes"] == state_bytes(G)  # no file given: the fp32 safetensors it would write
    Z = compress.prune_unstructured(G, 0.5)
    sparse = compress.compression_row("xs 50% zeros", Z)
    assert sparse["file_bytes"] == torch_row["file_bytes"] and sparse["nonzero_params"] < torch_row["nonzero_params"]
    assert sparse["zlib_bytes"] < torch_row["zlib_bytes"]
    only_file = compress.compression_row("file", onnx_path=path)
    assert only_file["file_bytes"] == path.stat().st_size and only_file["params"] is None
    with pytest.raises(ValueError, match="at least one"):
        compress.compression_row("nothing")
    with pytest.raises(FileNotFoundError):
        compress.compression_row("gone", file_path=tmp_path / "gone.safetensors")
    with pytest.raises(TypeError):  # speed is measured by metrics.speed_table, for every variant together
        compress.compression_row("timed", G, repeats=1)


def test_onnx_generator_is_timed_with_the_torch_models(gens, onnx_files):
    G, path = gens["xs"], onnx_files["xs"]
    og = compress.OnnxGenerator(path, G, threads=1)
    z, y = compress.example_inputs(G, 3)
    with torch.no_grad():
        assert (og(z, y) - G(z, y)).abs().max() < 1e-4 and og(z, y).dtype == torch.float32
    out = speed_table({"torch": copy.deepcopy(G), "onnx": og}, "cpu", batch_size=4, rounds=2, threads=1)
    assert set(out) == {"torch", "onnx"} and all(r["ms_b1"] > 0 and r["img_per_s"] > 0 for r in out.values())
    assert not hasattr(compress, "torch_speed") and not hasattr(compress, "onnx_speed")  # one speed measurement


def test_example_inputs_are_the_shared_latents(gens):
    z, y = compress.example_inputs(gens["xs"], 12, seed=3, purpose="p")
    z2, y2 = repro.latents(12, 128, 10, 3, "p")
    assert torch.equal(z, z2) and torch.equal(y, y2) and y.tolist()[:11] == list(range(10)) + [0]
    (zu,) = compress.example_inputs(IITGNGenerator("student"), 2)
    assert zu.shape == (2, 100)
