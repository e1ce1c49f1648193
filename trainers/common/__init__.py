"""Building blocks every reference trainer shares: seeds, atomic checkpoints, configs with presets and
``--set key=value`` overrides, run folders and records, and auto-evaluation through geneval's public API.

A trainer family lives in ``trainers/<family>/`` and registers its ``geneval train <family>`` click command
in ``trainers/cli.py``'s ``train`` group; ``geneval`` finds that group through the ``geneval.cli`` entry point
(geneval never imports ``trainers`` by name).
"""
