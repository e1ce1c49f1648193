"""``python -m geneval`` — the same command line as the ``geneval`` script (launchers such as torchrun need it)."""

from geneval.cli import main

main(prog_name="geneval")
