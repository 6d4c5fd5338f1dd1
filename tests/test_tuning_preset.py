"""The ``tuning`` preset: MeanFlow at its named settings and shortcut at three self-consistency
fractions, each a row of the table1 budget, run by the ordinary reproduction runner."""

from shortcut_mini.objectives import MEANFLOW_SETTINGS
from shortcut_mini.reproduce import PRESETS, load_records, run_config, run_preset


def test_rows_are_the_published_settings_and_shortcut_fractions_at_the_table1_budget():
    configs = {name: run_config("tuning", name, 0, None) for name in PRESETS["tuning"]["methods"]}
    assert len(configs) == 6
    table1 = run_config("table1", "shortcut", 0, None)
    for cfg in configs.values():
        assert (cfg.data, cfg.model, cfg.steps, cfg.batch_size, cfg.seed) == (
            table1.data,
            table1.model,
            table1.steps,
            table1.batch_size,
            0,
        )
        assert cfg.compile and cfg.compile_mode == "reduce-overhead"
    settings = {
        name.removeprefix("meanflow_"): dict(
            meanflow_ratio=c.method_args["meanflow_ratio"],
            meanflow_t_mean=c.method_args["meanflow_t_mean"],
            meanflow_t_std=c.method_args["meanflow_t_std"],
            meanflow_norm_p=c.method_args["meanflow_norm_p"],
            meanflow_norm_eps=c.method_args["meanflow_norm_eps"],
        )
        for name, c in configs.items()
        if c.method == "meanflow"
    }
    assert settings == MEANFLOW_SETTINGS  # the preset spells out the package's named settings
    assert all(
        c.level_embedding == "sin_d_unit" for c in configs.values() if c.method == "meanflow"
    )
    fractions = sorted(c.bootstrap_fraction for c in configs.values() if c.method == "shortcut")
    assert fractions == [0.125, 0.25, 0.5]


def test_two_rows_run_record_and_are_skipped_when_finished(tmp_path):
    tiny = dict(data="digits", model="dit-tiny", model_overrides={"depth": 1}, steps=4,
                batch_size=16, device="cpu", precision="fp32", compile=False, ckpt_every=2,
                log_every=2)  # fmt: skip
    how = dict(out=tmp_path, engine="python", progress=False, log=lambda s: 0)
    rows = ["meanflow_cifar10", "shortcut_k1_2"]
    first = run_preset("tuning", methods=rows, overrides=tiny, eval_overrides={"n": 16}, **how)
    assert [o.status for o in first.outcomes] == ["done", "done"]
    records = {r["method"]: r for r in load_records(tmp_path)[0]}
    assert set(records) == set(rows)
    assert records["meanflow_cifar10"]["config"]["method"] == "meanflow"
    assert records["meanflow_cifar10"]["config"]["method_args"]["meanflow_ratio"] == 0.75
    assert records["shortcut_k1_2"]["config"]["bootstrap_fraction"] == 0.5
    again = run_preset("tuning", methods=rows, overrides=tiny, eval_overrides={"n": 16}, **how)
    assert [o.status for o in again.outcomes] == ["skipped", "skipped"]
