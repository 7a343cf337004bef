"""How ``nas`` reads option values: checked when the command line is parsed, so a bad value is one line naming
the option (``nas evaluate: error: argument --threads: must be a positive integer, got '-1'``) before any
work starts."""

from __future__ import annotations

import argparse
import math
import sys
from typing import NoReturn

from data.training import get_protocol


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line on stderr (the usage is left to ``--help``), exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None


def positive_int(text: str) -> int:
    """An integer ≥ 1 (counts, sizes, threads)."""
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


#: The most samples ``--initial-pool`` draws (about a second per 300 einspace samples here: minutes, not hours).
MAX_POOL = 100_000


def pool_count(text: str) -> int:
    """A pool of samples: an integer from 0 (none) to ``MAX_POOL``."""
    value = _integer(text)
    if not 0 <= value <= MAX_POOL:
        raise argparse.ArgumentTypeError(f"must be an integer from 0 to {MAX_POOL:,}, got {text!r}")
    return value


#: The largest seed an option takes: seeds are stored in SQLite's 64-bit integers (and torch takes them).
MAX_SEED = 2**63 - 1


def seed_int(text: str) -> int:
    """A seed: an integer from 0 to ``MAX_SEED``."""
    value = _integer(text)
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be an integer from 0 to 2**63 - 1, got {text!r}")
    return value


def open_fraction(text: str) -> float:
    """A number strictly between 0 and 1 (e.g. a held-out fraction)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number between 0 and 1, got {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be strictly between 0 and 1, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (seconds)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}") from None
    if not 0.0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text!r}")
    return value


def protocol_spec(text: str) -> str:
    """A training protocol's name or JSON file, checked field by field now (``data.training.get_protocol``);
    the text itself is kept, as the commands pass it on."""
    try:
        get_protocol(text)
    except KeyError as exc:
        raise argparse.ArgumentTypeError(str(exc.args[0]) if exc.args else str(exc)) from None
    except (ValueError, OSError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def print_error(command: str, exc: "BaseException | str") -> None:
    """``nas COMMAND: error: MESSAGE`` on one line of stderr (``exc``: an exception or the message)."""
    message = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    print(f"nas {command}: error: {' '.join(message.split())}", file=sys.stderr)
