"""The public entry points: ``train``, ``sample`` and ``load_run``."""

from __future__ import annotations

from pathlib import Path

import torch

from .config import TrainConfig
from .sampling import euler_sample
from .train.checkpoint import load_checkpoint, load_weights
from .train.trainer import Run, model_from_config, train

__all__ = ["train", "sample", "load_run", "Run"]


def load_run(path: str | Path, device: str | torch.device = "cpu") -> Run:
    """Load a run folder (or its ``checkpoint.pt``) written by :func:`~shortcut_mini.train.train`.

    The model is rebuilt from the checkpoint's own config; loading never executes code
    (``torch.load(weights_only=True)``).
    """
    state = load_checkpoint(path)
    cfg = TrainConfig.from_dict(state["config"])
    model = model_from_config(cfg, state["data_info"])
    ema = model_from_config(cfg, state["data_info"])
    load_weights(model, state["model"])
    load_weights(ema, state["ema"], what="checkpoint's EMA weights")
    model.to(device).eval()
    ema.to(device).eval().requires_grad_(False)
    out_dir = Path(path) if Path(path).is_dir() else Path(path).parent
    history = []
    log = out_dir / "metrics.jsonl"
    if log.exists():
        import json

        history = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
    return Run(
        model=model,
        ema=ema,
        config=cfg,
        history=history,
        data_info=state["data_info"],
        step=state["step"],
        out_dir=str(out_dir),
        train_seconds=state["train_seconds"],
    )


def sample(
    run: Run,
    n: int,
    steps: int | list[float] = 1,
    *,
    seed: int = 0,
    cfg_scale: float = 1.0,
    y: torch.Tensor | int | None = None,
    use_ema: bool = True,
    batch_size: int = 1024,
    noise: torch.Tensor | None = None,
    return_trajectory: bool = False,
):
    """Draw ``n`` samples with a budget of ``steps``.

    Args:
        steps: an int (a power of two gives equal steps; another int a dyadic schedule, e.g.
            ``3 -> [1/2, 1/4, 1/4]``) or an explicit list of dyadic step sizes summing to 1.
        seed: seeds the noise (same seed, same noise, whatever the budget).
        cfg_scale: classifier-free guidance weight (class-conditional runs; 1 = no guidance).
        y: labels, an int for all samples, or None (null label / unconditional).
        use_ema: sample with the EMA weights (default) or the online weights.
        noise: start from this noise instead of drawing it.
        return_trajectory: also return the list of intermediate states.

    Returns float32 samples on the CPU in the data's range (images clamped to ``[-1, 1]``),
    and the trajectory ``[steps + 1, n, ...]`` if asked.
    """
    model = run.ema if use_ema else run.model
    device = next(model.parameters()).device
    shape = tuple(run.data_info["shape"])
    if noise is None:
        gen = torch.Generator().manual_seed(seed)
        noise = torch.randn((n, *shape), generator=gen)
    elif tuple(noise.shape) != (n, *shape):
        raise ValueError(f"noise must have shape {(n, *shape)}, got {tuple(noise.shape)}")
    if isinstance(y, int):
        y = torch.full((n,), y, dtype=torch.long)
    if y is not None and run.data_info["num_classes"] == 0:
        raise ValueError("y was given but this run is not class-conditional")
    shortcut = run.config.method == "shortcut"
    was_training = model.training
    model.eval()
    outs, trajs = [], []
    for i in range(0, n, batch_size):
        yb = None if y is None else y[i : i + batch_size].to(device)
        res = euler_sample(
            model,
            noise[i : i + batch_size].to(device),
            steps,
            y=yb,
            cfg_scale=cfg_scale,
            use_step_size=shortcut,
            return_trajectory=return_trajectory,
        )
        outs.append(res.samples.float().cpu())
        if return_trajectory:
            trajs.append(torch.stack([x.float().cpu() for x in res.trajectory]))
    model.train(was_training)
    samples = torch.cat(outs)
    if run.data_info["kind"] == "image":
        samples = samples.clamp(-1, 1)
    if return_trajectory:
        return samples, torch.cat(trajs, dim=1)
    return samples
