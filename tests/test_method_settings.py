"""Settings that belong to one method: given as ``TrainConfig.method_args``, checked against
the objective's settings dataclass, reaching the objective; the old spellings (a
``TrainConfig`` field per setting) are refused with the new one named, and configs saved in the
old form (run folders, records) still load."""

from __future__ import annotations

import dataclasses
import inspect
import json
from pathlib import Path

import pytest
import torch
from conftest import make_tiny_config

from shortcut_mini import ConfigError, TrainConfig, load_run, train
from shortcut_mini.cli import build_parser, main
from shortcut_mini.config import read_config_values, upgrade_saved_config
from shortcut_mini.method_settings import (
    MeanFlowSettings,
    MethodSettings,
    ReflowSettings,
    ShortcutSettings,
)
from shortcut_mini.objectives import MEANFLOW_SETTINGS, OBJECTIVES
from shortcut_mini.reproduce import run_config, run_preset
from shortcut_mini.run_store import load_checkpoint, save_checkpoint
from shortcut_mini.train.components import build_components

ROOT = Path(__file__).resolve().parents[1]
TUNING_RECORD = ROOT / "benchmarks/results/tuning_2026-12-03/meanflow_cifar10_seed0.json"
TABLE1_RECORDS = sorted((ROOT / "book/results/table1").glob("*_seed*.json"))
OLD_MEANFLOW_FIELDS = dict(
    meanflow_ratio=0.25,
    meanflow_t_mean=-0.4,
    meanflow_t_std=1.0,
    meanflow_norm_p=1.0,
    meanflow_norm_eps=0.01,
    meanflow_kappa=0.0,
)


@pytest.mark.parametrize("method", sorted(OBJECTIVES))
def test_each_methods_settings_are_keywords_of_its_objective_with_the_same_defaults(method):
    cls = OBJECTIVES[method]
    assert issubclass(cls.settings, MethodSettings)
    params = inspect.signature(cls).parameters
    for f in dataclasses.fields(cls.settings):
        assert f.name in params, f"{cls.__name__} does not take its setting {f.name}"
        assert params[f.name].default == f.default
        assert f.name not in {g.name for g in dataclasses.fields(TrainConfig)}
    if cls.settings.names():
        assert cls.settings.method == method
        assert set(cls.settings.field_help()) == set(cls.settings.names())  # all documented
    assert TrainConfig(**_required(method)).method_args == cls.settings().to_dict()


def _required(method: str) -> dict:
    return dict(method=method, teacher="runs/t" if OBJECTIVES[method].needs_teacher else None)


def test_method_args_reach_the_objective_the_trainer_builds():
    cfg = make_tiny_config(method="meanflow", method_args=MEANFLOW_SETTINGS["cifar10"])
    dinfo = {"name": "checkerboard", "kind": "points", "shape": [2], "num_classes": 0}
    objective = build_components(cfg, dinfo, torch.device("cpu"), "fp32").objective
    assert (objective.ratio, objective.t_mean, objective.t_std) == (0.75, -2.0, 2.0)
    assert (objective.norm_p, objective.norm_eps) == (0.75, 1e-3)
    cfg = make_tiny_config(method="reflow", teacher="runs/t", method_args={"reflow_pairs": 7})
    assert build_components(cfg, dinfo, torch.device("cpu"), "fp32").objective.n_pairs == 7


def test_method_args_are_read_as_their_types_and_left_out_ones_take_defaults():
    cfg = TrainConfig(method="meanflow", method_args='{"meanflow_ratio": "0.5"}')
    assert cfg.method_args == {**OLD_MEANFLOW_FIELDS, "meanflow_ratio": 0.5}
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    assert json.loads(json.dumps(cfg.to_dict()))["method_args"]["meanflow_ratio"] == 0.5
    assert TrainConfig(
        method="reflow", teacher="t", method_args={"reflow_pairs": "1e3"}
    ).method_args == {"reflow_pairs": 1000}
    # a new method gets its own defaults; a config of the same method keeps its settings
    assert cfg.replace(method="shortcut").method_args == ShortcutSettings().to_dict()
    assert cfg.replace(steps=5).method_args["meanflow_ratio"] == 0.5


@pytest.mark.parametrize(
    "method_args, message",
    [
        ({"meanflow_ratio": 1.5}, r"method_args\.meanflow_ratio: must be in \[0, 1\].*got 1\.5"),
        ({"meanflow_t_std": 0}, r"method_args\.meanflow_t_std: must be positive"),
        ({"meanflow_kappa": 1.0}, r"method_args\.meanflow_kappa: must be in \[0, 1\)"),
        ({"meanflow_t_mean": float("nan")}, r"meanflow_t_mean: must be a finite number"),
        ({"meanflow_ratio": "abc"}, r"meanflow_ratio: 'abc' is not a number; give one such as"),
        ({"ratio": 0.5}, r"method 'meanflow' has no setting 'ratio'; its settings: \['meanflow_"),
        ({"reflow_pairs": 5}, r"'reflow_pairs' is a setting of method 'reflow', not of 'meanflow'"),
        ("[1, 2]", r"TrainConfig\.method_args: .* is not a JSON object"),
    ],
)
def test_bad_method_args_name_the_setting_and_the_fix(method_args, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(method="meanflow", method_args=method_args)


def test_a_method_without_settings_refuses_one_naming_its_owner():
    with pytest.raises(ConfigError, match=r"'meanflow_ratio' is a setting of method 'meanflow'"):
        TrainConfig(method="shortcut", method_args={"meanflow_ratio": 0.5})
    with pytest.raises(ConfigError, match=r"reflow_pairs: must be a positive integer"):
        TrainConfig(method="reflow", teacher="t", method_args={"reflow_pairs": 0})


NEW_SPELLING = (
    r"meanflow_ratio is a setting of method 'meanflow', given in method_args: "
    r"TrainConfig\(method='meanflow', method_args=\{'meanflow_ratio': 0\.5\}\); command line: "
    r"--method-arg meanflow_ratio=0\.5; reproduce: --set method_args\.meanflow_ratio=0\.5"
)


def test_old_spellings_are_refused_with_the_new_one_named(tmp_path):
    with pytest.raises(ConfigError, match=NEW_SPELLING):
        TrainConfig(method="meanflow", meanflow_ratio=0.5)
    with pytest.raises(ConfigError, match=NEW_SPELLING):
        TrainConfig.from_dict({"method": "meanflow", "meanflow_ratio": 0.5})
    with pytest.raises(ConfigError, match=NEW_SPELLING):
        TrainConfig(method="meanflow").replace(meanflow_ratio=0.5)
    with pytest.raises(ConfigError, match=NEW_SPELLING):
        TrainConfig.from_strings({"meanflow-ratio": "0.5"})
    config_file = tmp_path / "c.yaml"
    config_file.write_text("method: meanflow\nmeanflow_ratio: 0.5\n")
    with pytest.raises(ConfigError, match=f"config file {config_file}: .*{NEW_SPELLING}"):
        read_config_values(config_file)
    with pytest.raises(ConfigError, match=r"reflow_pairs is a setting of method 'reflow'"):
        TrainConfig(reflow_pairs=100)
    with pytest.raises(ConfigError, match=NEW_SPELLING):
        run_config("table1_smoke", "meanflow", 0, None, {"meanflow_ratio": "0.5"})


def test_old_command_line_flags_name_the_new_one(capsys):
    assert main(["train", "--method", "meanflow", "--meanflow-ratio", "0.5", "--steps", "1"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "--method-arg meanflow_ratio=0.5" in err and "error:" in err


def test_train_help_documents_every_methods_settings(monkeypatch):
    monkeypatch.setenv("COLUMNS", "100000")  # no wrapping (argparse wraps at hyphens)
    sub = build_parser()._subparsers._group_actions[0].choices["train"]
    flat = " ".join(sub.format_help().split())
    assert "--method-arg NAME=VALUE" in flat and "--meanflow-ratio" not in flat
    for cls in (MeanFlowSettings, ReflowSettings):
        for f in dataclasses.fields(cls):
            meaning = " ".join(cls.field_help()[f.name].split()).rstrip(".")
            assert f"{f.name} ({f.default}): {meaning}" in flat


def test_the_command_line_gives_method_args_over_a_config_file(tmp_path, capsys):
    config_file = tmp_path / "c.yaml"
    config_file.write_text("method_args: {meanflow_ratio: 0.5, meanflow_t_std: 2}\n")
    out = tmp_path / "run"
    argv = ["train", "--config", str(config_file), "--method", "meanflow", "--data", "checkerboard"]
    argv += ["--model", "mlp-small", "--steps", "2", "--batch-size", "8", "--device", "cpu"]
    argv += ["--method-arg", "meanflow_ratio=0.75", "--out-dir", str(out), "--no-progress"]
    assert main(argv) == 0, capsys.readouterr().err
    cfg = load_run(out).config
    assert cfg.method_args == {**OLD_MEANFLOW_FIELDS, "meanflow_ratio": 0.75, "meanflow_t_std": 2.0}


def test_reproduce_set_reaches_the_runs_whose_method_has_the_setting():
    over = {"method_args.meanflow_ratio": "0.5"}
    assert (
        run_config("table1_smoke", "meanflow", 0, None, over).method_args["meanflow_ratio"] == 0.5
    )
    shortcut = run_config("table1_smoke", "shortcut", 0, None, over).method_args
    assert shortcut == ShortcutSettings().to_dict()  # its own defaults, no meanflow_ratio
    # the preset's own settings of a row stay, the batch's setting is merged into them
    tuning = run_config("tuning", "meanflow_cifar10", 0, None, over).method_args
    assert tuning == {**MEANFLOW_SETTINGS["cifar10"], "meanflow_kappa": 0.0, "meanflow_ratio": 0.5}
    reflow = run_config("table1_smoke", "reflow", 0, None, {"teacher": "t"})
    assert reflow.method_args == {"reflow_pairs": 32}


def test_reproduce_refuses_a_setting_no_method_of_the_batch_has(tmp_path):
    def dry(preset, methods, overrides):
        how = dict(out=tmp_path, engine="python", progress=False, log=lambda s: 0)
        return run_preset(preset, methods=methods, overrides=overrides, dry_run=True, **how)

    assert dry("table1_smoke", ["shortcut", "meanflow"], {"method_args.meanflow_ratio": "0.5"})
    with pytest.raises(ConfigError, match=r"--set method_args\.meanflow_ratio: no method of this"):
        dry("smoke", ["flow_matching"], {"method_args.meanflow_ratio": "0.5"})
    with pytest.raises(ConfigError, match=r"--set: TrainConfig\.method_args\.meanflow_ratio: must"):
        dry("table1_smoke", ["meanflow"], {"method_args.meanflow_ratio": "2"})
    with pytest.raises(ConfigError, match=r"--set: TrainConfig\.meanflow_ratio: meanflow_ratio is"):
        dry("table1_smoke", ["meanflow"], {"meanflow_ratio": "0.5"})


# ---- configs saved before the settings moved: run folders and records still load -------------


def test_a_record_of_the_old_form_is_read_into_the_new_one():
    old = json.loads(TUNING_RECORD.read_text())["config"]
    assert old["meanflow_ratio"] == 0.75 and "method_args" not in old  # the old form indeed
    cfg = TrainConfig.from_saved(old)
    assert cfg.method == "meanflow" and cfg.level_embedding == "sin_d"
    assert cfg.method_args == {k: old[k] for k in OLD_MEANFLOW_FIELDS}
    assert cfg.steps == old["steps"] and cfg.lr == old["lr"]
    with pytest.raises(ConfigError, match=r"is a setting of method 'meanflow'"):
        TrainConfig.from_dict(old)  # (not as user input: from_saved reads it)
    assert upgrade_saved_config(cfg.to_dict()) == cfg.to_dict()  # the new form is unchanged


@pytest.mark.parametrize("record", TABLE1_RECORDS, ids=lambda p: p.stem)
def test_the_books_table1_records_load(record):
    old = json.loads(record.read_text())["config"]
    cfg = TrainConfig.from_saved(old)
    assert cfg.method == old["method"]
    # the method's own settings keep their saved values; other methods' (saved at their
    # defaults, never read) are dropped
    settings = OBJECTIVES[cfg.method].settings
    own = [f.name for f in dataclasses.fields(settings)]
    # (a setting added after the record was written takes its default)
    expected = {**settings().to_dict(), **{name: old[name] for name in own if name in old}}
    assert cfg.method != "meanflow" or expected["meanflow_ratio"] == old["meanflow_ratio"]
    assert cfg.method_args == expected
    same = {k: v for k, v in cfg.to_dict().items() if k != "method_args"}
    assert same == {k: v for k, v in old.items() if k in same}


def _make_old_form(run_dir: Path) -> None:
    """Rewrite a run folder's checkpoint config as a run before method_args wrote it."""
    state = load_checkpoint(run_dir)
    config = dict(state["config"])
    own = config.pop("method_args")
    config.update({**OLD_MEANFLOW_FIELDS, "reflow_pairs": None, **own})
    state["config"] = config
    save_checkpoint(run_dir / "checkpoint.pt", {k: v for k, v in state.items() if k != "format"})


def test_a_run_folder_of_the_old_form_loads_and_resumes(tmp_path):
    args = dict(method="meanflow", method_args={"meanflow_ratio": 0.5})
    straight = train(make_tiny_config(**args, out_dir=str(tmp_path / "straight")))
    first = train(make_tiny_config(**args, steps=10, out_dir=str(tmp_path / "old")))
    assert first.step == 10
    _make_old_form(tmp_path / "old")
    assert "method_args" not in load_checkpoint(tmp_path / "old")["config"]
    assert load_run(tmp_path / "old").config.method_args["meanflow_ratio"] == 0.5
    resumed = train(make_tiny_config(**args, out_dir=str(tmp_path / "old")))
    assert resumed.step == 20
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    # a resumed run of other settings is still refused, naming the setting
    with pytest.raises(Exception, match="method_args"):
        train(make_tiny_config(method="meanflow", steps=30, out_dir=str(tmp_path / "old")))
