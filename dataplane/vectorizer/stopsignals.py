"""Stop signals from the first moment of ``vectorizer serve``.

SIGTERM (Kubernetes), SIGINT (Ctrl-C) and SIGHUP (the terminal went away) stop the
server cleanly. Once its event loop runs, the loop handles them (``server.serve``).
Before that, for the ~0.5-1 s in which the modules load, the process re-executes itself
for huge pages and the store and the port are set up, SIGTERM and SIGHUP would kill it
and SIGINT would end it in a KeyboardInterrupt traceback. From the start they are noted
here instead, and the loop stops as soon as it runs: the same clean exit 0 as later.

This module imports nothing heavy: ``vectorizer.__main__`` calls ``note`` before it
loads the rest.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

_noted: list[int] = []


def note() -> None:
    """Note the stop signals from now on instead of dying of them; let through those
    held across a re-execution (``hold``), which are then noted."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, _note)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def _note(signum: int, _frame: FrameType | None) -> None:
    _noted.append(signum)


def noted() -> bool:
    """Whether a stop signal came before the event loop took them over."""
    return bool(_noted)


def hold() -> None:
    """Before an exec: block the stop signals in this thread, so that one arriving
    meanwhile waits (a thread's blocked and pending signals survive its exec) until the
    new image calls ``note``, and raise again, at this thread, those already noted,
    which the exec would forget. (Sent to the process, a signal could go to a thread
    that does not block it, such as numpy's, and be lost in the exec: one arriving from
    outside in the microseconds between this call and the exec still can.)"""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    for sig in dict.fromkeys(_noted):
        signal.pthread_kill(threading.get_ident(), sig)
