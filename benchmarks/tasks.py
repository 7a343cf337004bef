"""Seconds to generate each offline task (the default sizes), one core.

A generated task is built the first time a command names it, so its generation time is part of a user's first
command.  Prints one ``name: value unit`` line per task (median of ``--repeats`` generations with seed 3, the
one-off scikit-learn digits import excluded) and the target (≤ 2 s each).
Usage: ``python benchmarks/tasks.py [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

# Run as ``python benchmarks/tasks.py``, Python puts benchmarks/ first on sys.path: drop it so that the
# project's packages are imported, not a benchmark script of the same name.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    from data import generators as G
    from data.generators import common

    common.digit_images()  # the one-off scikit-learn import is not the generator's cost
    print(f"# machine: {platform.machine()} {platform.system()}, Python {platform.python_version()}")
    for name in sorted(G.GENERATORS):
        seconds = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            G.GENERATORS[name][0](seed=3)
            seconds.append(time.perf_counter() - started)
        print(f"generate {name}: {statistics.median(seconds):.2f} s (median of {args.repeats}; target ≤ 2 s)")


if __name__ == "__main__":
    main()
