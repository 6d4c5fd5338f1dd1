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
        7000,
        4096,
        64,
        0.75,
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
    assert settings("06_design_choices", "gpu").seeds == (0, 1)
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


CHECKED = ("ci", "cpu")  # checks pass at these sizes: ci in the notebook tests, cpu in the book
LOWER_BOUNDS = ("fm_over_shortcut_1step",)  # bounds named neither *_max nor *_min
TRAINED_BY = {"img_collapse_max": "img_steps", "min_clf_accuracy": "clf_epochs"}  # else "steps"


@pytest.mark.parametrize("profile", ["small_gpu", "gpu"])
@pytest.mark.parametrize("name", sorted(PROFILES))
def test_unchecked_bounds_are_no_tighter_than_a_checked_profile_with_less_training(name, profile):
    """The GPU profiles' checks have not passed at their sizes here: each bound a chapter asserts
    is at least as loose as that of the checked profile (ci, cpu) with the most training (steps;
    for a bound on another trained thing, its own count) not above its own, which holds."""
    by = {p: vars(settings(name, p)) for p in PROFILE_NAMES}
    own = by[profile]
    for key, value in own.items():
        lower = key.endswith("_min") or key in LOWER_BOUNDS
        if not (lower or key.endswith("_max")):
            continue
        count = TRAINED_BY.get(key, "steps")
        ref = max((p for p in CHECKED if by[p][count] <= own[count]), key=lambda p: by[p][count])
        if lower:
            assert value <= by[ref][key], (key, value, ref, by[ref][key])
        else:
            assert value >= by[ref][key], (key, value, ref, by[ref][key])


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_the_large_gpu_profile_trains_on_more_examples_than_the_small_one(name):
    """A step costs about the same at any batch this small (it is launch-bound), so ``gpu`` may
    train fewer steps than ``small_gpu``, but not on fewer examples."""
    small, large = vars(settings(name, "small_gpu")), vars(settings(name, "gpu"))
    for steps, batch in (("steps", "batch_size"), ("img_steps", "img_batch")):
        if steps in small:
            assert large[steps] * large[batch] >= small[steps] * small[batch], (name, steps)
