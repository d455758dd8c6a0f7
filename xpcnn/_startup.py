"""Ctrl-C while ``xpcnn-train`` or ``xpcnn-doctor`` starts: one line and exit 130, not a traceback.

Their console scripts import the package before ``main`` runs, so only the package itself can catch a Ctrl-C
that arrives then. :func:`guard` (called first thing by ``xpcnn/__init__.py``) installs a SIGINT handler
for these two programs only; their ``main`` calls :func:`release` to put Python's own handler back before
the run, whose Ctrl-C says what the checkpoint holds. A program that imports xpcnn is left alone.
"""

import os
import signal
import sys
import threading

#: The console scripts of ``pyproject.toml`` whose start this guards.
PROGRAMS = ("xpcnn-train", "xpcnn-doctor")
MESSAGE = "error: interrupted while starting; nothing was trained or written"


def _interrupted(signum, frame):
    sys.stderr.write(MESSAGE + "\n")
    sys.stderr.flush()
    os._exit(130)  # nothing is open yet: no file written, no process started


def guard() -> None:
    """Install the one-line SIGINT handler, where the program is one of :data:`PROGRAMS` and Ctrl-C is
    still Python's default (a caller's own handler stays)."""
    argv = getattr(sys, "argv", None) or [""]
    if os.path.basename(str(argv[0])) not in PROGRAMS or threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _interrupted)


def release() -> None:
    """Put Python's own Ctrl-C back (``KeyboardInterrupt``), if :func:`guard` installed its handler."""
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is _interrupted:
        signal.signal(signal.SIGINT, signal.default_int_handler)
