"""The math of the objectives against hand-computed cases (the book's design notes)."""

import pytest
import torch
from torch import nn

from shortcut_mini.objectives import (
    FlowMatching,
    Shortcut,
    allocate_levels,
    build_objective,
    regression_loss,
    self_consistency_target,
)


class ClosedForm(nn.Module):
    """A velocity field known in closed form: v(x, t, l) = -x (1 + t) + 0.1 l."""

    M, num_classes = 128, 0

    def forward(self, x, t, level, y=None):
        shape = (-1,) + (1,) * (x.dim() - 1)
        return -x * (1 + t.view(shape)) + 0.1 * level.view(shape).float()


def test_self_consistency_target_equals_two_half_steps():
    model = ClosedForm()
    x = torch.randn(6, 2)
    level = torch.tensor([0, 1, 2, 3, 4, 6])
    t = torch.tensor([0.0, 0.5, 0.25, 0.125, 0.0625, 0.5])
    target = self_consistency_target(model, x, t, level, None, clip=None)
    # two Euler steps of d = 2**-(l+1) by hand
    d = 2.0 ** -(level.float() + 1)
    v1 = -x * (1 + t)[:, None] + 0.1 * (level + 1).float()[:, None]
    x_mid = x + d[:, None] * v1
    v2 = -x_mid * (1 + t + d)[:, None] + 0.1 * (level + 1).float()[:, None]
    x_end = x_mid + d[:, None] * v2
    # one jump of 2d with the target lands where the two steps land
    assert torch.allclose(x + 2 * d[:, None] * target, x_end, atol=1e-6)


def test_self_consistency_target_is_clipped():
    class Huge(nn.Module):
        M, num_classes = 8, 0

        def forward(self, x, t, level, y=None):
            return torch.full_like(x, 100.0)

    target = self_consistency_target(
        Huge(), torch.zeros(3, 2), torch.zeros(3), torch.zeros(3, dtype=torch.long), None, clip=4.0
    )
    assert torch.all(target == 4.0)


def test_allocation_covers_every_level_each_batch():
    for n_rows in (7, 8, 16, 64):
        for step in range(5):
            levels = allocate_levels(n_rows, 7, step)
            counts = torch.bincount(levels, minlength=7)
            assert (counts >= 1).all() and counts.max() - counts.min() <= 1


@pytest.mark.parametrize("batch", [8, 12, 16, 24])
def test_allocation_covers_every_level_over_consecutive_small_batches(batch):
    obj = Shortcut(M=128, bootstrap_fraction=0.25)
    n = obj.num_self_consistency_rows(batch)
    assert n >= 1
    batches_needed = -(-7 // n)
    seen = torch.cat([allocate_levels(n, 7, s) for s in range(batches_needed)])
    assert set(seen.tolist()) == set(range(7))


def _targets(obj, B=32, step=0, y=None):
    x1 = torch.arange(B, dtype=torch.float32)[:, None].repeat(1, 2) + 10.0  # distinct rows
    x0 = torch.randn(B, 2, generator=torch.Generator().manual_seed(1))
    gen = torch.Generator().manual_seed(0)
    kw = {"target_model": ClosedForm()} if isinstance(obj, Shortcut) else {}
    return x1, x0, obj.make_targets(x1, y, generator=gen, step=step, x0=x0, **kw)


def test_every_example_used_exactly_once():
    obj = Shortcut(M=128, bootstrap_fraction=0.25)
    x1, x0, tg = _targets(obj)
    n = obj.num_self_consistency_rows(32)
    assert n == 8 and tg.x_t.shape[0] == 32
    # each row's x_t is the interpolation of its own (x0, x1) pair: recover x1 row by row
    t = tg.t[:, None]
    assert torch.allclose(tg.x_t, (1 - t) * x0 + t * x1, atol=1e-5)
    assert torch.allclose(tg.target[n:], x1[n:] - x0[n:])


def test_flow_rows_get_the_d0_token_and_grid_times():
    obj = Shortcut(M=128)
    _, _, tg = _targets(obj, B=64)
    flow = tg.group < 0
    assert (tg.level[flow] == 7).all()
    assert torch.allclose(tg.t[flow] * 128, (tg.t[flow] * 128).round())
    assert (tg.t[flow] < 1).all()
    _, _, fm = _targets(FlowMatching(M=128), B=64)
    assert (fm.level == 7).all() and (fm.group < 0).all()


def test_uniform_time_option():
    _, _, fm = _targets(FlowMatching(M=128, t_sampling="uniform"), B=256)
    assert not torch.allclose(fm.t * 128, (fm.t * 128).round())


def test_self_consistency_jumps_stay_inside_unit_interval():
    obj = Shortcut(M=128, bootstrap_fraction=0.5)
    for step in range(20):
        _, _, tg = _targets(obj, B=64, step=step)
        sc = tg.group >= 0
        d2 = 2.0 ** -tg.level[sc].float()  # the trained jump 2d
        assert (tg.level[sc] <= 6).all()
        assert (tg.t[sc] >= 0).all() and (tg.t[sc] + d2 <= 1 + 1e-7).all()
        assert torch.allclose(tg.t[sc] / d2, (tg.t[sc] / d2).round())  # on the jump's grid


def test_class_dropout_on_flow_rows_only():
    obj = Shortcut(M=8, bootstrap_fraction=0.5, class_dropout=0.5, num_classes=3)
    y = torch.zeros(64, dtype=torch.long)
    _, _, tg = _targets(obj, B=64, y=y)
    sc = tg.group >= 0
    assert (tg.y[sc] == 0).all()
    assert (tg.y[~sc] == 3).any() and (tg.y[~sc] == 0).any()


def test_guided_targets_at_smallest_level():
    class Cond(nn.Module):
        M, num_classes = 8, 2

        def forward(self, x, t, level, y=None):
            return torch.where(y[:, None] == 2, 0.0, 1.0).expand_as(x).clone()  # v_u=0, v_c=1

    x = torch.zeros(4, 2)
    level = torch.tensor([2, 2, 0, 0])  # 2 = smallest trained level for M=8
    y = torch.zeros(4, dtype=torch.long)
    tgt = self_consistency_target(
        Cond(), x, torch.zeros(4), level, y, clip=None, guidance_scale=3.0, guided_rows=level == 2
    )
    assert torch.allclose(tgt[:2], torch.full((2, 2), 3.0))
    assert torch.allclose(tgt[2:], torch.ones(2, 2))


def test_loss_diagnostics_per_level():
    obj = Shortcut(M=8, bootstrap_fraction=0.5)
    model = ClosedForm()
    model.M = 8
    x1 = torch.randn(32, 2)
    out = obj.loss(model, x1, None, generator=torch.Generator().manual_seed(0))
    assert {"loss", "loss_flow", "loss_l0", "loss_l1", "loss_l2"} <= set(out.diagnostics)
    manual = regression_loss(model, out.targets)
    assert torch.allclose(out.loss, manual.loss)


def test_ema_targets_need_ema_model_and_objective_names():
    obj = build_objective("shortcut", M=8, target_weights="ema")
    with pytest.raises(ValueError, match="ema_model"):
        obj.loss(ClosedForm(), torch.randn(8, 2), None, generator=torch.Generator())
    with pytest.raises(ValueError, match="unknown method"):
        build_objective("no_such_method")
    with pytest.raises(ValueError, match="target_weights"):
        Shortcut(target_weights="average")
