"""The ablation helper: shared configs trained once, mean and std over seeds, record scanning."""

import json
import math

import pytest

from shortcut_mini import TrainConfig
from shortcut_mini.ablation import (
    SHORTCUT_SWITCHES,
    SWITCH_CONTROLS,
    ablation_records,
    plot_ablation,
    run_ablation,
    run_switch_ablation,
)


def tiny(**kw):
    base = dict(
        data="checkerboard",
        model="mlp-small",
        steps=4,
        batch_size=16,
        lr=1e-3,
        n_data=256,
        device="cpu",
        progress=False,
        log_every=0,
        ckpt_every=0,
    )
    return TrainConfig(**{**base, **kw})


def test_run_ablation_shares_runs_and_summarises():
    groups = {
        "k": {"1/8": {"bootstrap_fraction": 0.125}, "1/4": {}},
        "targets": {"online": {}, "ema": {"target_weights": "ema"}},
    }
    lines = []
    res = run_ablation(tiny(), groups, seeds=(0, 1), steps=(1, 128), n_eval=64, log=lines.append)
    # "1/4" and "online" are the same config: 3 distinct configs x 2 seeds.
    assert res.n_runs == 6 and len(lines) == 6
    assert len(res.records) == 4 * 2 * 2
    assert res.values("k", "1/4", 1) == res.values("targets", "online", 1)
    m, sd = res.mean_std("k", "1/8", 1)
    vals = res.values("k", "1/8", 1)
    assert len(vals) == 2 and all(math.isfinite(v) and v > 0 for v in vals)
    assert m == pytest.approx(sum(vals) / 2)
    assert sd == pytest.approx(abs(vals[0] - vals[1]) / math.sqrt(2))
    table = res.to_markdown()
    assert table.count("\n") == 1 + 4 and "±" in table
    assert "| targets | ema |" in res.to_markdown(group="targets")
    with pytest.raises(KeyError):
        res.mean_std("k", "1/2", 1)


def test_run_ablation_is_deterministic_on_cpu():
    groups = {"g": {"a": {}}}
    a = run_ablation(tiny(), groups, seeds=(3,), steps=(2,), n_eval=32)
    b = run_ablation(tiny(), groups, seeds=(3,), steps=(2,), n_eval=32)
    assert a.values("g", "a", 2) == b.values("g", "a", 2)


def test_run_ablation_rejects_bad_arguments():
    with pytest.raises(ValueError, match="distinct"):
        run_ablation(tiny(), {"g": {"a": {}}}, seeds=(0, 0))
    with pytest.raises(ValueError):
        run_ablation(tiny(), {}, seeds=(0,))


def test_plot_ablation_draws_one_panel_per_group():
    import matplotlib

    matplotlib.use("Agg")
    groups = {
        "k": {"1/8": {"bootstrap_fraction": 0.125}, "1/4": {}},
        "wd": {"0": {"weight_decay": 0.0}},
    }
    res = run_ablation(tiny(steps=2), groups, seeds=(0,), steps=(1, 4), n_eval=32)
    fig = plot_ablation(res)
    assert len(fig.axes) == 2


def _record(preset, seed, value, **config):
    return {
        "schema_version": 1,
        "preset": preset,
        "method": "shortcut",
        "seed": seed,
        "config": {"method": "shortcut", "target_weights": "online", **config},
        "evaluation": [{"steps": 1, "distance": "FD (classifier)", "value": value}],
        "device": {"name": "H100", "count": 1},
    }


def test_ablation_records_finds_varying_fields(tmp_path):
    assert ablation_records(tmp_path / "missing") == []
    (tmp_path / "summary.json").write_text(json.dumps({"not": "a record"}))
    (tmp_path / "a.json").write_text(json.dumps(_record("mini", 0, 10.0)))
    assert ablation_records(tmp_path) == []  # one config: nothing to compare
    (tmp_path / "b.json").write_text(json.dumps(_record("mini", 0, 20.0, target_weights="ema")))
    (tmp_path / "broken.json").write_text("{")
    found = ablation_records(tmp_path)
    assert len(found) == 1
    assert found[0]["fields"] == ["target_weights"]
    assert sorted(r["steps"][1] for r in found[0]["rows"]) == [10.0, 20.0]
    assert found[0]["rows"][0]["distance"] == "FD (classifier)"
    assert {r["run"] for r in found[0]["rows"]} == {"shortcut"}


def test_ablation_records_leave_out_groups_that_differ_elsewhere(tmp_path):
    """Records that differ in a chapter field and in something else (OT pairing, say) are no
    ablation of that field; another seed or folder does not count as a difference."""
    plain = _record("mini", 0, 10.0)
    ot = _record("mini", 0, 8.0, level_embedding="sin_d", method_args={"ot_pairing": True})
    ot["method"] = "shortcut_ot"
    for name, rec in (("plain", plain), ("ot", ot)):
        (tmp_path / f"{name}.json").write_text(json.dumps(rec))
    assert ablation_records(tmp_path) == []
    (tmp_path / "ot.json").unlink()
    other = _record("mini", 1, 12.0, level_embedding="sin_d", out_dir="elsewhere")
    other["config"]["seed"] = 1
    (tmp_path / "sin_d.json").write_text(json.dumps(other))
    (found,) = ablation_records(tmp_path)
    assert found["fields"] == ["level_embedding"]


def test_compare_flags_only_differences_beyond_noise():
    from shortcut_mini.ablation import AblationResult

    res = AblationResult(groups={"g": ["a", "b", "c"]}, steps=[1], seeds=[0, 1, 2])
    for variant, vals in {
        "a": [1.0, 1.1, 0.9],
        "b": [2.0, 2.1, 1.9],
        "c": [1.05, 0.95, 1.2],
    }.items():
        for seed, v in enumerate(vals):
            res.records.append(
                {"group": "g", "variant": variant, "seed": seed, "steps": 1, "swd": v}
            )
    by = {r["variant"]: r for r in res.compare("g", "a", 1)}
    assert by["b"]["verdict"] == "worse" and by["b"]["diff"] == pytest.approx(1.0)
    assert by["c"]["verdict"] == "within seed noise"
    assert by["b"]["se"] == pytest.approx(math.sqrt(2 * 0.01 / 3))
    with pytest.raises(KeyError):
        res.compare("g", "z", 1)
    # on the board, a higher fraction is better: the same numbers flip the verdict
    for r in res.records:
        r["on_board"] = r["swd"] / 4
    by_board = {r["variant"]: r for r in res.compare("g", "a", 1, value="on_board")}
    assert by_board["b"]["verdict"] == "better" and by_board["b"]["diff"] == pytest.approx(0.25)
    assert by_board["c"]["verdict"] == "within seed noise"


def test_run_ablation_reports_the_numbers_of_evaluate():
    """A run of training seed ``eval_seed`` gets what ``evaluate`` reports for it."""
    from shortcut_mini import train
    from shortcut_mini.evaluate import evaluate

    res = run_ablation(tiny(), {"g": {"a": {}}}, seeds=(0,), steps=(1, 4), n_eval=64)
    table = evaluate(train(tiny(seed=0)), steps=(1, 4), n=64, seeds=(12_345,), progress=False)
    assert [res.values("g", "a", s)[0] for s in (1, 4)] == table.column("distance")
    on_board = table.column("on_board")  # checkerboard: the fraction on the board, same samples
    assert [res.values("g", "a", s, value="on_board")[0] for s in (1, 4)] == on_board
    assert all(0.0 <= v <= 1.0 for v in on_board)
    assert "on the board, 4 steps" in res.to_markdown(value="on_board")


def test_run_ablation_refuses_an_image_dataset():
    with pytest.raises(ValueError, match="2D toys"):
        run_ablation(tiny(data="digits", model="dit-tiny"), {"g": {"a": {}}}, seeds=(0,))


def test_the_switch_table_turns_on_what_its_names_say():
    on = {
        name: TrainConfig(method="shortcut", **changes)
        for name, changes in SHORTCUT_SWITCHES.items()
    }
    off = on["plain"].method_args
    assert off == {
        "ot_pairing": False,
        "jump_sizes": "dyadic",
        "split_point": "midpoint",
        "target_ema_decay": None,
    }
    assert on["OT pairing"].method_args == {**off, "ot_pairing": True}
    assert on["step as a number"].method_args == off
    assert on["step as a number"].level_embedding == "sin_d"
    assert on["SplitMeanFlow split"].method_args == {
        **off,
        "jump_sizes": "continuous",
        "split_point": "uniform",
    }
    assert on["twin EMA 0.95"].method_args == {**off, "target_ema_decay": 0.95}
    assert on["EMA targets 0.999"].target_weights == "ema"
    every = on["all switches"].method_args
    assert every == {
        "ot_pairing": True,
        "jump_sizes": "continuous",
        "split_point": "uniform",
        "target_ema_decay": 0.95,
    }
    assert set(SWITCH_CONTROLS) < set(SHORTCUT_SWITCHES)


def test_run_switch_ablation_trains_the_named_variants_against_plain():
    res = run_switch_ablation(
        tiny(steps=3), seeds=(0,), steps=(1,), n_eval=32, variants=["OT pairing"]
    )
    assert res.groups == {"switch": ["plain", "OT pairing"]} and res.n_runs == 2
    with pytest.raises(ValueError, match=r"unknown switch variant\(s\) \['OT'\]"):
        run_switch_ablation(tiny(), seeds=(0,), variants=["OT"])
    with pytest.raises(ValueError, match="belong to the shortcut objective"):
        run_switch_ablation(tiny(method="flow_matching"), seeds=(0,))
