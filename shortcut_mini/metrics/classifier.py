"""A small CNN classifier, trained by the package, whose features give "FD (classifier)".

Inception-v3 (the standard FID) was trained on ImageNet photographs; on 28x28 grayscale digits and
garments its features say little, and its weights are not always downloadable. For the MNIST
family the book therefore reports the Frechet distance of the penultimate-layer features of a small
classifier trained on the dataset itself. Such numbers are comparable only with the same
classifier, so they are reported as "FD (classifier)", never as FID (:ref:`the book's design notes <design-evaluation>`).

Training is seeded and deterministic (``torch.use_deterministic_algorithms``, stride-2
convolutions instead of pooling layers that lack deterministic kernels), and the result is cached
on disk keyed by dataset, image size, seed, epochs, device type and :data:`VERSION`. The cache dir
is ``$SHORTCUT_MINI_CACHE/classifiers`` or ``~/.cache/shortcut_mini/classifiers``; the weights are
a plain ``state_dict`` (``torch.load(path, weights_only=True)``), written atomically, with a JSON
file beside it that records the architecture, test accuracy and training time.

Command line (prints one JSON line)::

    python -m shortcut_mini.metrics.classifier --dataset mnist
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "DEFAULT_EPOCHS",
    "VERSION",
    "SmallCNN",
    "TrainedClassifier",
    "default_cache_dir",
    "get_classifier",
    "train_classifier",
]

#: Bump when the architecture or the training recipe changes: old cache entries are then ignored.
VERSION = "v1"

#: Epochs per dataset (MNIST reaches >= 99 % and Fashion-MNIST >= 90 % test accuracy).
DEFAULT_EPOCHS = {"mnist": 4, "fashion_mnist": 8, "digits": 30}
FALLBACK_EPOCHS = 6


class SmallCNN(nn.Module):
    """Two conv stages (3x3 conv, then 3x3 stride-2 conv; BatchNorm, ReLU), a linear feature layer.

    ``features(x)`` returns the ``feature_dim`` penultimate activations (before the ReLU) used for
    the Frechet distance; ``forward(x)`` returns class logits.
    """

    def __init__(
        self,
        in_channels: int,
        image_size: int,
        num_classes: int,
        feature_dim: int = 128,
        width: int = 32,
    ):
        super().__init__()

        def stage(c_in: int, c_out: int) -> list[nn.Module]:
            return [
                nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(),
                nn.Conv2d(c_out, c_out, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(),
            ]

        self.conv = nn.Sequential(*stage(in_channels, width), *stage(width, 2 * width))
        spatial = math.ceil(math.ceil(image_size / 2) / 2)
        self.fc = nn.Linear(2 * width * spatial * spatial, feature_dim)
        self.head = nn.Linear(feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features ``[B, feature_dim]`` of images in ``[-1, 1]``."""
        return self.fc(self.conv(x).flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits ``[B, num_classes]``."""
        return self.head(F.relu(self.features(x)))


def _to_unit_range(x: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float in [-1, 1] (as ``ArrayDataset.batch``); float input passes through."""
    return x.float().div(127.5).sub(1.0) if x.dtype == torch.uint8 else x.float()


@dataclass
class TrainedClassifier:
    """A trained :class:`SmallCNN` in eval mode, with what is known about how it was made.

    Call it (or ``.features``) on images in ``[-1, 1]`` of shape ``[B, C, H, W]`` to get
    ``[B, feature_dim]`` features; ``.predict`` gives class indices; ``.accuracy`` is the test
    accuracy measured after training.
    """

    net: SmallCNN
    meta: dict
    cache_path: Path | None = None
    from_cache: bool = False
    name: str = field(default="classifier", init=False)

    def __post_init__(self) -> None:
        self.net.eval().requires_grad_(False)

    @property
    def accuracy(self) -> float:
        """Test accuracy in [0, 1] measured after training."""
        return float(self.meta["accuracy"])

    @property
    def dim(self) -> int:
        """Feature dimension."""
        return int(self.meta["feature_dim"])

    @property
    def device(self) -> torch.device:
        """Device the network lives on."""
        return next(self.net.parameters()).device

    def to(self, device: torch.device | str) -> TrainedClassifier:
        """Move the network to ``device`` (in place); returns ``self``."""
        self.net.to(device)
        return self

    def _check(self, x: torch.Tensor) -> None:
        c, s = self.meta["in_channels"], self.meta["image_size"]
        if x.ndim != 4 or tuple(x.shape[1:]) != (c, s, s):
            raise ValueError(
                f"classifier for {self.meta['dataset']!r} expects images [B, {c}, {s}, {s}], "
                f"got {tuple(x.shape)}"
            )

    @torch.no_grad()
    def _apply(self, fn, x: torch.Tensor, batch_size: int) -> torch.Tensor:
        self._check(x)
        out = [
            fn(_to_unit_range(x[i : i + batch_size].to(self.device))).to(x.device)
            for i in range(0, x.shape[0], batch_size)
        ]
        return torch.cat(out) if out else torch.empty(0, self.dim, device=x.device)

    def features(self, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        """Features ``[B, D]`` (float32, on ``x``'s device) of images ``x`` in ``[-1, 1]``."""
        return self._apply(self.net.features, x, batch_size)

    __call__ = features

    def logits(self, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        """Class logits ``[B, num_classes]``."""
        return self._apply(self.net, x, batch_size)

    def predict(self, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        """Predicted class indices ``[B]``."""
        return self.logits(x, batch_size).argmax(dim=1)


def default_cache_dir() -> Path:
    """``$SHORTCUT_MINI_CACHE/classifiers`` or ``~/.cache/shortcut_mini/classifiers``."""
    root = os.environ.get("SHORTCUT_MINI_CACHE")
    if root:
        return Path(root).expanduser() / "classifiers"
    return Path.home() / ".cache" / "shortcut_mini" / "classifiers"


@contextlib.contextmanager
def _deterministic(device: torch.device):
    """Deterministic kernels while training; restores the global settings afterwards."""
    prev = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    fork_devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=fork_devices):
            yield
    finally:
        torch.use_deterministic_algorithms(prev[0], warn_only=prev[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = prev[2], prev[3]


def _image_shape(ds) -> tuple[int, int]:
    x = ds.x
    if x.ndim != 4 or x.shape[2] != x.shape[3]:
        raise ValueError(f"classifier needs square images [N, C, H, W], got {tuple(x.shape)}")
    return int(x.shape[1]), int(x.shape[2])


@torch.no_grad()
def _accuracy(net: nn.Module, ds, device: torch.device, batch_size: int = 1024) -> float:
    net.eval()
    correct = 0
    for i in range(0, len(ds), batch_size):
        x, y = ds.batch(torch.arange(i, min(i + batch_size, len(ds))), device)
        correct += int((net(x).argmax(1) == y).sum())
    return correct / len(ds)


def train_classifier(
    train_set,
    test_set,
    *,
    epochs: int,
    seed: int = 0,
    device: torch.device | str | None = None,
    batch_size: int = 128,
    lr: float = 2e-3,
    feature_dim: int = 128,
    log=None,
) -> tuple[SmallCNN, dict]:
    """Train a :class:`SmallCNN` on ``train_set`` and measure its accuracy on ``test_set``.

    ``train_set`` / ``test_set`` are ArrayDataset-like: ``x`` uint8 ``[N, C, H, W]``, ``y`` long,
    ``num_classes``, ``batch(indices, device) -> (x in [-1, 1], y)``. AdamW with a linear warm-up
    and cosine decay; the shuffling order and initialisation come from ``seed`` only.

    Returns the network (eval mode, on ``device``) and a metadata dict.
    """
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    in_channels, image_size = _image_shape(train_set)
    if _image_shape(test_set) != (in_channels, image_size):
        raise ValueError("train_set and test_set have different image shapes")
    num_classes = int(train_set.num_classes) or int(train_set.y.max()) + 1
    if hasattr(train_set, "to"):  # keep the (small) datasets on the training device
        train_set, test_set = train_set.to(device), test_set.to(device)
    n = len(train_set)
    steps_per_epoch = math.ceil(n / batch_size)
    total = epochs * steps_per_epoch
    warmup = max(1, min(100, total // 10))

    t0 = time.perf_counter()
    with _deterministic(device):
        torch.manual_seed(seed)
        net = SmallCNN(in_channels, image_size, num_classes, feature_dim=feature_dim).to(device)
        opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt,
            lambda s: min((s + 1) / warmup, 0.5 * (1 + math.cos(math.pi * min(s / total, 1.0)))),
        )
        gen = torch.Generator().manual_seed(seed)
        for epoch in range(epochs):
            net.train()
            perm = torch.randperm(n, generator=gen)
            for i in range(0, n, batch_size):
                x, y = train_set.batch(perm[i : i + batch_size], device)
                loss = F.cross_entropy(net(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
            if log is not None:
                log(f"epoch {epoch + 1}/{epochs}: last loss {float(loss):.4f}")
        train_s = time.perf_counter() - t0
        accuracy = _accuracy(net, test_set, device)
    net.eval()
    meta = {
        "version": VERSION,
        "in_channels": in_channels,
        "image_size": image_size,
        "num_classes": num_classes,
        "feature_dim": feature_dim,
        "epochs": epochs,
        "seed": seed,
        "batch_size": batch_size,
        "lr": lr,
        "device": str(device),
        "n_train": n,
        "n_test": len(test_set),
        "accuracy": accuracy,
        "train_seconds": round(train_s, 3),
        "torch": torch.__version__,
    }
    return net, meta


def _cache_stem(dataset: str, image_size, seed: int, epochs: int, device: torch.device) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", dataset)
    if safe != dataset:  # e.g. image_folder:PATH -> keep names distinct
        safe = f"{safe[:40]}-{hashlib.sha1(dataset.encode()).hexdigest()[:8]}"
    size = "native" if image_size is None else int(image_size)
    return f"{safe}_size{size}_seed{seed}_ep{epochs}_{device.type}_{VERSION}"


def _atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` then rename onto ``path`` (no half-written cache files)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def _load_cached(weights: Path, meta_path: Path, device: torch.device) -> TrainedClassifier | None:
    if not (weights.exists() and meta_path.exists()):
        return None
    meta = json.loads(meta_path.read_text())
    if meta.get("version") != VERSION:
        return None
    net = SmallCNN(
        meta["in_channels"], meta["image_size"], meta["num_classes"], meta["feature_dim"]
    )
    net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return TrainedClassifier(net.to(device), meta, cache_path=weights, from_cache=True)


def get_classifier(
    dataset_name: str,
    *,
    image_size: int | None = None,
    seed: int = 0,
    epochs: int | None = None,
    device: torch.device | str | None = None,
    cache_dir: str | os.PathLike | None = None,
    train_set=None,
    test_set=None,
    retrain: bool = False,
    log=None,
) -> TrainedClassifier:
    """The classifier for ``dataset_name``: from the disk cache, or trained now and cached.

    Args:
        dataset_name: e.g. ``"mnist"``, ``"fashion_mnist"``, ``"digits"``; part of the cache key.
        image_size: resolution to train at (passed to ``load_dataset``); ``None`` = native. It
            enters the cache key as given (``None`` -> ``"native"``).
        seed: seed of initialisation and shuffling.
        epochs: training epochs; default :data:`DEFAULT_EPOCHS` for the dataset.
        device: training device (default CUDA if available); its type is part of the cache key.
        cache_dir: default :func:`default_cache_dir`.
        train_set, test_set: ArrayDataset-like objects; default
            ``shortcut_mini.data.load_dataset(dataset_name, train=True/False, image_size=...)``.
        retrain: ignore a cached model and train again.
        log: optional ``callable(str)`` for progress messages.
    """
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    epochs = int(
        epochs if epochs is not None else DEFAULT_EPOCHS.get(dataset_name, FALLBACK_EPOCHS)
    )
    if (
        train_set is not None
        and image_size is not None
        and _image_shape(train_set)[1] != image_size
    ):
        raise ValueError(f"image_size={image_size} but train_set has {tuple(train_set.x.shape)}")
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    stem = _cache_stem(dataset_name, image_size, seed, epochs, device)
    weights, meta_path = cache_dir / f"{stem}.pt", cache_dir / f"{stem}.json"
    if not retrain:
        cached = _load_cached(weights, meta_path, device)
        if cached is not None:
            return cached

    if train_set is None or test_set is None:
        from shortcut_mini.data import load_dataset

        if train_set is None:
            train_set = load_dataset(dataset_name, train=True, image_size=image_size)
        if test_set is None:
            test_set = load_dataset(dataset_name, train=False, image_size=image_size)
    net, meta = train_classifier(
        train_set, test_set, epochs=epochs, seed=seed, device=device, log=log
    )
    meta["dataset"] = dataset_name
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    _atomic_write(weights, lambda tmp: torch.save(state, tmp))
    _atomic_write(meta_path, lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=2)))
    return TrainedClassifier(net, meta, cache_path=weights, from_cache=False)


def main(argv: list[str] | None = None) -> dict:
    """Train (or load) a classifier and print its test accuracy and wall time as JSON."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--image-size", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--device", default=None)
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--retrain", action="store_true", help="ignore the cache and train again")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    clf = get_classifier(
        args.dataset,
        image_size=args.image_size,
        seed=args.seed,
        epochs=args.epochs,
        device=args.device,
        cache_dir=args.cache_dir,
        retrain=args.retrain,
    )
    out = {
        "dataset": args.dataset,
        "test_accuracy": clf.accuracy,
        "wall_s": round(time.perf_counter() - t0, 3),
        "from_cache": clf.from_cache,
        "cache_path": str(clf.cache_path),
        **{k: clf.meta[k] for k in ("epochs", "seed", "device", "image_size", "train_seconds")},
    }
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
