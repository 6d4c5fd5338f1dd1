"""Step-budget sweeps (shortcut_mini.evaluate), their tables, plots and the CLI verb."""

import json
import math

import pytest
import torch

from shortcut_mini import TrainConfig, load_run, train
from shortcut_mini.cli import main
from shortcut_mini.evaluate import DEFAULT_STEPS, EvalTable, evaluate, reference_for
from shortcut_mini.metrics import FeatureStats, sliced_wasserstein
from shortcut_mini.plots import plot_quality_vs_steps, plot_sample_grid, save_figure

N_POINTS = 256


@pytest.fixture(scope="module")
def points_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("points_run")
    cfg = TrainConfig(
        data="checkerboard",
        model="mlp-small",
        steps=150,
        batch_size=256,
        lr=1e-3,
        n_data=4096,
        out_dir=str(out),
        log_every=0,
        ckpt_every=0,
        progress=False,
    )
    return train(cfg)


@pytest.fixture(scope="module")
def points_table(points_run):
    return evaluate(points_run, n=N_POINTS, seeds=(0, 1), progress=False)


@pytest.fixture(scope="module")
def digits_run():
    cfg = TrainConfig(
        data="digits",
        model="dit-tiny",
        steps=20,
        batch_size=32,
        lr=1e-3,
        class_conditional=True,
        log_every=0,
        ckpt_every=0,
        progress=False,
    )
    return train(cfg)


def _same(a, b):
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return a == b


def _rows_equal(r1, r2):
    assert len(r1) == len(r2)
    for a, b in zip(r1, r2):
        assert a.keys() == b.keys()
        for k in a:
            assert _same(a[k], b[k]), (k, a[k], b[k])


def test_sweep_reports_every_budget_and_seed_spread(points_table):
    t = points_table
    assert t.steps == list(DEFAULT_STEPS)
    assert t.metric == "SWD"
    for s in DEFAULT_STEPS:
        row = t[s]
        assert math.isfinite(row["distance"]) and row["distance"] > 0
        assert math.isfinite(row["distance_std"])
        per_seed = t.per_seed(s)
        assert sorted(per_seed) == [0, 1]
        assert row["distance"] == pytest.approx(sum(per_seed.values()) / 2)
        assert row["n_samples"] == N_POINTS and row["n_seeds"] == 2
        assert row["sample_seconds"] > 0 and row["samples_per_second"] > 0
    assert t.meta["n"] == N_POINTS and t.meta["seeds"] == [0, 1]
    with pytest.raises(KeyError):
        t[3]


def test_swd_at_128_steps_beats_noise(points_run, points_table):
    ref = reference_for(points_run, n=N_POINTS)
    noise = torch.randn(N_POINTS, 2, generator=torch.Generator().manual_seed(0))
    assert points_table[128]["distance"] < sliced_wasserstein(noise, ref.points)


def test_held_out_points_differ_from_training_points(points_run):
    from shortcut_mini.data import load_dataset

    train_pts = load_dataset("checkerboard", n=N_POINTS, seed=points_run.config.seed).x
    ref = reference_for(points_run, n=N_POINTS).points
    assert not torch.equal(train_pts, ref)


def test_csv_json_markdown_round_trip(points_table, tmp_path):
    points_table.to_csv(tmp_path / "t.csv")
    points_table.to_json(tmp_path / "t.json")
    _rows_equal(EvalTable.from_csv(tmp_path / "t.csv").rows, points_table.rows)
    back = EvalTable.from_json(tmp_path / "t.json")
    _rows_equal(back.rows, points_table.rows)
    assert back.meta["metric"] == "SWD" and back.meta["seeds"] == [0, 1]
    json.loads((tmp_path / "t.json").read_text())  # strict JSON (no NaN tokens)
    md = points_table.to_markdown()
    table_lines = [x for x in md.splitlines() if x.startswith("| ")]
    assert len(table_lines) == len(DEFAULT_STEPS) + 1  # header + one line per budget
    assert "seed 1" in md and "SWD" in md


def test_single_seed_std_is_nan_and_json_safe(points_run, tmp_path):
    t = evaluate(
        points_run,
        steps=(1, 2),
        n=64,
        reference=reference_for(points_run, n=64).points,
        progress=False,
    )
    assert t.steps == [1, 2] and math.isnan(t[1]["distance_std"])
    t.to_json(tmp_path / "t.json")
    assert "NaN" not in (tmp_path / "t.json").read_text()
    _rows_equal(EvalTable.from_json(tmp_path / "t.json").rows, t.rows)


def test_bad_arguments(points_run):
    with pytest.raises(ValueError, match="equal-sized"):
        evaluate(points_run, steps=(1,), n=100, reference=torch.zeros(50, 2), progress=False)
    with pytest.raises(ValueError, match="sliced Wasserstein"):
        evaluate(points_run, steps=(1,), n=64, features="inception", progress=False)


def test_image_sweep_classifier_features(digits_run, tmp_path):
    kw = {"cache_dir": tmp_path / "clf", "epochs": 1, "device": "cpu"}
    t = evaluate(
        digits_run,
        steps=(1, 2),
        n=200,
        seeds=(0, 1),
        feature_kwargs=kw,
        cache_dir=tmp_path / "ref",
        precision_recall=True,
        progress=False,
    )
    assert t.metric == "FD (classifier)" and t.meta["features"] == "classifier"
    assert t.steps == [1, 2]
    for s in (1, 2):
        assert math.isfinite(t[s]["distance"]) and t[s]["distance"] >= 0
        assert 0 <= t[s]["precision"] <= 1 and 0 <= t[s]["recall"] <= 1
        assert "test split" in t[s]["reference"]
    assert 0 <= t.meta["classifier_accuracy"] <= 1
    assert t.meta["class_labels"] == "match"
    # reference statistics: cached on disk and reused; equal to passing them explicitly
    t2 = evaluate(
        digits_run, steps=(1,), n=200, feature_kwargs=kw, cache_dir=tmp_path / "ref", progress=False
    )
    assert list((tmp_path / "ref").glob("refstats_digits_*.npz"))
    assert t2[1]["distance"] == pytest.approx(t[1]["distance_seed0"])
    stats = FeatureStats.load(next((tmp_path / "ref").glob("*.npz")))
    t3 = evaluate(digits_run, steps=(1,), n=200, feature_kwargs=kw, reference=stats, progress=False)
    t4 = evaluate(
        digits_run,
        steps=(1,),
        n=200,
        feature_kwargs=kw,
        cache_dir=tmp_path / "ref",
        class_labels="uniform",
        progress=False,
    )
    assert t3[1]["distance"] == pytest.approx(t4[1]["distance"])  # stats alone: uniform labels


def test_plots(points_table, points_run, digits_run, tmp_path):
    other = EvalTable(
        [dict(r, distance=r["distance"] * 2) for r in points_table.rows], dict(points_table.meta)
    )
    fig = plot_quality_vs_steps({"a": points_table, "b": other})
    ax = fig.axes[0]
    assert len(ax.containers) == 2  # one error-bar line per run
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b"]
    assert ax.get_xscale() == "log"
    assert save_figure(fig, tmp_path / "q.png").stat().st_size > 0

    ref = reference_for(points_run, n=256).points
    fig = plot_sample_grid(points_run, steps=(1, 2, 4), n=256, reference=ref)
    assert len(fig.axes) == 4  # data + one panel per budget
    assert [a.get_title() for a in fig.axes] == ["data", "1 step", "2 steps", "4 steps"]

    fig = plot_sample_grid(digits_run, steps=(1, 2), n=20, seed=7)
    assert len(fig.axes) == 2 and len(fig.axes[0].images) == 1
    # the title names the run's training seed, not the seed of the sampling noise
    cfg = digits_run.config
    assert fig._suptitle.get_text() == (
        f"{cfg.method.replace('_', ' ')}, {cfg.model}, training seed {cfg.seed}"
    )
    named = plot_sample_grid(digits_run, steps=(1,), n=4, name="shortcut_16k")
    assert named._suptitle.get_text() == f"shortcut_16k, {cfg.model}, training seed {cfg.seed}"


def test_cli_evaluate_writes_files(points_run, tmp_path, capsys):
    out = tmp_path / "eval"
    args = [
        "evaluate",
        points_run.out_dir,
        "--steps",
        "1",
        "2",
        "--n",
        "128",
        "--seeds",
        "0",
        "1",
        "--out",
        str(out),
        "--no-progress",
        "--device",
        "cpu",
    ]
    assert main(args) == 0
    for name in ("table.csv", "table.json", "table.md", "quality_vs_steps.png"):
        assert (out / name).stat().st_size > 0, name
    t = EvalTable.from_json(out / "table.json")
    assert t.steps == [1, 2] and t.meta["command"].startswith("shortcut-mini evaluate")
    assert "SWD" in capsys.readouterr().out
    # the loaded run gives the same numbers as the in-memory one
    t_mem = evaluate(
        load_run(points_run.out_dir), steps=(1, 2), n=128, seeds=(0, 1), progress=False
    )
    assert t_mem[2]["distance"] == pytest.approx(t[2]["distance"])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"batch_size": -8}, "batch_size must be a positive integer"),
        ({"batch_size": True}, "batch_size must be a positive integer"),
        ({"n": 1}, r"n \(samples per seed and budget\) must be an integer >= 2"),
        ({"n": 64.0}, r"n \(samples per seed and budget\) must be an integer >= 2"),
        ({"steps": 4}, r"steps \(the step budgets\) must be a non-empty sequence.*got 4$"),
        ({"steps": ()}, r"steps \(the step budgets\) must be a non-empty sequence"),
        ({"steps": (1, 2.5)}, r"steps \(the step budgets\) must be a non-empty sequence"),
        ({"steps": (0,)}, "choose 1 <= steps <= M=128"),
        ({"steps": (256,)}, "choose 1 <= steps <= M=128"),
        ({"seeds": 0}, r"seeds \(one sampling seed per repetition\) must be a non-empty"),
        ({"seeds": (1, 1)}, "seeds must be distinct"),
        ({"cfg_scale": float("nan")}, "cfg_scale must be a finite number"),
        ({"class_labels": "matched"}, "class_labels must be 'match', 'uniform' or 'null'"),
    ],
)
def test_bad_arguments_are_refused_before_any_sampling(points_run, monkeypatch, kwargs, message):
    import importlib

    ev = importlib.import_module("shortcut_mini.evaluate")  # the module, not the function

    def no_sampling(*args, **kw):
        raise AssertionError("evaluate sampled before checking its arguments")

    monkeypatch.setattr(ev, "sample", no_sampling)
    with pytest.raises(ValueError, match=message):
        evaluate(points_run, **{"n": 64, "progress": False, **kwargs})


def test_sweep_with_a_given_metric_matches_evaluate(points_run):
    from shortcut_mini.evaluate import swd_metric, sweep

    table = evaluate(points_run, steps=(1, 4), n=64, seeds=(5,), progress=False)
    rows = sweep(points_run, swd_metric(reference_for(points_run, n=64)), [1, 4], [5])
    assert [row["distance"] for row in rows] == table.column("distance")
    coarse = sweep(
        points_run, swd_metric(reference_for(points_run, n=64), n_directions=8), [1], [5]
    )
    assert coarse[0]["distance"] != rows[0]["distance"]  # the directions are the metric's


def test_checkerboard_rows_report_the_fraction_on_the_board(points_run, points_table):
    """Beside SWD, the fraction of the same samples on the board's filled squares: the noise
    seed's samples of ``sample``, scored by ``toy2d_on_board``, and shown in the markdown table."""
    from shortcut_mini import sample
    from shortcut_mini.metrics import toy2d_on_board

    for steps in (1, 128):
        row = points_table[steps]
        per_seed = [
            toy2d_on_board(sample(points_run, N_POINTS, steps=steps, seed=s)) for s in (0, 1)
        ]
        assert row["on_board"] == pytest.approx(sum(per_seed) / 2)
    assert "on the board" in points_table.to_markdown()
