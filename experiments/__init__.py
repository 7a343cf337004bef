"""Reproducible experiment scripts (``python -m experiments.NAME``); their outputs go to ``experiments/results/``."""
