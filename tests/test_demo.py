"""The 2D demo reports the numbers of `evaluate` (the protocol's held-out points and SWD)."""

import json

import pytest

from shortcut_mini import load_run
from shortcut_mini.demo import BUDGETS, METHODS, run_demo
from shortcut_mini.evaluate import evaluate, reference_for

N_EVAL = 128
SEED = 2


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return out, run_demo(out, steps=10, seed=SEED, n_eval=N_EVAL)


def test_demo_reports_the_numbers_of_evaluate(demo):
    out, results = demo
    for method in METHODS:
        run = load_run(out / method)
        table = evaluate(run, steps=BUDGETS, n=N_EVAL, seeds=(SEED + 1,), progress=False)
        assert [results[method][n] for n in BUDGETS] == pytest.approx(table.column("distance"))


def test_demo_measures_against_the_protocols_held_out_points(demo):
    out, _ = demo
    run = load_run(out / "shortcut")
    ref = reference_for(run, n=N_EVAL)
    assert "test seed of training seed 2" in ref.description
    assert ref.description in (out / "table.md").read_text()


def test_demo_writes_its_table_and_figure(demo):
    out, results = demo
    written = json.loads((out / "table.json").read_text())
    assert set(written) == set(METHODS)
    for method in METHODS:
        assert written[method]["1"] == pytest.approx(results[method][1])
        assert written[method]["train_seconds"] > 0
    rows = [line for line in (out / "table.md").read_text().splitlines() if line[:2] == "| "]
    assert [row.split(" | ")[0] for row in rows] == ["| method", *(f"| {m}" for m in METHODS)]
    assert (out / "samples.png").stat().st_size > 0
