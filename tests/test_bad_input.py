"""Bad input gets one clear sentence, not a traceback: through the command line (exit 2, the
message on stderr) and the Python API (``ConfigError`` / ``ValueError`` with the same message)."""

from __future__ import annotations

import importlib
import math
import re
import warnings

import pytest
import torch

from shortcut_mini import ConfigError, TrainConfig, load_run, sample, train
from shortcut_mini.cli import main
from shortcut_mini.config import parse_field
from shortcut_mini.objectives import FlowMatching, build_objective

# A 1-step 2D run in memory: if a bad value were accepted, the command would train and exit 0.
TRAIN = ["train", "--model", "mlp-small", "--steps", "1", "--batch-size", "8", "--no-progress"]


def run_cli(capsys, argv) -> tuple[int, str]:
    code = main(argv)
    out = capsys.readouterr()
    assert "Traceback" not in out.err + out.out
    return code, out.err


BAD_VALUES = [
    ("lr", "abc", "TrainConfig.lr: 'abc' is not a number; give one such as 0.0001"),
    ("weight_decay", "abc", "TrainConfig.weight_decay: 'abc' is not a number"),
    ("ema_decay", "abc", "TrainConfig.ema_decay: 'abc' is not a number"),
    ("log_every", "abc", "TrainConfig.log_every: 'abc' is not an integer"),
    ("clip", "abc", "TrainConfig.clip: 'abc' is not a number or none"),
    ("guidance_scale", "abc", "TrainConfig.guidance_scale: 'abc' is not a number"),
    ("compile_mode", "fast", "TrainConfig.compile_mode: must be one of ['default', "),
    ("betas", "[0.9]", "TrainConfig.betas: '[0.9]' is not a pair of numbers"),
    ("betas", "[0.9, 1.5]", "TrainConfig.betas: must be two numbers in [0, 1)"),
    ("seed", "abc", "TrainConfig.seed: 'abc' is not an integer"),
    ("n_data", "0", "TrainConfig.n_data: must be a positive integer"),
    ("out_dir", "", "TrainConfig.out_dir: must not be empty"),
    ("lr", "nan", "TrainConfig.lr: must be a finite number, got nan"),
    ("steps", "2.5", "TrainConfig.steps: '2.5' is not an integer"),
    ("overwrite", "maybe", "TrainConfig.overwrite: 'maybe' is not true or false"),
    (
        "model_overrides",
        '{"nosuch": 3}',
        "TrainConfig.model_overrides: unknown field(s) ['nosuch'] for model 'mlp-small'; "
        "valid fields: ['depth', 'width']",
    ),
    ("model_overrides", '{"depth": 0}', "depth must be a positive integer, got 0"),
    ("model_overrides", "{depth: 2}", "'{depth: 2}' is not a JSON object"),
]


@pytest.mark.parametrize("name, text, message", [v for v in BAD_VALUES if v[0] != "overwrite"])
def test_wrongly_typed_flags_name_the_field(capsys, name, text, message):
    flag = "--" + name.replace("_", "-")  # (boolean flags take no value: --overwrite)
    code, err = run_cli(capsys, [*TRAIN, flag, text])
    assert code == 2 and err.startswith(f"shortcut-mini train: error: TrainConfig.{name}: ")
    assert message in err
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_strings({**dict(model="mlp-small"), name: text})
    assert message in str(info.value)


@pytest.mark.parametrize("name, text, message", BAD_VALUES)
def test_the_same_values_in_a_yaml_file_name_the_file(tmp_path, capsys, name, text, message):
    path = tmp_path / "cfg.yaml"
    quoted = text.replace("'", "''")
    path.write_text(f"model: mlp-small\nsteps: 1\n{name}: '{quoted}'\n")
    code, err = run_cli(capsys, ["train", "--config", str(path), "--no-progress"])
    assert code == 2 and message in err
    with pytest.raises(ConfigError, match="cfg.yaml") as info:
        TrainConfig.from_file(path)
    assert message in str(info.value)


def test_api_values_are_checked_too():
    with pytest.raises(ConfigError, match="TrainConfig.lr: must be a finite number, got nan"):
        TrainConfig(lr=float("nan"))
    with pytest.raises(ConfigError, match="TrainConfig.clip: must be a finite number"):
        TrainConfig(clip=math.inf)
    with pytest.raises(ConfigError, match="TrainConfig.out_dir: must not be empty"):
        TrainConfig(out_dir="")
    with pytest.raises(ConfigError, match="TrainConfig.batch_size: True is not an integer"):
        TrainConfig(batch_size=True)
    with pytest.raises(ConfigError, match="image_size"):
        TrainConfig(data="image_folder:photos")
    cfg = TrainConfig()
    cfg.lr = "fast"  # changed after construction: validate() still checks the type
    with pytest.raises(ConfigError, match="TrainConfig.lr: expected a number, got 'fast'"):
        cfg.validate()


def test_yaml_strings_become_the_field_types(tmp_path):
    """PyYAML reads ``lr: 1e-3`` as the string "1e-3" (YAML 1.1 floats need a dot)."""
    path = tmp_path / "cfg.yaml"
    path.write_text("lr: 1e-3\nsteps: 1e3\nbetas: [0.8, 0.9]\nclip: null\nema_warmup: 'no'\n")
    cfg = TrainConfig.from_file(path)
    assert cfg.lr == 1e-3 and isinstance(cfg.lr, float)
    assert cfg.steps == 1000 and isinstance(cfg.steps, int)
    assert cfg.betas == (0.8, 0.9) and cfg.clip is None and cfg.ema_warmup is False
    assert parse_field("batch-size", "64") == 64 and parse_field("image_size", "none") is None
    with pytest.raises(ConfigError, match="unknown field 'nosuch'"):
        parse_field("nosuch", "1")


def test_malformed_config_files_name_the_file_and_line(tmp_path, capsys):
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("data: moons\nsteps: [1, 2\nlr: 1\n")
    code, err = run_cli(capsys, ["train", "--config", str(bad_yaml)])
    assert code == 2 and f"config file {bad_yaml} is not valid YAML at line 3" in err
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"data": "moons",\n "steps": 2,}\n')
    code, err = run_cli(capsys, ["train", "--config", str(bad_json)])
    assert code == 2 and f"config file {bad_json} is not valid JSON at line 2" in err
    listing = tmp_path / "list.yaml"
    listing.write_text("- steps\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        TrainConfig.from_file(listing)
    with pytest.raises(ConfigError, match="does not exist"):
        TrainConfig.from_file(tmp_path / "missing.yaml")


def test_build_objective_refuses_a_keyword_no_objective_takes():
    with pytest.raises(ValueError, match=r"no objective accepts the keyword\(s\) \['bootstrap'\]"):
        build_objective("shortcut", M=8, bootstrap=0.5)
    # a setting of another objective is dropped: flow matching has no self-consistency rows
    obj = build_objective("flow_matching", M=8, bootstrap_fraction=0.5, target_weights="ema")
    assert isinstance(obj, FlowMatching) and obj.M == 8


# ---- sampling ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory, tiny_config):
    """A class-conditional digits run (10 classes), 2 steps of a 1-block dit-tiny."""
    out = tmp_path_factory.mktemp("digits") / "run"
    cfg = tiny_config(
        data="digits",
        model="dit-tiny",
        model_overrides={"depth": 1, "hidden": 32},
        class_conditional=True,
        steps=2,
        batch_size=8,
        n_data=64,
        out_dir=str(out),
    )
    return train(cfg)


@pytest.mark.parametrize("label", [99, -1, 10])
def test_sample_refuses_labels_outside_the_classes(digits_run, capsys, label):
    message = f"label {label} is out of range: this run has 10 classes, labels 0..9"
    code, err = run_cli(capsys, ["sample", digits_run.out_dir, "--n", "2", "--label", str(label)])
    assert code == 2 and message in err and "--cfg-scale" in err
    with pytest.raises(ValueError, match=message):
        sample(digits_run, 2, 1, y=label)


def test_sample_refuses_bad_counts_steps_and_outputs(digits_run, tmp_path, capsys):
    code, err = run_cli(capsys, ["sample", digits_run.out_dir, "--n", "0"])
    assert code == 2 and "n (the number of samples) must be a positive integer, got 0" in err
    with pytest.raises(ValueError, match="steps must be an int budget .* got 3.5"):
        sample(digits_run, 2, steps=3.5)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        sample(digits_run, 2, batch_size=0)
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    out = blocker / "samples.png"
    code, err = run_cli(capsys, ["sample", digits_run.out_dir, "--n", "2", "--out", str(out)])
    assert code == 2 and f"cannot write --out {out}: {blocker} is a file, not a folder" in err
    assert main(["sample", digits_run.out_dir, "--n", "2", "--label", "3", "--out",
                 str(tmp_path / "ok.pt")]) == 0  # fmt: skip


def test_sample_on_an_unconditional_run_refuses_a_label(tmp_path, tiny_config):
    run = train(tiny_config(steps=2, out_dir=str(tmp_path / "toy")))
    with pytest.raises(ValueError, match="not class-conditional: leave the label out"):
        sample(run, 4, 1, y=0)


def test_sample_warns_on_a_schedule_off_trained_ground(tiny_config):
    """A step of size d is trained only from multiples of d: [1/4, 1/2, 1/4] puts its 1/2 step
    at t = 1/4; [1/2, 1/4, 1/4] (largest first) is aligned."""
    run = train(tiny_config(steps=2))
    with pytest.warns(UserWarning, match="the step 0.5 starts at t=0.25, not a multiple"):
        sample(run, 4, steps=[0.25, 0.5, 0.25])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sample(run, 4, steps=[0.5, 0.25, 0.25])
        sample(run, 4, steps=3)


def test_continuous_jumps_and_other_methods_sample_any_schedule_without_a_warning(tiny_config):
    """Only runs that train each step from its own grid warn: a shortcut model trained on
    continuous jumps started them anywhere, and flow matching has no jumps."""
    runs = [
        train(
            tiny_config(
                steps=2,
                level_embedding="sin_d",
                method_args={"jump_sizes": "continuous"},
            )
        ),
        train(tiny_config(steps=2, method="flow_matching")),
    ]
    for run in runs:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            sample(run, 4, steps=[0.25, 0.5, 0.25])


def test_sample_command_takes_schedules_and_warns_in_one_line(tmp_path, tiny_config, capsys):
    run = train(tiny_config(steps=2, out_dir=str(tmp_path / "toy")))
    out = str(tmp_path / "x.pt")
    code, err = run_cli(capsys, ["sample", run.out_dir, "--steps", "1/4,1/2,1/4", "--out", out])
    assert code == 0 and err.count("\n") == 1
    assert err.startswith("shortcut-mini sample: warning: step schedule [0.25, 0.5, 0.25]")
    code, err = run_cli(capsys, ["sample", run.out_dir, "--steps", "1/2,1/4,1/4", "--out", out])
    assert code == 0 and err == ""


# ---- the command line --------------------------------------------------------------------------


def test_keyboard_interrupt_in_train_says_how_to_resume(tmp_path, capsys, monkeypatch):
    train_module = importlib.import_module("shortcut_mini.train")  # the package, not train()

    def interrupted(cfg):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "train", interrupted)
    code, err = run_cli(capsys, [*TRAIN, "--out-dir", str(tmp_path / "r")])
    assert code == 130
    assert "interrupted; resume it by rerunning the same command" in err and str(tmp_path) in err


def test_user_errors_print_one_line(tmp_path, capsys):
    out = str(tmp_path / "r")
    assert run_cli(capsys, [*TRAIN, "--out-dir", out])[0] == 0
    code, err = run_cli(capsys, [*TRAIN, "--out-dir", out, "--lr", "0.01"])
    assert code == 2 and "holds a run with a different config" in err
    assert len(err.strip().splitlines()) == 1


# ---- a device or precision this machine lacks ------------------------------------------------
@pytest.mark.skipif(torch.cuda.is_available(), reason="the machine has a GPU")
def test_a_device_this_machine_lacks_is_one_line(tmp_path, capsys, tiny_config):
    for argv in ([*TRAIN, "--device", "cuda"], [*TRAIN, "--device", "cpu", "--precision", "fp16"]):
        code, err = run_cli(capsys, argv)
        assert code == 2 and len(err.strip().splitlines()) == 1
        assert "needs a CUDA GPU" in err or "CUDA is not available on this machine" in err
    run = train(tiny_config(steps=2, out_dir=str(tmp_path / "r")))
    code, err = run_cli(capsys, ["evaluate", run.out_dir, "--device", "cuda"])
    assert code == 2 and err.startswith("shortcut-mini evaluate: error: --device: 'cuda' was")
    with pytest.raises(ConfigError, match="CUDA is not available"):
        load_run(run.out_dir, device="cuda")


# ---- config files ----------------------------------------------------------------------------
def test_a_config_that_is_a_folder_or_not_text_says_so(tmp_path, capsys):
    code, err = run_cli(capsys, ["train", "--config", str(tmp_path)])
    assert code == 2 and f"config file {tmp_path} is a folder" in err and "does not" not in err
    latin1 = tmp_path / "cfg.yaml"
    latin1.write_bytes("steps: 5 # r\xe9sum\xe9\n".encode("latin-1"))
    code, err = run_cli(capsys, ["train", "--config", str(latin1)])
    assert code == 2 and f"config file {latin1} is not UTF-8 text (byte 0xe9" in err
    assert "save it as UTF-8" in err


# ---- the Python API takes the obvious forms ----------------------------------------------------
def test_the_api_takes_a_dict_a_path_or_says_which_type_it_takes(tmp_path):
    from conftest import TINY_CONFIG

    from shortcut_mini import evaluate

    run = train({**TINY_CONFIG, "steps": 2, "out_dir": str(tmp_path / "a")})
    assert run.step == 2 and run.config.out_dir == str(tmp_path / "a")
    (tmp_path / "cfg.yaml").write_text("model: mlp-small\nsteps: 2\nbatch_size: 8\n")
    assert train(tmp_path / "cfg.yaml").config.batch_size == 8
    table = evaluate(str(tmp_path / "a"), steps=(1,), progress=False)
    assert table.steps == [1] and table.meta["run_dir"] == str(tmp_path / "a")
    assert sample(tmp_path / "a", 3, 1).shape == (3, 2)
    for call, name in [
        (lambda: train(["steps", 2]), "train() takes a TrainConfig"),
        (lambda: evaluate(5), "evaluate() takes a Run"),
        (lambda: sample(5, 3), "sample() takes a Run"),
        (lambda: load_run(5), "load_run takes the path of a run folder"),
    ]:
        with pytest.raises(TypeError, match=re.escape(name)):
            call()


# ---- reproduce names the flag that set a bad value --------------------------------------------
def test_reproduce_blames_the_flag_that_set_the_value(tmp_path, capsys):
    base = ["reproduce", "smoke", "--out", str(tmp_path / "b"), "--engine", "python"]
    code, err = run_cli(capsys, [*base, "--seeds", "-1"])
    assert code == 2 and "--seeds: seeds are integers >= 0" in err and "--set" not in err
    code, err = run_cli(capsys, [*base, "--set", "lr=abc"])
    assert code == 2 and "--set: TrainConfig.lr: 'abc' is not a number" in err
    assert not (tmp_path / "b").exists()


# ---- a chapter's parameters --------------------------------------------------------------------
def test_chapter_parameters_are_checked_with_a_sentence():
    from shortcut_mini.notebook import check_parameters

    check_parameters(profile="ci", seed=3, methods=None)
    check_parameters(methods=["shortcut", "meanflow"])
    for values, words in [
        ({"seed": "abc"}, "parameter seed must be an integer >= 0, got 'abc' (str); with "
         "papermill give e.g. -p seed 1"),
        ({"seed": -1}, "seed must be an integer >= 0, got -1"),
        ({"seed": True}, "got True (bool)"),
        ({"profile": "fast"}, "profile must be one of ci, cpu, small_gpu, gpu, got 'fast'"),
        ({"methods": "shortcut"}, "methods must be None (the profile's list) or a list"),
    ]:  # fmt: skip
        with pytest.raises(ValueError, match=re.escape(words)):
            check_parameters(**values)
    with pytest.raises(TypeError, match="'steps' is no chapter parameter"):
        check_parameters(steps=3)
