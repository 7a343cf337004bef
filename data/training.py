"""Training one candidate on a task, and the ``Evaluation`` record it produces.

The default ``TrainingProtocol`` is the published einspace protocol (SGD, momentum 0.9, lr 0.04, weight
decay 3e-4, cosine schedule stepped per epoch, batch 256, 8 epochs, no augmentation; fitness = validation
accuracy after the final epoch).  ``PROTOCOLS["transferable"]`` is the protocol of the transferable-surrogates
runs (16 epochs, early stopping with patience 8 on validation accuracy, a final 64-epoch retrain on
train+valid scored on test).  ``PROTOCOLS["reduced"]`` is the named CPU protocol used to fill archives
on a laptop.  A candidate that fails (an exception, a non-finite loss, over its time or memory budget)
yields an ``Evaluation`` with status ``failed`` and a reason; ``train_and_evaluate`` never raises for a
candidate's fault.  ``fit_network`` is the training itself, on any split, returning the trained network
(``data.final`` uses it to retrain on train+valid).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import platform
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping

import numpy as np

from data.task import Split
from nas.jsonsafe import read_json_object
from nas.versions import software_version

log = logging.getLogger(__name__)

OK = "ok"
FAILED = "failed"


@dataclass(frozen=True)
class TrainingProtocol:
    """Everything that decides how a candidate is trained and scored.  Two protocols with equal fields
    have equal ``key``s, which key evaluations in the archive."""

    name: str = "published"
    epochs: int = 8
    batch_size: int = 256
    lr: float = 0.04
    momentum: float = 0.9
    weight_decay: float = 3e-4
    schedule: str = "cosine"
    #: Use only the first n training / validation examples (None: all).
    train_subset: int | None = None
    valid_subset: int | None = None
    #: Per-channel mean/std of the training inputs applied to every split (the published preprocessing).
    normalize: bool = True
    #: The published training loader drops the last incomplete batch.
    drop_last: bool = True
    #: Budgets: wall-clock seconds for training, and estimated memory of weights, optimiser state and
    #: activations at ``batch_size`` (MiB).  None: unlimited.
    max_seconds: float | None = None
    max_memory_mb: float | None = None
    #: Pooling of sequence outputs in the head (see ``nas.compile``).
    col_pool: str = "features"
    #: Also report test accuracy (the search never looks at it).
    evaluate_test: bool = False
    #: Early stopping: stop once validation accuracy (measured after every epoch) has not improved for this
    #: many epochs; the score is still the last epoch's.  None: train every epoch, measure once.
    patience: int | None = None
    #: Epochs of the final retrain on train+valid (``data.final``; ``for_final``).  None: ``epochs``.
    final_epochs: int | None = None

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            problem = _field_problem(f.name, getattr(self, f.name))
            if problem:
                raise ValueError(f"training protocol {self.name!r}: field {f.name!r} {problem}, "
                                 f"got {getattr(self, f.name)!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainingProtocol":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown training-protocol fields: {', '.join(sorted(unknown))}")
        return cls(**data)

    @property
    def key(self) -> str:
        """``name-<8 hex>``: readable, and different whenever any field differs.  Fields added later
        (``KEY_IF_SET``) enter the digest only when set, so keys of earlier protocols do not change."""
        fields = {k: v for k, v in self.to_dict().items() if not (k in KEY_IF_SET and v is None)}
        blob = json.dumps(fields, sort_keys=True).encode()
        return f"{self.name}-{hashlib.sha256(blob).hexdigest()[:8]}"

    def for_final(self) -> "TrainingProtocol":
        """The protocol of the final retrain on train+valid: ``final_epochs`` epochs (when set), no early
        stopping (there is no validation split left to stop on)."""
        return self.replace(epochs=self.final_epochs or self.epochs, patience=None)

    def replace(self, **changes: Any) -> "TrainingProtocol":
        return dataclasses.replace(self, **changes)


#: The checks of the protocol fields: (types allowed, whether None is allowed, the value check, what it means).
_FIELD_CHECKS: dict[str, tuple[tuple[type, ...], bool, Any, str]] = {
    "name": ((str,), False, lambda v: bool(v.strip()), "must be a non-empty string"),
    "epochs": ((int,), False, lambda v: v >= 1, "must be a positive integer"),
    "batch_size": ((int,), False, lambda v: v >= 1, "must be a positive integer"),
    "lr": ((int, float), False, lambda v: 0 < v < math.inf, "must be a positive finite number"),
    "momentum": ((int, float), False, lambda v: 0 <= v < 1, "must be a number in [0, 1)"),
    "weight_decay": ((int, float), False, lambda v: 0 <= v < math.inf, "must be a non-negative finite number"),
    "schedule": ((str,), False, lambda v: v in ("cosine", "constant"), "must be 'cosine' or 'constant'"),
    "train_subset": ((int,), True, lambda v: v >= 1, "must be a positive integer (or null for all examples)"),
    "valid_subset": ((int,), True, lambda v: v >= 1, "must be a positive integer (or null for all examples)"),
    "normalize": ((bool,), False, None, "must be true or false"),
    "drop_last": ((bool,), False, None, "must be true or false"),
    "max_seconds": ((int, float), True, lambda v: 0 < v < math.inf, "must be a positive number (or null: no limit)"),
    "max_memory_mb": ((int, float), True, lambda v: 0 < v < math.inf,
                      "must be a positive number (or null: no limit)"),
    "col_pool": ((str,), False, lambda v: v in ("features", "tokens"), "must be 'features' or 'tokens'"),
    "evaluate_test": ((bool,), False, None, "must be true or false"),
    "patience": ((int,), True, lambda v: v >= 1, "must be a positive integer (or null: no early stopping)"),
    "final_epochs": ((int,), True, lambda v: v >= 1,
                     "must be a positive integer (or null: the final retrain trains for epochs)"),
}

#: Fields that enter ``TrainingProtocol.key`` only when not None (added after archives were keyed).
KEY_IF_SET: tuple[str, ...] = ("patience", "final_epochs")


def _field_problem(name: str, value: Any) -> str | None:
    """What is wrong with ``value`` for the protocol field ``name`` (types as a JSON file holds them: a bool
    is not a number, a string is not a number), or ``None``."""
    types, nullable, check, meaning = _FIELD_CHECKS[name]
    if value is None:
        return None if nullable else meaning
    if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
        return meaning
    return None if check is None or check(value) else meaning


PROTOCOLS: dict[str, TrainingProtocol] = {
    "published": TrainingProtocol(),
    # CPU-sized: the published optimiser (SGD 0.04, momentum 0.9, wd 3e-4, cosine) for 5 epochs over the
    # first 2,000 training examples at batch 32 (310 steps), scored on 1,000 validation examples; a 120 s
    # time budget keeps a pathological candidate from stalling an archive build.
    "reduced": TrainingProtocol(
        name="reduced", epochs=5, batch_size=32, train_subset=2000, valid_subset=1000, max_seconds=120.0,
        max_memory_mb=4096,
    ),
    # The transferable-surrogates runs: the published optimiser for 16 epochs with patience 8 (their code
    # configures patience 8 but never reads it; here it stops training), then the best network retrained for
    # 64 epochs on train+valid and scored once on test (data.final).
    "transferable": TrainingProtocol(name="transferable", epochs=16, patience=8, final_epochs=64),
    # Seconds per candidate, for tests and demonstrations only: one epoch over 512 examples.
    "smoke": TrainingProtocol(
        name="smoke", epochs=1, batch_size=64, train_subset=512, valid_subset=256, max_seconds=60.0,
        max_memory_mb=2048,
    ),
}


def get_protocol(spec: "str | TrainingProtocol | Mapping[str, Any]") -> TrainingProtocol:
    """A protocol by name (``published``, ``reduced``), a JSON file path, a dict, or passed through."""
    if isinstance(spec, TrainingProtocol):
        return spec
    if isinstance(spec, Mapping):
        return TrainingProtocol.from_dict(spec)
    if spec in PROTOCOLS:
        return PROTOCOLS[spec]
    if isinstance(spec, str) and spec.endswith(".json"):
        return _protocol_file(spec)
    raise KeyError(f"unknown training protocol {spec!r}; expected one of {sorted(PROTOCOLS)} or a .json file")


def _protocol_file(path: str) -> TrainingProtocol:
    """A protocol from a JSON file of fields; every problem is a ``ValueError`` naming the file (and field)."""
    data = read_json_object(path, f"protocol file {path}")
    try:
        return TrainingProtocol.from_dict(data)
    except ValueError as exc:
        raise ValueError(f"protocol file {path}: {exc}") from None


@dataclass(frozen=True)
class Evaluation:
    """The outcome of evaluating one architecture on one task under one protocol and seed."""

    arch_hash: str
    task: str
    protocol: str
    seed: int
    status: str
    metrics: Mapping[str, float] = field(default_factory=dict)
    reason: str = ""
    seconds: float = 0.0
    device: str = "cpu"
    created: str = ""
    version: str = ""

    @property
    def ok(self) -> bool:
        return self.status == OK

    @property
    def val_acc(self) -> float:
        """Validation accuracy in [0, 1]; NaN for failures."""
        return float(self.metrics.get("val_acc", float("nan"))) if self.ok else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"metrics": dict(self.metrics)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Evaluation":
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})


def timestamp() -> str:
    """Now, in UTC, as ISO 8601 to the second (the ``created`` stamp of evaluations and runs)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _record(arch, task_name: str, protocol: TrainingProtocol, seed: int, status: str, *, metrics=None,
            reason: str = "", seconds: float = 0.0, device: str = "cpu") -> Evaluation:
    return Evaluation(
        arch_hash=arch.hash, task=task_name, protocol=protocol.key, seed=int(seed), status=status,
        metrics=dict(metrics or {}), reason=reason, seconds=round(float(seconds), 4), device=str(device),
        created=timestamp(), version=software_version(),
    )


def estimate_memory_mb(arch, num_classes: int, batch_size: int) -> float:
    """Rough training-memory estimate: parameters with gradients and momentum (3 copies, float32) plus
    every layer's output kept for the backward pass (2 copies: activation and its gradient)."""
    params = arch.num_params + arch.head_params(num_classes)
    activations = sum(max(s.numel for s in info.outputs) * info.copies for info in arch.terminals())
    return (3 * params + 2 * activations * batch_size) * 4 / 2**20


class CandidateFailure(Exception):
    """The candidate failed (shape, time or memory budget, non-finite loss): ``failure_reason`` records its
    message as the reason of a ``failed`` evaluation."""


def _normalizer(x, mode: str):
    """Per-channel mean and std of training inputs: axis 1 for images, the feature axis for sequences."""
    dims = (0, 2, 3) if mode == "im" else (0, 1)
    mean = x.mean(dim=dims, keepdim=True)
    std = x.std(dim=dims, keepdim=True).clamp_min(1e-6)
    return mean, std


def _accuracy(net, x, y, batch_size: int) -> tuple[float, float]:
    import torch  # deferred: torch
    import torch.nn.functional as F

    net.eval()
    correct, loss_sum = 0, 0.0
    with torch.no_grad():
        for i in range(0, len(y), batch_size):
            out = net(x[i : i + batch_size])
            loss_sum += float(F.cross_entropy(out, y[i : i + batch_size], reduction="sum"))
            correct += int((out.argmax(1) == y[i : i + batch_size]).sum())
    n = max(len(y), 1)
    return correct / n, loss_sum / n


def train_and_evaluate(
    arch,
    task,
    protocol: "TrainingProtocol | str" = "published",
    seed: int = 0,
    device: str = "cpu",
) -> Evaluation:
    """Train ``arch`` on ``task`` under ``protocol`` with ``seed`` and score it.  Weights, batch order and
    everything random derive from ``seed`` through private generators, so on one machine the same call
    gives the same result.  Tabular tasks are looked up instead of trained.  Never raises for a
    candidate's fault: failures come back as ``status == "failed"`` with a reason."""
    protocol = get_protocol(protocol)
    start = time.perf_counter()
    if getattr(task, "is_tabular", False):
        try:
            metrics = task.lookup(arch)
        except KeyError as exc:
            return _record(arch, task.name, protocol, seed, FAILED, reason=f"not in table: {exc}",
                           seconds=time.perf_counter() - start)
        return _record(arch, task.name, protocol, seed, OK, metrics=metrics, seconds=time.perf_counter() - start,
                       device="table")
    try:
        metrics = _train(arch, task, protocol, seed, device, start)
    except Exception as exc:  # the candidate's fault: record it, the caller goes on
        reason = failure_reason(exc)
        log.info("candidate %s failed: %s", arch.hash[:12], reason)
        return _record(arch, task.name, protocol, seed, FAILED, reason=reason,
                       seconds=time.perf_counter() - start, device=device)
    return _record(arch, task.name, protocol, seed, OK, metrics=metrics, seconds=time.perf_counter() - start,
                   device=device)


def failure_reason(exc: BaseException) -> str:
    """The one-line reason recorded when training a candidate raised ``exc``: a ``CandidateFailure``'s own
    message (time, memory, shape, non-finite loss), else the exception named, marked ``out of memory`` or
    ``exception``; at most 2,000 characters."""
    if isinstance(exc, CandidateFailure):
        return str(exc)[:2000]
    reason = f"{type(exc).__name__}: {exc}"
    if "out of memory" in str(exc).lower() or isinstance(exc, MemoryError):
        return f"out of memory: {reason}"[:2000]
    return f"exception: {reason}"[:2000]


def _check_budgets(arch, task, protocol: TrainingProtocol) -> None:
    """Refuse a candidate for the wrong input, or over the memory budget, before anything is built."""
    if tuple(arch.input_shape) != tuple(task.input_shape):
        raise CandidateFailure(
            f"input shape mismatch: architecture built for {tuple(arch.input_shape)}, task {task.name!r} "
            f"has {tuple(task.input_shape)}"
        )
    if protocol.max_memory_mb is not None:
        mb = estimate_memory_mb(arch, task.num_classes, protocol.batch_size)
        if mb > protocol.max_memory_mb:
            raise CandidateFailure(
                f"over memory budget: estimated {mb:,.0f} MiB at batch {protocol.batch_size} "
                f"> {protocol.max_memory_mb:,.0f} MiB"
            )


def _tensor(x, dev, dtype):
    import torch  # deferred: torch

    return torch.as_tensor(np.ascontiguousarray(x), dtype=dtype, device=dev)


def _epoch(net, opt, xtr, ytr, order, protocol: TrainingProtocol, steps_per_epoch: int, epoch: int,
           start: float) -> tuple[float, float]:
    """One training epoch over ``order``; returns the epoch's mean training loss and accuracy."""
    import torch  # deferred: torch
    import torch.nn.functional as F

    bs, dev = protocol.batch_size, xtr.device
    loss_sum = torch.zeros((), device=dev)
    correct = torch.zeros((), device=dev, dtype=torch.long)
    seen = 0
    for step in range(steps_per_epoch):
        idx = order[step * bs : (step + 1) * bs]
        xb, yb = xtr[idx], ytr[idx]
        out = net(xb)
        loss = F.cross_entropy(out, yb)
        if not torch.isfinite(loss):
            raise CandidateFailure(f"non-finite loss ({float(loss.detach())}) at epoch {epoch + 1}, step {step + 1}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += loss.detach() * len(yb)
        correct += (out.detach().argmax(1) == yb).sum()
        seen += len(yb)
        if protocol.max_seconds is not None and time.perf_counter() - start > protocol.max_seconds:
            raise CandidateFailure(
                f"over time budget: {time.perf_counter() - start:.1f} s > {protocol.max_seconds:g} s "
                f"at epoch {epoch + 1}, step {step + 1}"
            )
    return float(loss_sum) / seen, int(correct) / seen


@dataclass
class FittedNetwork:
    """A network trained by ``fit_network``: ``net`` (a ``torch.nn.Module`` that expects standardised inputs),
    the per-channel ``mean`` and ``std`` of the training inputs it was trained with (tensors shaped to
    broadcast over a batch; ``None`` when the protocol does not normalise) and the training metrics."""

    net: Any
    mean: Any
    std: Any
    metrics: dict[str, float]

    def inputs(self, x: np.ndarray) -> Any:
        """``x`` as a float32 tensor on the network's device, standardised as the training inputs were."""
        import torch  # deferred: torch

        t = _tensor(x, next(self.net.parameters()).device, torch.float32)
        return t if self.mean is None else (t - self.mean) / self.std


class _EarlyStopping:
    """Validation accuracy after every epoch, and whether ``patience`` epochs have passed without a new best."""

    def __init__(self, patience: int, x, y: np.ndarray, batch_size: int) -> None:
        self.patience, self.x, self.y, self.batch_size = patience, x, y, batch_size
        self.best, self.best_epoch = -math.inf, 0

    def stop(self, net, epoch: int) -> bool:
        """After ``epoch`` (0-based): record the validation accuracy; True when training should stop."""
        acc, _ = score(net, self.x, self.y, self.batch_size)
        if acc > self.best:
            self.best, self.best_epoch = acc, epoch + 1
        return epoch + 1 - self.best_epoch >= self.patience

    def metrics(self) -> dict[str, float]:
        return {"best_val_acc": self.best, "best_epoch": self.best_epoch}


def fit_network(arch, task, train: Split, protocol: TrainingProtocol, seed: int = 0, device: str = "cpu",
                start: float | None = None, valid: Split | None = None) -> FittedNetwork:
    """Compile ``arch`` for ``task`` (its class count and input shape) and train it on ``train`` under
    ``protocol`` with ``seed`` (weights and batch order from private generators: deterministic on one
    machine); ``start`` (a ``time.perf_counter`` value, default now) is when the time budget began.  With
    ``valid`` and ``protocol.patience``, training stops early once validation accuracy has not improved for
    ``patience`` epochs (``metrics["epochs"]`` is the number trained; ``best_val_acc`` and ``best_epoch``
    are added).  Raises ``CandidateFailure`` (or whatever the network raised) for the candidate's fault:
    ``failure_reason`` turns it into the recorded reason."""
    import torch  # deferred: torch

    from nas.compile import compile_architecture  # deferred: nas.compile imports torch

    start = time.perf_counter() if start is None else start
    _check_budgets(arch, task, protocol)
    dev = torch.device(device)
    # GPU-resident data: the whole (small) split moves to the device once.
    xtr, ytr = _tensor(train.x, dev, torch.float32), _tensor(train.y, dev, torch.long)
    mean = std = None
    if protocol.normalize and len(xtr) > 1:
        mean, std = _normalizer(xtr, arch.input_mode)
        xtr = (xtr - mean) / std

    net = compile_architecture(arch, task.num_classes, col_pool=protocol.col_pool, seed=seed).to(dev)
    opt = torch.optim.SGD(net.parameters(), lr=protocol.lr, momentum=protocol.momentum,
                          weight_decay=protocol.weight_decay)
    sched = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=protocol.epochs)
             if protocol.schedule == "cosine" else None)
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    n, bs = len(ytr), protocol.batch_size
    steps_per_epoch = n // bs if protocol.drop_last else math.ceil(n / bs)
    if steps_per_epoch == 0:
        raise CandidateFailure(f"no training step: {n} training examples < batch size {bs} with drop_last")
    early = None
    if protocol.patience is not None and valid is not None and len(valid.y):
        xv = _tensor(valid.x, dev, torch.float32)
        early = _EarlyStopping(protocol.patience, xv if mean is None else (xv - mean) / std, valid.y,
                               max(bs, 256))
    epoch_seconds: list[float] = []
    train_loss = train_acc = float("nan")
    for epoch in range(protocol.epochs):
        t0 = time.perf_counter()
        net.train()
        order = torch.randperm(n, generator=gen).to(dev)
        train_loss, train_acc = _epoch(net, opt, xtr, ytr, order, protocol, steps_per_epoch, epoch, start)
        if sched is not None:
            sched.step()
        epoch_seconds.append(time.perf_counter() - t0)
        if early is not None and early.stop(net, epoch):
            log.debug("early stop after epoch %d: no better validation accuracy since epoch %d", epoch + 1,
                      early.best_epoch)
            break
    net.eval()
    trained = len(epoch_seconds)
    metrics = {
        "train_acc": train_acc, "train_loss": train_loss,
        "epochs": trained, "steps": trained * steps_per_epoch,
        "seconds_per_epoch": float(np.mean(epoch_seconds)),
        "params": arch.num_params + arch.head_params(task.num_classes, protocol.col_pool), "flops": arch.flops,
    }
    if early is not None:
        metrics |= early.metrics()
    return FittedNetwork(net, mean, std, metrics)


def score(net, x, y: np.ndarray, batch_size: int = 256) -> tuple[float, float]:
    """``(accuracy, mean cross-entropy)`` of ``net`` on inputs ``x`` (a tensor on its device, as the network
    takes them) and labels ``y``."""
    import torch  # deferred: torch

    return _accuracy(net, x, _tensor(y, x.device, torch.long), batch_size)


def _train(arch, task, protocol: TrainingProtocol, seed: int, device: str, start: float) -> dict[str, float]:
    valid = task.valid.head(protocol.valid_subset)
    fitted = fit_network(arch, task, task.train.head(protocol.train_subset), protocol, seed, device, start, valid)
    eval_batch = max(protocol.batch_size, 256)
    val_acc, val_loss = score(fitted.net, fitted.inputs(valid.x), valid.y, eval_batch)
    if not math.isfinite(val_loss):
        raise CandidateFailure(f"non-finite validation loss ({val_loss})")
    metrics = {"val_acc": val_acc, "val_loss": val_loss} | fitted.metrics
    if protocol.evaluate_test:
        metrics["test_acc"], metrics["test_loss"] = score(fitted.net, fitted.inputs(task.test.x), task.test.y,
                                                          eval_batch)
    return metrics


def machine() -> str:
    """One line naming the machine, for benchmark tables."""
    return f"{platform.machine()} {platform.system()}, Python {platform.python_version()}"
