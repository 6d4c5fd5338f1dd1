"""Ctrl-C or SIGTERM during training: finish the step, save a checkpoint, and say how to resume.

SIGTERM is what ``timeout``, a batch scheduler (Slurm at the end of a job's time) and ``docker
stop`` send before they kill: it is answered as Ctrl-C is, so that the run resumes from the
step it had reached.
"""

from __future__ import annotations

import signal
import threading

__all__ = ["TrainingInterrupted", "StopAtStepEnd", "STOP_SIGNALS"]

STOP_SIGNALS = {signal.SIGINT: "SIGINT (Ctrl-C)", signal.SIGTERM: "SIGTERM"}
"""The signals that stop training at the end of a step, with their names in messages."""


class TrainingInterrupted(KeyboardInterrupt):
    """Training was interrupted (Ctrl-C, SIGTERM). The message says what was saved and how to
    resume; ``step`` is the step of the checkpoint the run resumes from (``None``: none yet).

    A subclass of ``KeyboardInterrupt``, so that ``except Exception`` does not swallow it.
    """

    def __init__(self, message: str, step: int | None = None):
        super().__init__(message)
        self.message, self.step = message, step

    def __str__(self) -> str:
        return self.message


def _default_handler(signum: int):
    return signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL


class StopAtStepEnd:
    """While active, the first SIGINT or SIGTERM only sets :attr:`requested` (the loop stops at
    the end of the step, where the state is consistent, and saves); a second one acts at once
    (Ctrl-C raises ``KeyboardInterrupt``, SIGTERM terminates). :attr:`signal` is the signal
    that asked.

    Active only in the main thread of one process, and only over the default handlers (a
    handler someone installed is left alone): under DDP the ranks would see the signal at
    different steps and wait for each other.
    """

    def __init__(self, enabled: bool = True):
        self.enabled, self.requested, self.signal = enabled, False, None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopAtStepEnd:
        if not (self.enabled and threading.current_thread() is threading.main_thread()):
            return self
        for signum in STOP_SIGNALS:
            if signal.getsignal(signum) is _default_handler(signum):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.requested, self.signal = True, signum
        signal.signal(signum, self._previous[signum])

    def __exit__(self, *exc) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous = {}
