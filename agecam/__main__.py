"""``python -m agecam`` and the ``agecam`` script: the command line, with the stop signals held from
its first line until its handlers are in place (``agecam.cli.main`` releases them), so a Ctrl-C in
the first moments stops it in one line instead of a traceback out of an import; results printed to
standard output are written or the command fails (``agecam.stdout``)."""

import signal
import sys

HELD_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


def run() -> None:
    signal.pthread_sigmask(signal.SIG_BLOCK, HELD_SIGNALS)
    from .stdout import StdoutUnavailable, flush_stdout, guard_stdout

    guard_stdout()
    from .cli import main

    status = 0
    try:
        main(prog_name="agecam")
    except SystemExit as done:
        status = done.code
    except StdoutUnavailable as error:  # printing outside the commands' guarded steps
        print(f"agecam: error: {error}", file=sys.stderr)
        status = 1
    except OSError as error:  # printing results to a standard output that cannot take them (a full disk)
        if error.filename is not None:
            raise  # not standard output: a bug, with its traceback
        print(f"agecam: error: cannot write the results to standard output: {error.strerror or error}",
              file=sys.stderr)
        status = 1
    finally:
        # The command is over, its outputs in place: a stop signal now would only cut the
        # interpreter's teardown short and end the process by the signal, without a word.
        for signum in HELD_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
    problem = flush_stdout()
    if problem is not None:
        if problem:
            print(f"agecam: error: {problem}", file=sys.stderr)
        status = status or 1
    sys.exit(status)


if __name__ == "__main__":
    run()
