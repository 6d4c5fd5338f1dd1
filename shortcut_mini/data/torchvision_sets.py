"""MNIST, Fashion-MNIST, CIFAR-10 and CelebA-64 through ``torchvision.datasets``.

Files are read from ``root`` when present and otherwise downloaded the standard torchvision way
(``download=True``). Where that fails (e.g. a machine without network) a
:class:`DatasetUnavailableError` says which dataset, which folder was searched and how to get
the files, and whatever the failed attempt created (empty or partial folders) is removed again.
Fashion-MNIST can also come from the Debian package ``dataset-fashion-mnist``
(IDX ``.gz`` files under ``/usr/share/datasets/fashion-mnist``), which is unpacked into
``root/FashionMNIST/raw`` on first use. ``torchvision`` is imported lazily so that the toy and
digits datasets work without it.
"""

from __future__ import annotations

import gzip
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import DatasetUnavailableError
from .resize import resize_uint8

DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
"""Where the Debian package ``dataset-fashion-mnist`` installs the IDX ``.gz`` files."""

IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
"""The four (gunzipped) IDX files torchvision expects in ``<root>/<Class>/raw``."""

CELEBA_CROP = 178
"""CelebA aligned images (178x218) are center-cropped to 178x178 before resizing."""

_NETWORK = "run once with network access (download=True; torchvision fetches it into root)"
_ROOT_HINT = "or pass root= / set SHORTCUT_MINI_DATA to a folder that already has it"


def _how_to(name: str, root: Path) -> str:
    idx = ", ".join(IDX_FILES)
    if name == "mnist":
        return f"{_NETWORK}; or place the gunzipped IDX files ({idx}) in {root / 'MNIST' / 'raw'}"
    if name == "fashion_mnist":
        return (
            "apt-get install dataset-fashion-mnist (an offline copy in "
            f"{DEBIAN_FASHION_MNIST_DIR} that is used automatically); or {_NETWORK}; or place "
            f"the gunzipped IDX files ({idx}) in {root / 'FashionMNIST' / 'raw'}"
        )
    if name == "cifar10":
        return (
            f"{_NETWORK}; or extract cifar-10-python.tar.gz from "
            "https://www.cs.toronto.edu/~kriz/cifar.html so that "
            f"{root / 'cifar-10-batches-py'} holds data_batch_1..5, test_batch and batches.meta"
        )
    return (
        f"{_NETWORK} (CelebA comes from Google Drive: needs the gdown package and may hit its "
        "daily quota); or place img_align_celeba/ (unzipped img_align_celeba.zip), "
        "list_eval_partition.txt, list_attr_celeba.txt, identity_CelebA.txt, "
        f"list_bbox_celeba.txt and list_landmarks_align_celeba.txt in {root / 'celeba'}"
    )


def _tv_datasets(name: str) -> Any:
    try:
        import torchvision.datasets as tvd
    except Exception as exc:  # ImportError, or a broken binary install
        raise DatasetUnavailableError(
            f"dataset {name!r} needs torchvision, which failed to import "
            f"({type(exc).__name__}: {exc}); install torchvision matching your torch"
        ) from exc
    return tvd


def _construct(name: str, folder: Path, root: Path, download: bool, factory: Callable[[], Any]):
    """Call ``factory``; turn "not found" / download failures into :class:`DatasetUnavailableError`.

    torchvision reports missing files and failed downloads as ``RuntimeError`` or ``OSError``
    (``URLError`` included); anything else is a bug and propagates unchanged.
    """
    try:
        return factory()
    except DatasetUnavailableError:
        raise
    except (RuntimeError, OSError) as exc:
        why = "could not be downloaded" if download else "download=False was given"
        raise DatasetUnavailableError(
            f"dataset {name!r} is not available: it is not (completely) on disk in {folder} "
            f"and {why} ({type(exc).__name__}: {exc}). To get it: {_how_to(name, root)}; "
            f"{_ROOT_HINT}."
        ) from exc


@contextmanager
def _remove_on_failure(root: Path, owned: Sequence[Path]) -> Iterator[None]:
    """On an exception, remove what the failed attempt created, and only that.

    ``owned`` are the dataset's own folders and files under ``root``: those that did not exist
    before are removed whole (a failed download leaves them empty or partial). Then ``root`` and
    its parents that did not exist before are removed if they are left empty (another dataset
    may have been written there meanwhile). Anything that existed before is never touched.
    """
    new_owned = [p for p in owned if not os.path.lexists(p)]
    new_dirs = []  # deepest first
    parent = Path(root).absolute()
    while not parent.exists() and parent != parent.parent:
        new_dirs.append(parent)
        parent = parent.parent
    try:
        yield
    except BaseException:
        for path in new_owned:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        for folder in new_dirs:
            try:
                folder.rmdir()
            except OSError:  # not empty (or gone): keep it and everything above
                break
        raise


def install_debian_fashion_mnist(root: Path, source: Path | None = None) -> bool:
    """Gunzip the Debian Fashion-MNIST files into ``root/FashionMNIST/raw`` if needed.

    Returns ``True`` when all four IDX files are (now) present. Each file is written to a
    temporary name in the target folder and moved into place with ``os.replace``, so a crash or
    a concurrent process never leaves a truncated file under the final name.
    """
    source = DEBIAN_FASHION_MNIST_DIR if source is None else Path(source)
    raw = Path(root) / "FashionMNIST" / "raw"
    missing = [f for f in IDX_FILES if not (raw / f).is_file()]
    if not missing:
        return True
    if not all((source / f"{f}.gz").is_file() for f in missing):
        return False
    raw.mkdir(parents=True, exist_ok=True)
    for fname in missing:
        fd, tmp = tempfile.mkstemp(prefix=f".{fname}.", suffix=".tmp", dir=raw)
        try:
            with gzip.open(source / f"{fname}.gz", "rb") as src, os.fdopen(fd, "wb") as dst:
                shutil.copyfileobj(src, dst, length=1 << 20)
            os.replace(tmp, raw / fname)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return True


def _maybe_resize(x: torch.Tensor, image_size: int | None) -> torch.Tensor:
    return x if image_size is None else resize_uint8(x, image_size)


def load_mnist_like(
    name: str, root: Path, train: bool, download: bool, image_size: int | None
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """``mnist`` or ``fashion_mnist`` as ``(uint8 [N, 1, 28, 28], long [N], 10)``."""
    tvd = _tv_datasets(name)
    cls = {"mnist": tvd.MNIST, "fashion_mnist": tvd.FashionMNIST}[name]
    folder = root / cls.__name__ / "raw"
    with _remove_on_failure(root, [root / cls.__name__]):
        if name == "fashion_mnist":
            install_debian_fashion_mnist(root)
        ds = _construct(
            name, folder, root, download, lambda: cls(str(root), train=train, download=download)
        )
    x = torch.as_tensor(ds.data, dtype=torch.uint8).unsqueeze(1).contiguous()
    y = torch.as_tensor(ds.targets, dtype=torch.long)
    return _maybe_resize(x, image_size), y, 10


def load_cifar10(
    root: Path, train: bool, download: bool, image_size: int | None
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """CIFAR-10 as ``(uint8 [N, 3, 32, 32], long [N], 10)``."""
    tvd = _tv_datasets("cifar10")
    folder = root / "cifar-10-batches-py"
    with _remove_on_failure(root, [folder, root / tvd.CIFAR10.filename]):
        ds = _construct(
            "cifar10",
            folder,
            root,
            download,
            lambda: tvd.CIFAR10(str(root), train=train, download=download),
        )
    x = torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2).contiguous()
    y = torch.as_tensor(ds.targets, dtype=torch.long)
    return _maybe_resize(x, image_size), y, 10


def _celeba_one(path: Path, size: int) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        img = img.convert("RGB")
        w, h = img.size
        c = min(CELEBA_CROP, w, h)
        left, top = round((w - c) / 2), round((h - c) / 2)
        img = img.crop((left, top, left + c, top + c)).resize((size, size), Image.BILINEAR)
        return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)


def load_celeba64(
    root: Path, train: bool, download: bool, image_size: int | None
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """CelebA (aligned), center-cropped to 178x178 and resized to 64 (or ``image_size``).

    Returns ``(uint8 [N, 3, S, S], zeros long [N], 0)``: used unconditionally, as in the paper.
    Decoding ~160k JPEGs is slow, so the processed array is cached next to the data as
    ``root/celeba/shortcut_mini_<split>_<S>.pt`` (written atomically) and reused.
    """
    size = 64 if image_size is None else int(image_size)
    split = "train" if train else "test"
    folder = root / "celeba"
    cache = folder / f"shortcut_mini_{split}_{size}.pt"
    if cache.is_file():
        x = torch.load(cache, map_location="cpu", weights_only=True)
        return x, torch.zeros(x.shape[0], dtype=torch.long), 0
    tvd = _tv_datasets("celeba64")
    with _remove_on_failure(root, [folder]):
        ds = _construct(
            "celeba64",
            folder,
            root,
            download,
            lambda: tvd.CelebA(str(root), split=split, target_type=[], download=download),
        )
    img_dir = folder / "img_align_celeba"
    paths = [img_dir / f for f in ds.filename]
    with ThreadPoolExecutor(max_workers=min(16, os.cpu_count() or 1)) as pool:
        arrays = list(pool.map(lambda p: _celeba_one(p, size), paths, chunksize=256))
    x = torch.from_numpy(np.stack(arrays))
    _save_cache(x, cache)
    return x, torch.zeros(x.shape[0], dtype=torch.long), 0


def _save_cache(x: torch.Tensor, cache: Path) -> None:
    """Atomically write ``x`` to ``cache``; a read-only folder only costs a warning."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{cache.name}.", suffix=".tmp", dir=cache.parent)
    except OSError as exc:
        warnings.warn(f"could not cache processed data at {cache}: {exc}", stacklevel=3)
        return
    os.close(fd)
    try:
        torch.save(x, tmp)
        os.replace(tmp, cache)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
