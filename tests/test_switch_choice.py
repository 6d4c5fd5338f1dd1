"""benchmarks/switch_choice.py: the combined run of the ``since_paper`` ablation takes exactly the
settings of the switches the stated rule keeps, read back from their records."""

import copy
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import switch_choice  # noqa: E402

PLAIN = json.loads((ROOT / "book/results/table1/shortcut_seed0.json").read_text())


def record(method: str, fd: dict[int, float], method_args: dict, **config) -> dict:
    r = copy.deepcopy(PLAIN)
    r["method"] = method
    r["config"].update(method_args=method_args, **config)
    r["evaluation"] = [{"steps": s, "value": v} for s, v in fd.items()]
    return r


def test_the_combined_run_takes_the_kept_switches_settings(tmp_path, capsys):
    plain = record("shortcut", {1: 300.0, 2: 160.0, 4: 110.0, 128: 80.0}, {})
    (tmp_path / "plain.json").write_text(json.dumps(plain))
    rows = {
        "shortcut_ot": ({1: 250.0, 2: 150, 4: 100, 128: 82.0}, {"ot_pairing": True}, {}),
        "shortcut_split": (
            {1: 240.0, 2: 150, 4: 100, 128: 79.0},
            {"jump_sizes": "continuous", "split_point": "uniform"},
            {"level_embedding": "sin_d"},
        ),
        "shortcut_twin_ema": (
            {1: 290.0, 2: 150, 4: 100, 128: 90.0},
            {"target_ema_decay": 0.95},
            {},
        ),
    }
    batch = tmp_path / "batch"
    batch.mkdir()
    for name, (fd, args, cfg) in rows.items():
        (batch / f"{name}_seed0.json").write_text(json.dumps(record(name, fd, args, **cfg)))
    assert switch_choice.main([str(batch), str(tmp_path / "plain.json")]) == 0
    printed = capsys.readouterr().out.split()
    choice = json.loads((batch / "switch_choice.json").read_text())
    assert choice["chosen"] == ["shortcut_ot", "shortcut_split"]  # twin EMA: +12.5% at 128
    assert choice["settings"] == {  # twin EMA's setting is plain's: off
        "method_args": {
            "ot_pairing": True,
            "jump_sizes": "continuous",
            "split_point": "uniform",
            "target_ema_decay": None,
        },
        "level_embedding": "sin_d",
    }
    assert "method_args.ot_pairing=True" in printed
    assert "level_embedding=sin_d" in printed
    assert "method_args.target_ema_decay=None" in printed


def test_it_says_what_is_missing(tmp_path, capsys):
    assert switch_choice.main([str(tmp_path), str(tmp_path / "plain.json")]) == 1
    assert "shortcut_*_seed0.json" in capsys.readouterr().err


def test_changed_settings_holds_only_what_a_switch_changed():
    from shortcut_mini.config import changed_settings

    plain = PLAIN["config"]
    assert changed_settings(plain, plain) == {}
    split = record(
        "shortcut_split",
        {1: 1.0},
        {"jump_sizes": "continuous", "split_point": "uniform"},
        level_embedding="sin_d",
    )["config"]
    assert changed_settings(split, plain) == {
        "jump_sizes": "continuous",
        "split_point": "uniform",
        "level_embedding": "sin_d",
    }
    # a setting given explicitly at plain's own value is no change
    same = record("shortcut", {1: 1.0}, {"target_ema_decay": None})["config"]
    assert changed_settings(same, plain) == {}
