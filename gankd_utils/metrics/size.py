"""Size: parameters, non-zero parameters, bytes of the file that would ship, MACs (speed: :mod:`.speed`)."""
from __future__ import annotations

import torch
import torch.nn as nn
from safetensors.torch import save as st_save

from .. import repro


def count_params(model: nn.Module) -> int:
    """Trainable and frozen parameters (torch's count: BatchNorm running stats excluded)."""
    return sum(p.numel() for p in model.parameters())


def count_nonzero(model: nn.Module) -> int:
    """Parameters that are not exactly zero (pruning leaves zeros that still cost bytes)."""
    return int(sum((p != 0).sum().item() for p in model.parameters()))


def count_keras_style(model: nn.Module) -> int:
    """Parameters plus BatchNorm running mean/var, as Keras' ``model.summary()`` counts them."""
    extra = sum(m.running_mean.numel() + m.running_var.numel() for m in model.modules()
                if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None)
    return count_params(model) + extra


def state_bytes(model: nn.Module, dtype: str = "fp32") -> int:
    """Bytes of a safetensors file of the model's weights in ``dtype``: fp32, fp16 or int8.

    int8: every floating tensor with more than one element is stored as int8
    with one fp32 scale (symmetric per-tensor quantisation); the rest stay fp32.
    """
    out: dict[str, torch.Tensor] = {}
    for k, v in model.state_dict().items():
        v = v.detach().cpu()
        if not v.is_floating_point():
            out[k] = v.contiguous()
        elif dtype == "fp32":
            out[k] = v.float().contiguous()
        elif dtype == "fp16":
            out[k] = v.half().contiguous()
        elif dtype == "int8":
            if v.numel() > 1:
                scale = v.abs().max().clamp_min(1e-12) / 127.0
                out[k] = (v / scale).round().clamp(-127, 127).to(torch.int8).contiguous()
                out[k + ".scale"] = scale.float().reshape(1)
            else:
                out[k] = v.float().contiguous()
        else:
            raise ValueError(f"dtype must be fp32, fp16 or int8, got {dtype!r}")
    return len(st_save(out))


def count_macs(model: nn.Module, *inputs: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass per sample (conv, transposed conv, linear layers).

    ``inputs`` is a batch; the total is divided by the batch size.
    """
    total = 0

    def conv_hook(m, inp, out):
        nonlocal total
        k = m.kernel_size[0] * m.kernel_size[1]
        if isinstance(m, nn.ConvTranspose2d):
            total += inp[0].numel() * (m.out_channels // m.groups) * k
        else:
            total += out.numel() * (m.in_channels // m.groups) * k

    def linear_hook(m, inp, out):
        nonlocal total
        total += out.numel() * m.in_features

    hooks = []
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return total // max(1, len(inputs[0]))


def size_report(G: nn.Module) -> dict[str, float]:
    """Parameters, non-zero parameters, MB on disk (fp32 / fp16 / int8) and MACs per image."""
    device = next(G.parameters()).device
    z = repro.noise(2, G.z_dim, 0, "macs", device)
    y = torch.zeros(2, dtype=torch.int64, device=device) if getattr(G, "n_classes", 0) else None
    return {
        "params": count_params(G),
        "nonzero_params": count_nonzero(G),
        "mb_fp32": state_bytes(G, "fp32") / 1e6,
        "mb_fp16": state_bytes(G, "fp16") / 1e6,
        "mb_int8": state_bytes(G, "int8") / 1e6,
        "macs": count_macs(G, z, y),
    }
