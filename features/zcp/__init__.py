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

from features import proxy_warnings as report
from features.zcp.compute import ALL, compute_proxies, resolve_proxies, _label
from features.zcp.guard import MAX_FLOPS, MAX_MEMORY_MB, MAX_PARAMS, MAX_SECONDS, check_limit, over_budget
from nas.compile import compile_architecture

__all__ = ["ALL", "MAX_FLOPS", "MAX_MEMORY_MB", "MAX_PARAMS", "MAX_SECONDS", "PUBLISHED", "PublishedProxies",
           "ZeroCostProxies", "compute_proxies", "over_budget", "resolve_proxies"]

#: The proxies of the published einspace encoder, in its column order.
PUBLISHED: tuple[str, ...] = ("grad_norm", "snip", "grasp", "fisher", "jacob_cov", "plain", "synflow")

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
    training split.  Returns an ``(n, len(proxies))`` float array, NaN where a proxy failed; the call ends
    with one warning line counting the networks that gave NaN by reason (``features.proxy_warnings``).

    Parameters: ``task`` (a ``data.tasks.Task``), ``proxies`` (``("all",)`` or names from ``ALL``),
    ``batch_size``, ``seed`` (network initialisation and ``zen``), ``device`` (where the proxies run).
    The transformer is stateless; ``fit`` only checks the parameters.

    Budgets (None: unlimited), checked on the architecture before its network is built; an architecture
    over one gets a row of NaN, counted under its reason (``features.zcp.guard.over_budget``):
    ``max_memory_mb`` (default 24576: the estimated memory of the largest proxy pass at this batch,
    ``guard.proxy_memory_mb``), ``max_params`` (default 5M, head included), ``max_flops`` (default 1e9
    forward FLOPs per sample).  ``max_seconds`` (default 300) is a wall-clock safety net per architecture
    (``compute_proxies``); proxies it cuts off are NaN with the reason ``timeout: ...``.  The defaults
    admit every network of the CPU sampling budget and of NAS-Bench-201 and refuse the default budget's
    giants.
    """

    version = "1"
    #: The guards decide whether a row is computed, never its values: left out of the cache key.
    uncached_params = ("max_memory_mb", "max_params", "max_flops", "max_seconds")
    #: How ``fisher`` is computed (``features.zcp.compute.FISHER_MODES``) and whether im2col → linear →
    #: col2im runs are fused into ``Conv2d`` (same function and weights, less memory).
    fisher_mode = "feature"
    fuse = True

    def __init__(self, task: Any = None, proxies: "Sequence[str] | str" = ("all",), batch_size: int = 64,
                 seed: int = 0, device: "str | torch.device" = "cpu", max_memory_mb: float | None = MAX_MEMORY_MB,
                 max_params: int | None = MAX_PARAMS, max_flops: float | None = MAX_FLOPS,
                 max_seconds: float | None = MAX_SECONDS) -> None:
        self.task = task
        self.proxies = proxies
        self.batch_size = batch_size
        self.seed = seed
        self.device = device
        self.max_memory_mb = max_memory_mb
        self.max_params = max_params
        self.max_flops = max_flops
        self.max_seconds = max_seconds

    def _check(self) -> tuple[str, ...]:
        if self.task is None:
            raise ValueError("ZeroCostProxies needs a task (task=...) with train data")
        if getattr(self.task, "is_tabular", False):
            raise ValueError(f"task {self.task.name!r} is tabular: it has no training data for zero-cost proxies")
        if not (isinstance(self.batch_size, (int, np.integer)) and self.batch_size >= 2):
            raise ValueError(f"batch_size must be an integer ≥ 2, got {self.batch_size!r}")
        if len(self.task.train) < 2:
            raise ValueError(f"task {self.task.name!r} has fewer than 2 training examples")
        for name in ("max_memory_mb", "max_params", "max_flops", "max_seconds"):
            check_limit(name, getattr(self, name))
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
        with report.summarised():  # one line of NaN reasons for the whole call (or the enclosing step)
            for i, arch in enumerate(tqdm(archs, desc="zero-cost proxies", unit="arch", disable=len(archs) < 20,
                                          leave=False)):
                if tuple(arch.input_shape) != shape:
                    raise ValueError(f"architecture {i} has input shape {tuple(arch.input_shape)}, "
                                     f"but task {self.task.name!r} has {shape}")
                with report.network():
                    values = self._proxies_of(arch, names, x, y)
                if values is not None:
                    out[i] = [values[n] for n in names]
        return out

    def _proxies_of(self, arch: Any, names: tuple[str, ...], x: Tensor, y: Tensor) -> dict[str, float] | None:
        """The proxies of one architecture, or None (a row of NaN, warned once) when it is over a size
        budget or does not compile."""
        reason = over_budget(arch, self.task.num_classes, len(x), names, max_memory_mb=self.max_memory_mb,
                             max_params=self.max_params, max_flops=self.max_flops)
        if reason is not None:
            report.nan(log, logging.WARNING, report.category(reason), "zero-cost proxies%s are NaN: %s",
                       _label(arch), reason)
            return None
        try:
            net = compile_architecture(arch, self.task.num_classes, fuse=self.fuse, seed=int(self.seed))
        except Exception as exc:  # noqa: BLE001 - a row of NaN, warned
            report.nan(log, logging.WARNING, "compiling failed", "zero-cost proxies%s are NaN: compiling failed: "
                       "%s: %s", _label(arch), type(exc).__name__, exc)
            return None
        return compute_proxies(net, x, y, self.task.num_classes, names, seed=int(self.seed), arch=arch,
                               max_seconds=self.max_seconds, fisher=self.fisher_mode)


class PublishedProxies(ZeroCostProxies):
    """The seven proxies of the published einspace encoder (``PUBLISHED``: grad_norm, snip, grasp, fisher,
    jacob_cov, plain, synflow, in that order) on a batch of 32, with ``fisher`` computed as published.

    Published fisher (the zero-cost-nas ``fisher`` measure the einspace encoder calls): for every
    ``nn.Linear`` / ``nn.Conv2d`` layer (head included), with ``a`` its output and ``∂L/∂a`` the gradient of
    the mean cross-entropy there, the per-channel value ``½ · mean_n (Σ_{axes ≥ 2} a ⊙ ∂L/∂a)²`` is taken
    with **axis 1 as the channel** for every layer (for einspace's ``linear`` on a ``B×S×D`` tensor that is
    the token axis, the sum running over the output features) and broadcast over ``weight.shape[1:]``
    before summing, so each layer contributes ``fan_in · Σ_c value_c`` with ``fan_in =
    prod(weight.shape[1:])`` (``in_features`` of a Linear, ``in_channels/groups · kh · kw`` of a Conv2d).
    The networks are built unfused (``im2col``, ``Linear``, ``col2im`` as separate modules, as the published
    builder makes them), so a convolution's channel is its token (output position) axis, as published;
    every other proxy is the same as on the fused network.

    Differences that remain: the batch is the task's first 32 training examples (published: the first batch
    of a shuffled loader) and the weights are seeded (published: a fresh random initialisation per call).
    The constructor takes ``ZeroCostProxies``' parameters except ``proxies``; cached under its own name."""

    fisher_mode = "published"
    fuse = False

    def __init__(self, task: Any = None, batch_size: int = 32, seed: int = 0, device: "str | torch.device" = "cpu",
                 max_memory_mb: float | None = MAX_MEMORY_MB, max_params: int | None = MAX_PARAMS,
                 max_flops: float | None = MAX_FLOPS, max_seconds: float | None = MAX_SECONDS) -> None:
        super().__init__(task=task, proxies=PUBLISHED, batch_size=batch_size, seed=seed, device=device,
                         max_memory_mb=max_memory_mb, max_params=max_params, max_flops=max_flops,
                         max_seconds=max_seconds)
