"""The single-phase baselines and MeanFlow: their targets on hand-computed cases, their samplers;
and that every method trained without a teacher trains, resumes exactly after an interruption and
samples (the book's design notes)."""

import math

import pytest
import torch
from torch import nn

from shortcut_mini import ConfigError, TrainConfig, TrainingInterrupted, load_run, sample, train
from shortcut_mini.data import ArrayDataset
from shortcut_mini.models.embeddings import LevelEmbedder
from shortcut_mini.models.mlp import MLPVelocity
from shortcut_mini.noise_schedule import vp_alpha_sigma
from shortcut_mini.objectives import (
    OBJECTIVES,
    ConsistencyTraining,
    Diffusion,
    LiveReflow,
    MeanFlow,
    consistency_phase,
    consistency_target,
    meanflow_target,
)
from shortcut_mini.objectives.meanflow import jump_rows, sample_meanflow_times
from shortcut_mini.samplers import (
    SAMPLERS,
    consistency_sample,
    ddim_sample,
    sampler_for,
)

# every method trained without a teacher (the distilled ones: test_distillation.py)
METHODS = tuple(m for m, cls in OBJECTIVES.items() if not cls.needs_teacher)


def method_config(tiny_config, method, **kw):
    return tiny_config(method=method, **kw)  # every method brings the inputs it needs


class Linear(nn.Module):
    """``s(x, t, level) = a x + b``: a field whose outputs are easy to follow by hand."""

    M, num_classes = 128, 0

    def __init__(self, a=0.0, b=0.0):
        super().__init__()
        self.a, self.b = a, b

    def forward(self, x, t, level, y=None):
        return self.a * x + self.b


# ---- consistency training ----------------------------------------------------------------------
def test_consistency_target_at_adjacent_grid_points():
    # x0 = 1, x1 = 3, N = 4 sections, t = 1/2, so t2 = 3/4; the target model is v = 2x.
    x0, x1, t = torch.tensor([[1.0]]), torch.tensor([[3.0]]), torch.tensor([0.5])
    target = consistency_target(Linear(a=2.0), x0, x1, t, 4, None)
    # x_t2 = 0.25 + 2.25 = 2.5, v2 = 5, x1_hat = 2.5 + 0.25 * 5 = 3.75, x_t = 2, v* = 1.75 / 0.5
    assert torch.allclose(target, torch.tensor([[3.5]]))
    # a model that knows the straight path (v = x1 - x0 = 2) is its own target
    assert torch.allclose(consistency_target(Linear(b=2.0), x0, x1, t, 4, None), x1 - x0)


def test_consistency_first_phase_regresses_onto_the_data_and_the_grid_doubles():
    obj = ConsistencyTraining(M=128, total_steps=700)
    assert [obj.n_sections(s) for s in (0, 99, 100, 350, 699, 10_000)] == [1, 1, 2, 8, 64, 64]
    assert [consistency_phase(s, 7) for s in range(7)] == list(range(7))
    x1, x0 = torch.randn(5, 2), torch.randn(5, 2)
    gen = torch.Generator().manual_seed(0)
    targets = obj.make_targets(x1, None, generator=gen, step=0, target_model=Linear(a=9.0), x0=x0)
    assert torch.all(targets.t == 0) and torch.allclose(targets.target, x1 - x0)
    late = obj.make_targets(x1, None, generator=gen, step=650, target_model=Linear(), x0=x0)
    assert torch.all(late.t * 64 == torch.round(late.t * 64)) and torch.all(late.t < 1)


def test_consistency_training_refuses_to_run_without_ema_weights():
    with pytest.raises(ValueError, match="ema_model"):
        ConsistencyTraining(total_steps=10).loss(
            Linear(), torch.zeros(4, 2), None, generator=torch.Generator()
        )


def test_consistency_sampler_jumps_then_renoises():
    noise = torch.tensor([[1.0, -1.0]])
    one = consistency_sample(Linear(a=1.0), noise, 1).samples  # x + (1 - 0) * x
    assert torch.allclose(one, 2 * noise)
    gen = torch.Generator().manual_seed(3)
    two = consistency_sample(Linear(b=1.0), noise, 2, generator=gen).samples
    fresh = torch.randn(noise.shape, generator=torch.Generator().manual_seed(3))
    x_half = 0.5 * (noise + 1.0) + 0.5 * fresh  # jump to x + 1, back to t = 1/2 with fresh noise
    assert torch.allclose(two, x_half + 0.5 * 1.0)


# ---- diffusion -----------------------------------------------------------------------------------
def test_noise_schedule_matches_ddpm_at_its_ends():
    alpha, sigma = vp_alpha_sigma(torch.tensor([0.0, 1.0]))
    assert alpha[1] == 1 and sigma[1] == 0
    assert math.isclose(alpha[0].item() ** 2, math.exp(-(0.1 + 0.5 * 19.9)), rel_tol=1e-5)
    assert torch.allclose(alpha**2 + sigma**2, torch.ones(2))


def test_diffusion_targets_are_the_noise_of_a_point_on_the_ddpm_path():
    x1, x0 = torch.randn(6, 2), torch.randn(6, 2)
    gen = torch.Generator().manual_seed(0)
    targets = Diffusion(M=128).make_targets(x1, None, generator=gen, x0=x0)
    alpha, sigma = vp_alpha_sigma(targets.t)
    assert torch.equal(targets.target, x0)
    assert torch.allclose(targets.x_t, alpha[:, None] * x1 + sigma[:, None] * x0)
    assert torch.all(targets.t * 128 == torch.round(targets.t * 128)) and torch.all(targets.t < 1)
    assert torch.all(targets.level == 7)  # no step size: the flow token throughout


def test_ddim_updates_by_hand():
    x, c = torch.tensor([[1.0]]), 0.5  # the epsilon model always answers c
    log_a2 = {0.0: -(0.1 + 0.5 * 19.9), 0.5: -(0.05 + 0.5 * 19.9 * 0.25)}
    a = {t: math.exp(v / 2) for t, v in log_a2.items()} | {1.0: 1.0}
    s = {t: math.sqrt(1 - a[t] ** 2) for t in a}
    one = ddim_sample(Linear(b=c), x, 1, clip=None).samples  # x1_hat = (x - sigma c) / alpha
    assert math.isclose(one.item(), (1.0 - s[0.0] * c) / a[0.0], rel_tol=1e-5)
    assert ddim_sample(Linear(b=c), x, 1).samples.item() == 4.0  # ~76, clamped to the bound
    res = ddim_sample(Linear(b=c), x, 2, return_trajectory=True, clip=None)
    mid = a[0.5] * (1.0 - s[0.0] * c) / a[0.0] + s[0.5] * c  # t = 0 -> 1/2
    assert math.isclose(res.trajectory[1].item(), mid, rel_tol=1e-5)
    assert math.isclose(res.samples.item(), (mid - s[0.5] * c) / a[0.5], rel_tol=1e-5)


def test_ddim_with_the_exact_epsilon_of_a_point_mass_lands_on_it_at_any_budget():
    mu = torch.tensor([0.7, -1.2])

    class Exact(nn.Module):
        M, num_classes = 128, 0

        def forward(self, x, t, level, y=None):
            alpha, sigma = vp_alpha_sigma(t)
            return (x - alpha[:, None] * mu) / sigma[:, None]

    noise = torch.randn(16, 2)
    for steps in (1, 2, 8, 128):
        assert torch.allclose(
            ddim_sample(Exact(), noise, steps).samples, mu.expand(16, 2), atol=1e-4
        )


# ---- live reflow ----------------------------------------------------------------------------------
def test_live_reflow_target_is_the_generation_minus_its_noise():
    obj = LiveReflow(M=128, bootstrap_fraction=0.5)
    x1, x0 = torch.randn(8, 2), torch.randn(8, 2)
    gen = torch.Generator().manual_seed(0)
    targets = obj.make_targets(x1, None, generator=gen, target_model=Linear(a=-1.0), x0=x0)
    n = targets.extras["n_reflow"]
    assert n == 4
    x_gen = x0[:n] * (1 - 1 / 8) ** 8  # eight Euler steps of 1/8 along v = -x
    assert torch.allclose(targets.target[:n], x_gen - x0[:n], atol=1e-6)
    t = targets.t[:n, None]
    assert torch.allclose(targets.x_t[:n], (1 - t) * x0[:n] + t * x_gen, atol=1e-6)
    assert torch.all(targets.level[:n] == 0) and torch.all(targets.level[n:] == 7)
    assert torch.allclose(targets.target[n:], x1[n:] - x0[n:])  # the flow-matching rows


# ---- MeanFlow -------------------------------------------------------------------------------------
MU, SD = torch.tensor([1.0, -0.5]), torch.tensor([0.5, 2.0])


def path_std(t):
    """Per-dimension std of ``x_t`` for data N(MU, SD^2) and noise N(0, 1)."""
    return ((1 - t) ** 2 + (t * SD) ** 2).sqrt()


def marginal_velocity(x, t):
    t = t[:, None]
    return MU + (t * SD**2 - (1 - t)) / path_std(t) ** 2 * (x - t * MU)


class GaussianAverageVelocity(nn.Module):
    """The exact average velocity of the Gaussian flow: the flow keeps ``(x - t MU) / std(t)``
    fixed, so ``u(x, t, d) = MU + (std(t + d) - std(t)) / (d std(t)) (x - t MU)``."""

    M, num_classes = 128, 0

    def forward(self, x, t, d, y=None):
        t, d = t[:, None], d[:, None]
        return MU + (path_std(t + d) - path_std(t)) / (d * path_std(t)) * (x - t * MU)


def test_meanflow_target_is_the_exact_average_velocity_of_a_gaussian_flow():
    torch.manual_seed(0)
    x = torch.randn(6, 2) * 2
    t = torch.tensor([0.0, 0.1, 0.3, 0.5, 0.2, 0.7])
    d = torch.tensor([1.0, 0.5, 0.25, 0.5, 0.05, 0.3])
    model = GaussianAverageVelocity()
    target = meanflow_target(model, x, t, d, marginal_velocity(x, t), None)
    assert torch.allclose(target, model(x, t, d), atol=1e-5)
    # a wrong average velocity (the instantaneous one, held for the whole jump) is not a fixed point
    v = marginal_velocity(x, t)
    assert not torch.allclose(meanflow_target(model, x, t, d, v, None), v, atol=1e-2)


def test_meanflow_target_reduces_to_the_velocity_at_d_zero():
    torch.manual_seed(0)
    net = MLPVelocity(dim=2, width=32, depth=2, level_embedding="sin_d")
    x, v, t = torch.randn(5, 2), torch.randn(5, 2), torch.rand(5)
    assert torch.equal(meanflow_target(net, x, t, torch.zeros(5), v, None), v)


def test_meanflow_times_stay_inside_the_interval_with_the_right_share_of_jumps():
    gen = torch.Generator().manual_seed(0)
    t, d = sample_meanflow_times(20_000, 0.25, -0.4, 1.0, gen, "cpu")
    assert torch.all(t >= 0) and torch.all(d >= 0) and torch.all(t + d <= 1)
    assert torch.all(d[:5_000] > 0) and torch.all(d[5_000:] == 0)  # a fixed count, first
    counts = {(256, 0.25): 64, (256, 0.75): 192, (10, 0.5): 5, (7, 0.0): 0, (7, 1.0): 7}
    assert {case: jump_rows(*case) for case in counts} == counts


def test_meanflow_gradient_flows_and_the_step_size_is_a_number():
    torch.manual_seed(0)
    net = MLPVelocity(dim=2, width=32, depth=2, level_embedding="sin_d")
    out = MeanFlow().loss(net, torch.randn(16, 2), None, generator=torch.Generator())
    out.loss.backward()
    assert all(p.grad is not None for p in net.parameters())
    assert out.targets.level.is_floating_point() and set(out.diagnostics) >= {"loss", "loss_flow"}


# ---- the continuous step-size embedding ---------------------------------------------------------------
def test_sin_d_takes_a_level_or_its_step_size_and_learned_refuses_a_number():
    torch.manual_seed(0)
    emb = LevelEmbedder(16, 8, "sin_d")
    level = torch.tensor([0, 3, 7])
    assert torch.allclose(emb(level), emb(torch.exp2(-level.float())))
    with pytest.raises(ValueError, match="level_embedding='sin_d'"):
        LevelEmbedder(16, 8, "learned")(torch.tensor([0.5]))


def test_meanflow_alone_is_a_valid_config_and_brings_its_embedding(tiny_config):
    cfg = tiny_config(method="meanflow")
    assert cfg.level_embedding == "sin_d_unit"
    assert tiny_config(method="shortcut").level_embedding == "learned"  # the others' default
    assert tiny_config(method="shortcut", level_embedding="sin_d").level_embedding == "sin_d"
    # an explicit choice it cannot train is an error that names the accepted ones
    with pytest.raises(
        ConfigError, match=r"level_embedding.*accepts.*\['sin_d_unit', 'sin_d'\].*'learned'"
    ):
        tiny_config(method="meanflow", level_embedding="learned")
    with pytest.raises(ConfigError, match="meanflow_ratio"):
        tiny_config(method="meanflow", method_args={"meanflow_ratio": 1.5})
    # replace() gives a new method its own default, and keeps an explicit one
    assert tiny_config().replace(method="meanflow").level_embedding == "sin_d_unit"
    assert cfg.replace(method="flow_matching").level_embedding == "learned"
    chosen = tiny_config(level_embedding="sin_level")
    assert chosen.replace(method="flow_matching").level_embedding == "sin_level"
    with pytest.raises(ConfigError, match="accepts"):
        chosen.replace(method="meanflow")
    # a saved config (every field written out) reads back the same
    assert type(cfg).from_dict(cfg.to_dict()) == cfg


def test_level_embedding_choice_is_declared_by_the_objective(monkeypatch):
    from shortcut_mini.objectives import level_embedding_choice

    assert level_embedding_choice("meanflow") == (("sin_d_unit", "sin_d"), "sin_d_unit")
    assert level_embedding_choice("flow_matching") == (
        ("learned", "sin_level", "sin_d", "sin_d_unit"),
        "learned",
    )
    # the mechanism is general: any objective may declare its own
    monkeypatch.setattr(OBJECTIVES["shortcut"], "level_embeddings", ("sin_level",), raising=False)
    monkeypatch.setattr(
        OBJECTIVES["shortcut"], "default_level_embedding", "sin_level", raising=False
    )
    assert TrainConfig(method="shortcut", progress=False).level_embedding == "sin_level"
    with pytest.raises(ConfigError, match=r"\['sin_level'\]"):
        TrainConfig(method="shortcut", level_embedding="learned", progress=False)


# ---- samplers ---------------------------------------------------------------------------------------
def test_each_method_has_its_sampler():
    expected = {
        "flow_matching": "flow",
        "shortcut": "euler",
        "diffusion": "ddim",
        "consistency_training": "consistency",
        "live_reflow": "euler",
        "meanflow": "euler",
    }
    for method, name in expected.items():
        assert sampler_for(method) is SAMPLERS[name]
    with pytest.raises(ValueError, match="unknown method"):
        sampler_for("gan")


# ---- every method trains, resumes exactly and samples ---------------------------------------------------
def interrupt_at_batch(monkeypatch, n: int) -> None:
    original, calls = ArrayDataset.batch, []

    def batch(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ArrayDataset, "batch", batch)


@pytest.mark.parametrize("method", METHODS)
def test_method_trains_resumes_exactly_and_samples(method, tmp_path, tiny_config, monkeypatch):
    straight = train(method_config(tiny_config, method))
    assert all(math.isfinite(r["loss"]) for r in straight.history)
    interrupt_at_batch(monkeypatch, 13)
    with pytest.raises(TrainingInterrupted, match=r"last checkpoint \(step 10\)"):
        train(method_config(tiny_config, method, out_dir=str(tmp_path)))
    monkeypatch.undo()
    resumed = train(method_config(tiny_config, method, out_dir=str(tmp_path)))
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(straight.ema.state_dict().values(), resumed.ema.state_dict().values()):
        assert torch.equal(a, b)
    loaded = load_run(tmp_path)
    for steps in (1, 2, 128):
        x = sample(loaded, 32, steps, seed=1)
        assert x.shape == (32, 2) and torch.isfinite(x).all()
        assert torch.equal(x, sample(resumed, 32, steps, seed=1))


def test_the_jvp_runs_on_the_module_under_ddp_and_compile_wrappers():
    from types import SimpleNamespace

    from shortcut_mini.objectives.meanflow import unwrap_module

    net = MLPVelocity(dim=2, width=16, depth=1, level_embedding="sin_d")
    compiled = torch.compile(net)  # wraps lazily: nothing is compiled until it is called
    assert unwrap_module(compiled) is net
    assert unwrap_module(SimpleNamespace(module=compiled)) is net  # DDP(compile(model))
    assert unwrap_module(net) is net
