"""One rule for the weights that sample a budget (progressive distillation's students) in every
entry point, and the run folder's caches and indexes under damage: a damaged file names itself
and the fix, and a cache that can be regenerated mends itself."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import torch

from shortcut_mini import evaluate, sample, train
from shortcut_mini.budget_runs import run_for_budget
from shortcut_mini.cli import main
from shortcut_mini.objectives.progressive_distillation import StageIndexError
from shortcut_mini.objectives.reflow_pairs import ReflowPairsError
from shortcut_mini.sampling import euler_sample

M = 8  # progressive distillation: students for 4, 2 and 1 steps, the teacher for 8


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    from conftest import make_tiny_config

    folder = tmp_path_factory.mktemp("fm") / "teacher"
    train(make_tiny_config(method="flow_matching", M=M, steps=20, out_dir=str(folder)))
    return folder


@pytest.fixture(scope="module")
def pd_run(tmp_path_factory, teacher):
    from conftest import make_tiny_config

    folder = tmp_path_factory.mktemp("pd") / "run"
    cfg = make_tiny_config(method="progressive_distillation", M=M, teacher=str(teacher))
    return train(cfg.replace(steps=21, out_dir=str(folder)))


def one_line(capsys, argv) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


# ---- progressive distillation: which weights sample a budget -------------------------------
def test_sample_the_command_line_and_run_for_budget_agree(pd_run, tmp_path, capsys):
    folder = pd_run.out_dir
    for budget in (1, 2, 4, M):
        x = sample(pd_run, 64, budget, seed=0)
        assert torch.equal(x, sample(run_for_budget(folder, budget), 64, budget, seed=0))
        out = tmp_path / f"x{budget}.pt"
        assert main(["sample", folder, "--n", "64", "--steps", str(budget), "--out", str(out)]) == 0
        assert torch.equal(torch.load(out, weights_only=True), x)
    # the 4-step student's samples, not those of the final 1-step student with 4 steps
    noise = torch.randn((64, 2), generator=torch.Generator().manual_seed(0))
    final = euler_sample(pd_run.ema, noise, 4, use_step_size=False).samples
    assert torch.equal(sample(pd_run, 64, 4, seed=0, noise=noise), sample(pd_run, 64, 4, seed=0))
    assert not torch.allclose(sample(pd_run, 64, 4, noise=noise), final)
    assert torch.equal(sample(pd_run, 64, [0.25] * 4, seed=0), sample(pd_run, 64, 4, seed=0))


def test_a_budget_no_stage_trained_is_refused_alike_everywhere(pd_run, capsys):
    trained = "[1, 2, 4, 8]"
    for steps in (3, [0.5, 0.25, 0.25]):
        with pytest.raises(ValueError, match=re.escape(f"students for the budgets {trained}")):
            sample(pd_run, 4, steps)
    with pytest.raises(ValueError, match=rf"cannot sample 3 steps .*for {re.escape(trained)}"):
        evaluate(pd_run, steps=(1, 3), progress=False)
    for argv in (["sample", "--steps", "3"], ["sample", "--steps", "1/2,1/4,1/4"]):
        assert trained in one_line(capsys, [*argv[:1], pd_run.out_dir, *argv[1:]])
    err = one_line(capsys, ["evaluate", pd_run.out_dir, "--steps", "1", "3", "--no-progress"])
    assert "cannot sample 3 steps" in err and trained in err


def test_a_damaged_or_missing_stage_index_or_student_is_named(pd_run, tmp_path, capsys):
    folder = shutil.copytree(pd_run.out_dir, tmp_path / "run")
    index = folder / "stages" / "stages.json"
    good = index.read_bytes()
    for damage in (b"garbage", b'{"4": "stages/stage0_4steps.pt"}'):
        index.write_bytes(damage)
        with pytest.raises(StageIndexError, match=f"{index} is damaged .*put back an intact copy"):
            sample(str(folder), 4, 4)
        assert str(index) in one_line(capsys, ["sample", str(folder), "--steps", "4"])
    index.unlink()
    with pytest.raises(StageIndexError, match="no stages/stages.json in .*put it back"):
        sample(str(folder), 4, 2)
    index.write_bytes(good)
    (folder / "stages" / "stage1_2steps.pt").unlink()
    message = "the student's file .*stage1_2steps.pt, named in stages/stages.json, .* is missing"
    with pytest.raises(ValueError, match=message):
        sample(str(folder), 4, 2)
    err = one_line(capsys, ["evaluate", str(folder), "--steps", "2", "--no-progress"])
    assert "stage1_2steps.pt" in err and "Put it back, or sample another budget" in err
    assert "train a run into" not in err
    assert sample(str(folder), 4, 4).shape == (4, 2)  # the other students still sample


# ---- the reflow pair cache -------------------------------------------------------------------
def test_a_damaged_reflow_cache_mends_itself_or_names_the_folder(
    teacher, tmp_path, tiny_config, capsys
):
    cfg = tiny_config(
        method="reflow", M=M, teacher=str(teacher), method_args={"reflow_pairs": 100}, steps=4
    )
    cfg = cfg.replace(out_dir=str(tmp_path / "run"), ckpt_every=2)
    train(cfg)
    cache = tmp_path / "run" / "reflow_pairs"
    chunk = cache / "chunk_00000.pt"
    pairs = torch.load(chunk, weights_only=True)

    (cache / "manifest.json").write_text("{not json")
    train(cfg.replace(steps=6))  # resumes; the cache is generated again, the same pairs
    assert "manifest.json is damaged" in capsys.readouterr().err
    assert json.loads((cache / "manifest.json").read_text())["n"] == 100
    assert torch.equal(torch.load(chunk, weights_only=True)["x1"], pairs["x1"])

    torch.save({"x0": pairs["x0"]}, chunk)  # a chunk without its samples (a KeyError before)
    train(cfg.replace(steps=8))
    assert torch.equal(torch.load(chunk, weights_only=True)["x1"], pairs["x1"])

    chunk.unlink()
    chunk.mkdir()  # a folder where a chunk belongs: not the package's to delete
    with pytest.raises(ReflowPairsError, match=f"{chunk} is a folder .*move it away or delete"):
        train(cfg.replace(steps=10))
    argv = ["train", "--config", str(tmp_path / "cfg.json"), "--no-progress"]
    (tmp_path / "cfg.json").write_text(json.dumps(cfg.replace(steps=10).to_dict()))
    capsys.readouterr()
    assert str(chunk) in one_line(capsys, argv)
    chunk.rmdir()
    shutil.rmtree(cache)
    cache.write_text("a file where the cache's folder belongs")
    assert f"{cache} is a file" in one_line(capsys, argv)
