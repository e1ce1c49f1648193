"""Building blocks every reference trainer shares: the run harness (``harness.py``: run folder, atomic
checkpoints, exact resume, budgets, validation with best checkpoints, progress bar), seeds, configs with
``--set key=value`` overrides, run folders and records (``runs.py``, whose docstring holds the record schema),
and auto-evaluation through geneval's public API.

A trainer family lives in ``trainers/<family>/`` and registers its ``geneval train <family>`` click command
in ``trainers/cli.py``'s ``train`` group; ``geneval`` finds that group through the ``geneval.cli`` entry point
(geneval never imports ``trainers`` by name).
"""
