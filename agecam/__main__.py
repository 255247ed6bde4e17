"""``python -m agecam``: the same command line as the ``agecam`` script."""

from agecam.cli import main

main(prog_name="agecam")
