"""The two-stage methods with a teacher: consistency distillation, progressive distillation and
reflow. Their targets on hand-computed cases, the teacher checks, the pair cache, and that each
trains, checkpoints, resumes exactly and samples on the CPU from a tiny flow-matching teacher."""

import importlib
import json
import os
import subprocess
import sys
import threading

import pytest
import torch
from torch import nn

from shortcut_mini import ConfigError, TrainingInterrupted, sample, train
from shortcut_mini.budget_runs import budget_sources, run_for_budget
from shortcut_mini.models import build_model
from shortcut_mini.objectives import OBJECTIVES
from shortcut_mini.objectives import reflow_pairs as rp
from shortcut_mini.objectives.consistency_distillation import consistency_distillation_target
from shortcut_mini.objectives.progressive_distillation import progressive_distillation_target
from shortcut_mini.objectives.teacher import TeacherError
from shortcut_mini.run_store import load_checkpoint, save_checkpoint
from shortcut_mini.sampling import euler_sample

M = 8  # three progressive-distillation stages: 4, 2, 1 steps
STUDENTS = tuple(m for m, cls in OBJECTIVES.items() if cls.needs_teacher)  # every such method


class Field(nn.Module):
    """A closed-form velocity field ``fn(x, t)`` with the model interface."""

    def __init__(self, fn):
        super().__init__()
        self.fn, self.M, self.num_classes = fn, M, 0

    def forward(self, x, t, level, y=None):
        return self.fn(x, t.view(-1, *([1] * (x.dim() - 1))))


def _rows(*values):
    return torch.tensor(values, dtype=torch.float32).view(-1, 1)


LEVEL = torch.zeros(2, dtype=torch.long)


# ---- targets on hand-computed cases ------------------------------------------------------
def test_progressive_distillation_target_equals_two_teacher_half_steps():
    teacher = Field(lambda x, t: -x + 2 * t)  # v = -x + 2t
    x, t, d = _rows(1.0, -2.0), torch.tensor([0.0, 0.5]), 0.5
    target = progressive_distillation_target(teacher, x, t, LEVEL[:2], None, d=d, clip=None)
    # Row 0 by hand: v1 = -1, x' = 1 - 0.25 = 0.75 at t = 0.25, v2 = -0.75 + 0.5 = -0.25,
    # target = (v1 + v2) / 2 = -0.625, and x + d * target = 0.6875 = two Euler half-steps.
    assert target[0].item() == pytest.approx(-0.625)
    t_col = t.view(-1, 1)
    x_mid = x + d / 2 * teacher.fn(x, t_col)
    x_end = x_mid + d / 2 * teacher.fn(x_mid, t_col + d / 2)
    torch.testing.assert_close(x + d * target, x_end)


def test_progressive_distillation_target_clips_the_midpoint():
    teacher = Field(lambda x, t: torch.full_like(x, 100.0))
    target = progressive_distillation_target(
        teacher, _rows(0.0, 0.0), torch.zeros(2), LEVEL, None, d=0.5, clip=4.0
    )
    assert torch.equal(target, _rows(100.0, 100.0))  # both queries see the constant field
    moved = Field(lambda x, t: x)  # from x = 10, d = 1: v1 = 10, x' = clip(15) = 4, v2 = 4
    target = progressive_distillation_target(
        moved, _rows(10.0, 10.0), torch.zeros(2), LEVEL, None, d=1.0, clip=4.0
    )
    assert target[0].item() == pytest.approx((10.0 + 4.0) / 2)


def test_consistency_distillation_target_at_adjacent_grid_points():
    # Teacher v_T = 2 everywhere, student s(x, t) = x. From x = 1 at t = 1/2 with dt = 1/4:
    # x' = 1.5 at t' = 3/4, x1_hat = 1.5 + (1/4) * 1.5 = 1.875, v* = (1.875 - 1) / (1/2) = 1.75.
    teacher = Field(lambda x, t: torch.full_like(x, 2.0))
    student = Field(lambda x, t: x)
    target = consistency_distillation_target(
        teacher, student, _rows(1.0, 1.0), torch.tensor([0.5, 0.75]), LEVEL, None, dt=0.25
    )
    assert target[0].item() == pytest.approx(1.75)
    # At t' = 1 (the last grid point) the target is the teacher's velocity: the boundary.
    assert target[1].item() == pytest.approx(2.0)


def test_consistency_distillation_target_of_the_exact_flow_is_its_velocity():
    # Data at the point c: the exact velocity is v(x, t) = (c - x) / (1 - t), and every point of
    # a trajectory maps to c, so the target from the exact teacher and student is v itself.
    c = 0.7
    exact = Field(lambda x, t: (c - x) / (1 - t))
    x, t = _rows(-1.0, 2.0), torch.tensor([0.0, 0.625])
    target = consistency_distillation_target(exact, exact, x, t, LEVEL, None, dt=1 / M, clip=None)
    torch.testing.assert_close(target, (c - x) / (1 - t.view(-1, 1)))


# ---- reflow pairs ------------------------------------------------------------------------
@pytest.fixture
def point_teacher():
    torch.manual_seed(0)
    return build_model("mlp-small", sample_shape=(2,), M=M).eval()


def test_reflow_pairs_are_deterministic_and_equal_the_teachers_samples(point_teacher):
    n = rp.CHUNK + 7  # two chunks
    a = rp.generate_pairs(point_teacher, n, (2,), seed=3, steps=M)
    b = rp.generate_pairs(point_teacher, n, (2,), seed=3, steps=M)
    assert torch.equal(a.x0, b.x0) and torch.equal(a.x1, b.x1) and len(a) == n
    assert torch.equal(a.x0[rp.CHUNK :], rp.chunk_noise(3, 1, 7, (2,)))
    expected = euler_sample(point_teacher, a.x0, M, use_step_size=False).samples
    torch.testing.assert_close(a.x1, expected)
    other = rp.generate_pairs(point_teacher, 5, (2,), seed=4, steps=M)
    assert not torch.equal(other.x0, a.x0[:5])


def test_a_killed_pair_generation_continues_where_it_stopped(point_teacher, tmp_path, monkeypatch):
    n, folder = rp.CHUNK + 7, tmp_path / "pairs"
    whole = rp.generate_pairs(point_teacher, n, (2,), seed=1, steps=M)
    real, calls = rp._generate_chunk, []

    def dies_after_one(*args, **kwargs):
        if calls:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(rp, "_generate_chunk", dies_after_one)
    with pytest.raises(KeyboardInterrupt):
        rp.generate_pairs(point_teacher, n, (2,), seed=1, steps=M, folder=folder)
    assert sorted(p.name for p in folder.glob("chunk_*.pt")) == ["chunk_00000.pt"]
    counted = []
    monkeypatch.setattr(rp, "_generate_chunk", lambda *a, **k: counted.append(1) or real(*a, **k))
    resumed = rp.generate_pairs(point_teacher, n, (2,), seed=1, steps=M, folder=folder)
    assert len(counted) == 1  # only the missing chunk
    assert torch.equal(resumed.x0, whole.x0) and torch.equal(resumed.x1, whole.x1)
    again = rp.generate_pairs(point_teacher, n, (2,), seed=2, steps=M, folder=folder)
    assert len(counted) == 3 and not torch.equal(again.x0, whole.x0)  # another seed: replaced


def test_processes_share_the_generation_and_get_the_same_pairs(point_teacher, tmp_path):
    n, folder = 2 * rp.CHUNK + 3, tmp_path / "pairs"
    alone = rp.generate_pairs(point_teacher, n, (2,), seed=5, steps=M)
    meet, results = threading.Barrier(2), {}

    def rank(r):
        results[r] = rp.generate_pairs(
            point_teacher,
            n,
            (2,),
            seed=5,
            steps=M,
            folder=folder,
            rank=r,
            world_size=2,
            barrier=meet.wait,
        )

    threads = [threading.Thread(target=rank, args=(r,)) for r in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in (0, 1):
        assert torch.equal(results[r].x0, alone.x0) and torch.equal(results[r].x1, alone.x1)


# ---- teachers ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    from conftest import make_tiny_config

    folder = tmp_path_factory.mktemp("teacher")
    train(make_tiny_config(method="flow_matching", M=M, steps=200, out_dir=str(folder)))
    return folder


def _student(tiny_config, method, **kw):
    extra = {"method_args": {"reflow_pairs": 300}} if method == "reflow" else {}
    return tiny_config(method=method, M=M, **{**extra, **kw})


def test_a_method_with_a_teacher_needs_one_and_others_refuse_one(tiny_config, teacher_dir):
    with pytest.raises(ConfigError, match="teacher.*finished flow-matching run"):
        tiny_config(method="reflow")
    with pytest.raises(ConfigError, match="uses no teacher"):
        tiny_config(method="shortcut", teacher=str(teacher_dir))
    with pytest.raises(ConfigError, match="needs steps >= 7"):
        tiny_config(method="progressive_distillation", teacher="t", steps=3)


@pytest.mark.parametrize("method", STUDENTS)
def test_a_bad_teacher_is_named_with_the_fix(tmp_path, tiny_config, teacher_dir, method):
    with pytest.raises(TeacherError, match="no run folder at .*Train a flow-matching run there"):
        train(_student(tiny_config, method, teacher=str(tmp_path / "none")))
    with pytest.raises(TeacherError, match="another model shape .*Set model='mlp-small'"):
        train(_student(tiny_config, method, teacher=str(teacher_dir), model="mlp"))
    with pytest.raises(TeacherError, match="trained on other data"):
        train(_student(tiny_config, method, teacher=str(teacher_dir), data="moons"))
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    state = load_checkpoint(teacher_dir)
    save_checkpoint(
        unfinished / "checkpoint.pt", {**state, "config": {**state["config"], "steps": 999}}
    )
    with pytest.raises(TeacherError, match="unfinished \\(step 200 of 999\\).*resume it"):
        train(_student(tiny_config, method, teacher=str(unfinished)))


def test_a_shortcut_run_is_no_teacher(tmp_path, tiny_config):
    folder = tmp_path / "sc"
    train(tiny_config(method="shortcut", M=M, steps=4, out_dir=str(folder)))
    with pytest.raises(TeacherError, match="holds a 'shortcut' run"):
        train(_student(tiny_config, "reflow", teacher=str(folder)))


# ---- every method trains, resumes exactly and samples ------------------------------------
def _killed_at(monkeypatch, step: int) -> None:
    """Make training die (Ctrl-C) before optimizer step ``step``."""
    trainer = importlib.import_module("shortcut_mini.train.trainer")
    real = trainer.call_on_step

    def hook(objective, s, total):
        if s == step:
            raise KeyboardInterrupt
        real(objective, s, total)

    monkeypatch.setattr(trainer, "call_on_step", hook)


def _train_killed_then_resumed(cfg, monkeypatch, kill_at: int = 13):
    """Train ``cfg``, killed before step ``kill_at`` (the last checkpoint: step 10), then
    resumed to the end with the same config."""
    _killed_at(monkeypatch, kill_at)
    with pytest.raises(TrainingInterrupted):
        train(cfg)
    monkeypatch.undo()
    assert load_checkpoint(cfg.out_dir)["step"] == 10
    return train(cfg)


def _equal_weights(a, b) -> bool:
    pairs = [(a.model, b.model), (a.ema, b.ema)]
    return all(
        torch.equal(p, q)
        for x, y in pairs
        for p, q in zip(x.state_dict().values(), y.state_dict().values())
    )


@pytest.mark.parametrize("method", STUDENTS)
def test_every_method_trains_resumes_exactly_and_samples(
    tmp_path, tiny_config, teacher_dir, method, monkeypatch
):
    cfg = _student(tiny_config, method, teacher=str(teacher_dir))
    straight = train(cfg.replace(out_dir=str(tmp_path / "a")))
    resumed = _train_killed_then_resumed(cfg.replace(out_dir=str(tmp_path / "b")), monkeypatch)
    assert _equal_weights(straight, resumed)
    assert [h["step"] for h in resumed.history] == [5, 10, 15, 20]
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in resumed.history)
    teacher_ema = load_checkpoint(teacher_dir)["ema"]
    moved = any(not torch.equal(teacher_ema[k], v) for k, v in resumed.ema.state_dict().items())
    assert moved  # the student started from the teacher and trained
    for budget in (1, 2, 4):
        x = sample(run_for_budget(tmp_path / "b", budget), 16, budget, seed=0)
        assert x.shape == (16, 2) and torch.isfinite(x).all()


def test_progressive_distillation_keeps_one_student_per_budget(
    tmp_path, tiny_config, teacher_dir, monkeypatch
):
    cfg = _student(tiny_config, "progressive_distillation", teacher=str(teacher_dir))
    straight = train(cfg.replace(out_dir=str(tmp_path / "a")))
    _train_killed_then_resumed(cfg.replace(out_dir=str(tmp_path / "b")), monkeypatch)
    # 20 steps over 3 stages of 6: stage 0 (4 steps) ends at step 6, stage 1 (2 steps) at 12.
    index = json.loads((tmp_path / "b" / "stages" / "stages.json").read_text())
    assert {k: (v["stage"], v["step"]) for k, v in index.items()} == {
        "8": ("teacher", None),
        "4": (0, 6),
        "2": (1, 12),
        "1": (2, 12),
    }
    assert set(budget_sources(tmp_path / "b")) == {8, 4, 2, 1}
    for budget in (4, 2):  # the snapshots of the resumed run equal the straight run's
        a, b = run_for_budget(tmp_path / "a", budget), run_for_budget(tmp_path / "b", budget)
        assert _equal_weights(a, b) and a.step == b.step
    state = load_checkpoint(tmp_path / "b")["objective"]
    assert state["stage"] == 2 and state["stage_steps"] == 6
    # The last stage's teacher is stage 1's student (its online weights: target_weights).
    snapshot_2 = run_for_budget(tmp_path / "b", 2).model.state_dict()
    assert all(torch.equal(snapshot_2[k], v) for k, v in state["teacher"].items())
    assert _equal_weights(run_for_budget(tmp_path / "b", 1), straight)
    with pytest.raises(ValueError, match="budgets \\[1, 2, 4, 8\\].*not 3"):
        run_for_budget(tmp_path / "b", 3)


def test_reflow_trains_on_its_cached_pairs(tmp_path, tiny_config, teacher_dir):
    cfg = _student(tiny_config, "reflow", teacher=str(teacher_dir), out_dir=str(tmp_path))
    train(cfg.replace(steps=4))
    manifest = json.loads((tmp_path / "reflow_pairs" / "manifest.json").read_text())
    assert manifest["n"] == 300 and manifest["steps"] == M
    chunk = torch.load(tmp_path / "reflow_pairs" / "chunk_00000.pt", weights_only=True)
    teacher = run_for_budget(teacher_dir, M)
    expected = euler_sample(teacher.ema, chunk["x0"], M, use_step_size=False).samples
    torch.testing.assert_close(chunk["x1"], expected)


@pytest.mark.parametrize("method", STUDENTS)
def test_the_one_step_student_learns_the_teachers_many_step_map(
    tmp_path, tiny_config, teacher_dir, method
):
    # From the same noise, the teacher's own one Euler step lands far from its M-step sample;
    # distillation trains one step to land there.
    teacher = run_for_budget(teacher_dir, M)
    noise = torch.randn(512, 2, generator=torch.Generator().manual_seed(9))
    many = sample(teacher, 512, M, noise=noise)
    cfg = _student(tiny_config, method, teacher=str(teacher_dir), steps=200, out_dir=str(tmp_path))
    train(cfg.replace(method_args={"reflow_pairs": 2000}) if method == "reflow" else cfg)
    student = run_for_budget(tmp_path, 1)

    def distance(run):
        return (sample(run, 512, 1, noise=noise) - many).pow(2).sum(1).mean().item()

    assert distance(student) < 0.25 * distance(teacher)


# ---- two processes (torchrun, gloo on the CPU) -------------------------------------------
def _torchrun_train(*flags: str) -> None:
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "shortcut_mini.cli",
        "train",
        "--data=checkerboard",
        "--model=mlp-small",
        f"--M={M}",
        "--batch-size=32",
        "--n-data=2000",
        "--device=cpu",
        "--no-progress",
        *flags,
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


def test_two_processes_share_the_pairs_and_the_stages(tmp_path, tiny_config, teacher_dir):
    teacher = f"--teacher={teacher_dir}"
    _torchrun_train(
        "--method=reflow",
        teacher,
        "--method-arg=reflow_pairs=2100",
        "--steps=4",
        f"--out-dir={tmp_path / 'reflow'}",
    )
    one = rp.generate_pairs(run_for_budget(teacher_dir, M).ema, 2100, (2,), seed=0, steps=M)
    chunks = [
        torch.load(tmp_path / "reflow" / rp.PAIRS_DIR / f"chunk_{c:05d}.pt", weights_only=True)
        for c in range(3)
    ]
    assert torch.equal(torch.cat([c["x0"] for c in chunks]), one.x0)
    torch.testing.assert_close(torch.cat([c["x1"] for c in chunks]), one.x1)
    _torchrun_train(
        "--method=progressive_distillation", teacher, "--steps=14", f"--out-dir={tmp_path / 'pd'}"
    )
    assert set(budget_sources(tmp_path / "pd")) == {8, 4, 2, 1}
    assert load_checkpoint(tmp_path / "pd")["objective"]["stage"] == 2


def test_evaluate_samples_each_budget_with_that_stages_student(tmp_path, tiny_config, teacher_dir):
    """``evaluate`` of a progressive-distillation run: the row of budget N is the distance of
    the N-step student's samples (``run_for_budget``), not the final 1-step student's."""
    from shortcut_mini import evaluate, sample
    from shortcut_mini.metrics import sliced_wasserstein
    from shortcut_mini.reference import held_out_points

    cfg = _student(tiny_config, "progressive_distillation", teacher=str(teacher_dir))
    run = train(cfg.replace(out_dir=str(tmp_path)))
    table = evaluate(run, steps=(1, 2, 4), n=128, seeds=(0,), progress=False)
    ref = held_out_points(cfg.data, 128, cfg.seed).points
    for budget in (1, 2, 4):
        x = sample(run_for_budget(tmp_path, budget), 128, steps=budget, seed=0)
        assert table[budget]["distance"] == pytest.approx(sliced_wasserstein(x, ref))
    assert table[2]["distance"] != table[4]["distance"]


@pytest.mark.parametrize("method", ["consistency_distillation", "progressive_distillation"])
def test_the_teacher_runs_compiled_as_the_student_and_follows_each_stage(
    tmp_path, tiny_config, teacher_dir, method, monkeypatch
):
    # compile=True compiles the teacher as it compiles the student (torch.compile's tracing,
    # without inductor's kernels, on the CPU): the same training as eagerly, so the compiled
    # teacher runs the current teacher, also after progressive distillation's stage ends
    # overwrite its weights in place
    trainer = importlib.import_module("shortcut_mini.train.trainer")  # not train(), its module
    compiled = []

    def compile_eagerly(module, mode, **_):
        compiled.append(type(module).__name__)
        return torch.compile(module, backend="eager", dynamic=False)

    monkeypatch.setattr(trainer, "compile_for_training", compile_eagerly)
    cfg = _student(tiny_config, method, teacher=str(teacher_dir), steps=14)
    eager = train(cfg.replace(out_dir=str(tmp_path / "eager")))
    assert compiled == []
    traced = train(cfg.replace(compile=True, out_dir=str(tmp_path / "compiled")))
    assert len(compiled) == 2  # the student's training network, then the teacher
    for a, b in zip(eager.model.parameters(), traced.model.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
