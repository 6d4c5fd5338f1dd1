"""The speed work: diagnostics and guided rows without host synchronisation, static batches in
sampling, and the switches of ``shortcut_mini.speed``; each equal to what it replaces."""

import pytest
import torch
from torch import nn

from shortcut_mini import TrainConfig, sample
from shortcut_mini.models import build_model
from shortcut_mini.objectives import FlowMatching, Shortcut, regression_loss
from shortcut_mini.objectives.base import group_diagnostics
from shortcut_mini.objectives.shortcut import (
    allocate_levels,
    allocated_levels,
    rows_of_level,
    self_consistency_target,
)
from shortcut_mini.sampling import euler_sample, sample_in_batches
from shortcut_mini.speed import check_compile_mode, sampling_dtype, uses_cudagraphs
from shortcut_mini.train.trainer import Run


class Linear(nn.Module):
    M, num_classes = 8, 0

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(0.5))

    def forward(self, x, t, level, y=None):
        return self.w * x + t[:, None] + level[:, None].float() / 10


def test_group_diagnostics_by_hand():
    per_row = torch.tensor([1.0, 2.0, 3.0, 5.0, 7.0])
    group = torch.tensor([-1, 0, 0, 2, -1])
    out = group_diagnostics(per_row, group, (-1, 0, 2))
    assert list(out) == ["loss_flow", "loss_l0", "loss_l2"]  # level 1 absent: not reported
    assert [float(v) for v in out.values()] == [4.0, 2.5, 5.0]
    assert {k: float(v) for k, v in group_diagnostics(per_row, group).items()} == {
        k: float(v) for k, v in out.items()
    }  # the torch.unique fallback agrees


@pytest.mark.parametrize("B,k", [(2, 0.25), (3, 0.25), (8, 0.25), (32, 0.5), (64, 0.25)])
def test_objectives_declare_exactly_the_groups_present(B, k):
    gen = torch.Generator().manual_seed(0)
    for step in range(10):
        for obj in (Shortcut(M=128, bootstrap_fraction=k), FlowMatching(M=128)):
            x1 = torch.randn(B, 2)
            kw = {"target_model": Linear()} if isinstance(obj, Shortcut) else {}
            tg = obj.make_targets(x1, None, generator=gen, step=step, **kw)
            assert tuple(sorted(tg.groups)) == tuple(torch.unique(tg.group).tolist())


def test_diagnostics_equal_the_masked_means():
    obj = Shortcut(M=8, bootstrap_fraction=0.5)
    model = Linear()
    out = obj.loss(model, torch.randn(32, 2), None, generator=torch.Generator().manual_seed(0))
    tg = out.targets
    per_row = (model(tg.x_t, tg.t, tg.level) - tg.target).pow(2).mean(dim=1)
    expected = {"loss": per_row.mean()}
    for g in torch.unique(tg.group).tolist():
        expected["loss_flow" if g < 0 else f"loss_l{g}"] = per_row[tg.group == g].mean()
    assert list(out.diagnostics) == list(expected)
    for k, v in expected.items():
        assert torch.allclose(out.diagnostics[k], v.detach(), rtol=1e-6), k
    assert torch.equal(regression_loss(model, tg).loss, out.loss)


def test_rows_and_levels_known_on_the_host_match_the_allocation():
    for n, K in [(1, 7), (5, 7), (7, 7), (16, 7), (64, 3)]:
        for step in range(9):
            level = allocate_levels(n, K, step)
            assert allocated_levels(n, K, step) == tuple(torch.unique(level).tolist())
            for lv in range(K):
                assert torch.equal(rows_of_level(n, K, step, lv), (level == lv).nonzero()[:, 0])


def test_guided_rows_as_indices_equal_the_mask():
    class Cond(nn.Module):
        M, num_classes = 8, 2

        def forward(self, x, t, level, y=None):
            return torch.where(y[:, None] == 2, 0.5, 1.0) * x + level[:, None]

    x, t = torch.randn(6, 2), torch.zeros(6)
    level = torch.tensor([2, 0, 2, 1, 0, 2])
    y = torch.ones(6, dtype=torch.long)
    kw = dict(clip=None, guidance_scale=3.0)
    mask = self_consistency_target(Cond(), x, t, level, y, guided_rows=level == 2, **kw)
    idx = self_consistency_target(Cond(), x, t, level, y, guided_rows=torch.tensor([0, 2, 5]), **kw)
    none = self_consistency_target(
        Cond(), x, t, level, y, guided_rows=torch.tensor([]).long(), **kw
    )
    assert torch.equal(mask, idx)
    assert torch.equal(none, self_consistency_target(Cond(), x, t, level, y, clip=None))
    assert not torch.equal(mask, none)


def test_padded_batches_give_the_same_samples():
    torch.manual_seed(0)
    model = build_model("dit-tiny", sample_shape=(1, 8, 8)).eval()
    for p in model.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    noise = torch.randn(10, 1, 8, 8)
    whole = euler_sample(model, noise, 4).samples
    for pad in (False, True):
        got = sample_in_batches(model, noise, 4, batch_size=4, pad_batches=pad)
        assert got.shape == noise.shape and got.dtype == torch.float32
        assert torch.allclose(got, whole, atol=1e-5)


def test_sample_on_cpu_is_plain_euler_over_the_seeded_noise():
    torch.manual_seed(0)
    model = build_model("mlp-small", sample_shape=(2,)).eval()
    for p in model.parameters():
        p.data.add_(0.1 * torch.randn_like(p))
    cfg = TrainConfig(data="checkerboard", model="mlp-small", method="shortcut", progress=False)
    info = {"name": "checkerboard", "kind": "points", "shape": [2], "num_classes": 0}
    run = Run(model=model, ema=model, config=cfg, data_info=info)
    noise = torch.randn((20, 2), generator=torch.Generator().manual_seed(5))
    expected = euler_sample(model, noise, 8).samples
    assert torch.equal(sample(run, 20, 8, seed=5, batch_size=7), expected)
    assert run.compiled == {}  # nothing compiled on the CPU unless asked
    with pytest.raises(ValueError, match="precision"):
        sample(run, 4, 1, precision="half")


def test_speed_switches_and_their_errors():
    assert check_compile_mode("default") is None and check_compile_mode(None) is None
    assert uses_cudagraphs("reduce-overhead") and not uses_cudagraphs(None)
    with pytest.raises(ValueError, match="compile mode"):
        check_compile_mode("fast")
    cpu = torch.device("cpu")
    assert sampling_dtype("auto", cpu) is None and sampling_dtype("bf16", cpu) is torch.bfloat16
    with pytest.raises(ValueError, match="CUDA"):
        sampling_dtype("fp16", cpu)
