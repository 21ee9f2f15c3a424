"""Feature extractors for FID / KID / class accuracy.

- :class:`ClassifierExtractor`: a classifier the project trains itself
  (``models.ConvClassifier``) and caches under ``results/classifiers/``. Works
  offline; its FIDs are labelled ``*_mnistcls`` / ``*_cifar10cls`` and are not
  comparable with published (Inception) FIDs.
- :class:`InceptionExtractor`: pytorch-fid's InceptionV3 (pool3, 2048-d) with
  the standard FID weights: pytorch-fid's own download into ``$TORCH_HOME``, or
  a local file named by ``GANKD_INCEPTION_WEIGHTS``. The file is read with
  ``torch.load(weights_only=True)``; weights whose sha256 does not start with
  the official ``6726825d`` are reported as non-standard.
"""
from __future__ import annotations

import hashlib
import json
import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm
import torch.nn.functional as F

from .. import checkpoint, paths, repro
from ..data import Batches, ImageSet, load_dataset, to_float
from ..io import sha256_file
from ..models import ConvClassifier, inference_layout

INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"
INCEPTION_SHA_PREFIX = "6726825d"


class WeightsUnavailable(FileNotFoundError):
    """Inception weights could not be had; the message says where they were looked for."""


class ClassifierExtractor:
    """Penultimate features and predictions of a trained :class:`ConvClassifier`."""

    def __init__(self, model, name: str, test_accuracy: float, weights_id: str):
        self.model, self.name, self.test_accuracy, self.weights_id = model.eval(), name, test_accuracy, weights_id

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def features_and_logits(self, images: torch.Tensor, batch_size: int = 500) -> tuple[np.ndarray, np.ndarray]:
        """``images`` float (N, C, H, W) in [-1, 1] -> features (N, D), logits (N, K).

        On the CPU the classifier reads them in channels-last memory format (:func:`models.inference_layout`):
        on 2 cores the CIFAR-10 classifier took 6.4-7.3 s instead of 10.1-10.8 s for 2,000 images, its features
        differing by rounding alone (at most 5e-6)."""
        feats, logits = [], []
        with inference_layout(self.model) as model:
            for i in range(0, len(images), batch_size):
                x = images[i:i + batch_size].to(self.device).float()
                f = model.features(x)
                feats.append(f.cpu())
                logits.append(model.head(f).cpu())
        return torch.cat(feats).numpy(), torch.cat(logits).numpy()

    def features(self, images: torch.Tensor, batch_size: int = 500) -> np.ndarray:
        return self.features_and_logits(images, batch_size)[0]


def _settings_id(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]


def train_classifier(dataset: str, epochs: int, n_train: int | None, device="auto", seed: int = 0,
                     progress: bool = True, root: str | Path | None = None,
                     width: int = 16) -> tuple[torch.nn.Module, float]:
    """Train a :class:`ConvClassifier` on ``dataset``; return (model, test accuracy in [0, 1])."""
    device = repro.get_device(device)
    train = load_dataset(dataset, train=True, root=root).subset(n_train, seed)
    test = load_dataset(dataset, train=False, root=root)
    c = train.shape[0]
    torch.manual_seed(repro.purpose_seed(seed, "classifier"))
    # channels_last: on 2 CPU cores a training step took 0.48 s instead of 0.66-0.80 s (CIFAR-10, width 64, batch
    # 128) and 40-45 ms instead of 59-62 ms (MNIST, width 16); the model goes back to the default layout at the end
    fmt = torch.channels_last
    model = ConvClassifier(in_channels=c, n_classes=len(train.classes), width=width).to(device, memory_format=fmt)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    batches = Batches(train, 128, seed=seed, device=device)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=max(1, epochs * len(batches)))
    g = repro.generator(seed, "augment")
    bar = tqdm(total=epochs * len(batches), desc=f"{dataset} classifier", disable=not progress, leave=False)
    for e in range(epochs):
        model.train()
        for x, y in batches.epoch(e):
            x = _augment(x, g, flip=(dataset != "mnist")).contiguous(memory_format=fmt)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update(1)
    bar.close()
    model = model.to(memory_format=torch.contiguous_format)  # safetensors stores contiguous tensors
    acc = classifier_accuracy(model, test)
    return model.eval(), acc


def _augment(x: torch.Tensor, g: torch.Generator, flip: bool, shift: int = 2) -> torch.Tensor:
    # random translation by up to `shift` pixels (pad + crop) and, for natural images, horizontal flips
    n, _, h, w = x.shape
    padded = F.pad(x, (shift,) * 4, value=-1.0)
    dx, dy = torch.randint(0, 2 * shift + 1, (2,), generator=g).tolist()
    x = padded[:, :, dy:dy + h, dx:dx + w]
    if flip:
        mask = (torch.rand(n, generator=g) < 0.5).to(x.device)
        x = torch.where(mask[:, None, None, None], x.flip(3), x)
    return x


@torch.no_grad()
def classifier_accuracy(model: torch.nn.Module, data: ImageSet, batch_size: int = 1000) -> float:
    """Top-1 accuracy of ``model`` on a real :class:`ImageSet`, in [0, 1]."""

    model.eval()
    device = next(model.parameters()).device
    correct = 0
    for i in range(0, len(data), batch_size):
        x = to_float(data.images[i:i + batch_size]).to(device)
        correct += (model(x).argmax(1).cpu() == data.labels[i:i + batch_size]).sum().item()
    return correct / len(data)


def get_classifier(dataset: str, epochs: int, n_train: int | None = None, device="auto", seed: int = 0,
                   retrain: bool = False, progress: bool = True, root: str | Path | None = None,
                   width: int = 16) -> ClassifierExtractor:
    """The evaluator classifier for ``dataset``: loaded from ``results/classifiers/`` or trained once and cached.

    The cache file name carries a hash of the training settings, so a quick
    classifier never stands in for a full one.
    """
    path, settings = classifier_path(dataset, epochs, n_train, seed, width)
    device = repro.get_device(device)
    if path.with_suffix(".json").exists() and not retrain:
        return load_classifier(path, device)
    model, acc = train_classifier(dataset, epochs, n_train, device, seed, progress, root, width)
    checkpoint.save_model(path, model, settings=settings, test_accuracy=acc, finished=True,
                          note="evaluator classifier trained by gankd; its FIDs are not Inception FIDs")
    return ClassifierExtractor(model, f"{dataset}cls", acc, _settings_id(settings))


def classifier_path(dataset: str, epochs: int, n_train: int | None = None, seed: int = 0,
                    width: int = 16) -> tuple[Path, dict]:
    """Where :func:`get_classifier` caches the classifier of these settings (a checkpoint stem), and the settings."""
    settings = {"dataset": dataset, "epochs": epochs, "n_train": n_train, "seed": seed, "width": width,
                "arch": "ConvClassifier/1"}
    return paths.results_dir("classifiers") / f"{dataset}cls_{_settings_id(settings)}", settings


def load_classifier(stem: str | Path, device="cpu") -> ClassifierExtractor:
    """A saved evaluator classifier (a checkpoint stem that :func:`get_classifier` wrote) as an extractor."""
    side = checkpoint.read_sidecar(stem)
    if "test_accuracy" not in side or not isinstance(side.get("settings"), dict):
        raise checkpoint.CheckpointError(f"{stem}.json is not an evaluator classifier's sidecar (no settings and "
                                         "test_accuracy)")
    model = checkpoint.load_model(stem, repro.get_device(device))
    return ClassifierExtractor(model, f"{side['settings']['dataset']}cls", side["test_accuracy"],
                               _settings_id(side["settings"]))


# ------------------------------------------------------------------ Inception

def _inception_weights_path() -> Path:
    """The Inception weights file to use, without downloading (raises WeightsUnavailable)."""
    env = os.environ.get("GANKD_INCEPTION_WEIGHTS", "").strip()  # empty or blank: unset
    if env:
        p = Path(env).expanduser()
        if not p.is_file():
            raise WeightsUnavailable(f"GANKD_INCEPTION_WEIGHTS={env} does not name a file; point it at "
                                     f"{INCEPTION_FILE} (pytorch-fid's FID Inception weights)")
        return p
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE


def inception_weights() -> Path:
    """Local path of the FID Inception weights, downloading them the way pytorch-fid does if needed."""
    from pytorch_fid.inception import FID_WEIGHTS_URL

    p = _inception_weights_path()
    if p.is_file():
        return p
    if paths.offline():
        raise WeightsUnavailable(f"Inception weights not found at {p} and downloads are off (GANKD_OFFLINE=1). "
                                 f"Put {INCEPTION_FILE} there (TORCH_HOME/hub/checkpoints/) or set "
                                 "GANKD_INCEPTION_WEIGHTS to a local copy.")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(FID_WEIGHTS_URL, str(p), progress=False)
    except Exception as e:
        raise WeightsUnavailable(f"Inception weights not found at {p} and the download of {FID_WEIGHTS_URL} "
                                 f"failed ({type(e).__name__}: {e}). Download the file elsewhere and set "
                                 "GANKD_INCEPTION_WEIGHTS to it, or set TORCH_HOME to a folder whose "
                                 f"hub/checkpoints/ holds {INCEPTION_FILE}.") from e
    return p


@contextmanager
def _pytorch_fid_loads_safely(path: Path):
    # pytorch-fid fetches its weights through torchvision's load_state_dict_from_url,
    # which may unpickle; route it to our resolved file read with weights_only=True.
    import pytorch_fid.inception as pfi

    original = pfi.load_state_dict_from_url

    def _load(url, *a, **k):
        return torch.load(path, map_location="cpu", weights_only=True)

    pfi.load_state_dict_from_url = _load
    try:
        yield
    finally:
        pfi.load_state_dict_from_url = original


class InceptionExtractor:
    """pytorch-fid's InceptionV3 pool3 features (2048-d); images resized to 299 by pytorch-fid."""

    name = "inception"

    def __init__(self, device="auto"):
        try:
            from pytorch_fid.inception import InceptionV3
        except ImportError as e:  # a machine with torch alone (a GPU node): the classifier scores still run
            raise WeightsUnavailable(f"pytorch-fid is not installed ({e}): pip install pytorch-fid==0.3.0 for "
                                     "Inception FID / IS") from e

        path = inception_weights()
        digest = sha256_file(path)
        with _pytorch_fid_loads_safely(path):
            try:
                model = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[2048]], resize_input=True,
                                    normalize_input=True, use_fid_inception=True)
            except Exception as e:
                raise WeightsUnavailable(f"{path} is not a usable FID Inception checkpoint ({type(e).__name__}: "
                                         f"{e}); delete it and download {INCEPTION_FILE} again") from e
        dev = repro.get_device(device)
        self.model = model.to(dev).eval()
        # pytorch-fid keeps only the pool3 blocks; the checkpoint's 1008-way fc layer (the TF Inception
        # graph of the original Inception Score) gives the logits for IS: its weight only (see logits)
        state = torch.load(path, map_location="cpu", weights_only=True)
        self.fc = None
        if "fc.weight" in state:
            w = state["fc.weight"]
            self.fc = torch.nn.Linear(w.shape[1], w.shape[0], bias=False).to(dev).eval()
            self.fc.load_state_dict({"weight": w})
        self.weights_path, self.weights_id = path, digest[:16]
        self.standard_weights = digest.startswith(INCEPTION_SHA_PREFIX)

    @torch.no_grad()
    def features(self, images: torch.Tensor, batch_size: int = 100) -> np.ndarray:
        """``images`` float (N, C, H, W) in [-1, 1] (C = 1 or 3) -> pool3 features (N, 2048)."""
        dev = next(self.model.parameters()).device
        out = []
        for i in range(0, len(images), batch_size):
            x = images[i:i + batch_size].to(dev).float()
            if x.shape[1] == 1:
                x = x.expand(-1, 3, -1, -1)
            f = self.model((x + 1) / 2)[0]  # pytorch-fid wants [0, 1]
            out.append(f.flatten(1).cpu())
        return torch.cat(out).numpy()

    @torch.no_grad()
    def logits(self, feats: np.ndarray) -> np.ndarray | None:
        """pool3 features (N, 2048) -> the 1008-way logits of the checkpoint's fc layer (None without one).

        ``feats @ W.T`` without the layer's bias, as the original Inception Score code (improved-gan's
        ``tf.matmul(pool3, w)``) and torch-fidelity (``logits_unbiased``) compute them: with the bias the
        scores are not comparable with published ones."""
        if self.fc is None:
            return None
        w = self.fc.weight
        return F.linear(torch.from_numpy(np.asarray(feats, np.float32)).to(w.device), w).cpu().numpy()

