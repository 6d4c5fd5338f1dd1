"""Full-scale reproductions: presets, the papermill batch runner, run records, aggregates.

``shortcut-mini reproduce PRESET`` runs every (method, seed) of a preset of ``PRESETS``
(``preset_specs``, read by ``presets``) through ``reproduce.ipynb`` (``runner``; two-stage methods
after the flow-matching run that teaches them, ``teachers``), each run writing
a record that follows ``results.schema.json`` (``record``, ``schema``); ``aggregate``
turns the records into a table and a figure, ``publish`` puts them into the book and README.
"""

from . import preset_specs
from .aggregate import (
    Summary,
    aggregate,
    load_record_files,
    load_records,
    pattern_check,
    record_values,
    write_summary,
)
from .one_run import evaluate_run, run_one, run_paths, save_grid, train_run, train_torchrun
from .presets import (
    eval_settings,
    get_preset,
    method_seeds,
    objective_of,
    preset_runs,
    preset_table,
    run_config,
    run_name,
)
from .publish import publish
from .record import build_record, read_record, record_label, record_stem, write_record
from .runner import BatchPlan, BatchResult, RunOutcome, check_batch, run_preset
from .schema import SCHEMA_PATH, SCHEMA_VERSION, RecordError, validate_record

__all__ = [
    "PRESETS",
    "SCHEMA_PATH",
    "SCHEMA_VERSION",
    "TABLE1_METHODS",
    "BatchPlan",
    "BatchResult",
    "RecordError",
    "RunOutcome",
    "Summary",
    "aggregate",
    "build_record",
    "check_batch",
    "eval_settings",
    "evaluate_run",
    "get_preset",
    "load_record_files",
    "load_records",
    "method_seeds",
    "objective_of",
    "pattern_check",
    "record_values",
    "preset_runs",
    "preset_table",
    "publish",
    "read_record",
    "record_label",
    "record_stem",
    "run_config",
    "run_name",
    "run_one",
    "run_paths",
    "run_preset",
    "save_grid",
    "train_run",
    "train_torchrun",
    "validate_record",
    "write_record",
    "write_summary",
]


def __getattr__(name: str):
    """``PRESETS`` and ``TABLE1_METHODS`` of ``preset_specs``, read when first asked for (they
    read the objective registry, which imports torch)."""
    if name in ("PRESETS", "TABLE1_METHODS"):
        return getattr(preset_specs, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
