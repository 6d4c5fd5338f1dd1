"""Where downloaded datasets live."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV_VAR = "SHORTCUT_MINI_DATA"


def default_data_root() -> Path:
    """``$SHORTCUT_MINI_DATA`` if set, else ``~/.cache/shortcut_mini/data``."""
    env = os.environ.get(DATA_ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path("~/.cache/shortcut_mini/data").expanduser()


def resolve_root(root: str | os.PathLike[str] | None) -> Path:
    """``root`` as a ``Path``, falling back to :func:`default_data_root`."""
    return Path(root).expanduser() if root is not None else default_data_root()
