"""The 2D demo: flow matching versus a shortcut model on a toy, at 1, 2, 4, ..., 128 steps.

Writes ``table.md``, ``table.json`` and ``samples.png`` into ``out`` (the README's ``make demo``).
The numbers are :func:`~shortcut_mini.evaluate.evaluate`'s: the protocol's held-out points and
sliced Wasserstein distance.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from .api import sample
from .common import atomic_write_bytes, atomic_write_json
from .config import TrainConfig
from .evaluate import evaluate
from .levels import DEFAULT_BUDGETS
from .reference import held_out_points
from .tables import markdown_table
from .train import train

BUDGETS = DEFAULT_BUDGETS
METHODS = ("flow_matching", "shortcut")
FIGURE_BUDGETS = (1, 2, 4, 128)


def _demo_config(out: Path, data: str, method: str, steps: int, seed: int) -> TrainConfig:
    return TrainConfig(
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


def _markdown(results: dict, reference: str, steps: int, seed: int) -> str:
    head = ["method", *(f"{n} steps" for n in BUDGETS)]
    rows = [[method, *(f"{row[n]:.3f}" for n in BUDGETS)] for method, row in results.items()]
    return markdown_table(head, rows) + (
        f"\n\nSliced Wasserstein-2 distance (lower is better) to {reference}; {steps} "
        f"training steps per method, seed {seed}; sampling noise seed {seed + 1}.\n"
    )


def run_demo(
    out: str | Path,
    data: str = "checkerboard",
    steps: int = 3000,
    seed: int = 0,
    n_eval: int = 4096,
) -> dict:
    """Train flow matching and a shortcut model on the toy ``data`` and compare them per budget.

    Each method trains ``steps`` steps (``mlp-small``, training seed ``seed``) into
    ``out/<method>``, and is measured by :func:`~shortcut_mini.evaluate.evaluate` at the budgets
    1, 2, 4, ..., 128: the sliced Wasserstein distance of ``n_eval`` samples (noise seed
    ``seed + 1``) to ``n_eval`` held-out points (the toy's test split of training seed
    ``seed``). Writes ``table.md``, ``table.json`` (these numbers) and ``samples.png`` into
    ``out``.

    Returns:
        ``{method: {"train_seconds": ..., budget: distance, ...}}``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results, samples = {}, {}
    for method in METHODS:
        t0 = time.perf_counter()
        run = train(_demo_config(out, data, method, steps, seed))
        results[method] = {"train_seconds": round(time.perf_counter() - t0, 1)}
        table = evaluate(run, steps=BUDGETS, n=n_eval, seeds=(seed + 1,), progress=False)
        results[method].update({n: table[n]["distance"] for n in BUDGETS})
        for n in FIGURE_BUDGETS:  # the same noise the table measured
            samples[method, n] = sample(run, n_eval, n, seed=seed + 1)
    text = _markdown(results, table.meta["reference"], steps, seed)
    atomic_write_bytes(out / "table.md", text.encode())
    atomic_write_json(
        out / "table.json", {m: {str(k): v for k, v in r.items()} for m, r in results.items()}
    )
    _figure(samples, held_out_points(data, n_eval, seed).points, out / "samples.png")
    print(text)
    return results


def _figure(samples: dict, ref: torch.Tensor, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budgets = FIGURE_BUDGETS
    fig, axes = plt.subplots(2, len(budgets) + 1, figsize=(3 * (len(budgets) + 1), 6))
    for row, method in enumerate(METHODS):
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
