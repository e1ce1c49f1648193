"""Leaderboards: TOML specs (what to train and how to measure it) → records (JSONL, one line per row and
seed) → tables (Markdown, CSV, sortable HTML, PNG plots) with their protocol and the papers' findings.

``geneval leaderboard run SPEC`` trains what is missing through the trainers' ``geneval.trainers`` entry points;
``geneval leaderboard build SPEC`` regenerates the table from the records alone. See ``spec.py`` for the format.
"""
