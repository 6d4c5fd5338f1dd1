"""The 2D demo: flow matching versus a shortcut model on a toy, at 1, 2, 4, ..., 128 steps.

Writes ``table.md``, ``table.json`` and ``samples.png`` into ``out`` (the README's ``make demo``).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from .api import sample
from .common import atomic_write_bytes, atomic_write_json
from .config import TrainConfig
from .data import toy2d
from .levels import DEFAULT_BUDGETS
from .metrics import sliced_wasserstein
from .train import train

BUDGETS = DEFAULT_BUDGETS


def run_demo(
    out: str | Path,
    data: str = "checkerboard",
    steps: int = 3000,
    seed: int = 0,
    n_eval: int = 4096,
) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ref = toy2d(data, n_eval, seed=10_000 + seed)  # held-out points
    results, samples = {}, {}
    for method in ("flow_matching", "shortcut"):
        cfg = TrainConfig(
            data=data,
            method=method,
            model="mlp-small",
            steps=steps,
            batch_size=256,
            lr=1e-3,
            seed=seed,
            n_data=20000,
            out_dir=str(out / method),
        )
        t0 = time.perf_counter()
        run = train(cfg)
        results[method] = {"train_seconds": round(time.perf_counter() - t0, 1)}
        for n in BUDGETS:
            x = sample(run, n_eval, n, seed=seed + 1)
            samples[method, n] = x
            results[method][n] = sliced_wasserstein(x, ref)
    lines = [
        "| method | " + " | ".join(f"{n} steps" for n in BUDGETS) + " |",
        "|---|" + "---|" * len(BUDGETS),
    ]
    for method, row in results.items():
        lines.append(f"| {method} | " + " | ".join(f"{row[n]:.3f}" for n in BUDGETS) + " |")
    table = "\n".join(lines) + (
        f"\n\nSliced Wasserstein-2 distance to {n_eval} held-out {data} points "
        f"(lower is better); {steps} training steps per method, seed {seed}.\n"
    )
    atomic_write_bytes(out / "table.md", table.encode())
    atomic_write_json(
        out / "table.json", {m: {str(k): v for k, v in r.items()} for m, r in results.items()}
    )
    _figure(samples, ref, out / "samples.png")
    print(table)
    return results


def _figure(samples: dict, ref: torch.Tensor, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budgets = (1, 2, 4, 128)
    fig, axes = plt.subplots(2, len(budgets) + 1, figsize=(3 * (len(budgets) + 1), 6))
    for row, method in enumerate(("flow_matching", "shortcut")):
        axes[row, 0].scatter(ref[:, 0], ref[:, 1], s=1, c="gray")
        axes[row, 0].set_title("data")
        for j, n in enumerate(budgets):
            x = samples[method, n]
            axes[row, j + 1].scatter(x[:, 0], x[:, 1], s=1)
            axes[row, j + 1].set_title(f"{method}, {n} step{'s' * (n > 1)}")
        for ax in axes[row]:
            ax.set(xlim=(-3, 3), ylim=(-3, 3), xticks=[], yticks=[], aspect="equal")
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)


if __name__ == "__main__":
    run_demo("runs/demo")
