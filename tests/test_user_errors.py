"""Every error a user can cause derives from one base class, ``UserError``, and keeps the
built-in base it had; the command line prints each one on one line."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import shortcut_mini
from shortcut_mini import UserError
from shortcut_mini.cli import main, user_errors


def _package_errors() -> dict[str, type]:
    """Every exception class defined in the package, by ``module.Name``."""
    found = {}
    for info in pkgutil.walk_packages(shortcut_mini.__path__, "shortcut_mini."):
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and issubclass(obj, Exception) and obj.__module__ == info.name:
                found[f"{info.name}.{name}"] = obj
    return found


def test_every_error_of_the_package_is_a_user_error_and_keeps_its_builtin_base():
    errors = _package_errors()
    assert len(errors) >= 15  # (the walk found them)
    assert "shortcut_mini.train.interrupt.TrainingInterrupted" not in errors  # a KeyboardInterrupt
    for name, cls in errors.items():
        if cls is UserError:
            continue
        assert issubclass(cls, UserError), f"{name} does not derive from UserError"
        assert issubclass(cls, (ValueError, RuntimeError)), f"{name} lost its built-in base"
        assert issubclass(cls, user_errors())


@pytest.mark.parametrize("base", [ValueError, RuntimeError])
def test_the_command_line_prints_a_user_error_on_one_line(base, monkeypatch, capsys):
    class Mistake(UserError, base):
        pass

    def names(args):
        raise Mistake("the problem; the fix")

    monkeypatch.setitem(shortcut_mini.cli.COMMANDS, "names", names)
    assert main(["names"]) == 2
    assert capsys.readouterr().err == "shortcut-mini names: error: the problem; the fix\n"


def test_a_bug_is_not_a_user_error(monkeypatch):
    def names(args):
        raise KeyError("a bug: it keeps its traceback")

    monkeypatch.setitem(shortcut_mini.cli.COMMANDS, "names", names)
    with pytest.raises(KeyError):
        main(["names"])
