"""The pairs reflow trains on: noise ``x0`` and the teacher's ``M``-step Euler sample from it.

Generated once, in chunks of :data:`CHUNK` pairs; chunk ``c`` draws its noise from a generator
seeded by ``(seed, c)``, so the pairs depend only on the seed, the teacher and the count (not
on how many processes generate them, nor on where a generation was killed). In a run folder
each chunk is written atomically to ``reflow_pairs/`` as soon as it is done, beside a
``manifest.json`` naming the teacher (a hash of its weights), the seed, the count and the
number of steps: a killed generation continues with the missing chunks, and a cache made for
another teacher or count is replaced. A damaged cache mends itself: a chunk that cannot be read
(or holds the wrong keys or shapes) is generated again, and a manifest that cannot be read
makes the whole cache be generated again; only a folder where a file belongs is refused
(:class:`ReflowPairsError`, naming it).
"""

from __future__ import annotations

import io
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..common import atomic_write_bytes, atomic_write_json
from ..errors import UserError
from ..sampling import euler_sample

__all__ = [
    "CHUNK",
    "PAIRS_DIR",
    "ReflowPairs",
    "ReflowPairsError",
    "generate_pairs",
    "chunk_noise",
]

CHUNK = 1024
PAIRS_DIR = "reflow_pairs"
_FORMAT = "shortcut-mini/reflow-pairs-v1"


@dataclass
class ReflowPairs:
    """``x0[i]`` (noise) and ``x1[i]`` (the teacher's sample from it), with labels ``y[i]``."""

    x0: torch.Tensor
    x1: torch.Tensor
    y: torch.Tensor | None

    def __len__(self) -> int:
        return self.x0.shape[0]

    def to(self, device) -> ReflowPairs:
        y = None if self.y is None else self.y.to(device)
        return ReflowPairs(self.x0.to(device), self.x1.to(device), y)


def chunk_noise(seed: int, chunk: int, n: int, shape) -> torch.Tensor:
    """The noise of chunk ``chunk``: ``n`` draws from a CPU generator seeded by ``(seed, chunk)``."""
    key = np.random.SeedSequence([seed, chunk]).generate_state(1, dtype=np.uint64)[0] >> 1
    gen = torch.Generator().manual_seed(int(key))
    return torch.randn((n, *shape), generator=gen)


def _chunk_sizes(n: int) -> list[int]:
    return [min(CHUNK, n - c * CHUNK) for c in range(math.ceil(n / CHUNK))]


class ReflowPairsError(UserError, RuntimeError):
    """The pair cache in a run folder is damaged in a way regenerating cannot mend (a folder
    where a file belongs), or a chunk is missing after generation; the message names the path
    and the fix."""


def _not_a_folder(path: Path, what: str) -> ReflowPairsError:
    return ReflowPairsError(
        f"reflow pairs: {path} is a folder where the cache keeps {what}; move it away or "
        "delete it, then rerun the same command (the pairs are generated again)"
    )


def _read_chunk(path: Path, size: int, shape, labels: bool) -> dict | None:
    """The chunk at ``path`` if it is there, readable and holds ``size`` pairs of ``shape`` (and
    labels if ``labels``), else ``None`` (it is generated again)."""
    if path.is_dir():
        raise _not_a_folder(path, "a chunk of pairs")
    if not path.exists():
        return None
    try:
        chunk = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a torn or corrupt file: generated again
        return None
    keys = ("x0", "x1", "y") if labels else ("x0", "x1")
    if not isinstance(chunk, dict) or not all(isinstance(chunk.get(k), torch.Tensor) for k in keys):
        return None
    ok = all(tuple(chunk[k].shape) == (size, *shape) for k in ("x0", "x1"))
    ok = ok and (not labels or tuple(chunk["y"].shape) == (size,))
    return chunk if ok else None


def _read_manifest(path: Path) -> dict | None:
    """The cache's manifest, or None when it is missing or damaged (the cache is rebuilt)."""
    if path.is_dir():
        raise _not_a_folder(path, "its manifest")
    try:
        found = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def _prepare_folder(folder: Path, manifest: dict) -> None:
    """Keep the chunks of a cache made for ``manifest``; remove those of any other (or of a
    cache whose manifest is damaged: what made them is unknown)."""
    if folder.exists() and not folder.is_dir():
        raise ReflowPairsError(
            f"reflow pairs: {folder} is a file, and the cache of pairs is a folder of that "
            "name; move the file away, then rerun the same command"
        )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "manifest.json"
    found = _read_manifest(path)
    if found == manifest:
        return
    if found is None and path.exists():
        print(
            f"reflow pairs: {path} is damaged (not a manifest this version reads); the pairs "
            "it described are generated again",
            file=sys.stderr,
            flush=True,
        )
    for old in folder.glob("chunk_*.pt"):
        if old.is_dir():
            raise _not_a_folder(old, "a chunk of pairs")
        old.unlink()
    atomic_write_json(path, manifest)


@torch.no_grad()
def _generate_chunk(teacher, noise, y, steps, device, autocast) -> dict:
    with autocast():
        res = euler_sample(teacher, noise.to(device), steps, y=y, use_step_size=False)
    chunk = {"x0": noise, "x1": res.samples.float().cpu()}
    if y is not None:
        chunk["y"] = y.cpu()
    return chunk


def generate_pairs(
    teacher: nn.Module,
    n: int,
    shape,
    *,
    seed: int,
    steps: int,
    labels: torch.Tensor | None = None,
    device="cpu",
    folder: Path | None = None,
    fingerprint: str = "",
    rank: int = 0,
    world_size: int = 1,
    barrier=lambda: None,
    autocast=None,
) -> ReflowPairs:
    """``n`` pairs from ``teacher``'s ``steps``-step Euler samples (its ``d = 0`` token).

    ``labels`` (``long [n]``) condition the teacher; ``folder`` caches the chunks (None: in
    memory). Process ``rank`` of ``world_size`` generates chunks ``rank, rank + world_size,
    ...``; all then read every chunk. Returns the pairs on the CPU.
    """
    import contextlib

    autocast = autocast or contextlib.nullcontext
    sizes, shape, has_labels = _chunk_sizes(n), tuple(shape), labels is not None
    if folder is None:  # nothing shared: every process generates every chunk
        rank, world_size = 0, 1
    if folder is not None:
        manifest = {
            "format": _FORMAT,
            "teacher": fingerprint,
            "seed": seed,
            "n": n,
            "chunk": CHUNK,
            "steps": steps,
            "shape": list(shape),
            "labels": labels is not None,
        }
        if rank == 0:
            _prepare_folder(folder, manifest)
        barrier()
    chunks: dict[int, dict] = {}
    for c in range(rank, len(sizes), world_size):
        path = None if folder is None else folder / f"chunk_{c:05d}.pt"
        if path is not None and _read_chunk(path, sizes[c], shape, has_labels) is not None:
            continue
        y = None if labels is None else labels[c * CHUNK : c * CHUNK + sizes[c]].to(device)
        noise = chunk_noise(seed, c, sizes[c], shape)
        chunks[c] = _generate_chunk(teacher, noise, y, steps, device, autocast)
        if path is not None:
            buffer = io.BytesIO()
            torch.save(chunks[c], buffer)
            atomic_write_bytes(path, buffer.getvalue())
    barrier()
    if folder is not None:
        chunks = {
            c: _read_chunk(folder / f"chunk_{c:05d}.pt", s, shape, has_labels)
            for c, s in enumerate(sizes)
        }
        missing = [c for c, chunk in chunks.items() if chunk is None]
        if missing:
            raise ReflowPairsError(
                f"reflow pairs: chunk(s) {missing[:5]} missing in {folder} after generation "
                "(another process failed, or the folder is not shared by all processes); "
                "rerun the same command to generate them"
            )
    x0 = torch.cat([chunks[c]["x0"] for c in range(len(sizes))])
    x1 = torch.cat([chunks[c]["x1"] for c in range(len(sizes))])
    y = None if labels is None else torch.cat([chunks[c]["y"] for c in range(len(sizes))])
    return ReflowPairs(x0, x1, y)
