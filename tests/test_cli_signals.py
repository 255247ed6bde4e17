"""Signals that land before a run starts (while libraries load) still stop the command."""

import gc
import os
import signal

import pytest

from agecam.commands.errors import Interrupts


@pytest.fixture
def restored_handlers():
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


class _NativeCallback:
    """Stands in for TensorFlow's gc hook: a signal raised inside ``__del__`` is swallowed by Python."""

    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):  # the handler runs at the next bytecode boundary, still in here
            pass


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the swallowed one, on purpose
def test_an_interrupt_swallowed_by_a_callback_is_raised_again_after_setup(restored_handlers):
    interrupts = Interrupts().install()
    interrupts.check()  # nothing received: no effect
    _NativeCallback()  # destroyed at once: the KeyboardInterrupt is "ignored" inside __del__
    gc.collect()
    assert interrupts.received == signal.SIGINT
    with pytest.raises(KeyboardInterrupt):
        interrupts.check()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_termination_signals_interrupt_like_ctrl_c(restored_handlers, signum):
    Interrupts().install()
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signum)
        for _ in range(1000):
            pass


def test_nothing_native_prints_after_the_interrupted_line():
    """A native thread still winding down (MediaPipe's graph) writes to fd 2 after the last line: hidden."""
    import subprocess
    import sys

    script = ("import os, sys, click\n"
              "from agecam.commands.errors import exit_interrupted\n"
              "try:\n"
              "    exit_interrupted(quiet=True)\n"
              "finally:\n"
              "    os.write(2, b'W0000 native chatter\\n')\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 130
    assert done.stderr == "agecam: interrupted\n"
