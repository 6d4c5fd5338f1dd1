"""The trainer: EMA, behaviour on a 2D toy, exact resume, checkpoints and clear errors."""

import copy
import json

import pytest
import torch

from shortcut_mini import (
    ConfigError,
    NonFiniteLossError,
    RunExistsError,
    TrainConfig,
    load_run,
    sample,
    train,
)
from shortcut_mini.common import atomic_write_json
from shortcut_mini.data import ArrayDataset, toy2d
from shortcut_mini.metrics import sliced_wasserstein
from shortcut_mini.models import build_model
from shortcut_mini.run_store import CHECKPOINT_NAME
from shortcut_mini.train import EMA, CheckpointError, load_weights


def tiny(**kw):
    base = dict(
        data="checkerboard",
        model="mlp-small",
        steps=20,
        batch_size=32,
        lr=1e-3,
        n_data=2000,
        progress=False,
        log_every=5,
        ckpt_every=10,
    )
    return TrainConfig(**{**base, **kw})


def test_ema_update_matches_formula():
    model = torch.nn.Linear(3, 2)
    ema = EMA(model, decay=0.999, warmup=True)
    old = [p.clone() for p in ema.model.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    beta = ema.update(model, step=5)
    assert beta == pytest.approx(6 / 15)  # min(0.999, (1 + 5) / (10 + 5))
    for e, o, p in zip(ema.model.parameters(), old, model.parameters()):
        assert torch.allclose(e, beta * o + (1 - beta) * p)
    assert EMA(model, 0.999).update(model, step=10**6) == 0.999


@pytest.mark.slow
def test_shortcut_beats_flow_matching_at_one_step_on_checkerboard():
    """Same budget: shortcut's 1-step samples >= 2x closer than flow matching's, and within 2x
    of its own 128-step samples (sliced Wasserstein-2, the book's design notes)."""
    ref = toy2d("checkerboard", 4096, seed=123)
    swd = {}
    for method in ("flow_matching", "shortcut"):
        run = train(
            TrainConfig(
                data="checkerboard",
                method=method,
                model="mlp-small",
                steps=1500,
                batch_size=256,
                lr=1e-3,
                n_data=20000,
                progress=False,
            )
        )
        for steps in (1, 128):
            swd[method, steps] = sliced_wasserstein(sample(run, 4096, steps, seed=1), ref)
    assert swd["shortcut", 1] * 2 <= swd["flow_matching", 1], swd
    assert swd["shortcut", 1] <= 2 * swd["shortcut", 128], swd


def test_cpu_run_repeats_exactly_and_resume_is_exact(tmp_path):
    straight = train(tiny(out_dir=str(tmp_path / "a")))
    again = train(tiny())
    for p, q in zip(straight.model.parameters(), again.model.parameters()):
        assert torch.equal(p, q)
    half = train(tiny(steps=10, out_dir=str(tmp_path / "b")))
    assert half.step == 10
    resumed = train(tiny(steps=20, out_dir=str(tmp_path / "b")))
    assert resumed.step == 20
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(straight.ema.state_dict().values(), resumed.ema.state_dict().values()):
        assert torch.equal(a, b)
    assert [h["step"] for h in resumed.history] == [5, 10, 15, 20]


def test_resume_refuses_another_config_unless_overwrite(tmp_path):
    train(tiny(steps=10, out_dir=str(tmp_path)))
    with pytest.raises(RunExistsError, match="lr: saved 0.001, now 0.002"):
        train(tiny(steps=10, lr=2e-3, out_dir=str(tmp_path)))
    run = train(tiny(steps=10, lr=2e-3, out_dir=str(tmp_path), overwrite=True))
    assert run.step == 10 and load_run(tmp_path).config.lr == 2e-3


def test_checkpoint_loads_weights_only_and_load_run(tmp_path):
    run = train(tiny(out_dir=str(tmp_path), method="shortcut"))
    state = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)
    assert state["step"] == 20 and "optimizer" in state and "rng_torch" in state
    loaded = load_run(tmp_path)
    x = sample(loaded, 16, 4, seed=3)
    assert torch.equal(x, sample(run, 16, 4, seed=3))
    assert x.dtype == torch.float32 and x.device.type == "cpu"
    assert len(loaded.history) == 4


def test_checkpoint_of_another_model_shape_is_refused(tmp_path):
    train(tiny(out_dir=str(tmp_path)))
    other = build_model("mlp", sample_shape=(2,))
    state = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)
    with pytest.raises(CheckpointError, match="different model"):
        load_weights(other, state["model"])
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_run(tmp_path / "missing")


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    train(tiny(steps=10, out_dir=str(tmp_path)))
    good = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)
    bad = ArrayDataset(
        x=torch.full((2000, 2), float("nan")),
        y=torch.zeros(2000),
        num_classes=0,
        kind="points",
        name="checkerboard",
    )
    with pytest.raises(NonFiniteLossError, match="at step 11"):
        train(tiny(steps=20, out_dir=str(tmp_path)), dataset=bad)
    kept = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)
    assert kept["step"] == 10
    for k in good["model"]:
        assert torch.equal(good["model"][k], kept["model"][k])


def test_sample_step_budget_errors():
    run = train(tiny(steps=2))
    for steps in (3, [0.5, 0.25, 0.25], 128):
        assert sample(run, 4, steps).shape == (4, 2)
    with pytest.raises(ValueError, match="steps=256 is outside"):
        sample(run, 4, 256)
    with pytest.raises(ValueError, match="not class-conditional"):
        sample(run, 4, 1, y=1)


def test_sample_trajectory_and_same_noise_across_budgets():
    run = train(tiny(steps=2))
    x, traj = sample(run, 8, 4, seed=5, return_trajectory=True)
    assert traj.shape == (5, 8, 2) and torch.equal(traj[-1], x)
    _, traj1 = sample(run, 8, 1, seed=5, return_trajectory=True)
    assert torch.equal(traj[0], traj1[0])


@pytest.mark.parametrize(
    "field,value,match",
    [
        ("data", "mnistt", "TrainConfig.data: unknown dataset 'mnistt'"),
        ("method", "ddim", "TrainConfig.method: unknown method 'ddim'"),
        ("model", "dit-huge", "TrainConfig.model: unknown model"),
        ("M", 100, "TrainConfig.M: M .* power of two"),
        ("steps", 0, "TrainConfig.steps: must be a positive integer"),
        ("target_weights", "avg", "TrainConfig.target_weights: must be one of"),
        ("device", "tpu", "TrainConfig.device"),
    ],
)
def test_config_errors_name_the_field(field, value, match):
    with pytest.raises(ConfigError, match=match):
        TrainConfig(**{field: value})


def test_config_roundtrip_and_unknown_fields(tmp_path):
    cfg = tiny(out_dir=str(tmp_path))
    assert TrainConfig.from_dict(copy.deepcopy(cfg.to_dict())) == cfg
    path = tmp_path / "c.yaml"
    path.write_text("data: moons\nsteps: 5\n")
    assert TrainConfig.from_file(path).data == "moons"
    with pytest.raises(ConfigError, match="unknown field"):
        TrainConfig.from_dict({"dataa": "moons"})


def test_class_conditional_needs_labels():
    with pytest.raises(ConfigError, match="has no labels"):
        train(tiny(class_conditional=True))


def test_dit_on_digits_trains_and_loss_falls():
    cfg = TrainConfig(
        data="digits",
        model="dit-tiny",
        method="shortcut",
        steps=60,
        batch_size=32,
        lr=1e-3,
        progress=False,
        log_every=10,
        ckpt_every=0,
        class_conditional=True,
    )
    run = train(cfg)
    assert run.history[-1]["loss"] < run.history[0]["loss"]
    x = sample(run, 4, 2, y=torch.tensor([0, 1, 2, 3]), cfg_scale=2.0)
    assert x.shape == (4, 1, 8, 8) and x.min() >= -1 and x.max() <= 1


def test_atomic_writes_leave_no_temporary_and_normal_permissions(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")  # what the umask gives a new file
    atomic_write_json(tmp_path / "a.json", {"x": 1})
    atomic_write_json(tmp_path / "a.json", {"x": 2})  # replace
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "plain.txt"]
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == plain.stat().st_mode & 0o777
