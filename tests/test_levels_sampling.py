"""Step-size levels, dyadic schedules and the Euler sampler."""

import pytest
import torch
from torch import nn

from shortcut_mini.levels import d_to_level, dyadic_schedule, flow_level, level_to_d, num_levels
from shortcut_mini.sampling import euler_sample


def test_levels_roundtrip():
    assert num_levels(128) == 8 and flow_level(128) == 7
    for level in range(8):
        assert d_to_level(level_to_d(level, 128), 128) == level
    assert d_to_level(0, 128) == 7


@pytest.mark.parametrize("M", [0, 3, 100, 1])
def test_bad_base_steps(M):
    with pytest.raises(ValueError, match="power of two"):
        num_levels(M)


def test_dyadic_schedule_powers_of_two():
    for n in (1, 2, 4, 8, 16, 32, 64, 128):
        assert dyadic_schedule(n, 128) == [1 / n] * n


def test_dyadic_schedule_other_budgets():
    assert dyadic_schedule(3, 128) == [0.5, 0.25, 0.25]
    assert dyadic_schedule(5, 128) == [0.25, 0.25, 0.25, 0.125, 0.125]
    for n in range(1, 129):
        s = dyadic_schedule(n, 128)
        assert len(s) == n and abs(sum(s) - 1) < 1e-12 and min(s) >= 1 / 128


def test_dyadic_schedule_explicit_and_errors():
    assert dyadic_schedule([0.5, 0.25, 0.25], 8) == [0.5, 0.25, 0.25]
    with pytest.raises(ValueError, match="outside what this model can do"):
        dyadic_schedule(256, 128)
    with pytest.raises(ValueError, match="outside"):
        dyadic_schedule(0, 128)
    with pytest.raises(ValueError, match="sum to 1"):
        dyadic_schedule([0.5, 0.25], 8)
    with pytest.raises(ValueError, match="power of two"):
        dyadic_schedule([0.3, 0.7], 8)
    with pytest.raises(ValueError, match="power of two"):
        dyadic_schedule([1 / 16] * 16, 8)  # finer than the model was trained for


class Recorder(nn.Module):
    """A velocity field v(x, t) = 1 that records every call."""

    def __init__(self, M=128, num_classes=0):
        super().__init__()
        self.M, self.num_classes, self.calls = M, num_classes, []
        self.w = nn.Parameter(torch.zeros(()))

    def forward(self, x, t, level, y=None):
        self.calls.append((t.clone(), level.clone(), None if y is None else y.clone()))
        return torch.ones_like(x)


@pytest.mark.parametrize("n", [1, 2, 4, 8, 128])
def test_sampler_calls_model_at_right_t_and_d(n):
    model = Recorder()
    res = euler_sample(model, torch.zeros(3, 2), n, return_trajectory=True)
    assert len(model.calls) == n
    for i, (t, level, _) in enumerate(model.calls):
        assert torch.allclose(t, torch.full((3,), i / n))
        assert (level == d_to_level(1 / n, 128)).all()
    # v = 1 everywhere, so x(1) = x(0) + 1 whatever the budget
    assert torch.allclose(res.samples, torch.ones(3, 2))
    assert len(res.trajectory) == n + 1


def test_sampler_flow_matching_uses_d0_token_and_schedule():
    model = Recorder()
    euler_sample(model, torch.zeros(2, 2), 3, use_step_size=False)
    assert [float(c[0][0]) for c in model.calls] == [0.0, 0.5, 0.75]
    assert all((c[1] == 7).all() for c in model.calls)


def test_sampler_cfg_combines_velocities():
    class Linear(nn.Module):
        M, num_classes = 8, 3

        def forward(self, x, t, level, y=None):
            return torch.where(y[:, None] == 3, 1.0, 2.0).expand_as(x)  # v_u = 1, v_c = 2

    out = euler_sample(
        Linear(), torch.zeros(4, 2), 1, y=torch.zeros(4, dtype=torch.long), cfg_scale=3.0
    ).samples
    assert torch.allclose(out, torch.full((4, 2), 1 + 3 * (2 - 1.0)))
