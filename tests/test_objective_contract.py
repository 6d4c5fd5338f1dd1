"""The objective contract, checked for every objective of the registry alike: its declarations
hold, and it trains, checkpoints, resumes exactly and samples every budget it claims."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import make_tiny_config
from test_baselines import interrupt_at_batch

from shortcut_mini import TrainingInterrupted, load_run, sample, train
from shortcut_mini.budget_runs import missing_budgets
from shortcut_mini.models.embeddings import LEVEL_EMBEDDINGS
from shortcut_mini.objectives import OBJECTIVES, Objective, level_embedding_choice
from shortcut_mini.samplers import SAMPLERS

M = 8  # progressive distillation: three stages (4, 2, 1 steps); live reflow generates with 8
BUDGETS = (1, 2, 4, 8)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    folder = tmp_path_factory.mktemp("teacher")
    train(make_tiny_config(method="flow_matching", M=M, steps=20, out_dir=str(folder)))
    return folder


def _config(method, teacher, **overrides):
    needs = {"teacher": str(teacher)} if OBJECTIVES[method].needs_teacher else {}
    return make_tiny_config(method=method, M=M, **needs, **overrides)


def _same_weights(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.mark.parametrize("method", sorted(OBJECTIVES))
def test_the_objective_declares_the_contract(method):
    cls = OBJECTIVES[method]
    assert issubclass(cls, Objective), f"{cls.__name__} does not inherit Objective"
    assert cls.name == method
    assert cls.sampler in SAMPLERS
    assert isinstance(cls.needs_teacher, bool)
    accepted, default = level_embedding_choice(method)
    assert default in accepted and set(accepted) <= set(LEVEL_EMBEDDINGS)
    assert cls.loss is not Objective.loss, f"{cls.__name__} defines no loss"
    assert isinstance(cls.weights_per_budget, bool)
    assert cls.config_problems(_config(method, "runs/teacher")) == {}  # a valid config


@pytest.mark.parametrize("method", sorted(OBJECTIVES))
def test_the_objective_trains_resumes_exactly_and_samples_its_budgets(
    method, teacher, tmp_path, monkeypatch
):
    straight = train(_config(method, teacher, out_dir=str(tmp_path / "straight")))
    assert straight.step == 20
    assert all(math.isfinite(r["loss"]) for r in straight.history)

    interrupt_at_batch(monkeypatch, 13)
    with pytest.raises(TrainingInterrupted, match=r"last checkpoint \(step 10\)"):
        train(_config(method, teacher, out_dir=str(tmp_path / "resumed")))
    monkeypatch.undo()
    resumed = train(_config(method, teacher, out_dir=str(tmp_path / "resumed")))
    assert _same_weights(straight.model, resumed.model)
    assert _same_weights(straight.ema, resumed.ema)

    loaded = load_run(tmp_path / "resumed")
    again = load_run(tmp_path / "straight")
    claimed = [b for b in BUDGETS if b not in missing_budgets(loaded, BUDGETS)]
    assert 1 in claimed, f"{method} claims no one-step budget ({missing_budgets(loaded, BUDGETS)})"
    for budget in claimed:
        x = sample(loaded, 16, budget, seed=1)
        assert x.shape == (16, 2) and torch.isfinite(x).all()
        assert torch.equal(x, sample(again, 16, budget, seed=1))
