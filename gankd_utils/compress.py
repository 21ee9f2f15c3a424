"""Compressing a trained generator beyond distillation: ONNX export, int8 / fp16 weights, channel pruning.

The library behind notebook 07_prune_quantize. Every generator here is called
as ``G(z, y)`` with z (N, z_dim) float32 and y (N,) int64 class ids and returns
images (N, C, H, W) in [-1, 1]; every function leaves the caller's model as it
was (it works on a copy or builds a new model).

- ONNX export (:func:`export_onnx`) with the TorchScript exporter, inputs
  ``z`` and ``y`` and output ``image``, all with a dynamic batch dimension;
  run with ONNX Runtime (:func:`ort_session`, :func:`onnx_generate`).
- int8 post-training quantization (:func:`quantize_onnx_int8`): ONNX
  Runtime's static QDQ quantization (Jacob et al., "Quantization and Training
  of Neural Networks for Efficient Integer-Arithmetic-Only Inference", CVPR
  2018), weights per output channel, activations from a calibration set.
- fp16 weights (:func:`to_fp16_safetensors`): the file that would ship, half
  the bytes; it loads back into an fp32 model.
- Structured (channel) pruning (:func:`prune_channels`): the filters with the
  smallest L1 norm (Li et al., "Pruning Filters for Efficient ConvNets", ICLR
  2017) or the smallest |BN gain| (Liu et al., "Learning Efficient
  Convolutional Networks through Network Slimming", ICCV 2017) are removed,
  giving a genuinely smaller dense model that a checkpoint rebuilds; a floor
  (``min_channels``) spares a small student's narrowest layers.
- Unstructured magnitude pruning (:func:`prune_unstructured`, Han et al.,
  "Learning both Weights and Connections for Efficient Neural Networks",
  NeurIPS 2015) only zeroes weights: the dense file and the run time stay the
  same; :func:`sparse_report` shows the non-zero count and what a compressed
  file would take, labelled as such.

onnx and onnxruntime are imported only inside the functions that need them,
so the rest of the package works without them.
"""
from __future__ import annotations

import copy
import tempfile
import warnings
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save as st_save
from safetensors.torch import save_file
from torch import nn
from torch.nn.utils import parametrize

from . import checkpoint, models, repro
from .io import atomic_write
from .metrics.size import count_macs, count_nonzero, count_params, state_bytes
from .models.cgan import ResNetGenerator
from .models.dcgan import CondDCGANGenerator
from .models.layers import ConditionalBatchNorm2d, DepthwiseSeparableConv2d, UpBlock
from .models.tinygan import TinyGANGenerator

# Op types that quantize_onnx_int8 turns into int8 by default, chosen by measurement with onnxruntime
# 1.31 on a 2-core AVX2 x86 CPU, one thread (benchmarks/compress_speed.py):
# - Conv and Gemm: ORT's CPU provider fuses DQ -> Conv / Gemm -> Q into QLinearConv / QGemm integer kernels,
#   and int8 weights take a quarter of the bytes. Full 3x3 convs (student_s) ran about 1.5x faster than fp32
#   ONNX at batch 1 and 64; the depthwise-separable students (student_xs, TinyGAN) ran no faster, their
#   40-128-channel convs too small to pay for the NCHW <-> NHWC transposes around each integer conv, so for
#   them int8 buys bytes (about 0.45x) only. Leaving their depthwise convs in fp32 was no faster either.
# - ConvTranspose is left out: static QDQ quantizes its weights, but the CPU provider has no integer
#   ConvTranspose kernel: it dequantizes the weights on every call and runs the fp32 kernel, which was
#   slower than fp32 (CondDCGANGenerator c=32: 0.15 -> 0.21 ms at batch 1, 13.8k -> 11.8k images/s at 64).
#   A DCGAN's file shrinks with fp16 (to_fp16_safetensors) or channel pruning instead.
# - Add / Mul / Relu / Resize / Gather / BatchNormalization (ORT's default list quantizes them all) are left
#   out: the conditional-BN gain and bias, the residual sums and the upsampling then go through extra
#   QuantizeLinear / DequantizeLinear pairs, which added rounding error (mean |error| 0.030 -> 0.035 on
#   student_s) and gave no measurable speed-up over quantizing the convs alone.
INT8_OP_TYPES: tuple[str, ...] = ("Conv", "Gemm")


# ---------------------------------------------------------------------------------------------------------------
# ONNX export and ONNX Runtime


def _need(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"{module} is needed for ONNX export and int8 quantization: "
                          "pip install onnx onnxruntime") from e


def _check_generator(G: nn.Module) -> None:
    for attr in ("z_dim", "n_classes", "img_shape"):
        if not hasattr(G, attr):
            raise TypeError(f"{type(G).__name__} is not a gankd generator (it has no .{attr}); "
                            "pass a generator from gankd_utils.models")


def _export_copy(G: nn.Module) -> nn.Module:
    """A CPU fp32 eval-mode deep copy with spectral norm baked into plain weights.

    BatchNorms without an affine (inside conditional BN) get an identity affine
    (gain 1, bias 0, the same numbers): the TorchScript exporter cannot write an
    affine-free BatchNorm after a reshape whose batch size is dynamic.
    """
    G = copy.deepcopy(G).cpu().float().eval()
    for m in G.modules():
        if parametrize.is_parametrized(m):
            # Not parametrize.remove_parametrizations: a deep copy shares the generated Parametrized<Layer>
            # class with the original, and removal deletes the weight property from that class, breaking
            # the caller's model. The copy's layer gets its plain class back and the baked tensors instead.
            # Eval mode: spectral norm reuses its stored u, v, so the baked weight is the one G uses now.
            with torch.no_grad():
                baked = {name: getattr(m, name).detach().clone() for name in m.parametrizations}
            m.__class__ = type(m).__bases__[0]
            del m._modules["parametrizations"]
            for name, value in baked.items():
                m.register_parameter(name, nn.Parameter(value))
    for m in G.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and not m.affine:
            m.affine = True
            m.weight = nn.Parameter(torch.ones(m.num_features))
            m.bias = nn.Parameter(torch.zeros(m.num_features))
    return G


def example_inputs(G: nn.Module, n: int = 2, seed: int = 0, purpose: str = "onnx") -> tuple[torch.Tensor, ...]:
    """(z, y) for ``G``: z (n, z_dim) from (seed, purpose), y (n,) int64 cycling through the classes.

    Unconditional generators get ``(z,)`` alone.
    """
    z, y = repro.latents(n, G.z_dim, G.n_classes, seed, purpose)
    return (z,) if y is None else (z, y)


def export_onnx(G: nn.Module, path: str | Path, opset: int = 17) -> Path:
    """Write ``G`` as an ONNX graph: inputs ``z`` (N, z_dim) float32 and ``y`` (N,) int64, output ``image``.

    ``image`` is (N, C, H, W) float32 in [-1, 1]; N is dynamic. The graph is
    of ``G`` in eval mode (BatchNorm running statistics), traced by the
    TorchScript exporter on a CPU fp32 copy (spectral norm baked into plain
    weights); ``G`` itself is not changed. Unconditional generators have only
    the ``z`` input. The file is written atomically. Returns its path.
    """
    _check_generator(G)
    onnx = _need("onnx")
    G = _export_copy(G)
    args = example_inputs(G, 2)
    names = ["z", "y"][:len(args)]
    dynamic = {name: {0: "batch"} for name in [*names, "image"]}

    def write(tmp: str) -> None:
        with warnings.catch_warnings():
            # the TorchScript exporter is deprecated in favour of dynamo=True, which needs onnxscript;
            # the traced input checks (int(y.max()) etc.) warn that they become constants, which they may
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.onnx.export(G, args, tmp, input_names=names, output_names=["image"], dynamic_axes=dynamic,
                              opset_version=opset, do_constant_folding=True, dynamo=False)
        onnx.checker.check_model(tmp)

    return atomic_write(path, write)


def _require_file(path: str | Path, what: str = "ONNX model") -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no {what} at {path}: export it first (compress.export_onnx), or check the path")
    return path


def ort_session(path: str | Path, threads: int | None = None):
    """An ONNX Runtime CPU session for the model at ``path``; ``threads``: intra-op threads (None: ORT's choice)."""
    ort = _need("onnxruntime")
    path = _require_file(path)
    so = ort.SessionOptions()
    so.log_severity_level = 3  # warnings about unused initializers etc. are not the user's business
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1 or None, got {threads}")
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own Fail / InvalidGraph types
        raise RuntimeError(f"ONNX Runtime cannot load {path} ({type(e).__name__}: {e}); "
                           "the file is damaged or not an ONNX model: export it again") from e


def _as_numpy(x, dtype) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.ascontiguousarray(np.asarray(x), dtype=dtype)


def _feeds(session, z, y=None) -> dict[str, np.ndarray]:
    inputs = {i.name: i for i in session.get_inputs()}
    if "z" not in inputs:
        raise ValueError(f"this ONNX model has inputs {sorted(inputs)}, not the z / y of export_onnx")
    z = _as_numpy(z, np.float32)
    z_dim = inputs["z"].shape[1]
    if z.ndim != 2 or (isinstance(z_dim, int) and z.shape[1] != z_dim):
        raise ValueError(f"z must have shape (N, {z_dim}), got {z.shape}")
    feeds = {"z": z}
    if "y" in inputs:
        if y is None:
            raise ValueError("this generator is class-conditional: pass y, class ids (N,) int64")
        y = np.asarray(y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else y)
        if y.shape != (z.shape[0],) or np.issubdtype(y.dtype, np.floating):
            raise ValueError(f"y must hold integer class ids of shape ({z.shape[0]},), got {y.dtype} {y.shape}")
        feeds["y"] = np.ascontiguousarray(y, dtype=np.int64)
    return feeds


def onnx_generate(session, z, y=None) -> np.ndarray:
    """Images (N, C, H, W) float32 in [-1, 1] from an ONNX Runtime session (or a path to an .onnx file).

    z: (N, z_dim) float, y: (N,) integer class ids; numpy arrays or torch tensors.
    """
    if isinstance(session, (str, Path)):
        session = ort_session(session)
    return session.run(["image"], _feeds(session, z, y))[0]


def onnx_max_abs_diff(G: nn.Module, path: str | Path, n: int = 8, seed: int = 0, session=None) -> float:
    """Largest |ONNX Runtime - torch| over n images of ``G`` (eval mode) for the same (z, y)."""
    _check_generator(G)
    session = session or ort_session(path)
    G = _export_copy(G)
    args = example_inputs(G, n, seed, "onnx-check")
    with torch.no_grad():
        ref = G(*args).numpy()
    out = onnx_generate(session, *args)
    if out.shape != ref.shape:
        raise RuntimeError(f"the ONNX model gives {out.shape}, torch {ref.shape}: was {path} exported from this G?")
    return float(np.abs(out - ref).max())


def onnx_op_counts(path: str | Path, optimized: bool = False) -> dict[str, int]:
    """How many nodes of each op type the ONNX file holds.

    ``optimized=True`` counts the graph after ONNX Runtime's CPU optimizations
    instead: which ops it fused (BatchNorm into convs) and which int8 groups
    became integer kernels (``com.microsoft:QLinearConv``) and which stayed
    DequantizeLinear + fp32 op.
    """
    onnx = _need("onnx")
    path = _require_file(path)
    if optimized:
        ort = _need("onnxruntime")
        with tempfile.TemporaryDirectory() as d:
            so = ort.SessionOptions()
            so.log_severity_level = 3
            so.optimized_model_filepath = str(Path(d) / "optimized.onnx")
            ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
            model = onnx.load(so.optimized_model_filepath)
    else:
        model = onnx.load(str(path))
    return dict(Counter(f"{n.domain}:{n.op_type}" if n.domain else n.op_type for n in model.graph.node))


def quantized_ops(path: str | Path) -> dict[str, int]:
    """Op types of a QDQ model whose weight comes in as int8 (through a DequantizeLinear of an initializer)."""
    onnx = _need("onnx")
    model = onnx.load(str(_require_file(path)))
    inits = {t.name for t in model.graph.initializer}
    dq_of_weight = {n.output[0] for n in model.graph.node
                    if n.op_type == "DequantizeLinear" and n.input[0] in inits}
    return dict(Counter(n.op_type for n in model.graph.node
                        if n.op_type not in ("QuantizeLinear", "DequantizeLinear")
                        and any(i in dq_of_weight for i in n.input[1:2])))


# ---------------------------------------------------------------------------------------------------------------
# int8 (ONNX Runtime static QDQ) and fp16 (safetensors)


def calibration_batches(G: nn.Module, n_batches: int = 8, batch_size: int = 32, seed: int = 0
                        ) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n_batches`` (z, y) numpy batches for int8 calibration: z (B, z_dim) float32, y (B,) int64.

    z from (seed, "calibration"), never the evaluation noise; y cycles through
    every class so each class's conditional-BN gain is seen.
    """
    _check_generator(G)
    out = []
    g = repro.generator(seed, "calibration")
    for i in range(n_batches):
        z = torch.randn(batch_size, G.z_dim, generator=g).numpy()
        y = (np.arange(i * batch_size, (i + 1) * batch_size) % max(1, G.n_classes)).astype(np.int64)
        out.append((z, y))
    return out


def quantize_onnx_int8(src: str | Path, dst: str | Path, calibration: Iterable[tuple[Any, Any]],
                       per_channel: bool = True, op_types: Sequence[str] = INT8_OP_TYPES,
                       reduce_range: bool = True) -> Path:
    """int8 copy of the fp32 ONNX model ``src`` at ``dst`` (static QDQ quantization by ONNX Runtime).

    ``calibration``: (z, y) batches, z (B, z_dim) float32 and y (B,) int64
    (numpy or torch), e.g. :func:`calibration_batches`; the ranges of the
    activations they produce fix the activation scales (min-max), so they
    should cover every class. Weights int8 (symmetric, per output channel when
    ``per_channel``), activations uint8. ``op_types``: which ops to quantize;
    see :data:`INT8_OP_TYPES` for why the default is Conv and Gemm only.
    ``reduce_range``: 7-bit weights. x86 CPUs without VNNI (AVX2 only) multiply
    uint8 activations by int8 weights with an instruction whose 16-bit sums
    saturate; with 8-bit weights that tripled the int8 error of these
    generators (mean |error| 0.10 instead of 0.03 for student_s). Set False on
    CPUs with VNNI (AVX512-VNNI / AVX-VNNI) or ARM.
    The file is written atomically. Returns its path.
    """
    src = _require_file(src)
    _need("onnx")
    q = _need("onnxruntime.quantization")
    from onnxruntime.quantization.shape_inference import quant_pre_process

    session = ort_session(src)
    batches = [_feeds(session, *b) for b in calibration]
    if not batches:
        raise ValueError("calibration is empty: pass (z, y) batches, e.g. compress.calibration_batches(G)")
    if not op_types:
        raise ValueError("op_types is empty: nothing would be quantized")

    class Reader(q.CalibrationDataReader):
        def __init__(self):
            self._it = iter(batches)

        def get_next(self):
            return next(self._it, None)

    dst = Path(dst)
    with tempfile.TemporaryDirectory() as d:
        pre = Path(d) / "pre.onnx"
        # ORT's recommended preprocessing: shape inference + its graph optimizations (BatchNorm folded into
        # the conv before it), so the quantizer sees the graph the runtime will run
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)

        def write(tmp: str) -> None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                q.quantize_static(str(pre), tmp, Reader(), quant_format=q.QuantFormat.QDQ,
                                  op_types_to_quantize=list(op_types), per_channel=per_channel,
                                  activation_type=q.QuantType.QUInt8, weight_type=q.QuantType.QInt8,
                                  reduce_range=reduce_range,
                                  calibrate_method=q.CalibrationMethod.MinMax)

        return atomic_write(dst, write)


def to_fp16_safetensors(G: nn.Module, path: str | Path, **meta: Any) -> Path:
    """Save ``G``'s weights as fp16: NAME.safetensors (about half the fp32 bytes) + NAME.json sidecar.

    The layout is a gankd checkpoint, so :func:`gankd_utils.checkpoint.load_model`
    (or :func:`load_fp16_safetensors`) rebuilds an fp32 model from it; the
    weights differ from ``G``'s by fp16 rounding (relative 2**-11). Integer
    buffers (BatchNorm's step counter) stay as they are.
    """
    _check_generator(G)
    weights, sidecar = checkpoint._paths(path)
    state = {}
    for k, v in G.state_dict().items():
        v = v.detach().cpu()
        if v.is_floating_point():
            h = v.half()
            if torch.isinf(h).any() and not torch.isinf(v).any():
                raise ValueError(f"{k} has values beyond fp16's range (max |x| = {v.abs().max():.3g} > 65504): "
                                 "this model cannot ship as fp16")
            v = h
        state[k] = v.contiguous()
    atomic_write(weights, lambda tmp: save_file(state, tmp))
    checkpoint.write_sidecar(sidecar, {"gankd": checkpoint.FORMAT, "model": models.spec_of(G), "dtype": "fp16", **meta})
    return weights


def load_fp16_safetensors(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """The fp32 model (eval mode) rebuilt from a file of :func:`to_fp16_safetensors`."""
    return checkpoint.load_model(path, device).float()


# ---------------------------------------------------------------------------------------------------------------
# structured (channel) pruning


def _check_amount(amount: float) -> float:
    amount = float(amount)
    if not 0.0 <= amount < 1.0:
        raise ValueError(f"amount is the fraction of channels (or weights) to remove and must lie in [0, 1), "
                         f"got {amount}")
    return amount


def _keep(scores: torch.Tensor, amount: float, min_channels: int = 1) -> torch.Tensor:
    """Indices (ascending, so channel order is kept) of the top round((1 - amount) C) scores, at least
    ``min_channels`` (a layer narrower than that keeps all of its C)."""
    n = min(len(scores), max(min_channels, round((1.0 - amount) * len(scores))))
    return torch.topk(scores, n, sorted=False).indices.sort().values


def _cbn_gain(cbn: ConditionalBatchNorm2d, cond: torch.Tensor | None) -> torch.Tensor:
    """Mean |gain| per channel over every class: the |gamma| of Network Slimming for conditional BN."""
    if cbn.n_classes:
        gain = 1.0 + cbn.gain.weight
    else:
        gain = 1.0 + cbn.proj(cond)[:, :cbn.num_features]
    return gain.abs().mean(0)


def _block_plan(prefix: str, block: UpBlock, idx: torch.Tensor) -> dict[str, dict[int, torch.Tensor]]:
    """state_dict slices that keep the inner channels ``idx`` of an UpBlock."""
    plan: dict[str, dict[int, torch.Tensor]] = {}
    if isinstance(block.conv1, DepthwiseSeparableConv2d):
        plan[f"{prefix}conv1.pointwise.weight"] = {0: idx}
        plan[f"{prefix}conv1.pointwise.bias"] = {0: idx}
        plan[f"{prefix}conv2.depthwise.weight"] = {0: idx}
        plan[f"{prefix}conv2.depthwise.bias"] = {0: idx}
        plan[f"{prefix}conv2.pointwise.weight"] = {1: idx}
    else:
        plan[f"{prefix}conv1.weight"] = {0: idx}
        plan[f"{prefix}conv1.bias"] = {0: idx}
        plan[f"{prefix}conv2.weight"] = {1: idx}
    bn2 = block.bn2
    plan[f"{prefix}bn2.bn.running_mean"] = {0: idx}
    plan[f"{prefix}bn2.bn.running_var"] = {0: idx}
    if bn2.n_classes:
        plan[f"{prefix}bn2.gain.weight"] = {1: idx}
        plan[f"{prefix}bn2.bias.weight"] = {1: idx}
    else:
        both = torch.cat([idx, idx + bn2.num_features])  # the projection's rows are [gain | bias]
        plan[f"{prefix}bn2.proj.weight"] = {0: both}
        plan[f"{prefix}bn2.proj.bias"] = {0: both}
    return plan


@torch.no_grad()
def prune_channels(G: nn.Module, amount: float, criterion: str = "l1", min_channels: int = 1) -> nn.Module:
    """A new, narrower dense copy of ``G`` without the least important ``amount`` of its hidden channels.

    Each pruned layer keeps round((1 - amount) C) of its C output channels, but
    at least ``min_channels`` (a layer of at most that many keeps them all:
    a small student's narrowest layer is spared), chosen by ``criterion``: 'l1', the L1 norm of each output
    filter, or 'bn', the |gain| of the BatchNorm after it (for conditional BN,
    averaged over the classes). What is pruned:

    - :class:`CondDCGANGenerator`: the outputs of every ConvTranspose2d in
      ``body``, their BatchNorm entries and the next layer's inputs (the last
      one feeds the 1x1 ``out`` conv). z, y and the image are unchanged.
    - :class:`ResNetGenerator`, :class:`TinyGANGenerator`: the inner channels
      of each residual up-block (first conv's outputs, second conditional BN,
      second conv's inputs); block inputs and outputs, the residual stream
      that the shortcuts add into, keep their width.

    The copy is a plain model of the same class with the new widths in its
    ``hparams`` (``widths`` or ``inner``), so a checkpoint rebuilds it; it has
    fewer parameters, MACs and bytes. Its images differ from ``G``'s: fine-tune
    (or distil again) before judging quality. ``amount=0`` gives an exact copy.
    Returned on ``G``'s device, in ``G``'s train / eval mode.
    """
    amount = _check_amount(amount)
    if int(min_channels) != min_channels or min_channels < 1:
        raise ValueError(f"min_channels is the fewest channels a pruned layer keeps: a whole number >= 1, "
                         f"got {min_channels!r}")
    min_channels = int(min_channels)
    if criterion not in ("l1", "bn"):
        raise ValueError(f"criterion must be 'l1' (filter L1 norm) or 'bn' (|BatchNorm gain|), got {criterion!r}")
    spec = models.spec_of(G)
    plan: dict[str, dict[int, torch.Tensor]] = {}
    if isinstance(G, CondDCGANGenerator):
        convs = [i for i, m in enumerate(G.body) if isinstance(m, nn.ConvTranspose2d)]
        widths = []
        for j, i in enumerate(convs):
            conv, bn = G.body[i], G.body[i + 1]
            # a ConvTranspose2d weight is (in, out, k, k): output filter c is weight[:, c]
            score = conv.weight.abs().sum((0, 2, 3)) if criterion == "l1" else bn.weight.abs()
            idx = _keep(score.cpu(), amount, min_channels)
            widths.append(len(idx))
            plan.setdefault(f"body.{i}.weight", {})[1] = idx  # its inputs may be pruned already
            for name in ("weight", "bias", "running_mean", "running_var"):
                plan[f"body.{i + 1}.{name}"] = {0: idx}
            nxt = f"body.{convs[j + 1]}.weight" if j + 1 < len(convs) else "out.weight"
            plan.setdefault(nxt, {})[0 if j + 1 < len(convs) else 1] = idx
        spec["kwargs"]["widths"] = widths
    elif isinstance(G, (ResNetGenerator, TinyGANGenerator)):
        cond = None
        if isinstance(G, TinyGANGenerator):
            # the BN gains of every class: class embeddings (with z = 0, its mean, for cond='embed+z')
            cond = G.embed.weight
            if G.cond == "embed+z":
                cond = torch.cat([cond, cond.new_zeros(len(cond), G.z_dim)], 1)
        inner = []
        for b, block in enumerate(G.blocks):
            conv1 = block.conv1.pointwise if isinstance(block.conv1, DepthwiseSeparableConv2d) else block.conv1
            w1 = conv1.weight
            score = w1.abs().sum((1, 2, 3)) if criterion == "l1" else _cbn_gain(block.bn2, cond)
            idx = _keep(score.cpu(), amount, min_channels)
            inner.append(len(idx))
            plan.update(_block_plan(f"blocks.{b}.", block, idx))
        spec["kwargs"]["inner"] = inner
    else:
        raise TypeError(f"prune_channels knows CondDCGANGenerator, ResNetGenerator and TinyGANGenerator, "
                        f"not {type(G).__name__}")

    state = {}
    for k, v in G.state_dict().items():
        v = v.detach()
        for dim, idx in plan.get(k, {}).items():
            v = v.index_select(dim, idx.to(v.device))
        state[k] = v
    new = models.build(spec)
    new.load_state_dict(state)  # strict: every tensor of the narrow model is accounted for
    device = next(G.parameters()).device
    return new.to(device).train(G.training)


# ---------------------------------------------------------------------------------------------------------------
# unstructured pruning (zeros: honest reporting only)


def _prunable(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    return [(f"{name}.weight" if name else "weight", m.weight) for name, m in model.named_modules()
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]


@torch.no_grad()
def prune_unstructured(G: nn.Module, amount: float) -> nn.Module:
    """A copy of ``G`` with the ``amount`` smallest-|w| weights of each conv / linear layer set to zero.

    Per-layer magnitude pruning. The copy is exactly as large and as slow as
    ``G``: a zero is stored and multiplied like any number. Only the non-zero
    count (:func:`gankd_utils.metrics.count_nonzero`) and the size of a
    compressed or sparse file (:func:`sparse_report`) go down.
    """
    amount = _check_amount(amount)
    G = copy.deepcopy(G)
    for _, w in _prunable(G):
        k = round(amount * w.numel())
        if k == 0:
            continue
        cut = w.abs().flatten().kthvalue(k).values
        w.masked_fill_(w.abs() <= cut, 0.0)
    return G


def sparse_report(G: nn.Module) -> dict[str, int]:
    """What zeros do and do not save, in bytes of weights as files.

    ``dense_bytes``: the fp32 safetensors file (unchanged by zeroing);
    ``zlib_bytes``: that file after zlib (level 9), what a zip of it takes;
    ``csr_bytes``: conv / linear weights as fp32 values + int32 column indices
    + int32 row offsets, every other tensor dense: a sparse format's size,
    which beats dense only above about 50% zeros. ``params`` / ``nonzero_params``.
    """
    state = {k: v.detach().cpu().float().contiguous() if v.is_floating_point() else v.detach().cpu().contiguous()
             for k, v in G.state_dict().items()}
    dense = st_save(state)
    prunable = {k for k, _ in _prunable(G)}
    csr = 0
    for k, v in state.items():
        if k in prunable:
            m = v.reshape(v.shape[0], -1)
            csr += int((m != 0).sum()) * (4 + 4) + (m.shape[0] + 1) * 4
        else:
            csr += v.numel() * v.element_size()
    return {"params": count_params(G), "nonzero_params": count_nonzero(G), "dense_bytes": len(dense),
            "zlib_bytes": len(zlib.compress(dense, 9)), "csr_bytes": csr}


# ---------------------------------------------------------------------------------------------------------------
# one row of the compression table


def compression_row(name: str, G: nn.Module | None = None, onnx_path: str | Path | None = None,
                    file_path: str | Path | None = None) -> dict[str, Any]:
    """The size columns of one row of the compression table for a model variant (speed: ``metrics.speed_table``).

    ``file_bytes``: the size of the file that would ship: ``file_path`` if
    given (an fp16 .safetensors, say), else ``onnx_path``, else an fp32
    safetensors of ``G``. From ``G`` (the torch model the variant computes
    like, e.g. the fp32 model for its int8 ONNX file): ``params``,
    ``nonzero_params``, ``macs`` per image, ``zlib_bytes`` (its fp32 file
    compressed, which only zeros shrink). Missing entries are None.
    """
    if G is None and onnx_path is None and file_path is None:
        raise ValueError("give at least one of G, onnx_path or file_path")
    row: dict[str, Any] = {"name": name, "file": None, "file_bytes": None, "params": None, "nonzero_params": None,
                           "macs": None, "zlib_bytes": None}
    shipped = file_path or onnx_path
    if shipped is not None:
        shipped = _require_file(shipped, "file")
        row["file"], row["file_bytes"] = shipped.name, shipped.stat().st_size
    if G is not None:
        _check_generator(G)
        G = copy.deepcopy(G).cpu().eval()
        rep = sparse_report(G)
        row.update(params=rep["params"], nonzero_params=rep["nonzero_params"], zlib_bytes=rep["zlib_bytes"],
                   macs=count_macs(G, *example_inputs(G, 2, 0, "macs")))
        if shipped is None:
            row["file"], row["file_bytes"] = "fp32 safetensors (in memory)", state_bytes(G, "fp32")
    return row


class OnnxGenerator(nn.Module):
    """An ONNX file behind the generator interface, so the evaluation pipeline scores what would ship.

    ``G(z, y)`` runs the file in ONNX Runtime on the CPU and returns a float32
    torch tensor (N, C, H, W); ``like`` is the torch generator the file was
    exported from (z_dim, n_classes, img_shape are taken from it).
    """

    def __init__(self, path: str | Path, like: nn.Module, threads: int | None = None):
        super().__init__()
        _check_generator(like)
        self.path = _require_file(path)
        self.session = ort_session(self.path, threads)
        self.z_dim, self.n_classes, self.img_shape = like.z_dim, like.n_classes, like.img_shape
        # models.generate reads the device from the parameters: this one says "CPU"
        self.register_parameter("_device_anchor", nn.Parameter(torch.zeros(1), requires_grad=False))

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        out = onnx_generate(self.session, z.detach().cpu(), None if y is None else y.detach().cpu())
        return torch.from_numpy(out)


__all__ = [
    "INT8_OP_TYPES",
    "OnnxGenerator",
    "calibration_batches",
    "compression_row",
    "example_inputs",
    "export_onnx",
    "load_fp16_safetensors",
    "onnx_generate",
    "onnx_max_abs_diff",
    "onnx_op_counts",
    "ort_session",
    "prune_channels",
    "prune_unstructured",
    "quantize_onnx_int8",
    "quantized_ops",
    "sparse_report",
    "to_fp16_safetensors",
]
