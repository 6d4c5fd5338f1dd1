"""One registry of sizes: the chapters' profiles and the reproduction presets.

A chapter reads its sizes with ``settings("03_shortcut_models", profile)``; ``profile`` is

* ``ci``: seconds on a CPU, for the tests (nbval) and the CI book build;
* ``cpu``: the book's default, a few minutes on a laptop CPU with the embedded data;
* ``gpu``: Colab's T4 or better.

Reproduction presets (``shortcut-mini reproduce PRESET``) live in ``PRESETS`` beside them, so a
chapter's ``gpu`` profile and a preset can share one definition.
"""

from __future__ import annotations

from types import SimpleNamespace

__all__ = ["PROFILE_NAMES", "PROFILES", "PRESETS", "settings"]

PROFILE_NAMES = ("ci", "cpu", "gpu")

# Each chapter: {profile: {setting: value}}. Keep ci tiny (whole chapter < 1 minute on 2 CPU
# cores) and cpu modest (the whole book < 30 minutes on 2 CPU cores).
PROFILES: dict[str, dict[str, dict]] = {
    "01_flow_matching_2d": {"ci": {}, "cpu": {}, "gpu": {}},
    "02_why_few_steps_fail": {"ci": {}, "cpu": {}, "gpu": {}},
    "03_shortcut_models": {"ci": {}, "cpu": {}, "gpu": {}},
    "04_inside_the_dit": {"ci": {}, "cpu": {}, "gpu": {}},
    "05_shortcut_on_images": {"ci": {}, "cpu": {}, "gpu": {}},
    "06_design_choices": {"ci": {}, "cpu": {}, "gpu": {}},
    "07_reproducing_the_paper": {"ci": {}, "cpu": {}, "gpu": {}},
}

# Reproduction presets: {name: {...}}; filled by shortcut_mini.reproduce.
PRESETS: dict[str, dict] = {}


def settings(chapter: str, profile: str) -> SimpleNamespace:
    """The sizes of ``chapter`` at ``profile`` as attributes (``s.steps``, ``s.batch_size``...)."""
    if chapter not in PROFILES:
        raise ValueError(f"unknown chapter {chapter!r}; known: {sorted(PROFILES)}")
    if profile not in PROFILE_NAMES:
        raise ValueError(
            f"unknown profile {profile!r}; choose one of {PROFILE_NAMES} "
            "(set SHORTCUT_MINI_PROFILE or the notebook's parameters cell)"
        )
    return SimpleNamespace(profile=profile, **PROFILES[chapter][profile])
