"""``ZeroCostProxies``: the scikit-learn transformer of zero-cost proxies (one row of the 13 proxies of
``features.zcp.compute`` per architecture, on one mini-batch of a task's training data).  The proxies'
formulas live in ``features.zcp.scores``, the passes that compute them in ``features.zcp.compute`` and the
FLOP count in ``features.zcp.flops``."""

from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from torch import Tensor
from tqdm import tqdm

from features.zcp.compute import ALL, compute_proxies, resolve_proxies, _label
from nas.compile import compile_architecture

__all__ = ["ALL", "ZeroCostProxies", "compute_proxies", "resolve_proxies"]

log = logging.getLogger(__name__)


def _channel_axes(x: np.ndarray) -> tuple[int, ...]:
    """Axes averaged over for per-channel statistics: all but axis 1 for N×C×H×W images, all but the
    last (feature) axis for N×S×D sequences and N×D vectors."""
    if x.ndim == 4:
        return (0, 2, 3)
    return tuple(range(x.ndim - 1))


class ZeroCostProxies(TransformerMixin, BaseEstimator):
    """Zero-cost proxies of architectures on a task, one row per architecture.

    ``transform(archs)`` compiles each architecture with ``compile_architecture(arch, task.num_classes,
    seed=seed)`` (a fresh, seeded initialisation) and calls ``compute_proxies`` on one mini-batch: the first
    ``batch_size`` training examples of ``task`` (deterministic, no shuffling), normalised per channel
    (axis 1 of images, the feature axis of sequences) with the mean and standard deviation of the whole
    training split.  Returns an ``(n, len(proxies))`` float array, NaN where a proxy failed (warned).

    Parameters: ``task`` (a ``data.tasks.Task``), ``proxies`` (``("all",)`` or names from ``ALL``),
    ``batch_size``, ``seed`` (network initialisation and ``zen``), ``device`` (where the proxies run).
    The transformer is stateless; ``fit`` only checks the parameters.
    """

    version = "1"

    def __init__(self, task: Any = None, proxies: "Sequence[str] | str" = ("all",), batch_size: int = 64,
                 seed: int = 0, device: "str | torch.device" = "cpu") -> None:
        self.task = task
        self.proxies = proxies
        self.batch_size = batch_size
        self.seed = seed
        self.device = device

    def _check(self) -> tuple[str, ...]:
        if self.task is None:
            raise ValueError("ZeroCostProxies needs a task (task=...) with train data")
        if getattr(self.task, "is_tabular", False):
            raise ValueError(f"task {self.task.name!r} is tabular: it has no training data for zero-cost proxies")
        if not (isinstance(self.batch_size, (int, np.integer)) and self.batch_size >= 2):
            raise ValueError(f"batch_size must be an integer ≥ 2, got {self.batch_size!r}")
        if len(self.task.train) < 2:
            raise ValueError(f"task {self.task.name!r} has fewer than 2 training examples")
        return resolve_proxies(self.proxies)

    def fit(self, X: Any = None, y: Any = None) -> "ZeroCostProxies":
        """Checks the parameters; nothing is learned."""
        self._check()
        return self

    def __sklearn_is_fitted__(self) -> bool:
        return True

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """The canonical proxy names, in column order."""
        return np.asarray(resolve_proxies(self.proxies), dtype=object)

    def batch(self) -> tuple[Tensor, Tensor]:
        """The normalised mini-batch ``(x, y)`` the proxies see, on ``device``."""
        self._check()
        train = self.task.train
        axes = _channel_axes(train.x)
        mean = train.x.mean(axis=axes, dtype=np.float64, keepdims=True)
        std = train.x.std(axis=axes, dtype=np.float64, keepdims=True)
        std = np.where(std > 1e-12, std, 1.0)
        head = train.head(int(self.batch_size))
        x = ((head.x.astype(np.float64) - mean) / std).astype(np.float32)
        device = torch.device(self.device)
        return torch.from_numpy(x).to(device), torch.from_numpy(np.asarray(head.y, dtype=np.int64)).to(device)

    def transform(self, X: Sequence[Any]) -> np.ndarray:
        """Proxies of each architecture in ``X``: an ``(len(X), len(proxies))`` float64 array."""
        names = self._check()
        archs = list(X)
        out = np.full((len(archs), len(names)), np.nan, dtype=np.float64)
        if not archs:
            return out
        x, y = self.batch()
        shape = tuple(self.task.input_shape)
        for i, arch in enumerate(tqdm(archs, desc="zero-cost proxies", unit="arch", disable=len(archs) < 20,
                                      leave=False)):
            if tuple(arch.input_shape) != shape:
                raise ValueError(f"architecture {i} has input shape {tuple(arch.input_shape)}, "
                                 f"but task {self.task.name!r} has {shape}")
            try:
                net = compile_architecture(arch, self.task.num_classes, seed=int(self.seed))
            except Exception as exc:  # noqa: BLE001 - a row of NaN, warned
                log.warning("zero-cost proxies%s are NaN: compiling failed: %s: %s", _label(arch),
                            type(exc).__name__, exc)
                continue
            values = compute_proxies(net, x, y, self.task.num_classes, names, seed=int(self.seed), arch=arch)
            out[i] = [values[n] for n in names]
        return out
