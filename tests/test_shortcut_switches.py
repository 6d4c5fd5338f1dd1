"""The shortcut objective's switches beyond the paper (``ShortcutSettings``): minibatch OT
pairing, SplitMeanFlow's split with continuous jumps, iSM's twin EMA. Each is checked on hand
cases against its math; with every switch off the loss is the paper's, bit for bit."""

from __future__ import annotations

import importlib
import itertools
import math

import pytest
import torch
from conftest import make_tiny_config
from torch import nn

from shortcut_mini import ConfigError, UserError, train
from shortcut_mini.ablation import run_ablation
from shortcut_mini.method_settings import SettingError, ShortcutSettings
from shortcut_mini.models import MLPVelocity
from shortcut_mini.objectives import Shortcut, allocate_levels, self_consistency_target
from shortcut_mini.objectives.base import interpolate, regression_loss
from shortcut_mini.objectives.lifecycle import ObjectiveContext
from shortcut_mini.objectives.ot_pairing import ot_pair_noise, ot_permutation, pairing_cost
from shortcut_mini.objectives.shortcut import rows_of_level, split_target
from shortcut_mini.run_store import load_checkpoint
from shortcut_mini.train.ema import EMA, ema_decay_at

# ---- minibatch optimal-transport pairing -------------------------------------------------


def _brute_force(x0: torch.Tensor, x1: torch.Tensor) -> tuple[float, tuple[int, ...]]:
    cost = pairing_cost(x0, x1)
    n = x1.shape[0]
    return min(
        (float(sum(cost[i, p[i]] for i in range(n))), p) for p in itertools.permutations(range(n))
    )


@pytest.mark.parametrize("n", [2, 3, 4, 5, 6])
@pytest.mark.parametrize("dim", [1, 2, 5])
def test_ot_permutation_is_the_cost_minimising_permutation(n, dim):
    g = torch.Generator().manual_seed(10 * n + dim)
    for _ in range(3):
        x0, x1 = torch.randn(n, dim, generator=g), 2 * torch.randn(n, dim, generator=g) + 1
        perm = ot_permutation(x0, x1)
        best_cost, best = _brute_force(x0, x1)
        assert tuple(perm.tolist()) == best  # continuous draws: the minimiser is unique
        paired = ((x0[perm].double() - x1.double()) ** 2).sum().item()
        assert paired == pytest.approx(best_cost, rel=1e-12)
        identity = ((x0.double() - x1.double()) ** 2).sum().item()
        assert paired <= identity + 1e-12


def test_ot_pairing_reorders_the_noise_and_leaves_both_marginal_sets_unchanged():
    n = 6
    x1 = torch.randn(n, 3, generator=torch.Generator().manual_seed(0)) + 3.0
    x0 = torch.randn(n, 3, generator=torch.Generator().manual_seed(1))
    # through the objective: every row a flow row, whose target x1 - x0 names its pair
    obj = Shortcut(M=8, bootstrap_fraction=0.0, ot_pairing=True)
    tg = obj.make_targets(
        x1, None, generator=torch.Generator().manual_seed(2), target_model=None, x0=x0
    )
    used_x0 = x1 - tg.target
    assert torch.allclose(_sorted_rows(used_x0), _sorted_rows(x0), atol=1e-6)  # same noise set
    t = tg.t[:, None]
    assert torch.allclose(tg.x_t, (1 - t) * used_x0 + t * x1, atol=1e-6)  # data rows in place
    best_cost, best = _brute_force(x0, x1)
    assert torch.allclose(used_x0, x0[list(best)], atol=1e-6)
    off = Shortcut(M=8, bootstrap_fraction=0.0)
    tg_off = off.make_targets(
        x1, None, generator=torch.Generator().manual_seed(2), target_model=None, x0=x0
    )
    assert torch.equal(tg_off.target, x1 - x0)  # off: the pairs as drawn


def _sorted_rows(x: torch.Tensor) -> torch.Tensor:
    return torch.stack(sorted(x.unbind(0), key=lambda r: r.tolist()))


def test_ot_pairing_pairs_within_each_class():
    g = torch.Generator().manual_seed(3)
    y = torch.tensor([0, 1, 0, 2, 1, 0, 1, 0])
    x1 = torch.randn(8, 2, generator=g) * 3
    x0 = torch.randn(8, 2, generator=g)
    paired = ot_pair_noise(x0, x1, y)
    for label in (0, 1, 2):
        rows = (y == label).nonzero(as_tuple=True)[0]
        # each class keeps its own noise draws, optimally paired among its rows
        assert torch.equal(_sorted_rows(paired[rows]), _sorted_rows(x0[rows]))
        _, best = _brute_force(x0[rows], x1[rows])
        assert torch.equal(paired[rows], x0[rows][list(best)])
    unlabelled = ot_pair_noise(x0, x1)
    assert not torch.equal(unlabelled, paired)  # across classes the optimum differs here


# ---- SplitMeanFlow's split -------------------------------------------------------------


class Linear(nn.Module):
    """u(x, t, d) = 2 x + t + d, a field known in closed form (d as a number)."""

    M, num_classes = 8, 0

    def forward(self, x, t, d, y=None):
        return 2 * x + (t + d.float()).view(-1, *([1] * (x.dim() - 1)))


class ExpFlow(nn.Module):
    """The exact average velocity of dx/dt = x: u(x, t, d) = x (e^d - 1) / d."""

    M, num_classes = 8, 0

    def forward(self, x, t, d, y=None):
        d = d.double().view(-1, *([1] * (x.dim() - 1)))
        return (x * torch.expm1(d) / d).to(x.dtype)


def test_split_target_equals_the_hand_value_on_a_linear_field():
    # u1 = 2 + 0.25 + 0.125 = 2.375;  x' = 1 + 0.125 * 2.375 = 1.296875;
    # u2 = 2 * 1.296875 + 0.375 + 0.375 = 3.34375;  (0.125 u1 + 0.375 u2) / 0.5 = 3.1015625
    one = torch.ones(1)
    target = split_target(
        Linear(), torch.ones(1, 1), 0.25 * one, 0.5 * one, 0.125 * one, None, clip=None
    )
    assert target.item() == 3.1015625


def test_split_target_of_an_exact_average_velocity_is_itself_at_every_split():
    x = torch.randn(5, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 0.5
    d = torch.tensor([1.0, 0.5, 0.3, 0.125, 0.01], dtype=torch.float64)
    t = torch.zeros(5, dtype=torch.float64)
    for lam in (0.05, 0.25, 0.5, 0.7, 0.99):
        target = split_target(ExpFlow(), x, t, d, lam * d, None, clip=None)
        assert torch.allclose(target, ExpFlow()(x, t, d), rtol=1e-12, atol=1e-12)


def test_split_target_at_the_midpoint_is_the_papers_target():
    torch.manual_seed(0)
    model = MLPVelocity(dim=2, width=32, depth=2, M=8, level_embedding="sin_d")
    x = torch.randn(6, 2)
    level = torch.tensor([0, 1, 2, 0, 1, 2])  # trained jumps 2^-l from two halves
    t = torch.tensor([0.0, 0.5, 0.25, 0.0, 0.0, 0.75])
    d = torch.exp2(-level.float())
    paper = self_consistency_target(model, x, t, level, None, clip=4.0)
    split = split_target(model, x, t, d, d / 2, None, clip=4.0, min_step=1 / 8)
    assert torch.equal(split, paper)
    off_centre = split_target(model, x, t, d, d / 4, None, clip=4.0, min_step=1 / 8)
    assert not torch.allclose(off_centre, paper)  # a real network is not exact: splits differ


def test_continuous_jumps_stay_in_their_levels_octave_and_inside_the_unit_interval():
    for split_point in ("midpoint", "uniform"):
        obj = Shortcut(M=16, jump_sizes="continuous", split_point=split_point)
        level = allocate_levels(400, obj.n_trained_levels, 0)
        d, t, a = obj.continuous_jumps(level, torch.Generator().manual_seed(0))
        assert (d > torch.exp2(-(level.float() + 1))).all() and (
            d <= torch.exp2(-level.float())
        ).all()
        assert (t >= 0).all() and (t + d <= 1 + 1e-6).all()
        assert (a > 0).all() and (a < d).all()
        if split_point == "midpoint":
            assert torch.equal(a, d / 2)
        else:  # lambda = a / d uniform in (0, 1): its mean and spread
            lam = a / d
            assert abs(lam.mean().item() - 0.5) < 0.05 and lam.min() < 0.05 and lam.max() > 0.95


def test_continuous_jumps_feed_every_row_its_step_size_as_a_number():
    torch.manual_seed(0)
    model = MLPVelocity(dim=2, width=32, depth=2, M=8, level_embedding="sin_d")
    obj = Shortcut(M=8, bootstrap_fraction=0.5, jump_sizes="continuous", split_point="uniform")
    x1 = torch.randn(32, 2)
    tg = obj.make_targets(x1, None, generator=torch.Generator().manual_seed(1), target_model=model)
    assert tg.level.is_floating_point()
    sc = tg.group >= 0
    assert torch.equal(tg.level[~sc], torch.full(((~sc).sum(),), 1 / 8))  # flow rows: d = 1/M
    assert ((tg.level[sc] > 1 / 8) & (tg.level[sc] <= 1)).all()
    out = obj.loss(model, x1, None, generator=torch.Generator().manual_seed(1))
    assert math.isfinite(out.loss.item()) and {"loss_flow", "loss_l0"} <= set(out.diagnostics)


def test_a_split_that_cannot_work_is_refused_with_the_fix():
    with pytest.raises(SettingError, match="jump_sizes='continuous'"):
        ShortcutSettings(split_point="uniform").check()
    with pytest.raises(ConfigError, match=r"method_args\.split_point.*jump_sizes='continuous'"):
        make_tiny_config(method_args={"split_point": "uniform"})
    with pytest.raises(ConfigError, match=r"method_args\.jump_sizes: must be one of"):
        make_tiny_config(method_args={"jump_sizes": "random"})
    # continuous jumps with an embedding of the powers of two only: refused before training
    cfg = make_tiny_config(method_args={"jump_sizes": "continuous"}, level_embedding="learned")
    with pytest.raises(UserError, match=r"level_embedding='sin_d'"):
        train(cfg)
    run = train(cfg.replace(level_embedding="sin_d", steps=2))  # the fix it names trains
    assert run.step == 2


# ---- iSM's twin EMA ------------------------------------------------------------------


def _params(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_twin_ema_averages_update_at_their_stated_rates():
    torch.manual_seed(0)
    model = MLPVelocity(dim=2, width=16, depth=1, M=8)
    ema = EMA(model, decay=0.999, warmup=True)  # the trainer's EMA: samples
    obj = Shortcut(M=8, bootstrap_fraction=0.5, target_ema_decay=0.95)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    x1 = torch.randn(16, 2)
    fast = slow = _params(model)
    for step in range(12):
        online = _params(model)  # the weights after step - 1
        gen = torch.Generator().manual_seed(step)
        out = obj.loss(model, x1, None, generator=gen, step=step, ema_model=ema.model)
        if step > 0:  # (at step 0 the average is the initial weights themselves)
            fast = 0.95 * fast + 0.05 * online
        assert torch.allclose(_params(obj.target_ema), fast, atol=1e-6)
        # the targets of this step come from the fast average, not the online weights
        again = obj.make_targets(
            x1,
            None,
            generator=torch.Generator().manual_seed(step),
            step=step,
            target_model=obj.target_ema,
        )
        assert torch.equal(out.targets.target, again.target)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        beta = ema.update(model, step)
        assert beta == ema_decay_at(step, 0.999, True)
        slow = beta * slow + (1 - beta) * _params(model)
        assert torch.allclose(_params(ema.model), slow, atol=1e-6)
    assert obj.loss(model, x1, None, generator=gen, step=11).loss.isfinite()  # same step: no update
    assert torch.allclose(_params(obj.target_ema), fast, atol=1e-6)


def test_twin_ema_targets_run_through_the_runs_compile_and_follow_the_updates():
    # the trainer hands setup() its compile; the twin EMA's target pass goes through it, and
    # since the compiled module shares the average's parameters, the in-place updates reach it
    torch.manual_seed(0)
    model = MLPVelocity(dim=2, width=16, depth=1, M=8)
    compiled = []

    def compile_eagerly(module):  # torch.compile's tracing, without inductor's kernels
        compiled.append(module)
        return torch.compile(module, backend="eager", dynamic=False)

    context = ObjectiveContext(None, "cpu", model, model, None, {}, 6, compile=compile_eagerly)
    plain = Shortcut(M=8, bootstrap_fraction=0.5, target_ema_decay=0.95)
    traced = Shortcut(M=8, bootstrap_fraction=0.5, target_ema_decay=0.95)
    traced.setup(context)
    assert compiled == [traced.target_ema]
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x1 = torch.randn(16, 2)
    for step in range(6):
        a = plain.loss(model, x1, None, generator=torch.Generator().manual_seed(step), step=step)
        b = traced.loss(model, x1, None, generator=torch.Generator().manual_seed(step), step=step)
        assert torch.allclose(a.targets.target, b.targets.target, atol=1e-6), step
        opt.zero_grad()
        a.loss.backward()
        opt.step()
    assert not torch.equal(_params(traced.target_ema), _params(model))  # an average, not a copy


def test_the_trainer_compiles_the_twin_ema_as_it_compiles_the_network(tmp_path, monkeypatch):
    trainer = importlib.import_module("shortcut_mini.train.trainer")  # not train(), its module
    seen = []
    monkeypatch.setattr(
        trainer, "compile_for_training", lambda module, mode, **_: seen.append(mode) or module
    )
    args = dict(method_args={"target_ema_decay": 0.95}, bootstrap_fraction=0.5, steps=2)
    train(make_tiny_config(**args, compile=True, out_dir=str(tmp_path / "on")))
    assert len(seen) == 2 and len(set(seen)) == 1  # the network, then the twin EMA: one mode
    seen.clear()
    train(make_tiny_config(**args, compile=False, out_dir=str(tmp_path / "off")))
    assert seen == []


def test_twin_ema_refuses_ema_target_weights_and_a_bad_decay():
    with pytest.raises(SettingError, match="leave target_weights at 'online'"):
        Shortcut(target_weights="ema", target_ema_decay=0.95)
    with pytest.raises(ConfigError, match=r"target_ema_decay: must be in \[0, 1\)"):
        make_tiny_config(method_args={"target_ema_decay": 1.5})


def test_twin_ema_state_is_checkpointed_and_a_resumed_run_is_exact(tmp_path):
    args = dict(method_args={"target_ema_decay": 0.95}, bootstrap_fraction=0.5)
    straight = train(make_tiny_config(**args, out_dir=str(tmp_path / "a")))
    train(make_tiny_config(**args, steps=10, out_dir=str(tmp_path / "b")))
    assert "target_ema" in load_checkpoint(tmp_path / "b")["objective"]
    resumed = train(make_tiny_config(**args, out_dir=str(tmp_path / "b")))
    for a, b in zip(straight.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)
    sa = load_checkpoint(tmp_path / "a")["objective"]
    sb = load_checkpoint(tmp_path / "b")["objective"]
    assert sa["target_ema_step"] == sb["target_ema_step"] == 19
    for k in sa["target_ema"]:
        assert torch.equal(sa["target_ema"][k], sb["target_ema"][k])
    off = train(make_tiny_config(bootstrap_fraction=0.5, steps=2, out_dir=str(tmp_path / "c")))
    assert off.step == 2 and "objective" not in load_checkpoint(tmp_path / "c")  # off: none


# ---- every switch off: the paper's loss, bit for bit ----------------------------------


def _papers_loss(model, x1, step, seed, M=8, k=0.5):
    """Eq. 5 assembled from the package's primitives in the order of draws the objective has
    always used: noise, the flow rows (times), then the self-consistency rows' starts."""
    obj = Shortcut(M=M, bootstrap_fraction=k)
    gen = torch.Generator().manual_seed(seed)
    n = obj.num_self_consistency_rows(x1.shape[0])
    x0 = torch.randn(x1.shape, generator=gen)
    flow = obj.flow.flow_rows(x1[n:], x0[n:], None, gen)
    level = allocate_levels(n, obj.n_trained_levels, step)
    starts = torch.exp2(level.float())
    t = torch.floor(torch.rand(n, generator=gen) * starts) / starts
    x_t = interpolate(x0[:n], x1[:n], t)
    target = self_consistency_target(model, x_t, t, level, None, clip=4.0)
    targets = flow
    targets.x_t = torch.cat([x_t, flow.x_t])
    targets.t = torch.cat([t, flow.t])
    targets.level = torch.cat([level, flow.level])
    targets.target = torch.cat([target, flow.target])
    targets.group = torch.cat([level, flow.group])
    targets.groups = None
    return regression_loss(model, targets).loss


def test_with_every_switch_off_the_loss_is_the_papers_exactly():
    torch.manual_seed(0)
    model = MLPVelocity(dim=2, width=32, depth=2, M=8)
    x1 = torch.randn(24, 2)
    explicit_off = dict(
        ot_pairing=False, jump_sizes="dyadic", split_point="midpoint", target_ema_decay=None
    )
    for step in range(4):
        expected = _papers_loss(model, x1, step, seed=100 + step)
        for kw in ({}, explicit_off):
            obj = Shortcut(M=8, bootstrap_fraction=0.5, **kw)
            got = obj.loss(
                model, x1, None, generator=torch.Generator().manual_seed(100 + step), step=step
            )
            assert torch.equal(got.loss, expected)
    assert rows_of_level(4, 3, 0, 2).tolist() == [2]  # (the guided rows' helper is unchanged)


# ---- each switch trains the 2D toy ------------------------------------------------------

SWITCHES = {
    "plain": {},
    "OT pairing": {"method_args": {"ot_pairing": True}},
    "continuous jumps": {"level_embedding": "sin_d", "method_args": {"jump_sizes": "continuous"}},
    "SplitMeanFlow split": {
        "level_embedding": "sin_d",
        "method_args": {"jump_sizes": "continuous", "split_point": "uniform"},
    },
    "twin EMA": {"method_args": {"target_ema_decay": 0.95}},
}


@pytest.mark.slow
def test_training_the_2d_toy_with_each_switch_reduces_the_distance():
    base = make_tiny_config(batch_size=64, log_every=0, ckpt_every=0)
    kw = dict(seeds=(0,), steps=(1, 128), n_eval=1024, n_directions=128)
    before = run_ablation(base.replace(steps=1), {"switch": SWITCHES}, **kw)
    after = run_ablation(base.replace(steps=300), {"switch": SWITCHES}, **kw)
    for name in SWITCHES:
        for budget in (1, 128):
            untrained, trained = (
                before.mean("switch", name, budget),
                after.mean("switch", name, budget),
            )
            assert trained < 0.75 * untrained, (name, budget, untrained, trained)
