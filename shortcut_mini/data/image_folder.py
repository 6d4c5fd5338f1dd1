"""A folder of image files (``image_folder:PATH``), loaded fully into memory."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from .errors import DatasetUnavailableError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
_GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def _center_square(img, size: int):
    from PIL import Image

    w, h = img.size
    c = min(w, h)
    left, top = (w - c) // 2, (h - c) // 2
    img = img.crop((left, top, left + c, top + c))
    return img if img.size == (size, size) else img.resize((size, size), Image.BILINEAR)


def list_images(path: Path) -> list[Path]:
    """All image files under ``path`` (recursively), sorted, hidden files skipped."""
    return sorted(
        p
        for p in path.rglob("*")
        if p.is_file()
        and p.suffix.lower() in IMAGE_EXTENSIONS
        and not any(part.startswith(".") for part in p.relative_to(path).parts)
    )


def load_image_folder(path: str | Path, image_size: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Read every image below ``path`` as ``(uint8 [N, C, S, S], long [N], num_classes)``.

    Each image is center-cropped to a square and resized to ``image_size`` (bilinear). Images
    are grayscale (``C = 1``) when every file is single-channel, otherwise RGB (``C = 3``,
    alpha dropped). When images sit in first-level subfolders, the sorted subfolder names are the
    classes (``num_classes`` = their count); images directly in ``path`` are then not allowed.
    Without subfolders all labels are 0 and ``num_classes`` is 0.

    A file that cannot be read (truncated, or not an image despite its extension) is skipped;
    one warning names how many were skipped and the first few. The classes still come from
    every file, so a bad file never shifts the labels of the others.

    Raises:
        DatasetUnavailableError: ``path`` is not a folder, holds no image files, or none of them
            can be read.
    """
    if image_size is None or int(image_size) <= 0:
        raise ValueError("image_folder datasets need image_size (a positive int)")
    size = int(image_size)
    path = Path(path).expanduser()
    if not path.is_dir():
        raise DatasetUnavailableError(
            f"dataset 'image_folder:{path}' is not available: {path} is not a directory"
        )
    files = list_images(path)
    if not files:
        raise DatasetUnavailableError(
            f"dataset 'image_folder:{path}' is not available: no image files "
            f"({', '.join(IMAGE_EXTENSIONS)}) found under {path}"
        )
    class_index = _class_index(path, files)
    images, gray, good, bad = _read_images(files, size)
    report_unreadable(path, files, good, bad, class_index)
    arrays = [np.asarray(im.convert("L") if gray else im, dtype=np.uint8) for im in images]
    x = torch.from_numpy(np.stack(arrays))
    x = x.unsqueeze(1) if gray else x.permute(0, 3, 1, 2)
    tops = [f.relative_to(path).parts[0] for f in good]
    y = torch.tensor([class_index[t] for t in tops] if class_index else [0] * len(good))
    return x.contiguous(), y.long(), len(class_index)


def _class_index(path: Path, files: list[Path]) -> dict[str, int]:
    """First-level subfolder name -> label (empty without subfolders)."""
    tops = [f.relative_to(path).parts for f in files]
    nested = [len(p) > 1 for p in tops]
    if any(nested) and not all(nested):
        loose = [str(f) for f, n in zip(files, nested) if not n][:3]
        raise ValueError(
            f"image_folder {path} mixes class subfolders with loose images (e.g. {loose}); "
            "put every image in a class subfolder, or none"
        )
    classes = sorted({p[0] for p in tops}) if all(nested) else []
    return {c: i for i, c in enumerate(classes)}


def _read_images(
    files: list[Path], size: int
) -> tuple[list, bool, list[Path], list[tuple[Path, str]]]:
    """``(square RGB images, all grayscale?, files read, [(file, why) not read])``."""
    images, good, bad = [], [], []
    gray = True
    for f in files:
        read = try_read_square(f, size, bad)
        if read is not None:
            images.append(read[0])
            gray = gray and read[1]
            good.append(f)
    return images, gray, good, bad


def try_read_square(f: Path, size: int, bad: list[tuple[Path, str]]):
    """``(center-cropped RGB square of side size, single-channel?)``, or ``None`` if ``f`` cannot
    be read; then ``(f, why)`` is appended to ``bad``."""
    from PIL import Image

    try:
        with Image.open(f) as img:
            img.load()
            is_gray = img.mode in _GRAY_MODES
            rgb = img.convert("RGB")
    # PIL reports a damaged file with many exception types (OSError, SyntaxError, ValueError,
    # DecompressionBombError...); each one only means "this file is bad".
    except Exception as exc:
        bad.append((f, _why(exc)))
        return None
    return _center_square(rgb, size), is_gray


def _why(exc: Exception) -> str:
    from PIL import UnidentifiedImageError

    if isinstance(exc, UnidentifiedImageError):
        return "not an image file PIL can read"
    return f"{type(exc).__name__}: {exc}"


_SHOWN = 5
"""How many unreadable files a message names."""


def _describe(bad: list[tuple[Path, str]]) -> str:
    shown = "; ".join(f"{f} ({why})" for f, why in bad[:_SHOWN])
    return shown + (f"; and {len(bad) - _SHOWN} more" if len(bad) > _SHOWN else "")


def report_unreadable(
    path: Path,
    files: list[Path],
    good: list[Path],
    bad: list[tuple[Path, str]],
    class_index: dict[str, int],
) -> None:
    """Raise when no file of ``path`` could be read; warn once, naming them, when some could not.

    Raises:
        DatasetUnavailableError: ``good`` is empty.
    """
    if not good:
        raise DatasetUnavailableError(
            f"dataset 'image_folder:{path}' is not available: none of its {len(files)} image "
            f"files could be read ({_describe(bad)}); replace them with valid images (a "
            "truncated download or another file renamed to an image extension cannot be read)"
        )
    if not bad:
        return
    left = {f.relative_to(path).parts[0] for f in good}
    empty = [c for c in class_index if c not in left]
    lost = f"; classes with no readable image left: {empty}" if empty else ""
    warnings.warn(
        f"image_folder {path}: skipped {len(bad)} of {len(files)} image files that could not "
        f"be read: {_describe(bad)}{lost}. Replace or delete them to load every image.",
        stacklevel=3,
    )
