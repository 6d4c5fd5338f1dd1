"""Small helpers that every chapter notebook calls.

A chapter reads its *profile* (how big a run to make) with :func:`get_profile`: the environment
variable ``SHORTCUT_MINI_PROFILE`` when set, else by the device: ``gpu`` on a large GPU, ``small_gpu``
on a Colab-class one (:func:`gpu_profile`), ``cpu`` without one; it prints which one runs and why; the cell after its ``parameters`` cell checks the
parameters' values with :func:`check_parameters` (papermill may have injected others). Its last cell
prints :func:`run_record`, so that every figure in the book can be traced to the profile, device,
commit and wall time that produced it (:ref:`the book's design notes <design-evaluation>`). :func:`in_colab` tells the first
cells whether they run in Google Colab.

This module imports nothing heavy at import time; ``torch`` is imported only inside
:func:`cuda_available`, :func:`gpu_profile` and :func:`run_record`.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from .common import COMMIT_ENV, device_name, git_commit, run_git

__all__ = [
    "COMMIT_ENV",
    "DEFAULT_PROFILE",
    "PROFILES",
    "PROFILE_ENV",
    "PARAMETERS",
    "GPU_PROFILE",
    "LARGE_GPU_MIN_CAPABILITY",
    "LARGE_GPU_MIN_MEMORY_GB",
    "SMALL_GPU_PROFILE",
    "check_parameters",
    "choose_profile",
    "cuda_available",
    "device_name",
    "find_repo_file",
    "format_run_record",
    "get_profile",
    "git_commit",
    "run_git",
    "in_colab",
    "glue",
    "glue_run_record",
    "gpu_profile",
    "plural",
    "run_record",
    "word_list",
]

PROFILES = ("ci", "cpu", "small_gpu", "gpu")
"""The known profiles, ``ci`` (seconds, for tests), ``cpu`` (the book's default), ``small_gpu``
(Colab's free T4 and GPUs like it) and ``gpu`` (large GPUs)."""

DEFAULT_PROFILE = "cpu"
"""The profile used when :data:`PROFILE_ENV` is unset or empty and no CUDA device is present."""

GPU_PROFILE = "gpu"
"""The profile of a large GPU, when :data:`PROFILE_ENV` is unset or empty (:func:`gpu_profile`)."""

SMALL_GPU_PROFILE = "small_gpu"
"""The profile of any other CUDA GPU, when :data:`PROFILE_ENV` is unset or empty."""

LARGE_GPU_MIN_CAPABILITY = (8, 0)
"""A large GPU has at least this compute capability (with bf16 tensor cores, as A100, H100, L40S)."""

LARGE_GPU_MIN_MEMORY_GB = 32.0
"""And at least this much memory in GB (10**9 bytes), so the data-centre cards and not a T4 (15 GB)
or the 24 GB cards (L4, A10G, RTX 3090 and 4090), whose throughput is a few times a T4's."""

PROFILE_ENV = "SHORTCUT_MINI_PROFILE"
"""Environment variable that selects the profile; it wins over everything else."""


def cuda_available() -> bool:
    """True when PyTorch is installed and sees a CUDA device (imports torch only here)."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return bool(torch.cuda.is_available())


def gpu_profile(capability: tuple[int, int], memory_gb: float) -> tuple[str, str]:
    """``(profile, reason)`` for a CUDA GPU of compute ``capability`` and ``memory_gb``:
    ``gpu`` from capability 8.0 and 32 GB on (A100, H100, H200, L40S), ``small_gpu`` below
    (Colab's free T4: 7.5 and 15 GB; V100, L4, A10G, consumer cards)."""
    cc = f"compute capability {capability[0]}.{capability[1]}, {memory_gb:.1f} GB"
    large = capability >= LARGE_GPU_MIN_CAPABILITY and memory_gb >= LARGE_GPU_MIN_MEMORY_GB
    if large:
        return GPU_PROFILE, f"a large CUDA GPU: {cc}"
    need = f"{LARGE_GPU_MIN_CAPABILITY[0]}.{LARGE_GPU_MIN_CAPABILITY[1]}"
    return SMALL_GPU_PROFILE, (
        f"a Colab-class CUDA GPU: {cc} (the gpu profile needs {need} and "
        f"{LARGE_GPU_MIN_MEMORY_GB:.0f} GB)"
    )


def _device_profile() -> tuple[str, str] | None:
    """:func:`gpu_profile` of CUDA device 0, or None without one (imports torch only here)."""
    if not cuda_available():
        return None
    import torch

    capability = tuple(torch.cuda.get_device_capability(0))
    memory_gb = torch.cuda.get_device_properties(0).total_memory / 1e9
    return gpu_profile(capability, memory_gb)


def choose_profile(default: str | None = None) -> tuple[str, str]:
    """The run profile and the reason it was chosen, as ``(profile, reason)``.

    The order: ``$SHORTCUT_MINI_PROFILE`` when set; else ``default`` when given; else, with a
    CUDA device, ``gpu`` or ``small_gpu`` by its capability and memory (:func:`gpu_profile`:
    Colab's free T4 gets ``small_gpu``), and ``cpu`` without one.

    Raises:
        ValueError: if the variable (or ``default``) names an unknown profile.
    """
    value = os.environ.get(PROFILE_ENV, "").strip().lower()
    if value:
        reason = f"set by ${PROFILE_ENV}"
    elif default is not None:
        value, reason = default.strip().lower(), "the default this notebook asks for"
    elif (by_device := _device_profile()) is not None:
        value, reason = by_device
    else:
        value, reason = DEFAULT_PROFILE, "no CUDA device is present"
    if value not in PROFILES:
        raise ValueError(
            f"unknown profile {value!r} ({reason}); choose one of {', '.join(PROFILES)} "
            f'(set ${PROFILE_ENV}, or write profile = "cpu" in the parameters cell)'
        )
    return value, reason


def get_profile(default: str | None = None, *, announce: bool = True) -> str:
    """Return the run profile: ``$SHORTCUT_MINI_PROFILE``, else ``default``, else by device.

    A chapter's parameters cell calls ``profile = get_profile()``; with the variable unset it
    picks by the device: ``gpu`` or ``small_gpu`` on a CUDA GPU, ``cpu`` without one (see
    :func:`choose_profile`).
    Overwrite ``profile`` in that cell (or let papermill inject it) to choose another.

    Args:
        default: the profile used when the variable is unset or empty, instead of the device's.
        announce: print one line saying which profile was chosen and why.

    Returns:
        One of :data:`PROFILES`, lower-cased and stripped.

    Raises:
        ValueError: if the variable (or ``default``) names an unknown profile.
    """
    value, reason = choose_profile(default)
    if announce:
        print(f"profile: {value} ({reason})")
    return value


def _is_seed(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_names(value) -> bool:
    ok = isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
    return value is None or ok


PARAMETERS = {
    "profile": (
        lambda v: isinstance(v, str) and v.strip().lower() in PROFILES,
        f"one of {', '.join(PROFILES)}",
        "-p profile cpu",
        'profile = "cpu"',
    ),
    "seed": (_is_seed, "an integer >= 0", "-p seed 1", "seed = 1"),
    "methods": (
        _is_names,
        "None (the profile's list) or a list of method names",
        "-y methods '[shortcut, meanflow]'",
        'methods = ["shortcut", "meanflow"]',
    ),
}
"""The parameters a chapter's ``parameters`` cell may hold: ``(check, what it must be, a
papermill example, a parameters-cell example)`` for each name."""


def check_parameters(**values) -> None:
    """Check a chapter's parameters against their expected types, as its first cell after the
    ``parameters`` cell does (``check_parameters(profile=profile, seed=seed)``): a value typed
    there, or injected by papermill (``-p seed abc``, which papermill passes as the text
    ``"abc"``), fails here with a sentence, not deep inside PyTorch.

    Raises:
        ValueError: naming the first bad parameter, the value it got and how to give one.
        TypeError: a name that is no chapter parameter (:data:`PARAMETERS` lists them).
    """
    for name, value in values.items():
        if name not in PARAMETERS:
            raise TypeError(
                f"check_parameters: {name!r} is no chapter parameter; known: {sorted(PARAMETERS)}"
            )
        ok, expected, papermill, cell = PARAMETERS[name]
        if not ok(value):
            raise ValueError(
                f"parameter {name} must be {expected}, got {value!r} ({type(value).__name__}); "
                f"with papermill give e.g. {papermill}, or write {cell} in the parameters cell"
            )


def in_colab() -> bool:
    """True when running inside Google Colab (its ``google.colab`` module is loaded)."""
    return "google.colab" in sys.modules


def run_record(start_time: float, profile: str, *, show: bool = True) -> dict:
    """Build (and by default print) a chapter's run record.

    Args:
        start_time: ``time.time()`` taken at the start of the chapter.
        profile: the profile the chapter ran at (see :func:`get_profile`).
        show: print the record with :func:`format_run_record`.

    Returns:
        A dict with keys ``profile``, ``device``, ``commit``, ``wall_time_s`` (seconds, rounded
        to 0.1), ``torch`` (version string) and ``python`` (version string).
    """
    try:
        import torch

        torch_version = torch.__version__
    except ImportError:  # pragma: no cover
        torch_version = "not installed"
    record = {
        "profile": profile,
        "device": device_name(),
        "commit": git_commit(),
        "wall_time_s": round(max(0.0, time.time() - float(start_time)), 1),
        "torch": torch_version,
        "python": sys.version.split()[0],
    }
    if show:
        print(format_run_record(record))
    return record


def format_run_record(record: dict) -> str:
    """Render a run record as aligned ``key: value`` lines under a ``run record`` heading."""
    width = max((len(k) for k in record), default=0)
    lines = ["run record"]
    for key, value in record.items():
        if key == "wall_time_s":
            minutes, seconds = divmod(float(value), 60.0)
            value = f"{value} s ({int(minutes)} min {seconds:.0f} s)"
        lines.append(f"  {key.ljust(width)} : {value}")
    return "\n".join(lines)


class GluedText:
    """A glued text: ``{glue:text}`` shows ``text`` exactly, e.g. ``204,800`` or ``2, 4 and 8``.

    myst-nb's ``{glue:text}`` role runs ``ast.literal_eval`` on the value's ``text/plain`` form
    before it prints it, so a bare ``204,800`` would come back as the tuple ``(204, 800)`` and
    ``0.00`` as ``0.0``. The repr is therefore the quoted string literal, which evaluates to
    ``text`` itself.
    """

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return repr(self.text)

    def __str__(self) -> str:
        return self.text


def glue(name: str, value, fmt: str | None = None) -> None:
    """Store ``value`` for the page's prose (myst-nb's ``glue``); a markdown cell shows it with
    ``{glue:text}`name```.

    The value is stored as its text: ``format(value, fmt)`` with a format spec such as
    ``".3f"``, ``".0%"`` or ``",d"``, so that the prose shows exactly the digits the chapter's
    tables show, and ``str(value)`` without one. Nothing is displayed in the cell, and nothing is
    returned (so a ``glue`` call that ends a cell adds no output). Where myst-nb is not installed
    (e.g. in Colab) this does nothing.
    """
    try:
        from myst_nb import glue as _glue
    except ImportError:
        return
    text = format(value, fmt) if fmt is not None else str(value)
    _glue(name, GluedText(text), display=False)


def plural(n: int, word: str, words: str | None = None) -> str:
    """``n`` and the noun in the right number: ``plural(1, "step")`` is ``1 step``, ``4 steps``.

    ``words`` is the plural when it is not ``word + "s"``. Thousands are grouped (``8,000``).
    """
    return f"{n:,} {word if n == 1 else (words or word + 's')}"


def word_list(items, conjunction: str = "and", empty: str = "none") -> str:
    """Items as a reader writes them: ``1``, ``1 and 2``, ``2, 4, 8 and 128``; ``empty`` if none.

    Each item is shown with ``str`` (so pass formatted text for numbers that need it).
    """
    items = [str(i) for i in items]
    if not items:
        return empty
    if len(items) == 1:
        return items[0]
    return f"{', '.join(items[:-1])} {conjunction} {items[-1]}"


def glue_run_record(record: dict) -> None:
    """Glue a chapter's wall time and profile for its opening lines.

    The prose then reads ``{glue:text}`page_wall_time``` (e.g. ``2 min 5 s``) and
    ``{glue:text}`page_profile```, both taken from ``record`` (see :func:`run_record`).
    """
    minutes, seconds = divmod(round(float(record["wall_time_s"])), 60)
    glue("page_wall_time", f"{minutes} min {seconds} s" if minutes else f"{seconds} s", "s")
    glue("page_profile", str(record["profile"]), "s")


def find_repo_file(relpath: str, start: str | os.PathLike | None = None):
    """The committed file or folder ``relpath`` of the book's repository, searched from ``start``
    (the working directory) upwards, as a ``Path``; None where only the package is installed
    (Colab), so a chapter can show committed results where they exist and say so where not."""
    start = Path(start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / relpath).exists():
            return folder / relpath
    return None
