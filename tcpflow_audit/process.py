"""The `tcpflow-audit` process: SIGTERM and SIGINT handled from its start, then the CLI, then a quick exit.

`run` is the command (and `python -m tcpflow_audit`). This module imports nothing heavy, so that
`run` installs its one `TerminationHandler` for SIGTERM and SIGINT before the CLI's imports (about
50 ms of them): a signal at any moment after that ends the run with its stderr line and 143 or
130, where the default action would have killed it without a word (only a signal during the
interpreter's own start-up, before `run`, still does). Until the CLI's run arms the
handler (`sigterm_as_interrupt`), it only notes the signal, which the run then acts on as it starts;
after the run it notes it again, so that nothing cuts the run's own line short.

Signals the parent process set to be ignored stay ignored (an ignored SIGTERM, or the SIGINT of a
background job), and `main` called from Python (a test, a program embedding the CLI) keeps the
caller's handlers: it installs its own for SIGTERM only when SIGTERM has its default action, and
only for the run; SIGINT there is Python's KeyboardInterrupt, as always.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class Terminated(KeyboardInterrupt):
    """SIGTERM during the CLI's run, raised as a KeyboardInterrupt so that it stops the run as Ctrl-C does."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__(signum)
        self.signum = signum


class TerminationHandler:
    """The handler for SIGTERM (and, in the command's process, SIGINT).

    `signum` is the first signal received (Auditor.run swallows the exception, so this says the run
    was interrupted, and by which signal). Armed, it raises `Terminated` for SIGTERM and
    KeyboardInterrupt for SIGINT, also a second time (it stops the writing of a report, like Ctrl-C);
    unarmed it only notes the signal.
    """

    def __init__(self, *, armed: bool = True) -> None:
        self.signum: int | None = None
        self.armed = armed
        self.run_started = False  # the CLI's run armed it (and so reports a signal itself)

    def __call__(self, signum: int, frame: Any) -> None:
        if self.signum is None:
            self.signum = signum
        if self.armed:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            raise Terminated(signum)

    def raise_pending(self) -> None:
        if self.signum is not None:
            self(self.signum, None)


_process_handler: TerminationHandler | None = None  # the command's own, installed by `run`


def install_process_handler() -> TerminationHandler:
    """The command's handler for SIGTERM and SIGINT, unarmed, for every signal of the two that has its
    default disposition (SIGINT's default under Python is its KeyboardInterrupt handler)."""
    global _process_handler
    handler = TerminationHandler(armed=False)
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, handler)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, handler)
    _process_handler = handler
    return handler


def termination_handler() -> TerminationHandler:
    """The handler a run uses: the command's own when `run` installed it, else a new one."""
    return _process_handler if _process_handler is not None else TerminationHandler()


@contextmanager
def sigterm_as_interrupt(handler: TerminationHandler) -> Iterator[None]:
    """For the duration of the block, SIGTERM calls `handler`, which raises `Terminated` (a KeyboardInterrupt).

    The command's own handler (installed by `run`) is armed for the block, and a signal it noted
    before is raised at once. Otherwise `handler` is installed for the block only in the main thread
    (the only one Python delivers signals to) and only when SIGTERM has its default disposition, as
    Python does for SIGINT: an ignored SIGTERM stays ignored and a handler of the program calling
    `main()` stays in place. The previous handler is restored afterwards.
    """
    if handler is _process_handler:
        handler.armed = handler.run_started = True
        try:
            handler.raise_pending()
            yield
        finally:
            handler.armed = False
        return
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run() -> None:
    """The `tcpflow-audit` command (and `python -m tcpflow_audit`): the signal handler, `main`, then leave at once.

    Python's own shutdown frees the whole heap object by object: after a 2M-packet capture that
    was 0.1 s (5% of the run), after a SYN flood seconds, spent on objects about to vanish with the
    process. By the time `main` exits, every report is complete and renamed into place; what is
    left to do is flushing standard output and error, done here. When something else would run
    at a normal exit (an atexit handler, e.g. coverage's; a thread Python would wait for), or for
    an exception that is not an exit (a bug: traceback included), Python's normal way is taken.
    """
    handler = install_process_handler()
    try:
        from .cli import main

        main()  # (click's standalone mode: always ends with SystemExit)
    except SystemExit as done:
        status = done.code
        if handler.signum is not None and not handler.run_started:
            # a signal before the run began (the imports, the options) or in a command that reads
            # nothing (--help, --version, --show-config, a usage error): no capture read, no file written
            by = "" if handler.signum == signal.SIGINT else f" by {signal.Signals(handler.signum).name}"
            print(f"tcpflow-audit: interrupted{by} before reading any capture; nothing was written", file=sys.stderr)
            status = 128 + handler.signum
        if not _quick_exit_is_safe():
            raise SystemExit(status) from None
        if status is None:
            status = 0
        elif not isinstance(status, int):  # (as Python does with a message for an exit status)
            print(status, file=sys.stderr)
            status = 1
        try:
            sys.stdout.flush()
        except BrokenPipeError:  # the reader left before the last rows: as a program SIGPIPE ended
            discard_stdout()
            status = 128 + signal.SIGPIPE
        except Exception:  # (a full disk: Python's normal exit reports it)
            raise SystemExit(status) from None
        try:
            sys.stderr.flush()
        except Exception:
            raise SystemExit(status) from None
        os._exit(status)


def discard_stdout() -> None:
    """Send what is left in standard output's buffer to /dev/null: its reader is gone (a broken pipe), and
    Python would otherwise report the failed flush at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _quick_exit_is_safe() -> bool:
    """Nothing else would run at a normal exit: no atexit handler, no thread that is not a daemon."""
    handlers = getattr(atexit, "_ncallbacks", None)  # (CPython's count of atexit handlers)
    if handlers is None or handlers():
        return False
    return all(thread.daemon or thread is threading.main_thread() for thread in threading.enumerate())
