"""Where the commands write: an output path that cannot be written is refused before the work,
in one line; no command writes over a run's own files; a full disk is one sentence and leaves
nothing behind; a sample count that cannot fit in memory is refused before anything is drawn."""

from __future__ import annotations

import errno
import hashlib
import importlib
import os
import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from shortcut_mini import common, output_paths, sample, train
from shortcut_mini.cli import main
from shortcut_mini.common import atomic_write
from shortcut_mini.output_paths import describe_os_error
from shortcut_mini.run_store import CHECKPOINT_NAME
from shortcut_mini.train.lock import LOCK_NAME

TRAIN = ["train", "--model", "mlp-small", "--steps", "1", "--batch-size", "8", "--no-progress"]
TRAIN += ["--device", "cpu"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    from conftest import make_tiny_config

    out = tmp_path_factory.mktemp("outputs") / "run"
    train(make_tiny_config(steps=10, out_dir=str(out)))
    return out


def tree(*roots: Path) -> dict:
    """Every file and folder under ``roots``: its path, and the hash of a file's bytes."""
    found = {}
    for root in roots:
        for p in sorted(root.rglob("*")):
            found[str(p)] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return found


def one_line_error(capsys, argv) -> tuple[int, str]:
    code = main(argv)
    out = capsys.readouterr()
    assert "Traceback" not in out.err + out.out
    assert code != 0 and len(out.err.strip().splitlines()) == 1, out.err
    return code, out.err


def _work_started(*args, **kwargs):
    raise AssertionError("the command started its work before checking its output path")


# The work each command would start once its outputs are checked: patched to fail the test.
WORK = {
    "train": ("shortcut_mini.train.trainer", "load_training_data"),
    "sample": ("shortcut_mini.api", "sample"),
    "evaluate": ("shortcut_mini.evaluate", "evaluate"),
    "evaluate --cache-dir": ("shortcut_mini.evaluate", "evaluate"),
    "demo": ("shortcut_mini.demo", "run_demo"),
    "reproduce": ("shortcut_mini.reproduce.runner", "_one_run"),
    "reproduce --publish": ("shortcut_mini.reproduce.runner", "run_preset"),
}


def argv_of(command: str, run: Path, path: Path, tmp_path: Path) -> list[str]:
    """The command line of ``command`` that writes to ``path`` (a folder; ``sample`` a file in
    it)."""
    return {
        "train": [*TRAIN, "--out-dir", str(path)],
        "sample": ["sample", str(run), "--n", "4", "--out", str(path / "x.png")],
        "evaluate": ["evaluate", str(run), "--out", str(path), "--no-progress"],
        "evaluate --cache-dir": ["evaluate", str(run), "--cache-dir", str(path)],
        "demo": ["demo", "--out", str(path), "--steps", "2"],
        "reproduce": ["reproduce", "smoke", "--out", str(path), "--engine", "python"],
        "reproduce --publish": [
            *("reproduce", "smoke", "--out", str(tmp_path / "batch"), "--engine", "python"),
            *("--publish", "--book-results", str(path), "--no-progress"),
        ],
    }[command]


def unwritable(kind: str, tmp_path: Path, monkeypatch) -> Path:
    if kind == "under a file":
        blocker = tmp_path / "blocker"
        blocker.write_text("a file, not a folder")
        return blocker / "out" / "leaf"
    if kind == "name too long":
        return tmp_path / ("x" * 300) / "leaf"
    folder = tmp_path / "read_only"
    folder.mkdir(mode=0o555)
    if os.geteuid() == 0:  # root writes anywhere: the folder refuses as it would refuse a user
        real = tempfile.mkstemp

        def mkstemp(*args, dir=None, **kwargs):
            if Path(dir) == folder:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(dir))
            return real(*args, dir=dir, **kwargs)

        monkeypatch.setattr(output_paths, "tempfile", SimpleNamespace(mkstemp=mkstemp))
    return folder / "leaf"


@pytest.mark.parametrize("kind", ["under a file", "name too long", "read-only folder"])
@pytest.mark.parametrize("command", list(WORK))
def test_every_command_refuses_an_unwritable_output_before_its_work(
    command, kind, run_dir, tmp_path, capsys, monkeypatch
):
    module, name = WORK[command]
    monkeypatch.setattr(importlib.import_module(module), name, _work_started)
    path = unwritable(kind, tmp_path, monkeypatch)
    before = tree(tmp_path, run_dir)
    code, err = one_line_error(capsys, argv_of(command, run_dir, path, tmp_path))
    assert err.startswith(f"shortcut-mini {command.split()[0]}: error: cannot write ")
    assert str(path) in err and "; " in err  # the path, then the fix
    assert tree(tmp_path, run_dir) == before


# ---- a run's own files -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "argv",
    [
        ["sample", "{run}", "--out", "{run}/checkpoint.pt"],
        ["sample", "{run}", "--out", "{run}/stages/stage0_4steps.pt"],
        ["sample", "{run}", "--out", "{run}/reflow_pairs/chunk_00000.pt"],
        ["evaluate", "{run}", "--out", "{run}/stages", "--no-progress"],
        ["evaluate", "{run}", "--cache-dir", "{run}/reflow_pairs", "--no-progress"],
        ["demo", "--out", "{run}/stages", "--steps", "2"],
        [*TRAIN, "--out-dir", "{run}/reflow_pairs/inner"],
    ],
)
def test_no_command_writes_over_a_runs_own_files(argv, run_dir, capsys):
    before = tree(run_dir)
    argv = [a.format(run=run_dir) for a in argv]
    code, err = one_line_error(capsys, argv)
    assert code == 2 and f"would write over the run in {run_dir}" in err
    assert tree(run_dir) == before


def test_sample_says_what_an_out_without_a_picture_suffix_is(run_dir, tmp_path, capsys):
    code, err = one_line_error(capsys, ["sample", str(run_dir), "--out", str(tmp_path / "x")])
    assert "give a file ending in .pt" in err and "no suffix" in err
    (tmp_path / "adir").mkdir()
    code, err = one_line_error(capsys, ["sample", str(run_dir), "--out", str(tmp_path / "adir")])
    assert f"it is a folder; give a file name, e.g. {tmp_path / 'adir' / 'samples.png'}" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir"]
    for name in ("x.pt", "x.png", "x.svg"):
        assert main(["sample", str(run_dir), "--n", "4", "--out", str(tmp_path / name)]) == 0
    assert capsys.readouterr().out.splitlines() == [f"wrote {tmp_path / n}" for n in ("x.pt",
        "x.png", "x.svg")]  # fmt: skip
    assert torch.load(tmp_path / "x.pt", weights_only=True).shape == (4, 2)
    assert (tmp_path / "x.png").read_bytes()[:4] == b"\x89PNG"


# ---- a full disk -----------------------------------------------------------------------------
def fill_the_disk_for(monkeypatch, names: tuple[str, ...]) -> None:
    """Atomic writes of files named ``names`` go to ``/dev/full`` (every write: ENOSPC)."""
    real = common._temporary

    def temporary(path):
        if path.name not in names:
            return real(path)
        return os.open("/dev/full", os.O_WRONLY), str(path.parent / f".{path.name}.full.tmp")

    monkeypatch.setattr(common, "_temporary", temporary)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_disk_is_one_sentence_and_leaves_nothing_behind(
    run_dir, tmp_path, capsys, monkeypatch
):
    fill_the_disk_for(monkeypatch, (CHECKPOINT_NAME, "x.pt"))
    with pytest.raises(OSError) as info:  # torch.save's own RuntimeError would hide the cause
        atomic_write(tmp_path / "new" / CHECKPOINT_NAME, lambda f: torch.save(torch.ones(9999), f))
    assert info.value.errno == errno.ENOSPC and info.value.filename.endswith(CHECKPOINT_NAME)
    assert list(tmp_path.iterdir()) == []  # no temporary file, no folder it had made

    out = tmp_path / "runs" / "new"  # a first run: its checkpoint cannot be written
    code, err = one_line_error(capsys, [*TRAIN, "--out-dir", str(out)])
    assert code == 1
    assert err.strip() == (
        f"shortcut-mini train: error: no space is left on the device of {out / CHECKPOINT_NAME}"
        ": free some space, or write to another disk"
    )
    assert list(tmp_path.iterdir()) == []  # no empty folder, no stale lock

    from conftest import make_tiny_config

    copy = shutil.copytree(run_dir, tmp_path / "copy")  # a run that resumes: its checkpoint
    with pytest.raises(OSError, match="No space left"):  # is kept as it was, and unlocked
        train(make_tiny_config(steps=20, out_dir=str(copy)))
    assert (copy / CHECKPOINT_NAME).read_bytes() == (run_dir / CHECKPOINT_NAME).read_bytes()
    assert not (copy / LOCK_NAME).exists()
    shutil.rmtree(copy)
    capsys.readouterr()

    code, err = one_line_error(
        capsys, ["sample", str(run_dir), "--out", str(tmp_path / "deep" / "x.pt")]
    )
    assert "no space is left on the device of" in err and list(tmp_path.iterdir()) == []


def test_os_errors_read_as_a_sentence_with_the_fix():
    for code, words in [
        (errno.EACCES, "permission denied; choose another path, or change its permissions"),
        (errno.EROFS, "read-only; choose a path on a writable disk"),
        (errno.ENAMETOOLONG, "too long for the file system; choose a shorter path"),
        (errno.EIO, "Input/output error; check the path and its permissions"),
    ]:
        text = describe_os_error(OSError(code, os.strerror(code), "/x/y"))
        assert text.startswith("cannot use /x/y: ") and words in text


# ---- memory ----------------------------------------------------------------------------------
def test_a_sample_count_that_cannot_fit_is_refused_before_anything_is_drawn(
    run_dir, capsys, monkeypatch
):
    monkeypatch.setattr(common, "available_memory", lambda: 1_000_000)
    api = importlib.import_module("shortcut_mini.api")
    monkeypatch.setattr(api, "available_memory", lambda: 1_000_000)
    assert sample(str(run_dir), 10_000, 1).shape == (10_000, 2)  # 160 kB of noise and samples
    with pytest.raises(ValueError) as info:
        sample(str(run_dir), 1_000_000, 1)  # 16 MB
    message = str(info.value)
    assert (
        "n=1,000,000 samples of shape (2,) need 16.0 MB" in message and "1.0 MB is free" in message
    )
    fits = int(message.split("at most about ")[1].split()[0].replace(",", ""))
    assert 0 < fits * 16 <= 1_000_000 and sample(str(run_dir), fits, 1).shape == (fits, 2)
    monkeypatch.undo()
    evaluate_module = importlib.import_module("shortcut_mini.evaluate")
    monkeypatch.setattr(evaluate_module, "sweep", _work_started)
    # 10^13 points (two floats each; noise, samples, and for evaluate the reference points)
    for command, need in (("sample", "160.0 TB"), ("evaluate", "240.0 TB")):
        argv = [command, str(run_dir), "--n", str(10**13), "--steps", "1"]
        code, err = one_line_error(capsys, argv)
        assert code == 2 and f"need {need} of memory" in err
