"""The metrics log ``metrics.jsonl``: one JSON row per log step, appended while training.

Reading is tolerant of the one fault a kill can cause: a torn last line (the row being written)
is dropped with a warning. Anything wrong before the last line is corruption, and is refused
with the file and the line named. While training, the diagnostics are summed on the device;
the host waits for them only at log steps.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import torch

from ..common import atomic_write_bytes
from ..errors import UserError
from .distributed import DistInfo, gather_sums

__all__ = [
    "METRICS_NAME",
    "MetricsLog",
    "MetricsLogError",
    "read_metrics_log",
    "truncate_metrics_log",
]

METRICS_NAME = "metrics.jsonl"


class MetricsLogError(UserError, RuntimeError):
    """``metrics.jsonl`` is corrupt before its last line."""


def _parse_row(line: str) -> dict | None:
    try:
        row = json.loads(line)
    except ValueError:
        return None
    ok = isinstance(row, dict) and isinstance(row.get("step"), int)
    return row if ok else None


def read_metrics_log(path: str | Path) -> list[dict]:
    """The rows of the metrics log at ``path`` (``[]`` if there is none).

    A torn last line is dropped with a warning naming the file and the line; a bad line before
    it raises :class:`MetricsLogError` naming both and the way out.
    """
    path = Path(path)
    if not path.exists():
        return []
    lines = [
        (number, line)
        for number, line in enumerate(path.read_bytes().decode(errors="replace").splitlines(), 1)
        if line.strip()
    ]
    rows = []
    for k, (number, line) in enumerate(lines):
        row = _parse_row(line)
        if row is not None:
            rows.append(row)
        elif k == len(lines) - 1:
            warnings.warn(
                f"{path}: line {number} is incomplete (a kill during a write?); ignoring it",
                stacklevel=2,
            )
        else:
            raise MetricsLogError(
                f"{path}: line {number} is not a metrics row ({line[:60]!r}), and it is not "
                "the last line, so the log is corrupt. Delete that line (the log only records "
                "metrics; the checkpoint holds the run), or train the run afresh with "
                "overwrite=True (CLI: --overwrite)."
            )
    return rows


def truncate_metrics_log(path: Path, last_step: int) -> list[dict]:
    """Keep the rows up to ``last_step`` (the checkpoint's step) and return them."""
    if not path.exists():
        return []
    rows = [r for r in read_metrics_log(path) if r["step"] <= last_step]
    atomic_write_bytes(path, "".join(json.dumps(r) + "\n" for r in rows).encode())
    return rows


def _summand(value) -> tuple[torch.Tensor, torch.Tensor | int]:
    """A diagnostic is a scalar tensor, or ``(value, present)``: a group absent from the batch
    (``present`` false) does not count towards that step's mean."""
    if isinstance(value, tuple):
        value, present = value
        return torch.where(present, value.float(), 0.0), present.float()
    return value.float(), 1


class MetricsLog:
    """Sums diagnostics over a log window and writes one row per log step (``path`` on rank 0)."""

    def __init__(self, path: Path | None, history: list[dict], info: DistInfo, batch_size: int):
        self.path, self.history, self.info, self.batch_size = path, history, info, batch_size
        self._sums: dict[str, tuple] = {}
        self._file = None

    def __enter__(self) -> MetricsLog:
        self._file = open(self.path, "a") if self.path is not None else None  # noqa: SIM115
        return self

    def __exit__(self, *exc) -> None:
        if self._file is not None:
            self._file.close()

    def start_window(self, step: int) -> None:
        self._window_t0, self._window_start = time.perf_counter(), step

    def add(self, diagnostics: dict) -> None:
        for k, v in diagnostics.items():
            value, count = _summand(v)
            s, c = self._sums.get(k, (0.0, 0))
            self._sums[k] = (s + value, c + count)

    def log(self, step: int, ema_decay: float, wall_s: float) -> dict:
        """Write the row of ``step``: the mean of each diagnostic over steps and ranks."""
        now = time.perf_counter()
        sums = {}
        if self._sums:
            dev = next(iter(self._sums.values()))[0].device
            flat = [
                torch.as_tensor(x, dtype=torch.float32, device=dev)
                for p in self._sums.values()
                for x in p
            ]
            values = torch.stack(flat).tolist()  # the one host sync of a log step
            sums = {k: (values[2 * i], values[2 * i + 1]) for i, k in enumerate(self._sums)}
        merged = gather_sums(self.info, sums)
        row = {
            "step": step,
            "ema_decay": ema_decay,
            **{k: s / c for k, (s, c) in merged.items() if c > 0},
            "img_per_s": (step - self._window_start) * self.batch_size / (now - self._window_t0),
            "wall_s": wall_s,
        }
        self._sums = {}
        self._window_t0, self._window_start = now, step
        self.history.append(row)
        if self._file is not None:
            self._file.write(json.dumps(row) + "\n")
            self._file.flush()
        return row
