"""The paper's Table 1 expectations, checked against hand-made tables."""

import pytest

from shortcut_mini.verdict import (
    best_one_step,
    improves_on_every_seed,
    switches_to_combine,
    table1_verdict,
)


def table(**rows):
    return {m: dict(zip((1, 4), v)) for m, v in rows.items()}


def test_every_expectation_holds():
    v = table1_verdict(
        table(shortcut=(1.0, 0.5), flow_matching=(9, 3), diffusion=(8, 2), reflow=(0.9, 0.45))
    )
    assert v.beats_single == {1: "all 2", 4: "all 2"}
    assert v.near_distilled == {1: "all 1", 4: "all 1"}
    assert all(v.holds.values()) and v.meanflow is None
    assert "near reflow (1.000 against 0.900)" in v.markdown


def test_a_baseline_ahead_is_named_with_both_distances():
    v = table1_verdict(
        table(shortcut=(2.0, 1.0), flow_matching=(1.5, 3.0), consistency_distillation=(1.0, 2.0)),
        fmt=lambda x: f"{x:.1f}",
    )
    assert v.beats_single == {1: "0 of the 1", 4: "all 1"}
    assert not v.holds[("beats single-phase", 1)] and v.holds[("beats single-phase", 4)]
    assert "ahead of it: flow_matching 1.5 against 2.0" in v.markdown
    assert "2.0x behind consistency_distillation (2.0 against 1.0)" in v.markdown
    assert v.near_distilled == {1: "0 of the 1", 4: "all 1"}


def test_equal_compute_row_and_meanflow():
    v = table1_verdict(
        table(shortcut=(3, 1), shortcut_16k=(2.5, 1), reflow=(1.7, 1), meanflow=(2.5, 1)),
        equal_compute="shortcut_16k",
    )
    lines = v.lines
    assert any(
        line.startswith("- At 1 step, shortcut_16k is near or ahead of 0 of the 1")
        for line in lines
    )
    assert v.near_distilled[1] == "0 of the 1"  # the plain shortcut row decides the summary
    assert v.meanflow == "ahead of" and v.holds[("meanflow ahead", 1)]


def test_no_shortcut_row_is_an_error():
    with pytest.raises(ValueError, match="no 'shortcut' row"):
        table1_verdict(table(flow_matching=(1, 1)))


def test_best_one_step_takes_the_lowest_one_step_distance():
    sweep = {"a": {1: 200.0, 2: 120.0}, "b": {1: 190.0, 2: 130.0}, "c": {1: 250.0, 2: 90.0}}
    assert best_one_step(sweep) == "b"


def test_best_one_step_breaks_a_tie_by_two_steps():
    # within 1% at one step: the lower 2-step distance wins; just outside it, one step decides
    assert best_one_step({"a": {1: 100.0, 2: 80.0}, "b": {1: 100.9, 2: 70.0}}) == "b"
    assert best_one_step({"a": {1: 100.0, 2: 80.0}, "b": {1: 101.1, 2: 70.0}}) == "a"


def test_best_one_step_of_nothing_is_an_error():
    with pytest.raises(ValueError, match="no settings"):
        best_one_step({})


def test_switches_to_combine_keeps_those_that_help_at_one_step_and_cost_little_at_many():
    plain = {1: 100.0, 4: 50.0, 128: 40.0}
    alone = {
        "ot": {1: 80.0, 4: 45.0, 128: 41.0},  # helps at 1, +2.5% at 128: joins
        "split": {1: 99.5, 4: 50.0, 128: 40.0},  # within the 1% tie: does not join
        "twin": {1: 90.0, 4: 48.0, 128: 43.0},  # helps at 1, +7.5% at 128: does not join
        "emb": {1: 95.0, 4: 49.0, 128: 42.0},  # helps at 1, exactly +5% at 128: joins
    }
    assert switches_to_combine(plain, alone) == ["emb", "ot"]


def test_switches_to_combine_falls_back_to_the_best_single_switch():
    plain = {1: 100.0, 128: 40.0}
    alone = {"a": {1: 104.0, 128: 39.0}, "b": {1: 101.0, 128: 60.0}}
    assert switches_to_combine(plain, alone) == ["b"]
    with pytest.raises(ValueError):
        switches_to_combine(plain, {})


def test_improves_on_every_seed_needs_each_seed_against_its_own_plain_run():
    plain = {0: {1: 100.0, 128: 40.0}, 1: {1: 110.0, 128: 44.0}}
    good = {0: {1: 80.0, 128: 42.0}, 1: {1: 88.0, 128: 46.0}}  # -20% / +5%, -20% / +4.5%
    verdict, per_seed = improves_on_every_seed(plain, good, seeds=(0, 1))
    assert verdict is True
    one, many, holds = per_seed[1]
    assert (one, many) == pytest.approx((0.8, 46 / 44)) and holds
    # seed 1 gains 19% against its own plain run, though 88 is 20% below seed 0's plain
    short = {0: {1: 80.0, 128: 40.0}, 1: {1: 89.1, 128: 44.0}}
    assert improves_on_every_seed(plain, short, seeds=(0, 1))[0] is False
    costly = {0: {1: 50.0, 128: 42.1}}  # +5.25% at the most steps fails on its own
    assert improves_on_every_seed(plain, costly, seeds=(0, 1))[0] is False


def test_improves_on_every_seed_waits_for_missing_seeds_unless_one_failed():
    plain = {0: {1: 100.0, 128: 40.0}, 1: {1: 100.0, 128: 40.0}}
    assert improves_on_every_seed(plain, {0: {1: 70.0, 128: 40.0}}, seeds=(0, 1))[0] is None
    verdict, per_seed = improves_on_every_seed(plain, {0: {1: 84.0, 128: 36.0}}, seeds=(0, 1))
    assert verdict is False and per_seed == {0: (0.84, 0.9, False)}
    assert improves_on_every_seed(plain, {}, seeds=(0, 1)) == (None, {})
