"""How a command fails and stops: one ``agecam: error:`` line (exit 1, 2 for usage), Ctrl-C and
stop signals as ``agecam: interrupted`` (exit 130), signals held while native libraries load."""

from __future__ import annotations

import contextlib
import os
import signal
import sys

import click

from agecam.core.native_output import native_stderr_closed_for_exit, stop_signals_held


class Failure(click.ClickException):
    """A user-facing failure: one line on stderr, exit status 1."""

    def show(self, file=None):
        from agecam.core.file_names import name_text

        click.echo(f"agecam: error: {name_text(self.message)}", err=True)  # odd bytes of a file name as \xNN


class UsageFailure(Failure):
    """A usage error Click found (a bad option value, a missing argument), in the same one-line form
    as every other error, with Click's exit status 2."""

    exit_code = 2

    def __init__(self, error: click.UsageError):
        command = error.ctx.command_path if error.ctx is not None else "agecam"
        super().__init__(f"{error.format_message()} (see '{command} --help')")


def exit_interrupted(message: str = "agecam: interrupted", quiet: bool | None = None) -> None:
    """End the command on a stop signal: ``message`` as its last line, exit status 130. Unless -vv,
    nothing native may print after it (see ``native_stderr_closed_for_exit``)."""
    click.echo(message, err=True)
    if native_quiet() if quiet is None else quiet:
        native_stderr_closed_for_exit()
    sys.exit(130)


def known_errors():
    """Exception types that mean bad input, not a bug: shown as one line, no traceback."""
    from agecam.core.age_model import ModelError
    from agecam.realtime.batch import BatchError
    from agecam.realtime.sources import SourceError
    from agecam.training.data import DataError
    from agecam.training.pretrained import PretrainedError

    return (ModelError, SourceError, DataError, BatchError, PretrainedError, FileNotFoundError, ValueError, OSError)


def guarded(action):
    """Run ``action()`` turning expected errors into one-line failures and Ctrl-C into exit 130 (a
    signal that was deferred, having landed in an import, is acted on before and after it)."""
    try:
        check_interrupts()
        result = action()
        check_interrupts()
        return result
    except KeyboardInterrupt:
        exit_interrupted()
    except known_errors() as error:
        raise Failure(str(error) or type(error).__name__) from None


class Interrupts:
    """Ctrl-C, SIGTERM and SIGHUP outside a run: raise KeyboardInterrupt, and remember it.

    A signal that lands while a native library calls back into Python (TensorFlow's garbage
    collection hook, early in start-up) has its KeyboardInterrupt swallowed with a warning;
    :meth:`check` raises it again once set-up is done, so the command still stops (exit 130).
    During a run, :class:`realtime.runner.StopRequests` takes the signals over.

    Example::

        interrupts = Interrupts().install()
        cam = load_everything()
        interrupts.check()
    """

    def __init__(self):
        self.received: int | None = None

    def install(self) -> "Interrupts":
        for name in ("SIGINT", "SIGTERM", "SIGHUP"):
            if hasattr(signal, name):
                signal.signal(getattr(signal, name), self._handle)
        return self

    def _handle(self, signum, frame):
        self.received = signum
        if _inside_gc_callback_or_import(frame):
            # Raised there, it would be swallowed with a printed traceback (a gc callback) or turned
            # into an ImportError by a native module's start-up: the signal comes again in a moment
            # (to whichever handler is in place then), and check() raises it at the next step.
            import threading

            threading.Timer(REDELIVER_AFTER_S, os.kill, (os.getpid(), signum)).start()
            return
        raise KeyboardInterrupt(f"signal {signum}")

    def check(self) -> None:
        if self.received is not None:
            raise KeyboardInterrupt(f"signal {self.received}")


REDELIVER_AFTER_S = 0.05  # a signal deferred out of an import or a gc callback comes again after this


def _inside_gc_callback_or_import(frame) -> bool:
    """Whether ``frame`` runs inside one of ``gc.callbacks`` (TensorFlow registers one) or an import."""
    import gc

    codes = {getattr(callback, "__code__", None) for callback in gc.callbacks} - {None}
    depth = 0
    while frame is not None and depth < 200:
        if frame.f_code in codes or frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame, depth = frame.f_back, depth + 1
    return False


@contextlib.contextmanager
def signals_held():
    """Hold Ctrl-C, SIGTERM and SIGHUP while native libraries load and register their callbacks (a
    signal landing inside one is swallowed with a printed traceback, issue #25); one that arrived
    meanwhile is acted on as the block ends: the command stops with exit status 130."""
    with stop_signals_held():
        yield
    check_interrupts()


def check_interrupts() -> None:
    context = click.get_current_context(silent=True)
    interrupts = (context.obj or {}).get("interrupts") if context is not None else None
    if interrupts is not None:
        interrupts.check()


def setting(key: str, default=None):
    context = click.get_current_context(silent=True)
    return (context.obj or {}).get(key, default) if context is not None else default


def native_quiet() -> bool:
    """Whether native libraries' start-up logs are hidden (all but -vv)."""
    return bool(setting("quiet"))
