"""The reproduction tooling: record schema, papermill batch runner, resume, failures, aggregate,
publish. Runs the ``smoke`` preset (digits, a 1-block dit-tiny, 10 steps) on the CPU."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch.distributed as dist

from shortcut_mini import ConfigError
from shortcut_mini.cli import main as cli_main
from shortcut_mini.levels import DEFAULT_BUDGETS
from shortcut_mini.objectives import OBJECTIVES
from shortcut_mini.reproduce import (
    PRESETS,
    TABLE1_METHODS,
    RecordError,
    aggregate,
    load_records,
    publish,
    run_preset,
    validate_record,
)
from shortcut_mini.reproduce.aggregate import to_markdown
from shortcut_mini.reproduce.one_run import LAUNCH_CONFIG, LAUNCH_LOG, run_paths
from shortcut_mini.reproduce.presets import eval_settings, run_config, run_name
from shortcut_mini.reproduce.publish import README_END, README_START
from shortcut_mini.reproduce.record import git_dirty, record_stem
from shortcut_mini.run_store import CHECKPOINT_NAME

BUDGETS = list(DEFAULT_BUDGETS)


def good_record() -> dict:
    return {
        "schema_version": 1,
        "preset": "smoke",
        "method": "shortcut",
        "seed": 0,
        "config": {
            "data": "digits",
            "method": "shortcut",
            "model": "dit-tiny",
            "steps": 10,
            "batch_size": 32,
            "seed": 0,
            "lr": 1e-3,
        },
        "train_steps": 10,
        "evaluation": [
            {
                "steps": s,
                "distance": "FD (classifier)",
                "value": 100.0 / s,
                "std": None,
                "n_samples": 64,
                "n_seeds": 1,
                "reference": "digits test split",
                "sampling_seconds": 0.01 * s,
            }
            for s in BUDGETS
        ],
        "train_seconds": 1.5,
        "eval_seconds": 3.0,
        "device": {"name": "cpu", "count": 1},
        "versions": {"torch": "2.4.0", "python": "3.11.0", "shortcut_mini": "0.1.0"},
        "git": {"commit": "0123abc", "dirty": False},
        "command": "shortcut-mini reproduce smoke",
        "created": "2025-01-01T00:00:00+00:00",
        "sample_grid": "shortcut_seed0.png",
    }


def _broken(edit):
    rec = copy.deepcopy(good_record())
    edit(rec)
    return rec


BAD = {
    "missing git": lambda r: r.pop("git"),
    "schema version": lambda r: r.update(schema_version=2),
    "no budgets": lambda r: r.update(evaluation=[]),
    "budget lacks n": lambda r: r["evaluation"][0].pop("n_samples"),
    "negative distance": lambda r: r["evaluation"][0].update(value=-1.0),
    "NaN distance": lambda r: r["evaluation"][0].update(value=math.nan),
    "steps as string": lambda r: r["evaluation"][0].update(steps="1"),
    "device count 0": lambda r: r["device"].update(count=0),
    "dirty as string": lambda r: r["git"].update(dirty="yes"),
    "seed as bool": lambda r: r.update(seed=True),
    "config lacks lr": lambda r: r["config"].pop("lr"),
    "world size 0": lambda r: r.update(world_size=0),
    "world size as string": lambda r: r.update(world_size="2"),
    "negative train images": lambda r: r.update(train_images=-1),
    "teacher without its run": lambda r: r.update(teacher={"images": 5}),
    "teacher images as string": lambda r: r.update(teacher_images="5"),
    "missing budget without why": lambda r: r.update(missing_budgets=[{"steps": 3}]),
}


@pytest.mark.parametrize("backend", ["builtin", "jsonschema"])
def test_schema_accepts_good_and_rejects_bad(backend):
    if backend == "jsonschema":
        pytest.importorskip("jsonschema")
    validate_record(good_record(), backend=backend)
    assert "world_size" not in good_record()  # records older than the field stay valid
    validate_record({**good_record(), "world_size": 2}, backend=backend)
    two_stage = {  # a student's record: its images, its teacher's, a budget it cannot sample
        "train_images": 320,
        "teacher": {"run": "flow_matching_seed0", "images": 320, "seed": 0},
        "teacher_images": 320,
        "missing_budgets": [{"steps": 3, "reason": "no student for 3 steps"}],
    }
    validate_record({**good_record(), **two_stage}, backend=backend)
    for name, edit in BAD.items():
        with pytest.raises(RecordError):
            validate_record(_broken(edit), backend=backend)
            pytest.fail(f"accepted a bad record: {name}")


def test_presets_are_complete():
    for name, p in PRESETS.items():
        assert set(p) >= {"config", "methods", "seeds", "eval", "grid", "description", "cost"}, name
        assert list(p["eval"]["steps"]) == BUDGETS, name
    assert {"smoke", "fashion_mnist", "mnist", "cifar10", "celeba64"} <= set(PRESETS)


def test_preset_table_with_and_without_its_cost_notes():
    from shortcut_mini.reproduce import preset_table

    for cost in (True, False):
        lines = preset_table(cost=cost).splitlines()
        assert len(lines) == len(PRESETS) + 2
        assert {line.count("|") for line in lines} == {10 if cost else 9}, lines[:3]
        assert ("cost" in lines[0]) == cost
    assert PRESETS["celebahq256"]["cost"] in preset_table()
    assert PRESETS["celebahq256"]["cost"] not in preset_table(cost=False)


def test_latent_presets_quote_the_recorded_dit_b_rate_and_its_hours():
    """The cost notes of the latent presets quote the trainer's compiled DiT-B/2 shortcut step
    from ``benchmarks/results/speed.json``; the rate and the hours derived from it must be the
    record's, so a new record cannot leave them behind."""
    import re
    from pathlib import Path

    record = Path(__file__).resolve().parent.parent / "benchmarks" / "results" / "speed.json"
    rows = [
        r
        for r in json.loads(record.read_text())["train"]
        if (r["model"], r["method"], r["impl"]) == ("dit-b", "shortcut", "project")
        and r["compile_mode"] == "default"
        and r["variant"] is None
    ]
    assert len(rows) == 1, rows
    rate = rows[0]["img_per_s"]
    for name in ("celebahq256", "imagenet256"):
        cost, config = PRESETS[name]["cost"], PRESETS[name]["config"]
        assert f"{rate:,.0f} img/s" in cost, (name, rate)
        quoted = re.search(r"about ([0-9.]+) h", cost).group(1)
        hours = config["steps"] * config["batch_size"] / rate / 3600
        assert round(hours, len(quoted.partition(".")[2])) == float(quoted), (name, hours)


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """One smoke batch (2 methods x 1 seed) through papermill, shared by the tests below."""
    pytest.importorskip("papermill")
    out = tmp_path_factory.mktemp("smoke")
    mp = pytest.MonkeyPatch()
    mp.setenv("OMP_NUM_THREADS", "1")  # the kernels inherit it; avoids oversubscribing the CPU
    try:
        result = run_preset("smoke", out=out, progress=False, command="pytest", log=lambda s: None)
    finally:
        mp.undo()
    return out, result


def test_batch_writes_notebooks_and_valid_records(batch):
    out, result = batch
    assert result.ok, [o.error for o in result.failed]
    assert [o.status for o in result.outcomes] == ["done", "done"]
    for method in ("flow_matching", "shortcut"):
        nb = json.loads((out / f"{method}_seed0.ipynb").read_text())
        assert nb["metadata"]["papermill"]["parameters"]["method"] == method
        rec = json.loads((out / f"{method}_seed0.json").read_text())
        validate_record(rec)
        assert [e["steps"] for e in rec["evaluation"]] == BUDGETS
        assert rec["command"] == "pytest" and rec["train_steps"] == 10
        assert (out / rec["sample_grid"]).exists()
        assert (out / "runs" / f"{method}_seed0" / "checkpoint.pt").exists()
    for name in ("summary.md", "summary.csv", "quality_vs_steps.png"):
        assert (out / name).exists()


def test_rerun_skips_finished_runs(batch):
    out, _ = batch
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*_seed0.*")}
    again = run_preset("smoke", out=out, progress=False, log=lambda s: None)
    assert [o.status for o in again.outcomes] == ["skipped", "skipped"]
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*_seed0.*")} == before


def test_rerun_with_other_settings_does_not_take_a_finished_record_for_it(batch):
    """A finished record stands for a run only if it was made with the settings asked now: a
    batch run again with another setting into the same folder says which record differs and
    how, and leaves it as it is."""
    out, _ = batch
    before = (out / "shortcut_seed0.json").read_bytes()
    again = run_preset(
        "smoke",
        methods=["shortcut"],
        out=out,
        overrides={"bootstrap_fraction": "0.5"},
        progress=False,
        log=lambda s: None,
    )
    [outcome] = again.outcomes
    assert outcome.status == "failed" and not outcome.retryable
    assert "bootstrap_fraction: 0.25 recorded, 0.5 asked" in outcome.error
    assert "another --out" in outcome.error
    assert (out / "shortcut_seed0.json").read_bytes() == before


def test_failed_run_is_reported_and_loses_nothing(batch, capsys):
    """A run that fails only once it runs (its data folder is missing) is reported, the batch
    goes on, and nothing finished is lost."""
    out, _ = batch
    before = (out / "shortcut_seed0.json").read_bytes()
    code = cli_main(
        [
            "reproduce",
            "smoke",
            "--methods",
            "shortcut",
            "--seeds",
            "0",
            "1",
            "--set",
            "data=image_folder:/no/such/folder",
            "--set",
            "image_size=8",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert code != 0
    err = capsys.readouterr()
    text = err.out + err.err
    # seed 0's record was made on other data: it is kept, and not taken for the run asked
    assert "shortcut seed 0: not run: its record" in text
    assert "data: 'digits' recorded, 'image_folder:/no/such/folder' asked" in text
    assert "shortcut seed 1: FAILED" in text and "/no/such/folder" in text
    assert "Rerun the same command" not in text  # a missing folder needs a fix first
    assert (out / "shortcut_seed0.json").read_bytes() == before
    assert (out / "shortcut_seed1.ipynb").exists()  # the executed notebook shows the error
    assert not (out / "shortcut_seed1.json").exists()
    records, _ = load_records(out)
    assert {(r["method"], r["seed"]) for r in records} == {("flow_matching", 0), ("shortcut", 0)}


@pytest.mark.parametrize(
    "flags, named",
    [
        (["--eval-set", "n=0"], "evaluation setting n=0 must be an integer >= 1"),
        (["--eval-set", "steps=1,256"], "goes above M=128"),
        (["--eval-set", "metric=fid"], "metric='fid' is unknown"),
        (["--eval-set", "nn=5"], "unknown evaluation setting(s) ['nn']"),
        (["--methods", "shortcut", "no_such_method"], "unknown method(s) ['no_such_method']"),
        (["--set", "lr=abc"], "TrainConfig.lr: 'abc' is not a number"),
        (["--set", "n_data=0"], "TrainConfig.n_data: must be a positive integer"),
        (["--set", "nosuch=1"], "unknown field(s) ['nosuch']"),
    ],
)
def test_bad_settings_stop_the_batch_before_any_run(tmp_path, capsys, flags, named):
    """Every run's settings are checked before the first trains (issue: with --eval-set n=0
    both runs trained fully, then failed), and a config error is not "rerun the same command"."""
    out = tmp_path / "batch"
    code = cli_main(["reproduce", "smoke", *flags, "--out", str(out), "--no-progress"])
    err = capsys.readouterr()
    assert code == 2
    assert named in err.err and "nothing was run" in err.err
    assert "Traceback" not in err.err + err.out and "Rerun" not in err.err + err.out
    assert not out.exists()
    with pytest.raises(ConfigError, match="nothing was run"):
        run_preset(
            "smoke",
            out=out,
            progress=False,
            log=lambda s: None,
            methods=flags[1:] if flags[0] == "--methods" else None,
            overrides=dict([flags[1].split("=", 1)]) if flags[0] == "--set" else None,
            eval_overrides=dict([flags[1].split("=", 1)]) if flags[0] == "--eval-set" else None,
        )


def test_set_values_are_read_as_the_field_types():
    """``--set`` and config files share TrainConfig's parser: text becomes the field's type."""
    cfg = run_config(
        "smoke", "shortcut", 0, None, {"lr": "1e-3", "betas": "[0.8, 0.9]", "clip": "none"}
    )
    assert cfg.lr == 1e-3 and cfg.betas == (0.8, 0.9) and cfg.clip is None
    assert eval_settings("smoke", {"steps": "1,4", "n": "16"}) == {
        **eval_settings("smoke"),
        "steps": [1, 4],
        "n": 16,
    }


def test_aggregate_has_every_budget(batch):
    out, _ = batch
    records, problems = load_records(out)
    assert not problems
    summary = aggregate(records)
    assert summary.steps == BUDGETS and summary.methods == ["flow_matching", "shortcut"]
    md = to_markdown(summary)
    header = next(line for line in md.splitlines() if line.startswith("| method"))
    assert all(f"| {s} step" in header for s in BUDGETS)
    csv_rows = (out / "summary.csv").read_text().strip().splitlines()
    assert len(csv_rows) == 1 + 2 * len(BUDGETS)


def test_publish_into_a_tmp_book(batch, tmp_path):
    out, _ = batch
    book = tmp_path / "book" / "results"
    book.mkdir(parents=True)
    readme = tmp_path / "README.md"
    readme.write_text(
        f"# x\n\n## Results\n\n{README_START}\nOLD-TABLE\n{README_END}\n\n## License\n"
    )
    dest = publish(out, "smoke", book_results=book, readme=readme)
    assert sorted(p.name for p in dest.glob("*.json")) == [
        "flow_matching_seed0.json",
        "shortcut_seed0.json",
    ]
    assert (dest / "quality_vs_steps.png").exists() and (dest / "summary.md").exists()
    page = (book / "summary.md").read_text()
    assert "### `smoke`" in page and "results/smoke/quality_vs_steps.png" in page
    text = readme.read_text()
    assert (
        "OLD-TABLE" not in text and "| shortcut (1 seed)" in text and text.endswith("## License\n")
    )


def test_python_engine_and_dry_run(tmp_path):
    log = []
    plan = run_preset("smoke", out=tmp_path, dry_run=True, progress=False, log=log.append)
    assert [o.status for o in plan.outcomes] == ["planned", "planned"]
    assert not list(tmp_path.iterdir())
    res = run_preset(
        "smoke",
        methods=["shortcut"],
        out=tmp_path,
        engine="python",
        progress=False,
        eval_overrides={"steps": [1, 128], "n": 16},
        log=log.append,
    )
    assert res.ok
    rec = json.loads((tmp_path / "shortcut_seed0.json").read_text())
    assert [e["steps"] for e in rec["evaluation"]] == [1, 128]


def test_aggregate_keeps_world_sizes_apart():
    one, two = good_record(), {**good_record(), "seed": 1, "world_size": 2}
    two["device"] = {"name": "cpu", "count": 2}
    two["evaluation"] = [{**e, "value": 2 * e["value"]} for e in two["evaluation"]]
    summary = aggregate([one, {**one, "world_size": 1, "seed": 2}, two])
    assert summary.rows["shortcut"][1] == (100.0, 0.0, 2)  # records without the field: 1 GPU
    assert summary.rows["shortcut, 2 GPUs"][1] == (200.0, pytest.approx(math.nan, nan_ok=True), 1)
    md = to_markdown(summary)
    assert "device cpu x1, cpu x2" in md and "| shortcut, 2 GPUs (1 seed) | 200 |" in md


def test_aggregate_refuses_a_row_of_two_settings():
    """Seeds of one row must share what they trained (a mean of 1/4 and 1/2 describes neither);
    where and how each ran (its seed, folder, compile mode) may differ."""
    base = good_record()
    same = {
        **base,
        "seed": 1,
        "config": {
            **base["config"],
            "seed": 1,
            "out_dir": "elsewhere",
            "compile_mode": "reduce-overhead",
        },
    }
    assert aggregate([base, same]).rows["shortcut"][1][2] == 2
    other = {**base, "seed": 1, "config": {**base["config"], "seed": 1, "bootstrap_fraction": 0.5}}
    with pytest.raises(ValueError, match=r"seeds 0 and 1 .*bootstrap_fraction=.* / 0.5"):
        aggregate([base, other])
    apart = {**other, "world_size": 2}  # another row: a 2-GPU run may use other settings
    assert set(aggregate([base, apart]).rows) == {"shortcut", "shortcut, 2 GPUs"}


def test_run_names_carry_the_gpu_count():
    assert run_name("shortcut", 3) == "shortcut_seed3"
    assert run_name("shortcut", 3, world_size=2) == "shortcut_seed3_x2"
    assert record_stem({**good_record(), "world_size": 4}) == "shortcut_seed0_x4"
    assert run_paths("b", "shortcut", 0, nproc=2).record.name == "shortcut_seed0_x2.json"


def test_publish_keeps_batches_of_other_gpu_counts(tmp_path):
    """A 2-GPU batch joins the published 1-GPU records; republishing 1 GPU replaces only those."""
    one_gpu, two_gpu, book = tmp_path / "one", tmp_path / "two", tmp_path / "results"
    for folder, ws, value in ((one_gpu, 1, 1.0), (two_gpu, 2, 2.0)):
        folder.mkdir()
        for method in ("flow_matching", "shortcut"):
            rec = {**good_record(), "method": method, "world_size": ws}
            rec["config"] = {**rec["config"], "method": method}
            rec["evaluation"] = [{**e, "value": value} for e in rec["evaluation"]]
            rec["sample_grid"] = f"{method}_seed0.png"  # the batch folder's own name
            (folder / f"{method}_seed0.json").write_text(json.dumps(rec))
            (folder / rec["sample_grid"]).write_bytes(b"png")
    publish(one_gpu, "smoke", book_results=book, readme=None)
    dest = publish(two_gpu, "smoke", book_results=book, readme=None)
    names = sorted(p.name for p in dest.iterdir() if p.suffix in (".json", ".png"))
    expected = [
        f"{m}_seed0{x}{ext}"
        for m in ("flow_matching", "shortcut")
        for x in ("", "_x2")
        for ext in (".json", ".png")
    ]
    assert names == sorted([*expected, "quality_vs_steps.png"])
    page = (book / "summary.md").read_text()
    assert "| shortcut, 2 GPUs (1 seed) | 2.00 |" in page and "| shortcut (1 seed) | 1.00 |" in page
    assert "results/smoke/shortcut_seed0_x2.png" in page
    (one_gpu / "flow_matching_seed0.json").unlink()
    publish(one_gpu, "smoke", book_results=book, readme=None)
    assert not (dest / "flow_matching_seed0.json").exists()  # replaced by the new 1-GPU batch
    assert (dest / "flow_matching_seed0_x2.json").exists()  # another GPU count: kept


def test_dirty_flag_of_a_copy_without_its_repository(monkeypatch):
    monkeypatch.setenv("SHORTCUT_MINI_COMMIT", "abc123")
    monkeypatch.delenv("SHORTCUT_MINI_DIRTY", raising=False)
    assert git_dirty() is None  # git status of the copy says nothing about abc123
    monkeypatch.setenv("SHORTCUT_MINI_DIRTY", "0")
    assert git_dirty() is False
    monkeypatch.setenv("SHORTCUT_MINI_DIRTY", "1")
    assert git_dirty() is True


def test_nproc_must_be_positive(tmp_path, capsys):
    with pytest.raises(ValueError, match="nproc"):
        run_preset("smoke", out=tmp_path, nproc=0, progress=False, log=lambda s: None)
    with pytest.raises(SystemExit):
        cli_main(["reproduce", "smoke", "--nproc", "0", "--dry-run", "--out", str(tmp_path)])
    assert "--nproc: expected an integer >= 1" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


needs_gloo = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()), reason="needs torch.distributed gloo"
)


@pytest.fixture
def torchrun_env(monkeypatch):
    """The environment tests/test_distributed.py launches torchrun with (inherited by it)."""
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def _smoke_on_two_processes(out, **kwargs):
    """The smoke preset's shortcut run, trained in 2 gloo CPU processes (python engine)."""
    return run_preset(
        "smoke",
        methods=["shortcut"],
        out=out,
        engine="python",
        nproc=2,
        progress=False,
        log=lambda s: None,
        **kwargs,
    )


@pytest.mark.slow
@needs_gloo
def test_python_engine_trains_under_torchrun(tmp_path, torchrun_env):
    """``--nproc 2``: each run trains in 2 gloo CPU processes; rank 0 alone writes."""
    res = _smoke_on_two_processes(tmp_path, eval_overrides={"steps": [1, 128], "n": 16})
    assert res.ok, [o.error for o in res.failed]
    rec = json.loads((tmp_path / "shortcut_seed0_x2.json").read_text())
    validate_record(rec)
    assert rec["world_size"] == 2 and rec["device"]["count"] == 2
    assert rec["train_steps"] == rec["config"]["steps"] == PRESETS["smoke"]["config"]["steps"]
    run_dir = tmp_path / "runs" / "shortcut_seed0_x2"
    assert sorted(p.name for p in run_dir.iterdir()) == sorted(
        [CHECKPOINT_NAME, "metrics.jsonl", "config.json", LAUNCH_CONFIG, LAUNCH_LOG]
    )
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [5, 10]  # one writer: no row twice
    reports = [x for x in (run_dir / LAUNCH_LOG).read_text().splitlines() if x.startswith("{")]
    assert len(reports) == 1 and json.loads(reports[0])["step"] == 10  # rank 0 reports


@pytest.mark.slow
@needs_gloo
def test_failed_torchrun_launch_names_its_log(tmp_path, torchrun_env):
    # a batch not divisible by 2 processes: every rank refuses
    res = _smoke_on_two_processes(tmp_path, overrides={"batch_size": 33})
    [failed] = res.failed
    log = tmp_path / "runs" / "shortcut_seed0_x2" / LAUNCH_LOG
    first = failed.error.splitlines()[0]
    assert f"full output in {log}" in first and "not divisible by the 2 processes" in first
    assert not (tmp_path / "shortcut_seed0_x2.json").exists()


# ---- table1: every method, the two-stage ones taught by the batch's flow-matching run ----------

TWO_STAGE = tuple(m for m, cls in OBJECTIVES.items() if cls.needs_teacher)
# The issue's table: every method on seed 0, flow matching, shortcut and MeanFlow on seed 1 too,
# and the fairness row (seed 0).
TABLE1_RUNS = len(TABLE1_METHODS) + 3 + 1


FAIRNESS_ROW = "shortcut_16k"


class _Killed(Exception):
    """Stands for a kill of the batch process between two runs."""


def test_table1_preset_is_the_issue_s_table():
    from shortcut_mini.reproduce import method_seeds, objective_of, preset_runs

    spec = PRESETS["table1"]
    methods = [m for m in spec["methods"] if m != FAIRNESS_ROW]
    assert sorted(methods) == sorted(OBJECTIVES)  # every method, and the fairness row
    for method in methods:
        cfg = run_config("table1", method, 0, None, {"teacher": "t"} if method in TWO_STAGE else {})
        assert (cfg.data, cfg.model) == ("fashion_mnist", "dit-mini")
        assert cfg.steps * cfg.batch_size == 8_000 * 256  # the same training images per run
        assert cfg.compile and cfg.compile_mode == "reduce-overhead"
        assert cfg.level_embedding == ("sin_d_unit" if method == "meanflow" else "learned")
        wanted = 2 if method in ("flow_matching", "shortcut", "meanflow") else 1
        assert len(method_seeds("table1", method)) >= wanted, method
    assert list(spec["eval"]["steps"]) == BUDGETS and spec["eval"]["metric"] == "classifier"
    # the fairness row: a shortcut model on a student's teacher + own images, seed 0 only
    fair = run_config("table1", FAIRNESS_ROW, 0, None)
    assert objective_of("table1", FAIRNESS_ROW) == fair.method == "shortcut"
    assert fair.steps == 16_000 and method_seeds("table1", FAIRNESS_ROW) == [0]
    assert len(preset_runs("table1")) == TABLE1_RUNS
    assert PRESETS["table1_smoke"]["methods"] == spec["methods"]


def test_table1_plan_trains_each_teacher_first(tmp_path):
    from shortcut_mini.reproduce.teachers import order_runs, teacher_seed

    log = []
    plan = run_preset("table1", out=tmp_path, dry_run=True, progress=False, log=log.append)
    runs = [(o.method, o.seed) for o in plan.outcomes]
    assert len(runs) == TABLE1_RUNS and not list(tmp_path.iterdir())
    for method in TWO_STAGE:
        assert runs.index((method, 0)) > runs.index(("flow_matching", 0))
        line = next(x for x in log if f"] {method} seed 0:" in x)
        assert "teacher flow_matching seed 0" in line
    assert teacher_seed(1, [0, 1]) == 1 and teacher_seed(1, [0]) == 0
    taught = {("reflow", 1): ("flow_matching", 1)}
    runs = [("reflow", 1), ("flow_matching", 0), ("flow_matching", 1)]
    ordered = order_runs(runs, lambda method, seed: taught.get((method, seed)))
    assert ordered == [("flow_matching", 0), ("flow_matching", 1), ("reflow", 1)]


def test_a_missing_teacher_stops_the_batch_naming_it(tmp_path):
    with pytest.raises(ConfigError, match="nothing was run") as e:
        run_preset("table1_smoke", methods=["reflow"], out=tmp_path, progress=False)
    assert "flow_matching seed 0 run" in str(e.value)
    assert str(tmp_path / "runs" / "flow_matching_seed0") in str(e.value)
    assert "--methods flow_matching --seeds 0" in str(e.value)
    assert not list(tmp_path.iterdir())


def test_a_failed_teacher_fails_its_students_without_running_them(tmp_path):
    res = run_preset(
        "table1_smoke",
        methods=["flow_matching", "reflow"],
        seeds=[0],
        out=tmp_path,
        engine="python",
        overrides={"data": "image_folder:/no/such/folder", "image_size": 8},
        progress=False,
        log=lambda s: None,
    )
    teacher, student = res.outcomes
    assert teacher.status == student.status == "failed"
    assert "/no/such/folder" in teacher.error
    assert student.error.startswith("not run: its teacher, flow_matching seed 0, failed")
    assert not student.retryable  # the teacher's error needs a fix first


@pytest.fixture(scope="module")
def table1_batch(tmp_path_factory):
    """The ``table1_smoke`` batch (every method; 2 seeds for flow matching, shortcut and
    MeanFlow) on the python engine, killed before its 5th run, then run again to the end."""
    out = tmp_path_factory.mktemp("table1")

    def kill_at_fifth(line: str) -> None:
        if line.startswith(f"[5/{TABLE1_RUNS}]") and line.endswith("running"):
            raise _Killed(line)

    with pytest.raises(_Killed):
        run_preset("table1_smoke", out=out, engine="python", progress=False, log=kill_at_fifth)
    first = sorted(p.name for p in out.glob("*.json"))
    result = run_preset("table1_smoke", out=out, engine="python", progress=False, log=lambda s: 0)
    return out, first, result


def test_table1_killed_batch_resumes_skipping_finished_runs(table1_batch):
    out, first, result = table1_batch
    assert result.ok, [o.error for o in result.failed]
    statuses = [o.status for o in result.outcomes]
    assert statuses == ["skipped"] * 4 + ["done"] * (TABLE1_RUNS - 4)
    assert first == sorted(f"{run_name(o.method, o.seed)}.json" for o in result.outcomes[:4])


def test_table1_records_are_valid_and_students_use_the_teacher(table1_batch):
    from shortcut_mini.objectives.progressive_distillation import read_stage_index

    out, _, result = table1_batch
    records = {(r["method"], r["seed"]): r for r in load_records(out)[0]}
    assert set(records) == {(o.method, o.seed) for o in result.outcomes}
    assert len(records) == TABLE1_RUNS
    assert {m for m, _ in records} == set(PRESETS["table1"]["methods"])
    teacher_dir = out / "runs" / "flow_matching_seed0"
    teacher = records["flow_matching", 0]
    for (method, _), rec in records.items():
        validate_record(rec)
        assert [e["steps"] for e in rec["evaluation"]] == BUDGETS and not rec["missing_budgets"]
        own = 16 if method == FAIRNESS_ROW else 8  # the fairness row trains twice as long
        assert rec["train_images"] == own * 16 and (out / rec["sample_grid"]).exists()
        assert rec["config"]["method"] == ("shortcut" if method == FAIRNESS_ROW else method)
        if method in TWO_STAGE:
            assert rec["config"]["teacher"] == str(teacher_dir)
            assert rec["teacher"]["run"] == "flow_matching_seed0"
            assert rec["teacher_images"] == teacher["train_images"]
        else:
            assert rec["teacher"] is None and rec["teacher_images"] is None
    index = read_stage_index(out / "runs" / "progressive_distillation_seed0")
    assert index[128]["file"] == str(teacher_dir)  # the teacher samples the full budget
    assert sorted(index) == BUDGETS


def test_table1_aggregate_has_every_method_and_the_image_columns(table1_batch):
    out, _, _ = table1_batch
    md = (out / "summary.md").read_text()
    lines = md.splitlines()
    header = next(x for x in lines if x.startswith("| method"))
    assert header.startswith("| method | training images | teacher images | 1 step |")
    rows = [x for x in lines if x.startswith("| ") and not x.startswith("| method")]
    assert [r.split(" (")[0][2:] for r in rows] == list(PRESETS["table1"]["methods"])
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        own = "256" if cells[0].startswith(FAIRNESS_ROW) else "128"
        assert cells[1] == own and len(cells) == 3 + len(BUDGETS)
        assert cells[2] == ("128" if cells[0].split(" (")[0] in TWO_STAGE else "")
    assert "reflow from `flow_matching_seed0`" in md
    assert (out / "quality_vs_steps.png").exists()


def test_a_budget_a_run_cannot_sample_is_blank(table1_batch, tmp_path):
    """Progressive distillation has a student for 1, 2, 4, ..., 128 steps only: 3 steps is
    left out of its record (with why) and blank in the table, not an error."""
    from shortcut_mini import load_run
    from shortcut_mini.budget_runs import missing_budgets
    from shortcut_mini.reproduce import build_record, evaluate_run

    out, _, _ = table1_batch
    run = load_run(out / "runs" / "progressive_distillation_seed0")
    assert list(missing_budgets(run, [1, 3, 4])) == [3]
    assert missing_budgets(load_run(out / "runs" / "shortcut_seed0"), [1, 3, 4]) == {}
    table, secs = evaluate_run(run, "table1_smoke", {"steps": "1,3", "n": 8}, cache_dir=tmp_path)
    assert table.steps == [1]
    rec = build_record(preset="table1_smoke", run=run, table=table, eval_seconds=secs, command="")
    validate_record(rec)
    assert [m["steps"] for m in rec["missing_budgets"]] == [3]
    assert "one student per budget" in rec["missing_budgets"][0]["reason"]
    other = {**good_record(), "preset": "table1_smoke"}
    other["evaluation"] = [{**e, "steps": s} for e, s in zip(other["evaluation"], (1, 3))]
    md = to_markdown(aggregate([rec, other]))
    row = next(x for x in md.splitlines() if x.startswith("| progressive_distillation"))
    assert row.endswith("|  |") and "teacher images | 1 step | 3 steps |" in md


def test_a_teacher_record_without_its_weights_stops_the_batch(table1_batch, tmp_path):
    """A batch run in parts on another machine needs the teacher's training folder, not only its
    record: the students start from its weights."""
    import shutil

    out, _, _ = table1_batch
    part = tmp_path / "part"
    part.mkdir()
    shutil.copy(out / "flow_matching_seed0.json", part)
    with pytest.raises(ConfigError, match="copy that folder back") as e:
        run_preset("table1_smoke", methods=["flow_matching", "reflow"], out=part, progress=False)
    assert str(part / "runs" / "flow_matching_seed0") in str(e.value)


def test_a_finished_student_needs_no_teacher_weights(table1_batch, tmp_path):
    """Publishing a batch run in parts: the records came back, the checkpoints did not."""
    import shutil

    out, _, _ = table1_batch
    part = tmp_path / "part"
    part.mkdir()
    for name in ("flow_matching_seed0.json", "reflow_seed0.json"):
        shutil.copy(out / name, part)
    result = run_preset(
        "table1_smoke", methods=["flow_matching", "reflow"], seeds=[0], out=part, progress=False
    )
    assert [o.status for o in result.outcomes] == ["skipped", "skipped"]
    assert not (part / "runs").exists()


def test_a_seed_that_is_not_an_integer_is_one_sentence():
    with pytest.raises(ConfigError, match="seed must be an integer"):
        run_config("smoke", "shortcut", "abc", None)
    assert run_config("smoke", "shortcut", "3", None).seed == 3
