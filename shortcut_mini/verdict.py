"""The paper's Table 1 as expectations, checked against a table of distances.

Table 1 of Frans et al. (2025) leads a reader to expect that, at 1 and 4 sampling steps, shortcut
models beat every single-phase baseline (diffusion, flow matching, consistency training, live
reflow) and come near the distillation methods, which need a second training run (its CelebA-HQ
FIDs at 1 step: shortcut 20.5, consistency distillation 38.2; at 4 steps 13.8 against 39.6).
:func:`table1_verdict` states, from any table of distances (lower is better: a toy's sliced
Wasserstein distance, an image run's FD), which of these expectations hold, in sentences that name
the methods ahead of shortcut and both distances. Chapter 8 uses it for its CPU toy and for the
committed GPU records of the ``table1`` preset.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from .notebook import plural, word_list

__all__ = [
    "DISTILLED",
    "NEAR",
    "ONE_STEP_TIE",
    "SINGLE_PHASE",
    "Verdict",
    "best_one_step",
    "improves_on_every_seed",
    "switches_to_combine",
    "table1_verdict",
]

SINGLE_PHASE = ("diffusion", "flow_matching", "consistency_training", "live_reflow")
"""The paper's baselines trained in one run."""
DISTILLED = ("progressive_distillation", "consistency_distillation", "reflow")
"""The paper's baselines that distil a finished flow-matching run (a second training run)."""
NEAR = 1.25
"""Shortcut is "near" a method when its distance is at most this factor times the method's."""
ONE_STEP_TIE = 1.01
"""Settings whose 1-step distances are within this factor of the best tie (:func:`best_one_step`)."""
MANY_STEP_SLACK = 1.05
"""A switch may cost at most this factor of plain's 128-step distance (:func:`switches_to_combine`)."""
ONE_STEP_GAIN = 0.8
"""A combination must bring the 1-step distance to at most this factor of plain's
(:func:`improves_on_every_seed`: 20% lower)."""


def best_one_step(distance: Mapping[str, Mapping[int, float]]) -> str:
    """The setting of a sweep with the lowest 1-step distance; among settings within
    :data:`ONE_STEP_TIE` of it, the one with the lowest 2-step distance.

    The rule by which the ``tuning`` preset chooses MeanFlow's settings (a one-step method is
    judged at one step), stated before the sweep ran."""
    if not distance:
        raise ValueError("best_one_step: no settings to choose from")
    best = min(row[1] for row in distance.values())
    tied = [name for name, row in distance.items() if row[1] <= ONE_STEP_TIE * best]
    return min(tied, key=lambda name: distance[name][2])


def switches_to_combine(
    plain: Mapping[int, float], alone: Mapping[str, Mapping[int, float]]
) -> list[str]:
    """The switches (rows of ``alone``, each a switch trained alone; distances by step budget)
    that join the combined run of an ablation, by a rule stated before the ablation ran: a switch
    joins when alone it lowers the 1-step distance below plain's by more than
    :data:`ONE_STEP_TIE` and costs at most :data:`MANY_STEP_SLACK` at the most steps measured.
    If none does, the combination is the one switch with the lowest 1-step distance, so that
    the two-seed run still tests the most promising switch. Sorted by name."""
    if not alone:
        raise ValueError("switches_to_combine: no switches to choose from")
    most = max(plain)
    joined = sorted(
        name
        for name, row in alone.items()
        if row[1] * ONE_STEP_TIE < plain[1] and row[most] <= MANY_STEP_SLACK * plain[most]
    )
    return joined or [min(alone, key=lambda name: alone[name][1])]


def improves_on_every_seed(
    plain: Mapping[int, Mapping[int, float]],
    combined: Mapping[int, Mapping[int, float]],
    seeds: Sequence[int],
) -> tuple[bool | None, dict[int, tuple[float, float, bool]]]:
    """Whether a combination of switches improves on the plain shortcut model on every seed of
    ``seeds``, by a rule stated before it ran: at least 20% lower 1-step distance
    (:data:`ONE_STEP_GAIN`) and at most 5% higher at the most steps measured
    (:data:`MANY_STEP_SLACK`), each seed against plain's run of the same seed.

    ``plain`` and ``combined`` map a training seed to its distances by step budget. Returns the
    verdict and, per seed recorded in both, ``(1-step ratio, many-step ratio, holds)``. The
    verdict is False as soon as one seed fails, True when every seed of ``seeds`` holds, and None
    (not decided) while seeds are missing and the recorded ones hold."""
    per_seed = {}
    for seed in sorted(set(plain) & set(combined)):
        p, c = plain[seed], combined[seed]
        most = max(p)
        one, many = c[1] / p[1], c[most] / p[most]
        per_seed[seed] = (one, many, one <= ONE_STEP_GAIN and many <= MANY_STEP_SLACK)
    if any(not holds for _, _, holds in per_seed.values()):
        return False, per_seed
    return (True if set(seeds) <= set(per_seed) else None), per_seed


@dataclass
class Verdict:
    """What :func:`table1_verdict` found.

    ``lines``: Markdown bullets, one per expectation and budget. ``beats_single[b]``: how many
    single-phase baselines shortcut beats at ``b`` steps, in words ("all 4", "2 of the 4");
    ``near_distilled[b]``: of how many distillation methods it is near or ahead ("1 of the 3");
    ``holds[(expectation, b)]``: whether it held; ``meanflow``: "ahead of" or "behind" (MeanFlow
    against shortcut at 1 step), None without MeanFlow."""

    lines: list[str] = field(default_factory=list)
    beats_single: dict[int, str] = field(default_factory=dict)
    near_distilled: dict[int, str] = field(default_factory=dict)
    holds: dict[tuple[str, int], bool] = field(default_factory=dict)
    meanflow: str | None = None

    @property
    def markdown(self) -> str:
        return "\n".join(self.lines)


def table1_verdict(
    distance: Mapping[str, Mapping[int, float]],
    budgets: Sequence[int] = (1, 4),
    fmt: Callable[[float], str] = lambda v: f"{v:.3f}",
    shortcut: str = "shortcut",
    equal_compute: str | None = None,
) -> Verdict:
    """Check the paper's Table 1 expectations against ``distance[method][steps]`` (lower is
    better) at each of ``budgets``.

    ``shortcut`` names the row that plays shortcut models. ``equal_compute`` optionally names a
    second shortcut row trained on as many images as a distilled student and its teacher together
    (the ``table1`` preset's ``shortcut_16k``); it is compared with the distillation methods too.
    Methods missing from ``distance`` are left out of each comparison.
    """
    if shortcut not in distance:
        raise ValueError(f"no {shortcut!r} row among {sorted(distance)}: nothing to check")
    single = [m for m in SINGLE_PHASE if m in distance]
    distilled = [m for m in DISTILLED if m in distance]
    out = Verdict()

    def d(m: str, b: int) -> float:
        return float(distance[m][b])

    for b in budgets:
        steps = plural(b, "step")
        ahead = [m for m in single if d(shortcut, b) >= d(m, b)]
        beaten = len(single) - len(ahead)
        out.holds[("beats single-phase", b)] = not ahead
        out.beats_single[b] = f"all {beaten}" if not ahead else f"{beaten} of the {len(single)}"
        if single and not ahead:
            out.lines.append(
                f"- At {steps}, {shortcut} beats all {len(single)} single-phase baselines, as the "
                "paper leads us to expect."
            )
        elif single:
            out.lines.append(
                f"- At {steps}, {shortcut} beats {beaten} of the {len(single)} single-phase "
                "baselines; ahead of it: "
                + word_list([f"{m} {fmt(d(m, b))} against {fmt(d(shortcut, b))}" for m in ahead])
                + "."
            )
        for row in [shortcut] + ([equal_compute] if equal_compute in distance else []):
            if not distilled:
                break
            words = {}
            for m in distilled:
                ratio = d(row, b) / d(m, b)
                word = "ahead of" if ratio < 1 else ("near" if ratio <= NEAR else "behind")
                shown = word if word != "behind" else f"{ratio:.1f}x behind"
                words[m] = (word, f"{shown} {m} ({fmt(d(row, b))} against {fmt(d(m, b))})")
            close = [m for m in distilled if words[m][0] in ("ahead of", "near")]
            far = [m for m in distilled if m not in close]
            line = (
                f"- At {steps}, {row} is near or ahead of {len(close)} of the {len(distilled)} "
                "distillation methods: " + word_list([t for _, t in words.values()]) + "."
            )
            if far:
                line += (
                    " The paper leads us to expect shortcut near all of them; here "
                    + word_list(far)
                    + (" is" if len(far) == 1 else " are")
                    + " further ahead."
                )
            out.lines.append(line)
            if row == shortcut:
                out.holds[("near distilled", b)] = not far
                out.near_distilled[b] = (
                    f"all {len(close)}" if not far else f"{len(close)} of the {len(distilled)}"
                )
    if "meanflow" in distance and 1 in distance["meanflow"]:
        ahead = d("meanflow", 1) < d(shortcut, 1)
        out.meanflow = "ahead of" if ahead else "behind"
        out.holds[("meanflow ahead", 1)] = ahead
        out.lines.append(
            f"- At 1 step MeanFlow is {out.meanflow} {shortcut} ({fmt(d('meanflow', 1))} against "
            f"{fmt(d(shortcut, 1))}); it has been reported well ahead (CIFAR-10 FID 2.80 against "
            "27.28)."
        )
    return out
