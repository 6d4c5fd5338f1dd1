"""benchmarks/tuning_sweep.py: the variants' configs at the table1 budget, and the whole sweep
end to end on the CPU at the size of the table1_smoke preset (two of its six variants)."""

import json
from pathlib import Path

import pytest

from shortcut_mini.objectives import MEANFLOW_SETTINGS
from shortcut_mini.reproduce.record import read_record

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def sweep(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import tuning_sweep

    return tuning_sweep


def test_variants_are_the_published_settings_and_shortcut_fractions_at_the_table1_budget(sweep):
    configs = {name: sweep.variant_config("table1", name) for name in sweep.VARIANTS}
    assert len(configs) == 6
    for cfg in configs.values():
        assert (cfg.data, cfg.model, cfg.steps, cfg.batch_size, cfg.seed) == (
            "fashion_mnist",
            "dit-mini",
            8000,
            256,
            0,
        )
        assert cfg.compile and cfg.compile_mode == "reduce-overhead"
    settings = {
        name: (c.meanflow_ratio, c.meanflow_norm_p, c.meanflow_norm_eps)
        for name, c in configs.items()
        if c.method == "meanflow"
    }
    assert settings == {
        "meanflow_imagenet": (0.25, 1.0, 0.01),
        "meanflow_between": tuple(MEANFLOW_SETTINGS["between"].values()),
        "meanflow_cifar10": (0.75, 0.75, 1e-3),
    }
    assert all(configs[n].level_embedding == "sin_d" for n in settings)
    fractions = sorted(c.bootstrap_fraction for c in configs.values() if c.method == "shortcut")
    assert fractions == [0.125, 0.25, 0.5]


def test_sweep_runs_records_and_summarises_end_to_end(sweep, tmp_path):
    names = ["meanflow_cifar10", "shortcut_k1_2"]
    args = ["--preset", "table1_smoke", "--out", str(tmp_path), "--variants", *names]
    doc = sweep.main(args)
    rows = {r["variant"]: r for r in doc["rows"]}
    assert set(rows) == set(sweep.VARIANTS) and doc["preset"] == "table1_smoke"
    for name in names:
        path = tmp_path / rows[name]["record"]
        record = read_record(path)  # validates against the schema
        method, fields = sweep.VARIANTS[name]
        assert record["config"]["method"] == method and record["command"].endswith(" ".join(args))
        assert all(record["config"][k] == v for k, v in fields.items())
        assert record["config"]["compile_mode"] == "reduce-overhead"
        assert sorted(rows[name]["values"]) == [1, 2, 4, 8, 16, 32, 64, 128]
        assert rows[name]["distance"].startswith("FD")
    assert all(rows[n]["record"] is None for n in set(sweep.VARIANTS) - set(names))
    assert json.loads((tmp_path / "sweep.json").read_text()) == json.loads(json.dumps(doc))
    table = (tmp_path / "sweep.md").read_text()
    assert (
        "| meanflow_cifar10 | meanflow_ratio=0.75, meanflow_norm_p=0.75, meanflow_norm_eps=0.001 |"
        in table
    )
    assert "| shortcut_k1_8 | bootstrap_fraction=0.125 | not run |" in table
    # a finished variant is not run again
    stamps = {n: (tmp_path / rows[n]["record"]).stat().st_mtime_ns for n in names}
    sweep.main(args)
    assert stamps == {n: (tmp_path / rows[n]["record"]).stat().st_mtime_ns for n in names}


def test_unknown_variant_is_refused(sweep):
    with pytest.raises(SystemExit):
        sweep.parse_args(["--variants", "meanflow_bigger"])
