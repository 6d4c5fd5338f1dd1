"""Ctrl-C during training: finish the step, save a checkpoint, and say how to resume."""

from __future__ import annotations

import signal
import threading

__all__ = ["TrainingInterrupted", "StopAtStepEnd"]


class TrainingInterrupted(KeyboardInterrupt):
    """Training was interrupted (Ctrl-C). The message says what was saved and how to resume;
    ``step`` is the step of the checkpoint the run resumes from (``None``: none yet).

    A subclass of ``KeyboardInterrupt``, so that ``except Exception`` does not swallow it.
    """

    def __init__(self, message: str, step: int | None = None):
        super().__init__(message)
        self.message, self.step = message, step

    def __str__(self) -> str:
        return self.message


class StopAtStepEnd:
    """While active, the first SIGINT only sets :attr:`requested` (the loop stops at the end of
    the step, where the state is consistent); a second one interrupts at once.

    Active only in the main thread of one process, and only over Python's default handler:
    under DDP the ranks would see the signal at different steps and wait for each other.
    """

    def __init__(self, enabled: bool = True):
        self.enabled, self.requested, self._previous = enabled, False, None

    def __enter__(self) -> StopAtStepEnd:
        usable = self.enabled and threading.current_thread() is threading.main_thread()
        if usable and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, self._previous)

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
