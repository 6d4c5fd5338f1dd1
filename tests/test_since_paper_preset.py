"""The ``since_paper`` preset: every row is ``table1``'s plain shortcut run plus its switches, and
the combined row is the combination that the stated rule picks from the committed single runs."""

from pathlib import Path

import pytest

from shortcut_mini import TrainConfig
from shortcut_mini.ablation import SHORTCUT_SWITCHES
from shortcut_mini.reproduce import load_records, record_values
from shortcut_mini.reproduce.preset_specs import SINCE_PAPER_VARIANTS
from shortcut_mini.reproduce.presets import run_config
from shortcut_mini.verdict import switches_to_combine

RESULTS = Path(__file__).resolve().parents[1] / "book" / "results"


def switched_fields(variants):
    names = set()
    for v in variants:
        names |= {k for k in SHORTCUT_SWITCHES[v] if k != "method_args"}
        names |= {f"method_args.{k}" for k in SHORTCUT_SWITCHES[v].get("method_args", {})}
    return names


@pytest.mark.parametrize("row", sorted(SINCE_PAPER_VARIANTS))
def test_a_row_differs_from_table1_shortcut_only_by_its_switches(row):
    plain = run_config("table1", "shortcut", 0, None)
    cfg = run_config("since_paper", row, 0, None)
    differ = set()
    for name, (mine, theirs) in cfg.differences(plain).items():
        if name == "method_args":
            differ |= {f"method_args.{k}" for k in mine if mine[k] != theirs.get(k)}
        else:
            differ.add(name)
    assert differ and differ <= switched_fields(SINCE_PAPER_VARIANTS[row])
    assert cfg.bootstrap_fraction == plain.bootstrap_fraction == 0.5  # the tuned share


def test_the_combined_row_is_the_rules_choice_from_the_committed_records():
    singles = {r["method"]: r for r in load_records(RESULTS / "since_paper", "since_paper")[0]}
    table1 = load_records(RESULTS / "table1", "table1")[0]
    plain = next(r for r in table1 if r["method"] == "shortcut" and r["seed"] == 0)
    alone = {
        m: record_values(r)
        for m, r in singles.items()
        if m != "shortcut_combined" and r["seed"] == 0
    }
    assert set(alone) == set(SINCE_PAPER_VARIANTS) - {"shortcut_combined"}
    chosen = switches_to_combine(record_values(plain), alone)
    picked = {v for m in chosen for v in SINCE_PAPER_VARIANTS[m]}
    assert picked == set(SINCE_PAPER_VARIANTS["shortcut_combined"])
    # and the committed combined record trained exactly the preset's combined row
    combined = run_config("since_paper", "shortcut_combined", 0, None)
    record = singles["shortcut_combined"]
    recorded = TrainConfig.from_saved(record["config"])
    assert recorded.method_args == combined.method_args
    assert recorded.level_embedding == combined.level_embedding
