"""Building blocks of the ResNet GANs: spectral norm, conditional BatchNorm, separable convs, residual blocks.

- Spectral normalisation (Miyato et al., "Spectral Normalization for
  Generative Adversarial Networks", ICLR 2018): every weight is divided by its
  largest singular value, estimated by one power iteration per training
  forward (torch's ``parametrizations.spectral_norm``).
- Conditional BatchNorm (de Vries et al. 2017; Miyato & Koyama, "cGANs with
  Projection Discriminator", ICLR 2018): BatchNorm without its own affine,
  whose gain and bias are predicted from the condition, either from a class
  (an embedding table, i.e. a one-hot vector times a matrix: SNGAN) or from a
  conditioning vector through a linear layer (BigGAN's shared class embedding,
  Brock et al., ICLR 2019; TinyGAN, Chang & Lu, ACCV 2020).
- Depthwise-separable convolution (Howard et al., MobileNets, 2017): a
  depthwise k x k conv followed by a pointwise 1x1 conv, TinyGAN's trick for a
  small generator.
- Residual up-blocks (generator) and down-blocks (discriminator) as in SNGAN
  and BigGAN.

Feature maps are (N, C, H, W); nothing here checks value ranges.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm as _torch_spectral_norm

from .. import repro

# ---------------------------------------------------------------------------------------------------------------
# spectral norm


def sn(module: nn.Module, enabled: bool = True, n_power_iterations: int = 1, eps: float = 1e-12) -> nn.Module:
    """``module`` with its ``weight`` spectrally normalised (or unchanged when ``enabled`` is False).

    One power iteration per training forward, as SNGAN: the estimate of the top
    singular value improves as training proceeds; eval mode reuses the last one.
    """
    if not enabled:
        return module
    return _torch_spectral_norm(module, n_power_iterations=n_power_iterations, eps=eps)


def SNConv2d(*args, sn_enabled: bool = True, **kwargs) -> nn.Module:
    """``nn.Conv2d(*args, **kwargs)`` with spectral norm."""
    return sn(nn.Conv2d(*args, **kwargs), sn_enabled)


def SNLinear(*args, sn_enabled: bool = True, **kwargs) -> nn.Module:
    """``nn.Linear(*args, **kwargs)`` with spectral norm."""
    return sn(nn.Linear(*args, **kwargs), sn_enabled)


def SNEmbedding(*args, sn_enabled: bool = True, **kwargs) -> nn.Module:
    """``nn.Embedding(*args, **kwargs)`` with spectral norm (the projection discriminator's class table)."""
    return sn(nn.Embedding(*args, **kwargs), sn_enabled)


def _sn_parametrization(module: nn.Module):
    if not parametrize.is_parametrized(module, "weight"):
        return None
    for p in module.parametrizations.weight:
        if type(p).__name__ == "_SpectralNorm":
            return p
    return None


def is_spectral_normed(module: nn.Module) -> bool:
    """True when ``module.weight`` goes through torch's spectral-norm parametrization."""
    return _sn_parametrization(module) is not None


def spectral_norm_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every spectrally normalised layer in ``model``."""
    return [(name, m) for name, m in model.named_modules() if is_spectral_normed(m)]


def weight_matrix(module: nn.Module) -> torch.Tensor:
    """The (effective) weight as the 2-D matrix whose top singular value spectral norm divides by.

    Rows are the output units: (out, in * k * k) for a conv, (out, in) for a
    linear layer, (classes, dim) for an embedding.
    """
    w = module.weight
    p = _sn_parametrization(module)
    dim = p.dim if p is not None else 0
    if dim != 0:
        w = w.movedim(dim, 0)
    return w.reshape(w.shape[0], -1)


# ---------------------------------------------------------------------------------------------------------------
# convolutions and normalisation


class DepthwiseSeparableConv2d(nn.Module):
    """A depthwise k x k conv (one filter per input channel) then a pointwise 1x1 conv mixing channels.

    (N, cin, H, W) -> (N, cout, H', W'); 'same' padding, so H' = H / stride.
    Parameters: cin * k * k + cin * cout (+ cin + cout biases) instead of a
    full conv's cin * cout * k * k: about k*k times fewer when cout is large.
    """

    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, bias: bool = True):
        super().__init__()
        if k % 2 != 1:
            raise ValueError(f"kernel size must be odd for 'same' padding, got {k}")
        self.in_channels, self.out_channels = cin, cout
        self.depthwise = nn.Conv2d(cin, cin, k, stride, k // 2, groups=cin, bias=bias)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


def conv3x3(cin: int, cout: int, separable: bool = False, bias: bool = True) -> nn.Module:
    """A 'same'-padded 3x3 conv, full or depthwise-separable."""
    if separable:
        return DepthwiseSeparableConv2d(cin, cout, 3, bias=bias)
    return nn.Conv2d(cin, cout, 3, 1, 1, bias=bias)


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm2d whose per-channel gain and bias depend on the condition.

    Exactly one of:

    - ``n_classes``: the condition is a class, given as int64 ids (N,) or as a
      float one-hot / soft class vector (N, n_classes) (soft vectors
      interpolate between classes). gain = 1 + E_gain[y], bias = E_bias[y]:
      a one-hot vector times a learned (n_classes, C) table, never the raw id.
    - ``cond_dim``: the condition is a float vector (N, cond_dim), e.g.
      BigGAN's / TinyGAN's shared class embedding (optionally joined with z).
      [gain - 1, bias] = Linear(cond_dim, 2 C)(c).

    (N, C, H, W) -> (N, C, H, W). Starts close to plain BN (gain near 1, bias
    near 0) but not exactly at it, so different classes differ from step 0.
    """

    def __init__(self, num_features: int, n_classes: int = 0, cond_dim: int = 0, eps: float = 1e-5,
                 momentum: float = 0.1):
        super().__init__()
        if (n_classes > 0) == (cond_dim > 0):
            raise ValueError("ConditionalBatchNorm2d needs exactly one of n_classes (class ids) or cond_dim "
                             f"(conditioning vectors), got n_classes={n_classes}, cond_dim={cond_dim}")
        self.num_features, self.n_classes, self.cond_dim = num_features, n_classes, cond_dim
        self.bn = nn.BatchNorm2d(num_features, eps=eps, momentum=momentum, affine=False)
        if n_classes:
            self.gain = nn.Embedding(n_classes, num_features)
            self.bias = nn.Embedding(n_classes, num_features)
        else:
            self.proj = nn.Linear(cond_dim, 2 * num_features)
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Gain and bias tables (or the projection's weights) ~ N(0, 0.02); projection bias 0."""
        with torch.no_grad():
            for p in ((self.gain.weight, self.bias.weight) if self.n_classes else (self.proj.weight,)):
                p.copy_(_randn(p.shape, generator) * 0.02)
            if not self.n_classes:
                self.proj.bias.zero_()

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        h = self.bn(x)
        if self.n_classes:
            if c.dtype.is_floating_point:
                if c.shape != (x.shape[0], self.n_classes):
                    raise ValueError(f"class vectors must have shape ({x.shape[0]}, {self.n_classes}), "
                                     f"got {tuple(c.shape)}")
                gain, bias = c.to(h.dtype) @ self.gain.weight, c.to(h.dtype) @ self.bias.weight
            else:
                gain, bias = self.gain(c), self.bias(c)
        else:
            if c.shape != (x.shape[0], self.cond_dim):
                raise ValueError(f"conditioning vectors must have shape ({x.shape[0]}, {self.cond_dim}), "
                                 f"got {tuple(c.shape)}")
            gain, bias = self.proj(c).chunk(2, 1)
        return (1.0 + gain)[:, :, None, None] * h + bias[:, :, None, None]

    def extra_repr(self) -> str:
        cond = f"n_classes={self.n_classes}" if self.n_classes else f"cond_dim={self.cond_dim}"
        return f"{self.num_features}, {cond}"


# ---------------------------------------------------------------------------------------------------------------
# residual blocks


class UpBlock(nn.Module):
    """Generator residual block: x2 upsampling, conditional BN (SNGAN / BigGAN G block).

    main: cBN - ReLU - upsample x2 - conv3x3 - cBN - ReLU - conv3x3
    shortcut: 1x1 conv - upsample x2
    (N, cin, H, W), condition -> (N, cout, 2H, 2W). The condition is what
    :class:`ConditionalBatchNorm2d` takes: class ids (``n_classes``) or vectors
    (``cond_dim``). ``separable`` makes both 3x3 convs depthwise-separable
    (TinyGAN); ``upsample`` is 'nearest' (BigGAN) or 'bilinear' (TinyGAN).
    ``hidden``: the width between the two 3x3 convs (default ``cout``; a
    channel-pruned block has fewer), never seen outside the block.
    """

    def __init__(self, cin: int, cout: int, n_classes: int = 0, cond_dim: int = 0, separable: bool = False,
                 upsample: str = "nearest", hidden: int | None = None):
        super().__init__()
        if upsample not in ("nearest", "bilinear"):
            raise ValueError(f"upsample must be 'nearest' or 'bilinear', got {upsample!r}")
        hidden = cout if hidden is None else int(hidden)
        if hidden < 1:
            raise ValueError(f"hidden width must be >= 1, got {hidden}")
        self.upsample = upsample
        self.bn1 = ConditionalBatchNorm2d(cin, n_classes, cond_dim)
        self.conv1 = conv3x3(cin, hidden, separable)
        self.bn2 = ConditionalBatchNorm2d(hidden, n_classes, cond_dim)
        self.conv2 = conv3x3(hidden, cout, separable)
        self.shortcut = nn.Conv2d(cin, cout, 1)

    def _up(self, x: torch.Tensor) -> torch.Tensor:
        if self.upsample == "nearest":
            return F.interpolate(x, scale_factor=2, mode="nearest")
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        h = self.conv1(self._up(F.relu(self.bn1(x, c))))
        h = self.conv2(F.relu(self.bn2(h, c)))
        # A 1x1 conv and an upsampling (nearest or bilinear: both per-channel
        # weighted sums with weights summing to 1) commute, so convolving first
        # gives the same output as "1x1 shortcut on the upsampled map" at a
        # quarter of the multiply-adds.
        return h + self._up(self.shortcut(x))


class DownBlock(nn.Module):
    """Discriminator residual block with spectral norm (SNGAN D block).

    ``first=False``: main ReLU - conv3x3 - ReLU - conv3x3 [- avgpool2]; shortcut
    1x1 conv [- avgpool2] when the width or size changes, identity otherwise.
    ``first=True`` (SNGAN's "optimized" block, on the raw image, where a
    leading ReLU would clip the negative pixel values): main conv3x3 - ReLU -
    conv3x3 - avgpool2; shortcut avgpool2 - 1x1 conv.
    (N, cin, H, W) -> (N, cout, H/2, W/2) when downsampling, else (N, cout, H, W).
    """

    def __init__(self, cin: int, cout: int, downsample: bool = True, first: bool = False, sn_enabled: bool = True):
        super().__init__()
        if first and not downsample:
            raise ValueError("the first (optimized) block always downsamples")
        self.first, self.downsample = first, downsample
        self.conv1 = SNConv2d(cin, cout, 3, 1, 1, sn_enabled=sn_enabled)
        self.conv2 = SNConv2d(cout, cout, 3, 1, 1, sn_enabled=sn_enabled)
        self.shortcut = (SNConv2d(cin, cout, 1, sn_enabled=sn_enabled)
                         if first or downsample or cin != cout else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.first else F.relu(x)
        h = self.conv2(F.relu(self.conv1(h)))
        if self.downsample:
            h = F.avg_pool2d(h, 2)
        if self.first:
            s = self.shortcut(F.avg_pool2d(x, 2))
        else:
            s = x if self.shortcut is None else self.shortcut(x)
            if self.downsample:
                s = F.avg_pool2d(s, 2)
        return h + s


# ---------------------------------------------------------------------------------------------------------------
# input checks and initialisation


def check_images(x: torch.Tensor, channels: int, size: int | None = None, multiple: int = 1) -> None:
    """Discriminator input checks: (N, channels, size, size), or any size divisible by ``multiple``."""
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(f"images must have shape (N, {channels}, H, W), got {tuple(x.shape)}")
    h, w = x.shape[2:]
    if size is not None and (h, w) != (size, size):
        raise ValueError(f"this discriminator takes {size}x{size} images, got {h}x{w}")
    if h % multiple or w % multiple or h < multiple:
        raise ValueError(f"image height and width must be positive multiples of {multiple}, got {h}x{w}")


def _randn(shape, generator: torch.Generator | None) -> torch.Tensor:
    # drawn on the CPU (where a seeded generator lives), copied to the weight's device by copy_
    return torch.randn(shape, generator=generator)


def _raw_weight(m: nn.Module) -> torch.Tensor:
    # writing into m.weight of a parametrized layer would fill a recomputed copy and change nothing
    return m.parametrizations.weight.original if parametrize.is_parametrized(m, "weight") else m.weight


@torch.no_grad()
def init_weights(model: nn.Module, generator: torch.Generator | None = None) -> nn.Module:
    """SNGAN / BigGAN-style initialisation of every layer, reproducible from a CPU ``generator``.

    Conv, linear and embedding weights: Xavier-uniform (gain 1), biases 0.
    BatchNorm: weight 1, bias 0. Conditional BN: its own ``reset_parameters``.
    Spectral-norm layers: the raw weight is set and the power-iteration
    vectors u, v are redrawn from ``generator`` and refined by 15 iterations,
    so the whole model is a function of the seed. Returns ``model``.
    """
    cbn_children = {id(sub) for m in model.modules() if isinstance(m, ConditionalBatchNorm2d)
                    for sub in m.modules() if sub is not m}
    for m in model.modules():
        if id(m) in cbn_children:
            continue
        if isinstance(m, ConditionalBatchNorm2d):
            m.reset_parameters(generator)
        elif isinstance(m, (nn.Conv2d, nn.Linear, nn.Embedding)):
            w = _raw_weight(m)
            w.copy_(_xavier_uniform(w, generator))
            if getattr(m, "bias", None) is not None:
                m.bias.zero_()
            p = _sn_parametrization(m)
            if p is not None:
                _reset_power_iteration(p, w, generator)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
            m.weight.fill_(1.0)
            m.bias.zero_()
    return model


def _fans(w: torch.Tensor) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a conv or linear weight: its input / output channels times the kernel size."""
    k = w[0, 0].numel() if w.ndim > 2 else 1
    return w.shape[1] * k, w.shape[0] * k


def _xavier_uniform(w: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    # not nn.init.xavier_uniform_: a seeded CPU generator cannot fill a CUDA tensor in place
    fan_in, fan_out = _fans(w)
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    return (torch.rand(w.shape, generator=generator) * 2 - 1) * bound


def fan_in_init(module: nn.Module, generator: torch.Generator) -> nn.Module:
    """PyTorch's default conv / linear weight init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), bias 0, from ``generator``.

    For a layer with a small fan-in, where DCGAN's N(0, 0.02) starts it near zero: the
    Columbia students' output conv reads only c/8 channels (4 for c=32). Returns ``module``.
    """
    w = module.weight
    fan_in, _ = _fans(w)
    with torch.no_grad():
        w.copy_((torch.rand(w.shape, generator=generator) * 2 - 1) / math.sqrt(fan_in))
        if getattr(module, "bias", None) is not None:
            module.bias.zero_()
    return module


def _reset_power_iteration(p: nn.Module, w: torch.Tensor, generator: torch.Generator | None,
                           iterations: int = 15) -> None:
    mat = w.movedim(p.dim, 0) if p.dim != 0 else w
    mat = mat.reshape(mat.shape[0], -1).float()
    u = F.normalize(_randn(mat.shape[0], generator).to(mat.device), dim=0, eps=p.eps)
    v = F.normalize(_randn(mat.shape[1], generator).to(mat.device), dim=0, eps=p.eps)
    for _ in range(iterations):
        u = F.normalize(mat @ v, dim=0, eps=p.eps)
        v = F.normalize(mat.t() @ u, dim=0, eps=p.eps)
    p._u.copy_(u)
    p._v.copy_(v)


def dcgan_init(model: nn.Module, seed: int) -> nn.Module:
    """DCGAN initialisation (conv weights N(0, 0.02), BN scale N(1, 0.02), bias 0), from a CPU seed.

    For the DCGAN-family models; spectral-norm and conditional-BN models
    (``models.cgan``, ``models.tinygan``) use :func:`init_weights`, and this
    function refuses them.
    """
    if any(parametrize.is_parametrized(m) for m in model.modules()):
        raise TypeError(f"{type(model).__name__} uses spectral norm: initialise it with models.layers.init_weights")
    g = repro.generator(seed, "init")
    with torch.no_grad():
        for m in model.modules():
            if getattr(m, "weight", None) is None:
                continue
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 0.02)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.weight.copy_(1.0 + torch.randn(m.weight.shape, generator=g) * 0.02)
                m.bias.zero_()
    return model
