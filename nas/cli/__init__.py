"""The ``nas`` command: a thin layer over the Python API, one module per command group."""

from nas.cli.app import build_parser, main

__all__ = ["build_parser", "main"]
