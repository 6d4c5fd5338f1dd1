"""A method defined outside the package joins with one call and works everywhere.

``PowerFlow`` below is flow matching with times drawn as ``t = u ** t_power``: an objective
file of a reader's own, with one setting of its own. After ``register_objective(PowerFlow)``
(and no other edit anywhere) it trains, checkpoints, resumes exactly, samples and evaluates
through the public API and the command line, and its setting is checked like a built-in's.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch
from conftest import make_tiny_config
from test_baselines import interrupt_at_batch

from shortcut_mini import (
    ConfigError,
    TrainingInterrupted,
    evaluate,
    load_run,
    register_objective,
    sample,
    train,
)
from shortcut_mini.cli import main
from shortcut_mini.levels import flow_level
from shortcut_mini.method_settings import MethodSettings, SettingError, ShortcutSettings
from shortcut_mini.objectives import OBJECTIVES, Objective
from shortcut_mini.objectives.base import (
    TrainingTargets,
    drop_labels,
    interpolate,
    noise_like,
    regression_loss,
)
from shortcut_mini.train.components import build_components

# ---- the reader's objective file -------------------------------------------------------------


@dataclass(frozen=True)
class PowerFlowSettings(MethodSettings):
    """PowerFlow's settings.

    Attributes:
        t_power: times are drawn as ``t = u ** t_power``, ``u ~ U(0, 1)`` (1: uniform; below 1,
            more of them near the data end).
    """

    method: ClassVar[str] = "power_flow"

    t_power: float = 1.0

    def check(self) -> None:
        if not (math.isfinite(self.t_power) and self.t_power > 0):
            raise SettingError("t_power", f"must be a positive number, got {self.t_power!r}")


class PowerFlow(Objective):
    """Flow matching (paper Eq. 2) with ``t = u ** t_power``; sampled with flow-matching steps."""

    name = "power_flow"
    sampler = "flow"
    settings = PowerFlowSettings

    def __init__(self, M: int = 128, class_dropout=0.0, num_classes=0, t_power: float = 1.0):
        self.M, self.t_power = M, t_power
        self.class_dropout, self.num_classes = class_dropout, num_classes

    def loss(self, model, x1, y, *, generator, **_):
        n = x1.shape[0]
        x0 = noise_like(x1, generator)
        t = torch.rand(n, generator=generator, device=x1.device) ** self.t_power
        targets = TrainingTargets(
            x_t=interpolate(x0, x1, t),
            t=t,
            level=torch.full((n,), flow_level(self.M), device=x1.device, dtype=torch.long),
            y=drop_labels(y, self.class_dropout, self.num_classes, generator),
            target=x1 - x0,
            group=torch.full((n,), -1, device=x1.device, dtype=torch.long),
            groups=(-1,),
        )
        return regression_loss(model, targets)


# ---- the tests ---------------------------------------------------------------------------------


@pytest.fixture
def registered():
    """Register PowerFlow (the one call) for one test, and take it out after."""
    assert "power_flow" not in OBJECTIVES
    register_objective(PowerFlow)
    yield PowerFlow
    OBJECTIVES.pop("power_flow")


def _same_weights(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_a_registered_objective_trains_resumes_samples_and_evaluates(
    registered, tmp_path, monkeypatch
):
    def config(**kw):
        return make_tiny_config(method="power_flow", method_args={"t_power": 0.5}, **kw)

    cfg = config(steps=300, log_every=50, out_dir=str(tmp_path / "long"))
    assert cfg.method_args == {"t_power": 0.5} and cfg.level_embedding == "learned"
    dinfo = {"name": "checkerboard", "kind": "points", "shape": [2], "num_classes": 0}
    assert build_components(cfg, dinfo, torch.device("cpu"), "fp32").objective.t_power == 0.5
    long = train(cfg)
    losses = [r["loss"] for r in long.history]
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]  # it learns

    straight = train(config(out_dir=str(tmp_path / "straight")))
    interrupt_at_batch(monkeypatch, 13)
    with pytest.raises(TrainingInterrupted, match=r"last checkpoint \(step 10\)"):
        train(config(out_dir=str(tmp_path / "resumed")))
    monkeypatch.undo()
    resumed = train(config(out_dir=str(tmp_path / "resumed")))
    assert resumed.step == 20
    assert _same_weights(straight.model, resumed.model) and _same_weights(straight.ema, resumed.ema)

    loaded = load_run(tmp_path / "long")
    assert loaded.config.method == "power_flow" and loaded.config.method_args == {"t_power": 0.5}
    for budget in (1, 4, 128):
        x = sample(loaded, 32, budget, seed=1)
        assert x.shape == (32, 2) and torch.isfinite(x).all()
        assert torch.equal(x, sample(loaded, 32, budget, seed=1))
    table = evaluate(loaded, steps=(1, 128), n=512, progress=False)
    untrained = evaluate(load_run(tmp_path / "straight"), steps=(128,), n=512, progress=False)
    assert math.isfinite(table[1]["distance"])
    assert table[128]["distance"] < untrained[128]["distance"]  # 300 steps beat 20


def test_a_registered_objective_works_from_the_command_line(registered, tmp_path, capsys):
    run = tmp_path / "run"
    flags = ["--data", "checkerboard", "--model", "mlp-small", "--batch-size", "32"]
    flags += ["--n-data", "2000", "--device", "cpu", "--no-progress", "--out-dir", str(run)]
    train_args = ["train", "--method", "power_flow", "--method-arg", "t_power=0.5", *flags]
    assert main([*train_args, "--steps", "10", "--ckpt-every", "5"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["step"] == 10
    assert main([*train_args, "--steps", "20"]) == 0  # resumes the run in --out-dir
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["step"] == 20
    assert load_run(run).config.method_args == {"t_power": 0.5}

    assert (
        main(["sample", str(run), "--n", "16", "--steps", "4", "--out", str(tmp_path / "x.pt")])
        == 0
    )
    x = torch.load(tmp_path / "x.pt", weights_only=True)
    assert x.shape == (16, 2) and torch.isfinite(x).all()
    out = tmp_path / "eval"
    argv = ["evaluate", str(run), "--steps", "1", "4", "--n", "256", "--out", str(out)]
    assert main([*argv, "--no-progress", "--device", "cpu"]) == 0
    rows = json.loads((out / "table.json").read_text())["rows"]
    assert [r["steps"] for r in rows] == [1, 4] and all(math.isfinite(r["distance"]) for r in rows)

    capsys.readouterr()
    assert main(["names"]) == 0 and "  power_flow" in capsys.readouterr().out
    bad = ["train", "--method", "power_flow", "--method-arg", "t_power=-1", *flags, "--steps", "2"]
    assert main(bad) == 2
    assert "TrainConfig.method_args.t_power: must be a positive number" in capsys.readouterr().err


def test_its_settings_are_checked_like_a_built_ins(registered):
    with pytest.raises(ConfigError, match=r"method_args\.t_power: 'x' is not a number"):
        make_tiny_config(method="power_flow", method_args={"t_power": "x"})
    with pytest.raises(ConfigError, match=r"method 'power_flow' has no setting 'power'; its"):
        make_tiny_config(method="power_flow", method_args={"power": 0.5})
    with pytest.raises(ConfigError, match=r"of method 'meanflow', not of 'power_flow'; valid"):
        make_tiny_config(method="power_flow", method_args={"meanflow_ratio": 0.5})
    with pytest.raises(ConfigError, match=r"t_power is a setting of method 'power_flow'"):
        make_tiny_config(method="power_flow", t_power=0.5)
    assert make_tiny_config(method="shortcut").method_args == ShortcutSettings().to_dict()


def test_what_the_method_cannot_train_is_a_config_error(registered, monkeypatch):
    def config_problems(cls, cfg):
        return {"M": f"power_flow needs M >= 16, got {cfg.M}"} if cfg.M < 16 else {}

    monkeypatch.setattr(PowerFlow, "config_problems", classmethod(config_problems))
    with pytest.raises(ConfigError, match=r"\bM: power_flow needs M >= 16, got 8"):
        make_tiny_config(method="power_flow", M=8)
    assert make_tiny_config(method="power_flow", M=16).M == 16
    assert make_tiny_config(method="flow_matching", M=8).M == 8  # its own, no other method's


def test_registration_refuses_what_would_fail_later(registered):
    class Nameless(PowerFlow):
        name = "not a name"

    class Taken(PowerFlow):
        name = "shortcut"

    class Deaf(PowerFlow):  # its settings are no keywords of its constructor
        name = "deaf_flow"

        def __init__(self, M: int = 128):
            super().__init__(M)

    with pytest.raises(TypeError, match="identifier"):
        register_objective(Nameless)
    with pytest.raises(ValueError, match="already registered"):
        register_objective(Taken)
    with pytest.raises(TypeError, match=r"\['t_power'\].*not keywords of its constructor"):
        register_objective(Deaf)
    with pytest.raises(TypeError, match="Objective subclass"):
        register_objective(dict)
    # nothing half-registered, nothing replaced
    assert "deaf_flow" not in OBJECTIVES and "not a name" not in OBJECTIVES
    assert OBJECTIVES["shortcut"].__name__ == "Shortcut"
