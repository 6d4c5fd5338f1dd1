"""Precision and compilation by device capability (shortcut_mini.capability), on the CPU.

A CUDA device is faked by replacing torch's capability query: ``torch.device("cuda")`` itself
needs no GPU, and every choice of the package reads the capability through that one query.
"""

from __future__ import annotations

import functools
import warnings

import pytest
import torch
from conftest import make_tiny_config

from shortcut_mini import TrainConfig, train
from shortcut_mini.capability import (
    PrecisionUnavailableError,
    choose_precision,
    compile_support,
    describe,
)
from shortcut_mini.run_store import CHECKPOINT_NAME, load_checkpoint
from shortcut_mini.speed import sampling_dtype
from shortcut_mini.train import checkpointer as checkpointer_module
from shortcut_mini.train import trainer as trainer_module
from shortcut_mini.train.components import build_components
from shortcut_mini.train.devices import DeviceUnavailableError, resolve_precision
from shortcut_mini.train.trainer import compile_plan

CUDA = torch.device("cuda")
CPU = torch.device("cpu")


@pytest.fixture
def fake_gpu(monkeypatch):
    """``fake_gpu((7, 5))``: torch reports that compute capability for every CUDA device, and
    (as on a real T4, through emulation) that bf16 is supported."""

    def set_capability(capability):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)

    return set_capability


@pytest.mark.parametrize(
    ("capability", "expected"),
    [((6, 1), "fp16"), ((7, 0), "fp16"), ((7, 5), "fp16"), ((8, 0), "bf16"), ((9, 0), "bf16")],
)
def test_auto_is_bf16_only_from_capability_8(fake_gpu, capability, expected):
    fake_gpu(capability)
    assert choose_precision("auto", CUDA) == expected
    assert resolve_precision("auto", CUDA) == expected  # the trainer's entry point
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[expected]
    assert sampling_dtype("auto", CUDA) is dtype  # sampling and evaluation: the same rule


def test_a_t4_is_not_given_emulated_bf16(fake_gpu):
    fake_gpu((7, 5))
    assert torch.cuda.is_bf16_supported()  # what torch says on a T4 (emulation)
    assert choose_precision("auto", CUDA) == "fp16"
    assert choose_precision("bf16", CUDA) == "bf16"  # asked for explicitly: kept


def test_cpu_is_fp32_and_refuses_fp16():
    assert choose_precision("auto", CPU) == "fp32"
    assert sampling_dtype("auto", CPU) is None
    assert choose_precision("bf16", CPU) == "bf16"
    with pytest.raises(PrecisionUnavailableError, match="'fp16' needs a CUDA GPU"):
        choose_precision("fp16", CPU)
    with pytest.raises(DeviceUnavailableError, match="TrainConfig.precision: 'fp16'"):
        resolve_precision("fp16", CPU)
    with pytest.raises(ValueError, match="precision must be one of"):
        sampling_dtype("half", CPU)


@pytest.mark.parametrize(
    ("capability", "precision", "compiles", "cudagraphs"),
    [
        ((6, 1), "fp16", False, False),  # older than Triton's oldest GPU
        ((7, 0), "fp16", True, False),
        ((7, 5), "fp16", True, False),  # a T4 at auto: compiled, no CUDA graphs
        ((7, 5), "fp32", True, False),
        ((7, 5), "bf16", False, False),  # emulated bf16: no compiled kernels
        ((8, 0), "bf16", True, True),
        ((9, 0), "bf16", True, True),
    ],
)
def test_compile_and_cuda_graphs_by_capability(
    fake_gpu, capability, precision, compiles, cudagraphs
):
    fake_gpu(capability)
    support = compile_support(CUDA, precision)
    assert (support.compile, support.cudagraphs) == (compiles, cudagraphs)
    assert f"{capability[0]}.{capability[1]}" in support.reason


def test_cpu_compiles_only_when_asked_and_other_devices_never():
    cpu = compile_support(CPU, "fp32")
    assert cpu.compile and not cpu.cudagraphs
    mps = compile_support(torch.device("mps"), "fp32")
    assert not mps.compile and not mps.cudagraphs


def test_describe_names_precision_scaling_and_compile_rule(fake_gpu):
    fake_gpu((7, 5))
    line = describe(CUDA, choose_precision("auto", CUDA))
    assert "fp16 with loss scaling" in line and "without CUDA graphs" in line and "7.5" in line


def _compiled_cfg(**kw):
    return TrainConfig(compile=True, compile_mode="reduce-overhead", **kw)


def test_trainer_drops_cuda_graphs_below_8_and_compile_for_emulated_bf16(fake_gpu):
    fake_gpu((7, 5))
    with pytest.warns(UserWarning, match="uses CUDA graphs, not used here"):
        assert compile_plan(_compiled_cfg(), CUDA, "fp16") == (True, "default")
    with pytest.warns(UserWarning, match="not compiling .*bf16"):
        assert compile_plan(_compiled_cfg(), CUDA, "bf16")[0] is False
    fake_gpu((9, 0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert compile_plan(_compiled_cfg(), CUDA, "bf16") == (True, "reduce-overhead")
        assert compile_plan(TrainConfig(), CUDA, "bf16")[0] is False  # compile off: off


@pytest.mark.parametrize(
    ("precision", "scaling"), [("fp16", True), ("bf16", False), ("fp32", False)]
)
def test_components_scale_the_loss_only_in_fp16(precision, scaling):
    dinfo = {"name": "checkerboard", "kind": "toy2d", "shape": [2], "num_classes": 0}
    cfg = TrainConfig(data="checkerboard", model="mlp-small", method="flow_matching")
    parts = build_components(cfg, dinfo, CPU, precision)
    assert parts.scaler.is_enabled() is scaling
    assert parts.scaler._device == "cpu"  # the run's device, not always "cuda"


def _tiny(**kw):
    """The shared tiny run at 16 steps with a checkpoint at step 8 (where the resumes start)."""
    return make_tiny_config(**{"steps": 16, "log_every": 4, "ckpt_every": 8, **kw})


@pytest.fixture
def fp16_on_cpu(monkeypatch):
    """Train in fp16 autocast on the CPU (torch supports it; the package refuses it to users, as
    it is slow there) with a loss scale so large (2**20) that the first steps overflow fp16's range
    (65504): the scaler must skip them and back off, so its state decides how a resumed run
    continues."""
    monkeypatch.setattr(trainer_module, "resolve_precision", lambda name, device: "fp16")
    monkeypatch.setattr(
        torch.amp, "GradScaler", functools.partial(torch.amp.GradScaler, init_scale=2.0**20)
    )


def test_fp16_training_scales_the_loss_and_resumes_exactly(fp16_on_cpu, tmp_path, monkeypatch):
    straight = train(_tiny(out_dir=str(tmp_path / "a")))
    state = load_checkpoint(tmp_path / "a" / CHECKPOINT_NAME)
    assert state["precision"] == "fp16"
    assert state["scaler"]["scale"] == 2.0**16  # four overflowing steps skipped, halved each time
    assert state["scaler"]["_growth_tracker"] == 12  # and the twelve steps after them taken
    assert all(torch.isfinite(p).all() for p in straight.model.parameters())

    train(_tiny(steps=8, out_dir=str(tmp_path / "b")))
    resumed = train(_tiny(out_dir=str(tmp_path / "b")))
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)

    # the check can fail: a resume that forgets the scaler's state starts at the huge scale again
    restore = checkpointer_module.Checkpointer.restore

    def forget_scaler(self, state):
        return restore(self, {k: v for k, v in state.items() if k != "scaler"})

    monkeypatch.setattr(checkpointer_module.Checkpointer, "restore", forget_scaler)
    train(_tiny(steps=8, out_dir=str(tmp_path / "c")))
    forgot = train(_tiny(out_dir=str(tmp_path / "c")))
    differs = [
        not torch.equal(a, b)
        for a, b in zip(straight.model.state_dict().values(), forgot.model.state_dict().values())
    ]
    assert any(differs)
