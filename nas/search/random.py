"""Random search: every ask is a fresh sample from the grammar."""

from __future__ import annotations

from typing import Any

from nas.architecture import Architecture
from nas.search.base import Strategy


class RandomSearch(Strategy):
    """Samples architecture ``k`` from ``default_rng([seed, k])``; what it is told changes nothing, so its
    stream is the same however a run was interrupted or parallelised."""

    def _ask(self, step: int) -> tuple[Architecture | None, dict[str, Any]]:
        return self.sampler.sample(self.rng(step)), {"kind": "random", "proposed": 1}
