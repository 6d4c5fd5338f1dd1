"""benchmarks/compare_batches.py: two batch folders hold the same numbers, or it names where not."""

import copy
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import compare_batches  # noqa: E402


def _batch(folder: Path, record: dict, weight: float = 1.0, loss: float = 0.5) -> Path:
    """A batch folder with one record, its run's metrics log and checkpoint."""
    run = folder / "runs" / "shortcut_seed0"
    run.mkdir(parents=True)
    rec = json.loads(json.dumps(record).replace("<batch>", str(folder)))
    (folder / "shortcut_seed0.json").write_text(json.dumps(rec))
    rows = [{"step": 4, "loss": loss, "wall_s": 0.1 * weight, "img_per_s": 1e3 * weight}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    state = {"model": {"w": torch.full((2,), weight)}, "ema": {"w": torch.zeros(2)}}
    torch.save(state, run / "checkpoint.pt")
    return folder


RECORD = {
    "method": "shortcut",
    "config": {"out_dir": "<batch>/runs/shortcut_seed0", "lr": 1e-3},
    "evaluation": [{"steps": 1, "value": 141.6046629152, "sampling_seconds": 0.1}],
    "train_seconds": 1.0,
    "created": "2026-12-03T14:00:00+00:00",
    "git": {"commit": "a" * 40},
    "command": "shortcut-mini reproduce smoke --out <batch>",
}


def _other(**changes) -> dict:
    rec = copy.deepcopy(RECORD)
    rec.update(changes)
    return rec


def test_runs_that_differ_only_in_times_commit_and_folder_are_the_same(tmp_path, capsys):
    a = _batch(tmp_path / "before", RECORD)
    later = _other(train_seconds=9.0, created="2026-12-04T00:00:00+00:00", git={"commit": "b"})
    later["evaluation"] = [{**RECORD["evaluation"][0], "sampling_seconds": 7.0}]
    b = _batch(tmp_path / "after", later)
    assert compare_batches.main([str(a), str(b)]) == 0
    assert "the same numbers" in capsys.readouterr().out


def test_a_changed_number_weight_or_loss_is_named(tmp_path, capsys):
    a = _batch(tmp_path / "a", RECORD)
    value = _other(evaluation=[{"steps": 1, "value": 141.6046629153, "sampling_seconds": 0.1}])
    assert compare_batches.main([str(a), str(_batch(tmp_path / "b", value))]) == 1
    assert "shortcut_seed0.evaluation[0].value: 141.6046629152 against" in capsys.readouterr().err
    assert compare_batches.main([str(a), str(_batch(tmp_path / "c", RECORD, weight=2.0))]) == 1
    assert "shortcut_seed0/model.w: other values" in capsys.readouterr().err
    assert compare_batches.main([str(a), str(_batch(tmp_path / "d", RECORD, loss=0.6))]) == 1
    assert "metrics.jsonl[0].loss: 0.5 against 0.6" in capsys.readouterr().err
    assert compare_batches.main([str(a), str(_batch(tmp_path / "e", _other(lr=1)))]) == 1
    assert ".lr: only in the second" in capsys.readouterr().err


def test_a_missing_record_or_an_empty_folder_is_refused(tmp_path, capsys):
    a = _batch(tmp_path / "a", RECORD)
    b = _batch(tmp_path / "b", RECORD)
    (b / "shortcut_seed0.json").rename(b / "flow_matching_seed0.json")
    assert compare_batches.main([str(a), str(b)]) == 1
    assert "shortcut_seed0.json: only in" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert compare_batches.main([str(a), str(tmp_path / "empty")]) == 2
