"""The base class of every error a user can cause and fix (:class:`UserError`).

A bad setting, a missing data set, a checkpoint that cannot be read, a run of another config in
``out_dir``, a diverging run: each is a subclass of :class:`UserError` whose message names the
problem and the fix. The command line prints such an error's message on one line, without a
traceback (``shortcut_mini.cli.main``); in Python, ``except UserError`` catches them all. Each
subclass also keeps the built-in base it had before (``ValueError`` for a bad value,
``RuntimeError`` for a state of the world), so code that catches those still does.
"""

from __future__ import annotations

__all__ = ["UserError"]


class UserError(Exception):
    """An error the user caused and can fix; its message says how."""
