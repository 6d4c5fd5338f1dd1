"""The command line: train from a config file with flag overrides, then sample."""

import json

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
