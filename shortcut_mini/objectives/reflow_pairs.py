"""The pairs reflow trains on: noise ``x0`` and the teacher's ``M``-step Euler sample from it.

Generated once, in chunks of :data:`CHUNK` pairs; chunk ``c`` draws its noise from a generator
seeded by ``(seed, c)``, so the pairs depend only on the seed, the teacher and the count (not
on how many processes generate them, nor on where a generation was killed). In a run folder
each chunk is written atomically to ``reflow_pairs/`` as soon as it is done, beside a
``manifest.json`` naming the teacher (a hash of its weights), the seed, the count and the
number of steps: a killed generation continues with the missing chunks, and a cache made for
another teacher or count is replaced.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..common import atomic_write_bytes, atomic_write_json
from ..sampling import euler_sample

__all__ = ["CHUNK", "PAIRS_DIR", "ReflowPairs", "generate_pairs", "chunk_noise"]

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


def _read_chunk(path: Path, size: int) -> dict | None:
    """The chunk at ``path`` if it is there, readable and of the right size, else ``None``."""
    if not path.exists():
        return None
    try:
        chunk = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a torn or corrupt file: generated again
        return None
    ok = isinstance(chunk, dict) and "x0" in chunk and chunk["x0"].shape[0] == size
    return chunk if ok else None


def _prepare_folder(folder: Path, manifest: dict) -> None:
    """Keep the chunks of a cache made for ``manifest``; remove those of any other."""
    path = folder / "manifest.json"
    if path.exists() and json.loads(path.read_text()) == manifest:
        return
    for old in folder.glob("chunk_*.pt"):
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
    sizes = _chunk_sizes(n)
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
            folder.mkdir(parents=True, exist_ok=True)
            _prepare_folder(folder, manifest)
        barrier()
    chunks: dict[int, dict] = {}
    for c in range(rank, len(sizes), world_size):
        path = None if folder is None else folder / f"chunk_{c:05d}.pt"
        if path is not None and _read_chunk(path, sizes[c]) is not None:
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
        chunks = {c: _read_chunk(folder / f"chunk_{c:05d}.pt", s) for c, s in enumerate(sizes)}
        missing = [c for c, chunk in chunks.items() if chunk is None]
        if missing:
            raise RuntimeError(
                f"reflow pairs: chunk(s) {missing[:5]} missing in {folder} after generation "
                "(another process failed, or the folder is not shared by all processes); "
                "rerun the same command to generate them"
            )
    x0 = torch.cat([chunks[c]["x0"] for c in range(len(sizes))])
    x1 = torch.cat([chunks[c]["x1"] for c in range(len(sizes))])
    y = None if labels is None else torch.cat([chunks[c]["y"] for c in range(len(sizes))])
    return ReflowPairs(x0, x1, y)
