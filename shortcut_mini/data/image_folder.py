"""A folder of image files (``image_folder:PATH``), loaded fully into memory."""

from __future__ import annotations

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
    """
    from PIL import Image

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
    tops = [f.relative_to(path).parts for f in files]
    nested = [len(p) > 1 for p in tops]
    if any(nested) and not all(nested):
        loose = [str(f) for f, n in zip(files, nested) if not n][:3]
        raise ValueError(
            f"image_folder {path} mixes class subfolders with loose images (e.g. {loose}); "
            "put every image in a class subfolder, or none"
        )
    classes = sorted({p[0] for p in tops}) if all(nested) else []
    class_index = {c: i for i, c in enumerate(classes)}

    images = []
    gray = True
    for f in files:
        with Image.open(f) as img:
            img.load()
            gray = gray and img.mode in _GRAY_MODES
            images.append(_center_square(img.convert("RGB"), size))
    arrays = [np.asarray(im.convert("L") if gray else im, dtype=np.uint8) for im in images]
    x = torch.from_numpy(np.stack(arrays))
    x = x.unsqueeze(1) if gray else x.permute(0, 3, 1, 2)
    y = torch.tensor([class_index[p[0]] for p in tops] if classes else [0] * len(files))
    return x.contiguous(), y.long(), len(classes)
