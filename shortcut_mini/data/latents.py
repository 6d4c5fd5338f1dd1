"""Latent-space data (the paper's 256x256 scale): images encoded once by a VAE, cached on disk.

The paper trains DiT-B on the latents of the Stable Diffusion VAE: a 256x256x3 image becomes a
4x32x32 latent ``z = scaling_factor * E(x)`` (``scaling_factor`` = 0.18215, the VAE's
``config.scaling_factor``), and samples are decoded with ``D(z / scaling_factor)``. Encoding is
the costly part, so it happens once: :func:`load_latent_dataset` encodes the images (streaming
an image folder in batches, so ImageNet never sits in memory as pixels), stores the latents as
``float16`` in one file written atomically, and every later run loads that file. The file's name
is a hash of the data source (its resolved path), the image size, the VAE id and the posterior
mode; delete it after changing the images.

The result is an :class:`ArrayDataset` of kind ``"latent"``: float latents ``[N, 4, 32, 32]``
that the trainer uses as-is (no ``[-1, 1]`` mapping), so models, objectives and sampling need no
change. ``TrainConfig.latent_vae`` switches it on.

Any autoencoder with the interface of diffusers' ``AutoencoderKL`` works (the tests use a small
random one): ``vae.encode(x).latent_dist.sample(generator)`` / ``.mode()``,
``vae.decode(z).sample`` and ``vae.config.scaling_factor``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from .array_dataset import ArrayDataset
from .errors import DatasetUnavailableError
from .image_folder import _class_index, report_unreadable, try_read_square

__all__ = [
    "DEFAULT_VAE",
    "SD_SCALING_FACTOR",
    "LatentVAEError",
    "load_vae",
    "encode_to_latents",
    "encode_batches",
    "decode_latents",
    "decode_samples",
    "latent_cache_path",
    "load_latent_dataset",
]

DEFAULT_VAE = "stabilityai/sd-vae-ft-ema"
"""The Stable Diffusion VAE (fine-tuned decoder) that DiT and the paper's code use."""

SD_SCALING_FACTOR = 0.18215
"""Latent scale of the SD VAE, used when a VAE's config does not give one."""

CACHE_VERSION = 1
_VAES: dict[tuple[str, str], torch.nn.Module] = {}


class LatentVAEError(DatasetUnavailableError):
    """The VAE cannot be loaded (diffusers missing, or its weights not downloadable)."""


def load_vae(vae_id: str = DEFAULT_VAE, device: torch.device | str = "cpu") -> torch.nn.Module:
    """diffusers' ``AutoencoderKL.from_pretrained(vae_id)`` in eval mode on ``device`` (memoised).

    ``vae_id`` is a Hugging Face Hub id or a local folder holding ``config.json`` and the weights.

    Raises:
        LatentVAEError: diffusers is not installed, or the weights are neither cached nor
            downloadable; the message says how to get them.
    """
    key = (str(vae_id), str(device))
    if key in _VAES:
        return _VAES[key]
    try:
        from diffusers import AutoencoderKL
    except ImportError as e:
        raise LatentVAEError(
            f"latent-space training needs diffusers for the VAE {vae_id!r}: "
            "pip install 'shortcut-mini[latent]' (or pip install diffusers)"
        ) from e
    try:
        vae = AutoencoderKL.from_pretrained(vae_id)
    except Exception as e:  # no network, not on the Hub, no local folder...
        raise LatentVAEError(
            f"could not load the VAE {vae_id!r} ({type(e).__name__}: {e}). On a machine with "
            f'internet, run once: python -c "from diffusers import AutoencoderKL; '
            f"AutoencoderKL.from_pretrained('{vae_id}')\" (it fills the Hugging Face cache, "
            "~/.cache/huggingface; copy that folder to an offline machine), or "
            f"'huggingface-cli download {vae_id} --local-dir DIR' and set latent_vae=DIR."
        ) from e
    vae = vae.to(device).eval().requires_grad_(False)
    _VAES[key] = vae
    return vae


def scaling_factor(vae) -> float:
    config = getattr(vae, "config", None)
    value = getattr(config, "scaling_factor", None)
    if value is None and isinstance(config, dict):
        value = config.get("scaling_factor")
    return float(value) if value is not None else SD_SCALING_FACTOR


def _vae_device_dtype(vae) -> tuple[torch.device, torch.dtype]:
    p = next(vae.parameters())
    return p.device, p.dtype


@torch.no_grad()
def encode_batches(
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
    vae,
    *,
    posterior: str = "sample",
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Encode ``(uint8 [B, C, H, W], labels [B])`` batches; return ``(float16 latents, labels)``.

    Grayscale images are repeated to RGB; pixels map to ``[-1, 1]``. ``posterior="sample"``
    draws ``z ~ q(z | x)`` once with a seeded generator (as DiT's feature extraction),
    ``"mode"`` takes its mean. Latents are multiplied by the VAE's scaling factor.
    """
    if posterior not in ("sample", "mode"):
        raise ValueError(f"posterior must be 'sample' or 'mode', got {posterior!r}")
    device, dtype = _vae_device_dtype(vae)
    gen = torch.Generator(device).manual_seed(seed)
    scale = scaling_factor(vae)
    zs, ys = [], []
    for x, y in batches:
        x = x.to(device)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = x.to(dtype).div(127.5).sub(1.0)
        dist = vae.encode(x).latent_dist
        z = dist.sample(generator=gen) if posterior == "sample" else dist.mode()
        zs.append((z.float() * scale).to(torch.float16).cpu())
        ys.append(torch.as_tensor(y).long().cpu())
    if not zs:
        raise ValueError("no images to encode")
    return torch.cat(zs), torch.cat(ys)


def _atomic_save(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _dataset(x: torch.Tensor, y: torch.Tensor, num_classes: int, name: str) -> ArrayDataset:
    return ArrayDataset(x, y, num_classes=num_classes, kind="latent", name=name)


def _load_cache(path: Path, meta: dict) -> ArrayDataset | None:
    if not path.exists():
        return None
    state = torch.load(path, weights_only=True)
    if state.get("meta") != meta:
        return None
    return _dataset(state["x"], state["y"], int(state["num_classes"]), meta["name"])


def encode_to_latents(
    dataset: ArrayDataset,
    vae,
    batch_size: int = 64,
    cache_path: str | os.PathLike[str] | None = None,
    *,
    posterior: str = "sample",
    seed: int = 0,
) -> ArrayDataset:
    """Encode an in-memory image :class:`ArrayDataset` into a ``"latent"`` one (cached if asked).

    With ``cache_path``, an existing cache made from the same dataset name, shape, size and
    posterior is loaded instead of encoding; otherwise the latents are written there atomically.
    """
    if dataset.kind != "image":
        raise ValueError(f"encode_to_latents needs an image dataset, got kind {dataset.kind!r}")
    meta = {
        "version": CACHE_VERSION,
        "name": dataset.name,
        "shape": list(dataset.shape),
        "n": len(dataset),
        "posterior": posterior,
        "seed": seed,
    }
    if cache_path is not None:
        cached = _load_cache(Path(cache_path), meta)
        if cached is not None:
            return cached
    batches = (
        (dataset.x[i : i + batch_size], dataset.y[i : i + batch_size])
        for i in range(0, len(dataset), batch_size)
    )
    z, y = encode_batches(batches, vae, posterior=posterior, seed=seed)
    if cache_path is not None:
        _atomic_save(
            {"x": z, "y": y, "num_classes": dataset.num_classes, "meta": meta}, Path(cache_path)
        )
    return _dataset(z, y, dataset.num_classes, dataset.name)


@torch.no_grad()
def decode_latents(vae, z: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    """Decode latents (in the scaled space the model trains in) to float images in ``[-1, 1]``
    on the CPU: ``D(z / scaling_factor)``, clamped."""
    device, dtype = _vae_device_dtype(vae)
    scale = scaling_factor(vae)
    out = []
    for i in range(0, len(z), batch_size):
        zb = z[i : i + batch_size].to(device=device, dtype=dtype) / scale
        out.append(vae.decode(zb).sample.float().clamp(-1, 1).cpu())
    return torch.cat(out)


def latent_cache_path(
    source: str, image_size: int | None, vae_id: str, root: Path, posterior: str = "sample"
) -> Path:
    """``root/latents/<hash>.pt``, the hash of (source, image size, VAE id, posterior)."""
    key = json.dumps(
        [CACHE_VERSION, source, image_size, str(vae_id), posterior], separators=(",", ":")
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return root / "latents" / f"{digest}.pt"


def _folder_batches(
    files: list[Path], class_index: dict[str, int], root: Path, size: int, batch_size: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``(uint8 [B, 3, S, S], labels [B])`` batches of the readable files; unreadable ones are
    skipped and reported once at the end (an error if none could be read)."""
    import numpy as np

    good, bad = [], []
    for i in range(0, len(files), batch_size):
        arrays, labels = [], []
        for f in files[i : i + batch_size]:
            read = try_read_square(f, size, bad)
            if read is None:
                continue
            good.append(f)
            arrays.append(np.asarray(read[0], np.uint8))
            labels.append(class_index[f.relative_to(root).parts[0]] if class_index else 0)
        if arrays:
            x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
            yield x, torch.tensor(labels)
    report_unreadable(root, files, good, bad, class_index)


def load_latent_dataset(
    name: str,
    vae_id: str,
    *,
    root: str | os.PathLike[str] | None = None,
    image_size: int | None = None,
    n: int | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    batch_size: int = 64,
    is_main: bool = True,
    vae=None,
    posterior: str = "sample",
) -> ArrayDataset:
    """The latents of dataset ``name`` under VAE ``vae_id``, encoded once and cached.

    ``image_folder:PATH`` is streamed from disk in batches (class subfolders give labels, as
    :func:`~shortcut_mini.data.load_image_folder`); any other image dataset is loaded with
    :func:`~shortcut_mini.data.load_dataset` and encoded. The cache lives in
    ``root/latents/`` (``root`` as for downloads: ``$SHORTCUT_MINI_DATA`` or
    ``~/.cache/shortcut_mini/data``). ``n`` keeps a seeded subset of the encoded set.

    Under ``torchrun`` only the main process encodes (``is_main``); the others wait for the
    cache file (a file, not a collective, so encoding may take longer than a collective timeout).
    ``vae`` replaces :func:`load_vae` (tests).
    """
    from .image_folder import IMAGE_EXTENSIONS, list_images
    from .paths import resolve_root
    from .registry import IMAGE_FOLDER_PREFIX, load_dataset

    folder = name[len(IMAGE_FOLDER_PREFIX) :] if name.startswith(IMAGE_FOLDER_PREFIX) else None
    source = str(Path(folder).expanduser().resolve()) if folder is not None else name
    path = latent_cache_path(source, image_size, vae_id, resolve_root(root), posterior)
    meta = {
        "version": CACHE_VERSION,
        "name": name,
        "source": source,
        "image_size": image_size,
        "vae": str(vae_id),
        "posterior": posterior,
    }

    data = _load_cache(path, meta)
    if data is None and not is_main:
        while data is None:  # rank 0 is encoding; its atomic rename publishes the file
            time.sleep(5.0)
            data = _load_cache(path, meta)
    if data is None:
        vae = vae if vae is not None else load_vae(vae_id, device)
        if folder is not None:
            if image_size is None:
                raise ValueError("image_folder datasets need image_size (e.g. 256)")
            files = list_images(Path(source))
            if not files:
                raise DatasetUnavailableError(
                    f"dataset {name!r} is not available: no image files "
                    f"({', '.join(IMAGE_EXTENSIONS)}) under {source}"
                )
            classes = _class_index(Path(source), files)  # as load_image_folder
            batches = _folder_batches(files, classes, Path(source), int(image_size), batch_size)
            z, y = encode_batches(batches, vae, posterior=posterior, seed=0)
            num_classes = len(classes)
        else:
            images = load_dataset(name, root=root, train=True, image_size=image_size)
            batches = (
                (images.x[i : i + batch_size], images.y[i : i + batch_size])
                for i in range(0, len(images), batch_size)
            )
            z, y = encode_batches(batches, vae, posterior=posterior, seed=0)
            num_classes = images.num_classes
        _atomic_save({"x": z, "y": y, "num_classes": num_classes, "meta": meta}, path)
        data = _dataset(z, y, num_classes, name)
    return data.subset(n, seed) if n is not None else data


def decode_samples(run, z: torch.Tensor, vae=None, device: torch.device | str = "cpu"):
    """Decode a latent run's samples (``run.config.latent_vae``) to images in ``[-1, 1]``;
    samples of a pixel or 2D run are returned unchanged. ``vae`` replaces :func:`load_vae`."""
    if run.data_info.get("kind") != "latent":
        return z
    return decode_latents(vae if vae is not None else load_vae(run.config.latent_vae, device), z)
