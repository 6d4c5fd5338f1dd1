"""Tests for shortcut_mini.profiles: chapters state defaults once, profiles only what differs."""

from __future__ import annotations

import pytest

from shortcut_mini.levels import DEFAULT_BUDGETS
from shortcut_mini.profiles import PROFILE_NAMES, PROFILES, chapter, settings


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_every_profile_has_the_same_settings_in_the_same_order(name):
    orders = {p: list(vars(settings(name, p))) for p in PROFILE_NAMES}
    assert orders["ci"] == orders["cpu"] == orders["small_gpu"] == orders["gpu"]
    assert orders["cpu"][0] == "profile"
    assert orders["cpu"][1:] == list(PROFILES[name].defaults)


def test_resolved_values_are_pinned():
    # values as they were when every profile was written out in full
    s = settings("01_flow_matching_2d", "ci")
    assert (s.profile, s.model, s.steps, s.n_eval, s.quiver_grid, s.lr) == (
        "ci",
        "mlp-small",
        400,
        1024,
        15,
        1e-3,
    )
    g = settings("01_flow_matching_2d", "gpu")
    assert (g.model, g.steps, g.batch_size, g.n_traj, g.on_board_min) == (
        "mlp",
        20000,
        1024,
        64,
        0.8,
    )
    assert settings("01_flow_matching_2d", "cpu").steps == 3000
    assert settings("04_inside_the_dit", "ci").batch == 4
    assert settings("04_inside_the_dit", "gpu").batch == 8
    five = {p: settings("05_shortcut_on_images", p) for p in PROFILE_NAMES}
    assert five["ci"].budgets == five["cpu"].budgets == (1, 2, 4, 8, 128)
    assert five["gpu"].budgets == DEFAULT_BUDGETS == (1, 2, 4, 8, 16, 32, 64, 128)
    assert five["ci"].image_size is None and five["gpu"].image_size == 16
    assert five["ci"].cfg_scales == (0.0, 1.0, 3.0) and five["gpu"].cfg_scales == (
        0.0,
        1.0,
        2.0,
        4.0,
    )
    assert settings("06_design_choices", "gpu").seeds == (0, 1, 2, 3, 4)
    assert [settings("07_reproducing_the_paper", p).overrides for p in PROFILE_NAMES] == [
        {"steps": 10},
        {"steps": 40},
        {"steps": 200, "device": "auto"},
        {"steps": 200, "device": "auto"},
    ]


def test_a_changed_setting_does_not_leak_into_the_registry():
    s = settings("07_reproducing_the_paper", "ci")
    s.overrides["steps"] = 10_000
    assert settings("07_reproducing_the_paper", "ci").overrides == {"steps": 10}


def test_chapter_merges_at_lookup_and_rejects_unknown_settings():
    ch = chapter(defaults=dict(steps=10, lr=1e-3), ci=dict(steps=2))
    assert ch.resolve("ci") == {"steps": 2, "lr": 1e-3}
    assert ch.resolve("cpu") == ch.resolve("gpu") == {"steps": 10, "lr": 1e-3}
    with pytest.raises(ValueError, match=r"'ci' sets \['stpes'\].*add them to defaults"):
        chapter(defaults=dict(steps=10), ci=dict(stpes=2))
    with pytest.raises(ValueError, match="unknown profile 'tpu'"):
        chapter(defaults=dict(steps=10), tpu=dict(steps=2))


def test_settings_names_unknown_chapter_and_profile():
    with pytest.raises(ValueError, match="unknown chapter 'nope'"):
        settings("nope", "ci")
    with pytest.raises(ValueError, match="unknown profile 'fast'.*SHORTCUT_MINI_PROFILE"):
        settings("01_flow_matching_2d", "fast")


@pytest.mark.parametrize("profile", PROFILE_NAMES)
def test_chapter_8_trains_every_method_and_the_teacher_of_the_two_stage_ones(profile):
    from shortcut_mini.objectives import OBJECTIVES

    s = settings("08_few_step_methods", profile)
    assert set(s.methods) == set(OBJECTIVES)  # the mini Table 1 has every method
    students = [m for m in s.methods if getattr(OBJECTIVES[m], "needs_teacher", False)]
    assert sorted(students) == ["consistency_distillation", "progressive_distillation", "reflow"]
    assert s.methods.index("flow_matching") < min(s.methods.index(m) for m in students)
    assert s.reflow_pairs is None or 0 < s.reflow_pairs <= s.n_data


def test_the_notebooks_know_the_registrys_profiles(monkeypatch):
    from shortcut_mini import notebook

    monkeypatch.delenv("SHORTCUT_MINI_PROFILE", raising=False)

    assert notebook.PROFILES == PROFILE_NAMES
    assert notebook.choose_profile("small_gpu")[0] == "small_gpu"


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_small_gpu_checks_are_the_looser_of_its_neighbours(name):
    """The small-GPU sizes were not run on a GPU here: each bound a chapter asserts is the looser
    of the bounds of the two profiles whose training steps are next below and above (or equal to)
    its own, both of which hold at their sizes, and it trains no more steps than gpu."""
    by = {p: vars(settings(name, p)) for p in PROFILE_NAMES}
    small = by["small_gpu"]
    if "steps" not in small:
        return  # nothing trained by the chapter's own sizes
    assert small["steps"] <= by["gpu"]["steps"]
    others = [p for p in PROFILE_NAMES if p != "small_gpu"]
    below = max(
        (p for p in others if by[p]["steps"] <= small["steps"]), key=lambda p: by[p]["steps"]
    )
    above = min(
        (p for p in others if by[p]["steps"] >= small["steps"]), key=lambda p: by[p]["steps"]
    )
    for key in small:
        if key.endswith("_max"):
            assert small[key] == max(by[below][key], by[above][key]), key
        elif key.endswith("_min"):
            assert small[key] == min(by[below][key], by[above][key]), key
