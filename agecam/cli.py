"""The ``agecam`` command line, assembled: the group, its error and help handling, and the commands.

Each command lives in a module of ``agecam.commands`` that parses, calls one function of a package,
and prints; what they share (errors and signals, options, the pipeline they build) is in
``agecam.commands.errors`` and ``agecam.commands.options``.
"""

from __future__ import annotations

import logging
import signal

import click

from agecam.commands import benchmark, evaluate, field_test, fit, image, serve, train, video, web
from agecam.commands.errors import Interrupts, UsageFailure, exit_interrupted
from agecam.commands.options import setup_logging
from agecam.core.native_output import STOP_SIGNALS


class OneLineErrors(click.Group):
    """The command group: Click's usage errors, from the group's options or a command's, become one
    ``agecam: error:`` line instead of Click's usage block; a stop signal that lands outside a
    guarded step ends the command as one inside does (``agecam: interrupted``, exit 130), not as
    Click's "Aborted!" (exit 1)."""

    def make_context(self, *args, **kwargs):
        try:
            return super().make_context(*args, **kwargs)
        except click.UsageError as error:
            raise UsageFailure(error) from None

    # The commands users run first in the help; the model-building and measuring ones after them.
    USER_COMMANDS = ("video", "webcam", "image", "web", "serve", "demo")

    def format_commands(self, ctx, formatter):
        listed = [(name, self.get_command(ctx, name)) for name in self.list_commands(ctx)]
        listed = [(name, command) for name, command in listed if command is not None and not command.hidden]
        width = formatter.width - 6 - max((len(name) for name, _ in listed), default=0)
        order = {name: i for i, name in enumerate(self.USER_COMMANDS)}
        sections = (("Commands", sorted((c for c in listed if c[0] in order), key=lambda c: order[c[0]])),
                    ("Building and measuring models", [c for c in listed if c[0] not in order]))
        for title, commands in sections:
            if commands:
                with formatter.section(title):
                    formatter.write_dl([(name, command.get_short_help_str(width)) for name, command in commands])

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.UsageError as error:
            raise UsageFailure(error) from None
        except KeyboardInterrupt:  # a stop signal outside a guarded step (e.g. while closing up)
            exit_interrupted()


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.option("-q", "--quiet", "hide_progress", is_flag=True,
              help="No progress bars (they are shown only when stderr is a terminal anyway).")
@click.pass_context
def main(context: click.Context, verbose: int, hide_progress: bool) -> None:
    """agecam: real-time apparent-age estimation for every face in cameras, videos and images."""
    interrupts = Interrupts().install()
    try:  # held by agecam.__main__ until now: one that came meanwhile stops the command here
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    except KeyboardInterrupt:
        exit_interrupted(quiet=verbose < 2)
    setup_logging(verbose)
    context.obj = {"quiet": verbose < 2, "interrupts": interrupts, "hide_progress": hide_progress,
                   "log_level": logging.getLogger().level}


# In the order of the modules; the help lists the user commands first (OneLineErrors.USER_COMMANDS).
COMMANDS = (benchmark.benchmark, evaluate.evaluate, evaluate.evaluate_photos, field_test.field_test, fit.calibrate,
            fit.quantize, fit.gate_test, fit.track_test, image.image, serve.serve, train.train, train.ensemble,
            video.video, video.webcam, video.demo, web.web)
for command in COMMANDS:
    main.add_command(command)


if __name__ == "__main__":
    main()
