"""The chapter cost records: FLOP counting (scripts/flop_count.py), timing one chapter at a time
(scripts/time_chapters.py) and the setup page's tables (scripts/chapter_costs.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import chapter_costs  # noqa: E402
import flop_count  # noqa: E402
import time_chapters  # noqa: E402

from shortcut_mini import TrainConfig  # noqa: E402
from shortcut_mini.models import build_model  # noqa: E402
from shortcut_mini.profiles import PROFILES, settings  # noqa: E402

FLOPS = json.loads(chapter_costs.FLOPS.read_text()) if chapter_costs.FLOPS.exists() else {}


def test_counted_counts_a_matrix_product():
    layer = torch.nn.Linear(64, 32, bias=False)
    _, flops, ops = flop_count.counted(lambda: layer(torch.randn(8, 64)))
    assert flops == 2 * 8 * 64 * 32 and ops >= 1


def test_one_training_step_costs_about_three_forward_passes(tmp_path):
    """Flow matching's step: forward, backward (2x the forward) over the batch; the per-step
    count is the difference of a 4-step and a 2-step run, so setup does not enter it."""
    cfg = TrainConfig(data="checkerboard", model="mlp-small", method="flow_matching",
                      steps=4, batch_size=64, n_data=512)  # fmt: skip
    m = flop_count.Counter(tmp_path).measure(cfg)
    net = build_model("mlp-small", sample_shape=(2,), M=cfg.M)
    x, t = torch.randn(64, 2), torch.rand(64)
    level = torch.zeros(64, dtype=torch.long)
    _, forward, _ = flop_count.counted(lambda: net(x, t, level))
    assert 2.5 * forward <= m["step_flops"] <= 3.1 * forward  # (no input gradient at layer 1)
    assert m["sample_step_flops"] == pytest.approx(forward / 64 * flop_count.SAMPLE_BATCH, rel=0.01)
    assert m["step_ops"] > 0 and m["setup_flops"] < 0.5 * m["step_flops"]


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_the_committed_counts_are_of_the_profiles_as_they_are(name):
    """A changed profile needs a new count: python scripts/flop_count.py."""
    for profile, work in FLOPS["chapters"][name].items():
        now = json.loads(json.dumps(vars(settings(name, profile))))
        assert work["settings"] == now, (name, profile, "rerun scripts/flop_count.py")


def test_each_gpu_profile_fits_its_budget_and_the_large_one_does_more_work():
    """small_gpu: the T4 budget (FLOPs and operators); gpu: the H200 budget (operators at the
    rate measured there); gpu does at least small_gpu's FLOPs (a larger batch, fewer steps)."""
    budget, gpu_budget = FLOPS["budget"], FLOPS["gpu_budget"]
    for name, by_profile in FLOPS["chapters"].items():
        small, large = by_profile["small_gpu"], by_profile["gpu"]
        assert small["flops"] <= budget["flops"] and small["ops"] <= budget["ops"], name
        assert large["modelled_h200_s"] <= gpu_budget["chapter_seconds"], name
        assert small["flops"] <= large["flops"], name


def test_the_h200_model_is_the_measured_rate_times_the_counted_operators():
    fixed = flop_count.H200_FIXED_SECONDS
    seconds, ops = flop_count.MEASURED_H200["01_flow_matching_2d"]
    assert flop_count.h200_seconds_per_op("01_flow_matching_2d") == (seconds - fixed) / ops
    training = [c for c, (_, n) in flop_count.MEASURED_H200.items() if n >= 1_000_000]
    largest = max(flop_count.h200_seconds_per_op(c) for c in training)
    assert flop_count.h200_seconds_per_op("99_a_new_chapter") == largest
    assert largest < flop_count.h200_seconds_per_op("07_reproducing_the_paper")  # not chapter 7's
    work = {"ops": 1_000_000}
    assert flop_count.modelled_h200_seconds(work, "99_a_new_chapter") == pytest.approx(
        fixed + 1e6 * largest
    )
    for name, by_profile in FLOPS["chapters"].items():
        for work in by_profile.values():
            modelled = flop_count.modelled_h200_seconds(work, name)
            assert work["modelled_h200_s"] == pytest.approx(modelled, abs=0.05), name


def _measured(profile: str) -> dict[str, float]:
    times = json.loads(chapter_costs.TIMES.read_text())
    return {r["chapter"]: r["wall_time_s"] for r in times["runs"]
            if r["profile"] == profile and r["error"] is None}  # fmt: skip


def test_the_models_rates_are_the_committed_times_of_each_chapter_alone():
    """MEASURED_H200 is typed from book/results/chapter_times_gpu.json: a new time there (or a
    typo here) must show; for the sizes measured, the model gives the measured time."""
    measured = _measured("gpu")
    assert measured["04_inside_the_dit"] == flop_count.H200_FIXED_SECONDS
    for name, (seconds, ops) in flop_count.MEASURED_H200.items():
        assert seconds == measured[name], name
        assert flop_count.modelled_h200_seconds({"ops": ops}, name) == pytest.approx(seconds)
    assert set(measured) == {*flop_count.MEASURED_H200, "04_inside_the_dit"}


def test_the_operator_anchor_states_the_measured_small_gpu_rates():
    measured = _measured("small_gpu")
    fixed = measured.pop("04_inside_the_dit")
    rates = [(t - fixed) / FLOPS["chapters"][c]["small_gpu"]["ops"] * 1e6
             for c, t in measured.items()
             if FLOPS["chapters"][c]["small_gpu"]["ops"] >= flop_count.TRAINING_CHAPTERS_MIN_OPS]  # fmt: skip
    expected = f"{min(rates):.0f} to {max(rates):.0f} µs per counted operator"
    assert expected in flop_count.SMALL_GPU_ANCHOR and f"fixed {fixed:.0f} s" in (
        flop_count.SMALL_GPU_ANCHOR
    )
    assert FLOPS["budget"]["anchor"] == flop_count.SMALL_GPU_ANCHOR


def test_refit_rewrites_the_model_and_keeps_the_counts(tmp_path):
    path = tmp_path / "flops.json"
    work = {"flops": 5, "ops": 2_000_000, "modelled_h200_s": 1.0}
    path.write_text(json.dumps({"budget": {}, "chapters": {"03_shortcut_models": {"gpu": work}}}))
    assert flop_count.main(["--refit", "--out", str(path)]) == 0
    record = json.loads(path.read_text())
    (got,) = record["chapters"]["03_shortcut_models"].values()
    assert (got["flops"], got["ops"]) == (5, 2_000_000)
    rate = flop_count.h200_seconds_per_op("03_shortcut_models")
    assert got["modelled_h200_s"] == round(flop_count.H200_FIXED_SECONDS + 2e6 * rate, 1)
    assert record["gpu_budget"]["chapter_seconds"] == flop_count.H200_AIM_SECONDS
    assert "--refit" in record["refit"]["command"]


def test_the_setup_pages_tables_are_written_from_the_records():
    assert chapter_costs.main(["--check"]) == 0, "run python scripts/chapter_costs.py"
    text = chapter_costs.OUT.read_text()
    small = FLOPS["chapters"]["03_shortcut_models"]["small_gpu"]
    assert f"| `small_gpu` | 2 | {small['train_steps']:,} | {small['flops'] / 1e12:,.1f} |" in text


def _times(tmp_path, monkeypatch, results):
    """Run time_chapters.main with chapters that 'take' the given results, in order."""
    calls = []

    def fake_run(path, timeout, executed=None):
        calls.append(path.stem)
        return results.pop(0)

    monkeypatch.setattr(time_chapters, "run_chapter", fake_run)
    monkeypatch.setenv("SHORTCUT_MINI_PROFILE", "")  # main sets it; restored after the test
    return calls


def test_time_chapters_records_each_chapter_and_skips_finished_ones(tmp_path, monkeypatch):
    out = tmp_path / "times.json"
    out.write_text(json.dumps({"profile": "gpu", "chapters": []}))  # the older form: replaced
    chapters = ["01_flow_matching_2d", "04_inside_the_dit"]
    results = [{"wall_time_s": 10.0, "error": None}, {"wall_time_s": 3.0, "error": "Boom: x"}]
    calls = _times(tmp_path, monkeypatch, results)
    argv = ["--profiles", "ci", "--chapters", *chapters, "--out", str(out)]
    assert time_chapters.main(argv) == 1  # one failed
    record = json.loads(out.read_text())
    assert [(r["chapter"], r["error"]) for r in record["runs"]] == [
        ("01_flow_matching_2d", None),
        ("04_inside_the_dit", "Boom: x"),
    ]
    assert {"commit", "dirty", "device", "date", "command"} <= set(record["runs"][0])
    assert record["concurrency"].startswith("one chapter at a time")

    results.append({"wall_time_s": 4.0, "error": None})
    assert time_chapters.main(argv) == 0
    assert calls == [*chapters, "04_inside_the_dit"]  # the finished one is skipped
    record = json.loads(out.read_text())
    assert [(r["chapter"], r["wall_time_s"]) for r in record["runs"]] == [
        ("01_flow_matching_2d", 10.0),
        ("04_inside_the_dit", 4.0),
    ]


def test_time_chapters_records_the_commit_and_state_it_is_given(tmp_path, monkeypatch):
    """On a lent GPU the copy has no repository: the commit and its state come from the
    environment (benchmarks/chapter_times.sh passes them on)."""
    out = tmp_path / "times.json"
    _times(tmp_path, monkeypatch, [{"wall_time_s": 1.0, "error": None}])
    monkeypatch.setenv("SHORTCUT_MINI_COMMIT", "abc1234")
    monkeypatch.setenv("SHORTCUT_MINI_DIRTY", "0")
    argv = ["--profiles", "ci", "--chapters", "04_inside_the_dit", "--out", str(out)]
    assert time_chapters.main(argv) == 0
    (run,) = json.loads(out.read_text())["runs"]
    assert (run["commit"], run["dirty"]) == ("abc1234", False)


def test_time_chapters_refuses_an_unknown_chapter(tmp_path):
    with pytest.raises(SystemExit):
        time_chapters.main(["--chapters", "99_nothing", "--out", str(tmp_path / "t.json")])


def test_measured_times_render_one_column_per_profile():
    times = {
        "device": "NVIDIA H200",
        "torch": "2",
        "command": "python scripts/time_chapters.py --profiles gpu small_gpu --out x",
        "concurrency": time_chapters.ONE_AT_A_TIME,
        "runs": [
            {"profile": "gpu", "chapter": "01_flow_matching_2d", "wall_time_s": 125.0,
             "error": None},
            {"profile": "small_gpu", "chapter": "01_flow_matching_2d", "wall_time_s": 61.0,
             "error": None},
        ],
    }  # fmt: skip
    table, note = chapter_costs.times_table(times, ["01_flow_matching_2d", "04_inside_the_dit"])
    assert "| `small_gpu` on one NVIDIA H200 | `gpu` on one NVIDIA H200 |" in table
    assert "| 1 min 1 s | 2 min 5 s |" in table
    assert "| not measured | not measured |" in table and "one chapter at a time" in note


def test_the_note_names_each_gpu_profiles_slowest_chapter_against_the_aim():
    run = {"chapter": "09_since_the_paper", "error": None}
    times = {"device": "NVIDIA H200", "torch": "2", "command": "c", "concurrency": "one",
             "parts": "In two parts.",
             "runs": [{**run, "profile": "gpu", "wall_time_s": 200.0},
                      {**run, "profile": "small_gpu", "wall_time_s": 100.0},
                      {**run, "chapter": "01_flow_matching_2d", "profile": "gpu",
                       "wall_time_s": 50.0}]}  # fmt: skip
    _, note = chapter_costs.times_table(times, ["09_since_the_paper"])
    assert note.startswith("Measured on NVIDIA H200s,") and "In two parts." in note
    text = chapter_costs.slowest(times, FLOPS)
    assert "`small_gpu` the slowest chapter, 9, took 1 min 40 s on the H200 (not on the T4" in text
    assert "`gpu` the slowest chapter, 9, took 3 min 20 s, over the aim of 3 minutes" in text
    times["runs"][0]["wall_time_s"] = 179.0
    assert "took 2 min 59 s, within the aim" in chapter_costs.slowest(times, FLOPS)


def test_cpu_times_get_their_own_table_after_the_gpu_ones():
    gpu = {"device": "NVIDIA H200", "torch": "2", "command": "c", "concurrency": "one",
           "runs": [{"profile": "gpu", "chapter": "01_flow_matching_2d", "wall_time_s": 60.0,
                     "error": None}]}  # fmt: skip
    cpu = {**gpu, "device": "CPU (2 cores)",
           "runs": [{"profile": "cpu", "chapter": "01_flow_matching_2d", "wall_time_s": 394.2,
                     "error": None}]}  # fmt: skip
    page = chapter_costs.render(FLOPS, gpu, cpu)
    assert page.index("measured on a GPU") < page.index("measured on a CPU")
    assert "| `cpu` on one CPU (2 cores) |" in page and "| 6 min 34 s |" in page
    assert "book/results/chapter_times_cpu.json" in page
    assert "measured on a CPU" not in chapter_costs.render(FLOPS, gpu)


def test_run_chapter_keeps_the_executed_notebook_even_after_a_failing_cell(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("print(6 * 7)"),
        nbformat.v4.new_code_cell("raise ValueError('on purpose')"),
    ]
    path = tmp_path / "09_toy.ipynb"
    nbformat.write(nb, path)
    result = time_chapters.run_chapter(path, timeout=120, executed=tmp_path / "out")
    assert result["error"].startswith("CellExecutionError")
    ran = nbformat.read(tmp_path / "out" / "09_toy.ipynb", as_version=4)
    assert ran.cells[0].outputs[0]["text"] == "42\n"
    assert ran.cells[1].outputs[0]["ename"] == "ValueError"


def test_flop_count_merge_counts_one_chapter_and_keeps_the_others(tmp_path):
    out = tmp_path / "flops.json"
    kept = {"ci": {"flops": 1, "ops": 2}}
    out.write_text(
        json.dumps(
            {
                "command": "python scripts/flop_count.py",
                "commit": "abc1234",
                "wall_time_s": 100.0,
                "chapters": {"01_flow_matching_2d": kept, "04_inside_the_dit": {}},
            }
        )
    )
    argv = ["--chapters", "04_inside_the_dit", "--profiles", "ci", "--merge", "--out", str(out)]
    threads = torch.get_num_threads()
    assert flop_count.main(argv) == 0
    assert torch.get_num_threads() == threads  # the caller's setting is left as it was
    record = json.loads(out.read_text())
    assert list(record["chapters"]) == ["01_flow_matching_2d", "04_inside_the_dit"]
    assert record["chapters"]["01_flow_matching_2d"] == kept  # not recounted
    assert record["chapters"]["04_inside_the_dit"]["ci"]["train_runs"] == 0  # trains nothing
    assert (record["command"], record["commit"], record["wall_time_s"]) == (
        "python scripts/flop_count.py",
        "abc1234",
        100.0,
    )
    (merged,) = record["merged"]
    assert merged["chapters"] == ["04_inside_the_dit"] and "--merge" in merged["command"]
    assert merged["wall_time_s"] >= 0
