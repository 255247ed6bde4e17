"""``python -m agecam`` and the ``agecam`` script: the command line, with the stop signals held from
its first line until its handlers are in place (``agecam.cli.main`` releases them), so a Ctrl-C in
the first moments stops it in one line instead of a traceback out of an import."""

import signal

HELD_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


def run() -> None:
    signal.pthread_sigmask(signal.SIG_BLOCK, HELD_SIGNALS)
    from agecam.cli import main

    try:
        main(prog_name="agecam")
    finally:
        # The command is over, its outputs in place: a stop signal now would only cut the
        # interpreter's teardown short and end the process by the signal, without a word.
        for signum in HELD_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)


if __name__ == "__main__":
    run()
