"""The command line: train from a config file with flag overrides, then sample."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from shortcut_mini import load_run
from shortcut_mini.cli import main


def test_train_from_yaml_with_flag_overrides_then_sample(tmp_path, capsys):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("data: moons\nmodel: mlp-small\nsteps: 4\nbatch_size: 16\nlr: 0.001\n")
    out = tmp_path / "run"
    rc = main(
        [
            "train",
            "--config",
            str(cfg),
            "--steps",
            "6",
            "--out-dir",
            str(out),
            "--no-progress",
            "--log-every",
            "3",
        ]
    )
    assert rc == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["step"] == 6
    run = load_run(out)
    assert run.config.data == "moons" and run.config.steps == 6 and run.config.lr == 1e-3
    assert (
        main(["sample", str(out), "--n", "10", "--steps", "3", "--out", str(tmp_path / "x.pt")])
        == 0
    )
    x = torch.load(tmp_path / "x.pt", weights_only=True)
    assert x.shape == (10, 2) and torch.isfinite(x).all()


def test_bad_values_exit_2_with_the_field_named(tmp_path, capsys):
    assert main(["train", "--data", "mnistt", "--out-dir", str(tmp_path)]) == 2
    assert "TrainConfig.data: unknown dataset 'mnistt'" in capsys.readouterr().err
    assert (
        main(
            [
                "train",
                "--data",
                "moons",
                "--steps",
                "2",
                "--batch-size",
                "8",
                "--out-dir",
                str(tmp_path / "r"),
                "--no-progress",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["sample", str(tmp_path / "r"), "--steps", "256"]) == 2
    assert "steps=256 is outside" in capsys.readouterr().err


def test_names_lists_each_dataset_once(capsys):
    assert main(["names"]) == 0
    out = capsys.readouterr().out
    assert out.count("image_folder:PATH") == 1 and "reproduce" not in out


HELP_PROBE = """
import runpy, sys
sys.argv = ["shortcut-mini", *sys.argv[1:]]
try:
    runpy.run_module("shortcut_mini.cli", run_name="__main__")
except SystemExit as e:
    assert e.code == 0, e.code
print("TORCH-IMPORTED" if "torch" in sys.modules else "NO-TORCH")
"""


@pytest.mark.parametrize("command", [[], ["train"]])
def test_help_is_complete_and_does_not_import_torch(command):
    """``--help`` answers without importing torch (it took 2.4 s), lists every command, and
    ``train --help`` shows each flag's meaning and default."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    res = subprocess.run(
        [sys.executable, "-c", HELP_PROBE, *command, "--help"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert res.stdout.strip().endswith("NO-TORCH"), res.stdout[-300:]
    assert "``" not in res.stdout
    if not command:
        for name in ("train", "sample", "evaluate", "demo", "reproduce", "names"):
            assert f"\n    {name} " in res.stdout
    else:
        flat = " ".join(res.stdout.split())
        assert (
            "--lr FLOAT AdamW learning rate (constant; no gradient clipping). (default: 0.0001)"
            in flat
        )
        assert "--betas B1,B2 AdamW betas. (default: 0.9,0.999)" in flat
        assert "--progress, --no-progress show a tqdm progress bar. (default: true)" in flat
