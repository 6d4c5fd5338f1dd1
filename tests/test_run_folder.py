"""The run folder under faults: overwrite, the lock, torn logs, Ctrl-C, corrupt checkpoints,
stale temporaries, and resumes that ask for fewer steps."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap

import pytest
import torch

from shortcut_mini import load_run
from shortcut_mini.cli import main
from shortcut_mini.data import ArrayDataset, DatasetError
from shortcut_mini.run_store import CHECKPOINT_NAME
from shortcut_mini.train import (
    CheckpointError,
    MetricsLogError,
    NonFiniteLossError,
    RunLockedError,
    TrainingInterrupted,
    read_metrics_log,
    train,
)
from shortcut_mini.train.lock import LOCK_NAME
from shortcut_mini.train.run_dir import SET_ASIDE_NAME, set_aside_old_run


def equal_weights(a, b) -> bool:
    pairs = zip(a.model.state_dict().values(), b.model.state_dict().values())
    return all(torch.equal(x, y) for x, y in pairs)


# ---- overwrite -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "bad",
    [
        {"model_overrides": {"nosuch": 3}},  # a typo in an override: the model cannot be built
        {"data": "image_folder:/nonexistent/shortcut-mini-images"},  # data that cannot load
    ],
)
def test_overwrite_with_a_failing_config_keeps_the_old_run(tmp_path, tiny_config, bad):
    old = train(tiny_config(steps=10, out_dir=str(tmp_path)))
    with pytest.raises(Exception):  # noqa: B017 - the failure itself is another module's
        train(tiny_config(steps=10, lr=2e-3, out_dir=str(tmp_path), overwrite=True, **bad))
    kept = load_run(tmp_path)
    assert kept.step == 10 and kept.config.lr == 1e-3 and equal_weights(kept, old)
    assert [r["step"] for r in read_metrics_log(tmp_path / "metrics.jsonl")] == [5, 10]
    assert json.loads((tmp_path / "config.json").read_text())["lr"] == 1e-3
    assert not (tmp_path / LOCK_NAME).exists()


def make_outputs(folder) -> None:
    """What the package's commands write into a run folder: a picture, an evaluation."""
    assert main(["sample", str(folder), "--n", "16", "--steps", "4"]) == 0
    assert main(["evaluate", str(folder), "--steps", "1", "--n", "4096", "--no-progress"]) == 0


def make_users_files(folder) -> dict:
    """A user's own files, named like the package's (the old rule 'samples_*' took them)."""
    files = {
        "samples_notes.txt": "mine",
        "samples_paper_figures/figure1.txt": "mine too",
        "eval/my_table.csv": "kept",
        "notes.txt": "mine",
    }
    for name, text in files.items():
        (folder / name).parent.mkdir(exist_ok=True)
        (folder / name).write_text(text)
    return files


def test_overwrite_replaces_only_what_the_package_wrote(tmp_path, tiny_config, capsys):
    train(tiny_config(steps=10, out_dir=str(tmp_path)))
    make_outputs(tmp_path)
    mine = make_users_files(tmp_path)
    run = train(tiny_config(steps=5, lr=2e-3, out_dir=str(tmp_path), overwrite=True))
    assert run.step == 5 and load_run(tmp_path).config.lr == 2e-3
    left = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert left == {CHECKPOINT_NAME, "metrics.jsonl", "config.json", *mine}
    assert all((tmp_path / name).read_text() == text for name, text in mine.items())


def tree_of(folder) -> dict:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_an_overwrite_that_ends_before_its_first_checkpoint_leaves_the_old_run(
    tmp_path, tiny_config, monkeypatch, capsys
):
    train(tiny_config(steps=10, out_dir=str(tmp_path)))
    make_outputs(tmp_path)
    make_users_files(tmp_path)
    before = tree_of(tmp_path)
    interrupt_at_call(monkeypatch, 3, "raise")  # killed in its third step, before a checkpoint
    with pytest.raises(TrainingInterrupted):
        train(tiny_config(steps=10, lr=2e-3, out_dir=str(tmp_path), overwrite=True))
    monkeypatch.undo()
    assert tree_of(tmp_path) == before  # moved back, byte for byte
    # A kill that skips every handler (SIGKILL) leaves the old run set aside: the next call
    # into the folder moves it back, and the old run resumes.
    assert set_aside_old_run(tmp_path) and not (tmp_path / CHECKPOINT_NAME).exists()
    capsys.readouterr()
    resumed = train(tiny_config(steps=20, out_dir=str(tmp_path)))
    assert resumed.step == 20 and [r["step"] for r in resumed.history] == [5, 10, 15, 20]
    assert "restored the run" in capsys.readouterr().err
    assert not (tmp_path / SET_ASIDE_NAME).exists()


def test_overwrite_with_the_same_config_starts_afresh(tmp_path, tiny_config):
    train(tiny_config(steps=20, out_dir=str(tmp_path)))  # (steps may change on a resume)
    run = train(tiny_config(steps=10, out_dir=str(tmp_path), overwrite=True))
    assert run.step == 10 and load_run(tmp_path).step == 10
    assert [r["step"] for r in read_metrics_log(tmp_path / "metrics.jsonl")] == [5, 10]
    assert not (tmp_path / SET_ASIDE_NAME).exists()


def test_a_failed_first_run_leaves_no_folder(tmp_path, tiny_config):
    out = tmp_path / "new"
    missing = "image_folder:/nonexistent/shortcut-mini-images"
    with pytest.raises(DatasetError):
        train(tiny_config(out_dir=str(out), data=missing, image_size=8))
    assert not out.exists()


def test_a_teacher_is_never_the_output_folder(tmp_path, tiny_config, capsys):
    """Neither the teacher's own folder, nor one inside it, nor one around it: the student
    would write over (or into) the teacher it reads."""
    teacher = tmp_path / "teacher"
    train(tiny_config(method="flow_matching", M=8, steps=10, out_dir=str(teacher)))
    before = tree_of(teacher)
    argv = ["train", "--method", "reflow", "--teacher", str(teacher), "--model", "mlp-small",
            "--M", "8", "--steps", "4", "--batch-size", "8", "--no-progress", "--overwrite"]  # fmt: skip
    for out, where in [
        (teacher, "is"),
        (tmp_path / "teacher" / ".." / "teacher", "is"),
        (teacher / "student", "contains"),
        (tmp_path, "lies inside"),
    ]:
        assert main([*argv, "--out-dir", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"TrainConfig.teacher: the teacher's folder {teacher} {where} the output" in err
        assert "Give the student its own out_dir" in err
    assert tree_of(teacher) == before and load_run(teacher).step == 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["teacher"]


# ---- the lock ------------------------------------------------------------------------------
HOLDER = textwrap.dedent(
    """
    import sys
    from shortcut_mini.data import ArrayDataset
    from shortcut_mini.train import train
    sys.path.insert(0, sys.argv[2])
    from conftest import make_tiny_config

    original = ArrayDataset.batch

    def batch(self, *args, **kwargs):
        print("training", flush=True)  # the lock is held from before the first step
        sys.stdin.readline()  # ... and until the test answers (or kills this process)
        return original(self, *args, **kwargs)

    ArrayDataset.batch = batch
    train(make_tiny_config(steps=2, ckpt_every=0, out_dir=sys.argv[1]))
    """
)


def start_holder(tmp_path, out) -> subprocess.Popen:
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    tests_dir = os.path.dirname(__file__)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(out), tests_dir],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout.readline().strip() == "training"
    return proc


def test_a_second_writer_is_refused_and_a_killed_holder_is_taken_over(tmp_path, tiny_config):
    out = tmp_path / "run"
    proc = start_holder(tmp_path, out)
    try:
        with pytest.raises(RunLockedError) as err:
            train(tiny_config(steps=4, lr=2e-3, out_dir=str(out)))
        message = str(err.value)
        assert f"pid {proc.pid}" in message and socket.gethostname() in message
        assert str(out) in message and "another out_dir" in message
        proc.kill()  # SIGKILL: the lock file stays, naming a process that no longer runs
        proc.wait(timeout=30)
        assert json.loads((out / LOCK_NAME).read_text())["pid"] == proc.pid
        run = train(tiny_config(steps=4, out_dir=str(out)))
    finally:
        if proc.poll() is None:
            proc.kill()
    assert run.step == 4 and not (out / LOCK_NAME).exists()


def test_a_stale_lock_file_is_taken_over(tmp_path, tiny_config, capsys):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / LOCK_NAME).write_text(
        json.dumps({"pid": dead.pid, "host": socket.gethostname(), "started": "earlier"})
    )
    assert train(tiny_config(steps=4, out_dir=str(tmp_path))).step == 4
    assert not (tmp_path / LOCK_NAME).exists()
    assert f"no longer runs (pid {dead.pid}, started earlier)" in capsys.readouterr().err


# ---- the metrics log -----------------------------------------------------------------------
def test_a_torn_last_log_line_is_dropped_and_resume_continues(tmp_path, tiny_config):
    straight = train(tiny_config(steps=20))
    train(tiny_config(steps=10, out_dir=str(tmp_path)))
    log = tmp_path / "metrics.jsonl"
    with open(log, "a") as f:
        f.write('{"step": 15, "loss": 0.3')  # killed during the write of the next row
    with pytest.warns(UserWarning, match=r"metrics.jsonl: line 3 is incomplete"):
        assert [r["step"] for r in read_metrics_log(log)] == [5, 10]
    with pytest.warns(UserWarning, match="line 3"):
        resumed = train(tiny_config(steps=20, out_dir=str(tmp_path)))
    assert [r["step"] for r in resumed.history] == [5, 10, 15, 20]
    assert [r["step"] for r in read_metrics_log(log)] == [5, 10, 15, 20]
    assert equal_weights(straight, resumed)


def test_a_corrupt_log_line_before_the_end_is_named(tmp_path, tiny_config):
    train(tiny_config(steps=10, out_dir=str(tmp_path)))
    log = tmp_path / "metrics.jsonl"
    lines = log.read_text().splitlines()
    log.write_text("\n".join([lines[0], "garbage", lines[1]]) + "\n")
    with pytest.raises(MetricsLogError, match=r"metrics.jsonl: line 2 .*Delete that line"):
        read_metrics_log(log)
    with pytest.raises(MetricsLogError, match="line 2"):
        train(tiny_config(steps=20, out_dir=str(tmp_path)))


# ---- Ctrl-C --------------------------------------------------------------------------------
def interrupt_at_call(monkeypatch, n: int, how: str) -> None:
    """Ctrl-C during the ``n``-th batch: a real SIGINT (or SIGTERM), or a KeyboardInterrupt
    raised there."""
    original, calls = ArrayDataset.batch, []

    def batch(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            if how == "raise":
                raise KeyboardInterrupt
            os.kill(os.getpid(), signal.SIGTERM if how == "sigterm" else signal.SIGINT)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ArrayDataset, "batch", batch)


@pytest.fixture
def default_stop_signals():
    """SIGINT and SIGTERM at Python's defaults for the test. A process started in the background
    by a non-interactive shell (``make test &``) inherits SIGINT ignored, and training rightly
    leaves a handler it did not expect alone; these tests are about the default case."""
    previous = {
        sig: signal.signal(sig, handler)
        for sig, handler in (
            (signal.SIGINT, signal.default_int_handler),
            (signal.SIGTERM, signal.SIG_DFL),
        )
    }
    yield
    for sig, handler in previous.items():
        signal.signal(sig, handler)


@pytest.mark.usefixtures("default_stop_signals")
def test_ctrl_c_finishes_the_step_saves_and_resumes_exactly(tmp_path, tiny_config, monkeypatch):
    straight = train(tiny_config(steps=20))
    interrupt_at_call(monkeypatch, 7, "signal")
    with pytest.raises(TrainingInterrupted) as err:
        train(tiny_config(steps=20, out_dir=str(tmp_path)))
    assert err.value.step == 7
    assert "step 7" in str(err.value) and "Resume with the same command" in str(err.value)
    assert torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)["step"] == 7
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    monkeypatch.undo()
    resumed = train(tiny_config(steps=20, out_dir=str(tmp_path)))
    assert equal_weights(straight, resumed) and not (tmp_path / LOCK_NAME).exists()


@pytest.mark.usefixtures("default_stop_signals")
def test_sigterm_finishes_the_step_saves_and_resumes_exactly(tmp_path, tiny_config, monkeypatch):
    """SIGTERM, what ``timeout``, a scheduler or ``docker stop`` sends, is answered as Ctrl-C."""
    straight = train(tiny_config(steps=20))
    interrupt_at_call(monkeypatch, 7, "sigterm")
    with pytest.raises(TrainingInterrupted) as err:
        train(tiny_config(steps=20, out_dir=str(tmp_path)))
    assert err.value.step == 7 and "saved a checkpoint of step 7" in str(err.value)
    assert torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)["step"] == 7
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    monkeypatch.undo()
    resumed = train(tiny_config(steps=20, out_dir=str(tmp_path)))
    assert equal_weights(straight, resumed) and not (tmp_path / LOCK_NAME).exists()


def test_an_immediate_interrupt_keeps_the_last_checkpoint(tmp_path, tiny_config, monkeypatch):
    interrupt_at_call(monkeypatch, 13, "raise")
    with pytest.raises(TrainingInterrupted, match=r"last checkpoint \(step 10\).*same command"):
        train(tiny_config(steps=20, out_dir=str(tmp_path)))
    assert torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)["step"] == 10
    assert not (tmp_path / LOCK_NAME).exists()


# ---- checkpoints and temporaries -----------------------------------------------------------
def test_a_truncated_checkpoint_names_the_way_out_and_overwrite_replaces_it(tmp_path, tiny_config):
    train(tiny_config(steps=10, out_dir=str(tmp_path)))
    ckpt = tmp_path / CHECKPOINT_NAME
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    with pytest.raises(CheckpointError) as err:
        train(tiny_config(steps=10, out_dir=str(tmp_path)))
    message = str(err.value)
    assert str(ckpt) in message and "delete the folder" in message and "--overwrite" in message
    with pytest.raises(CheckpointError, match="--overwrite"):
        load_run(tmp_path)
    fresh = train(tiny_config(steps=10, out_dir=str(tmp_path), overwrite=True))
    assert fresh.step == 10 and load_run(tmp_path).step == 10
    assert [r["step"] for r in fresh.history] == [5, 10]


def test_stale_temporaries_of_a_killed_save_are_removed(tmp_path, tiny_config):
    train(tiny_config(steps=10, out_dir=str(tmp_path)))
    stale = [tmp_path / ".checkpoint.pt.k2j3h4.tmp", tmp_path / ".metrics.jsonl.x81.tmp"]
    for p in stale:
        p.write_bytes(b"half a file")
    (tmp_path / ".mine.tmp").write_text("not the trainer's")
    train(tiny_config(steps=20, out_dir=str(tmp_path)))
    assert not any(p.exists() for p in stale) and (tmp_path / ".mine.tmp").exists()


# ---- smaller -------------------------------------------------------------------------------
def test_fewer_steps_into_a_finished_run_changes_nothing(tmp_path, tiny_config, capsys):
    train(tiny_config(steps=20, out_dir=str(tmp_path)))
    before = (tmp_path / "config.json").read_text()
    run = train(tiny_config(steps=10, out_dir=str(tmp_path)))
    assert run.step == 20 and run.config.steps == 20
    assert (tmp_path / "config.json").read_text() == before
    err = capsys.readouterr().err
    assert "already holds 20 steps" in err and "nothing to train" in err


def test_a_resume_without_progress_bar_says_so(tmp_path, tiny_config, capsys):
    train(tiny_config(steps=10, out_dir=str(tmp_path)))
    capsys.readouterr()
    train(tiny_config(steps=20, out_dir=str(tmp_path)))
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"resuming the run in {tmp_path} from step 10 to step 20"]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_non_finite_loss_suggests_only_what_would_change(tiny_config, precision):
    nan = ArrayDataset(
        x=torch.full((2000, 2), float("nan")),
        y=torch.zeros(2000),
        num_classes=0,
        kind="points",
        name="checkerboard",
    )
    with pytest.raises(NonFiniteLossError, match="at step 1") as err:
        train(tiny_config(steps=4, precision=precision), dataset=nan)
    assert ("precision='fp32'" in str(err.value)) == (precision != "fp32")
    assert "lower lr" in str(err.value) and "no out_dir" in str(err.value)


def test_metrics_log_means_count_only_the_steps_where_a_group_was_present(tmp_path):
    from shortcut_mini.train.distributed import DistInfo
    from shortcut_mini.train.metrics_log import MetricsLog

    history: list[dict] = []
    with MetricsLog(tmp_path / "m.jsonl", history, DistInfo(), batch_size=8) as log:
        log.start_window(0)
        for loss, level, present in ((1.0, 4.0, True), (3.0, float("nan"), False)):
            log.add(
                {
                    "loss": torch.tensor(loss),
                    "loss_l2": (torch.tensor(level), torch.tensor(present)),
                }
            )
        row = log.log(2, ema_decay=0.5, wall_s=1.0)
    assert row["loss"] == 2.0 and row["loss_l2"] == 4.0 and history == [row]
    assert read_metrics_log(tmp_path / "m.jsonl") == [row]
