"""Final evaluation: retrain one architecture on train+valid, score it on the test split, export and reload it.

A search ranks candidates by validation accuracy and never looks at the test split.  The final evaluation
trains the chosen architecture once more, under the same protocol and seed, on the training and validation
examples together (each split cut to the protocol's subset), and reports accuracy on the whole test split,
with the validation accuracy of the ordinary evaluation (train split only) beside it.  ``save_final`` writes
a folder, atomically: ``arch.txt`` (the canonical string), ``model.safetensors`` (the weights, with the input
standardisation as buffers) and ``final.json`` (metrics, protocol, task, seed, versions);
``load_network(folder)`` rebuilds the trained network in one call.  Nothing is pickled.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from data.task import Split
from data.training import (CandidateFailure, Evaluation, TrainingProtocol, failure_reason, fit_network,
                           get_protocol, score, timestamp, train_and_evaluate)
from nas.architecture import Architecture
from nas.jsonsafe import jsonable, read_json_object
from nas.versions import software_versions

log = logging.getLogger(__name__)

ARCH_FILE = "arch.txt"
WEIGHTS_FILE = "model.safetensors"
FINAL_FILE = "final.json"
FORMAT = "surrogate-nas final evaluation"
FORMAT_VERSION = 1
OK, FAILED = "ok", "failed"


@dataclass(frozen=True)
class FinalEvaluation:
    """The outcome of a final evaluation; ``network`` is the trained ``torch.nn.Module`` (raw inputs in,
    logits out), ``None`` when it failed.  ``validation`` says where ``val_acc`` came from."""

    arch: Architecture
    task: str
    fingerprint: str
    num_classes: int
    protocol: TrainingProtocol
    seed: int
    status: str
    metrics: dict[str, float] = field(default_factory=dict)
    reason: str = ""
    validation: dict[str, Any] = field(default_factory=dict)
    examples: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    device: str = "cpu"
    created: str = ""
    network: Any = field(default=None, compare=False, repr=False)

    @property
    def ok(self) -> bool:
        return self.status == OK

    @property
    def test_acc(self) -> float:
        """Test accuracy in [0, 1]; NaN for failures."""
        return float(self.metrics.get("test_acc", math.nan)) if self.ok else math.nan

    def to_dict(self) -> dict[str, Any]:
        """The content of ``final.json`` (less the weights' checksum, which ``save_final`` adds)."""
        return {
            "format": FORMAT, "format_version": FORMAT_VERSION, "status": self.status, "reason": self.reason,
            "arch": self.arch.to_string(), "arch_hash": self.arch.hash, "grammar": self.arch.grammar.name,
            "input_shape": list(self.arch.input_shape), "num_classes": self.num_classes,
            "task": {"name": self.task, "fingerprint": self.fingerprint},
            "protocol": self.protocol.to_dict(), "protocol_key": self.protocol.key, "seed": self.seed,
            "metrics": dict(self.metrics), "validation": dict(self.validation), "examples": dict(self.examples),
            "seconds": round(self.seconds, 4), "device": self.device, "created": self.created,
            "versions": software_versions(),
        }


def require_trainable(task: Any) -> None:
    """Refuse a task without data (a look-up table such as ``nb201-cifar10``): there is no network to retrain
    and no test split to score it on.  A ``ValueError`` naming the task."""
    if getattr(task, "is_tabular", False):
        raise ValueError(
            f"task {getattr(task, 'name', task)!r} is a look-up table: it has no examples to retrain a network on "
            "and no test split to score it on; a final evaluation needs a task with data (see nas tasks list)")


def final_evaluate(arch: Architecture, task: Any, protocol: "TrainingProtocol | str" = "reduced", seed: int = 0,
                   device: str = "cpu", validation: Evaluation | None = None) -> FinalEvaluation:
    """Retrain ``arch`` on ``task``'s train+valid examples under ``protocol`` with ``seed`` and score it on the
    test split.  ``validation`` is the architecture's ordinary evaluation (e.g. from a search's archive): used
    for ``val_acc`` when it matches the architecture, task, protocol and seed, else that evaluation is trained
    first.  Deterministic for a seed on one machine; never raises for the candidate's fault (a failed
    evaluation carries the reason).  Raises ``ValueError`` for a task without data."""
    require_trainable(task)
    protocol = get_protocol(protocol)
    start = time.perf_counter()
    val, source = _validation(arch, task, protocol, seed, device, validation)
    common = dict(arch=arch, task=task.name, fingerprint=task.fingerprint(), num_classes=task.num_classes,
                  protocol=protocol, seed=int(seed), device=str(device),
                  validation={"source": source, "protocol": val.protocol, "seed": val.seed})
    if not val.ok:
        return FinalEvaluation(status=FAILED, reason=f"the validation evaluation failed: {val.reason}",
                               seconds=time.perf_counter() - start, created=timestamp(), **common)
    train = _train_and_valid(task, protocol)
    try:
        network, metrics = _retrain(arch, task, train, protocol, seed, device)
    except Exception as exc:  # the candidate's fault: recorded, not raised
        reason = failure_reason(exc)
        log.info("final evaluation of %s failed: %s", arch.hash[:12], reason)
        return FinalEvaluation(status=FAILED, reason=f"the final training failed: {reason}",
                               seconds=time.perf_counter() - start, created=timestamp(), **common)
    metrics |= {"val_acc": val.metrics["val_acc"], "val_loss": val.metrics.get("val_loss", math.nan)}
    return FinalEvaluation(status=OK, metrics=metrics, network=network, seconds=time.perf_counter() - start,
                           examples={"train": len(train), "test": len(task.test)}, created=timestamp(), **common)


def _validation(arch: Architecture, task: Any, protocol: TrainingProtocol, seed: int, device: str,
                given: Evaluation | None) -> tuple[Evaluation, str]:
    """The ordinary evaluation behind ``val_acc``: ``given`` when it is this one, else trained now."""
    if given is not None and given.ok and (given.arch_hash, given.task, given.protocol, given.seed) == (
            arch.hash, task.name, protocol.key, int(seed)):
        return given, "given"
    if given is not None:
        log.info("the given evaluation is not %s under %s with seed %d: training the validation evaluation",
                 arch.hash[:12], protocol.key, seed)
    return train_and_evaluate(arch, task, protocol, seed, device), "trained"


def _train_and_valid(task: Any, protocol: TrainingProtocol) -> Split:
    """The training examples of the final network: the protocol's subsets of the train and valid splits."""
    train, valid = task.train.head(protocol.train_subset), task.valid.head(protocol.valid_subset)
    return Split(np.concatenate([train.x, valid.x]), np.concatenate([train.y, valid.y]))


def _retrain(arch: Architecture, task: Any, train: Split, protocol: TrainingProtocol, seed: int,
             device: str) -> tuple[Any, dict[str, float]]:
    """Train on ``train`` and score on the test split: the network (raw inputs in) and its metrics."""
    import torch  # deferred: torch

    from data.standardized import Standardized, stats_shape  # deferred: torch

    fitted = fit_network(arch, task, train, protocol.for_final(), seed, device)  # final_epochs, no early stop
    if fitted.mean is None:
        network = Standardized.identity(fitted.net, stats_shape(arch.input_shape, arch.input_mode))
    else:
        network = Standardized(fitted.net, fitted.mean, fitted.std)
    network = network.to(device).eval()
    x = torch.as_tensor(np.ascontiguousarray(task.test.x), dtype=torch.float32, device=device)
    test_acc, test_loss = score(network, x, task.test.y, max(protocol.batch_size, 256))
    if not math.isfinite(test_loss):
        raise CandidateFailure(f"non-finite test loss ({test_loss})")
    return network, {"test_acc": test_acc, "test_loss": test_loss} | fitted.metrics


def check_target(directory: "str | os.PathLike[str]", replace: bool = False) -> None:
    """Refuse, before any training, to write a final evaluation over an existing ``directory`` (unless
    ``replace``)."""
    if not replace and os.path.lexists(directory):
        raise ValueError(f"{os.fspath(directory)} exists; a final evaluation writes a new folder "
                         "(remove it or choose another)")


def save_final(result: FinalEvaluation, directory: "str | os.PathLike[str]", replace: bool = False) -> str:
    """Write ``arch.txt``, ``final.json`` and (when it succeeded) ``model.safetensors`` to ``directory``:
    into a temporary folder beside it, renamed into place at the end, so ``directory`` is never half
    written; an existing ``directory`` is an error unless ``replace``.  Returns the folder's path."""
    target = os.path.abspath(os.fspath(directory))
    check_target(target, replace)
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}.", suffix=".tmp", dir=parent)
    try:
        os.chmod(tmp, 0o755)
        record = result.to_dict()
        if result.ok:
            record["weights"] = {"file": WEIGHTS_FILE, "sha256": _write_weights(result.network, result,
                                                                                os.path.join(tmp, WEIGHTS_FILE))}
        with open(os.path.join(tmp, ARCH_FILE), "w", encoding="utf-8") as fh:
            fh.write(result.arch.to_string() + "\n")
        with open(os.path.join(tmp, FINAL_FILE), "w", encoding="utf-8") as fh:
            json.dump(jsonable(record, FINAL_FILE), fh, indent=2)
            fh.write("\n")
        _move_into_place(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _move_into_place(tmp: str, target: str) -> None:
    """Rename ``tmp`` to ``target``; an existing ``target`` is moved aside first and removed after."""
    if not os.path.lexists(target):
        os.rename(tmp, target)
        return
    old = tmp + ".old"
    os.rename(target, old)
    os.rename(tmp, target)
    shutil.rmtree(old, ignore_errors=True)


def _write_weights(network: Any, result: FinalEvaluation, path: str) -> str:
    """Save the network's state with safetensors (each tensor copied, so shared storage is no problem);
    returns the file's SHA-256."""
    from safetensors.torch import save_file  # deferred: torch

    tensors = {k: v.detach().cpu().clone().contiguous() for k, v in network.state_dict().items()}
    save_file(tensors, path, metadata={"arch_hash": result.arch.hash})  # one key: the same bytes every time
    os.chmod(path, 0o644)  # safetensors writes it private; the folder's other files are world-readable
    return _sha256(path)


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_final(directory: "str | os.PathLike[str]") -> dict[str, Any]:
    """The ``final.json`` of a folder written by ``save_final``, checked to be one; a ``ValueError`` naming the
    folder otherwise."""
    path = os.path.join(os.fspath(directory), FINAL_FILE)
    if not os.path.isfile(path):
        raise ValueError(f"{os.fspath(directory)}: no {FINAL_FILE}; not a folder written by a final evaluation")
    record = read_json_object(path, path)
    if record.get("format") != FORMAT or record.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: not a final evaluation of format {FORMAT!r} version {FORMAT_VERSION}")
    return record


def load_network(directory: "str | os.PathLike[str]", device: str = "cpu") -> Any:
    """The trained network saved in ``directory`` (a ``torch.nn.Module`` in eval mode: raw inputs in, logits
    out), rebuilt from ``arch.txt`` with ``nas.compile`` and filled with ``model.safetensors``.  Checks that the
    architecture is the one recorded, the weights file is the one written (SHA-256) and holds exactly the
    network's tensors with their shapes; any mismatch is a ``ValueError`` naming the folder."""
    from safetensors.torch import load_file  # deferred: torch

    from data.standardized import Standardized, stats_shape  # deferred: torch
    from nas.compile import compile_architecture  # deferred: nas.compile imports torch

    where = os.fspath(directory)
    record = load_final(where)
    if record.get("status") != OK:
        raise ValueError(f"{where}: the final evaluation failed ({record.get('reason', '')}); it saved no network")
    arch = _saved_architecture(where, record)
    weights = os.path.join(where, WEIGHTS_FILE)
    if not os.path.isfile(weights):
        raise ValueError(f"{where}: no {WEIGHTS_FILE}")
    if _sha256(weights) != record.get("weights", {}).get("sha256"):
        raise ValueError(f"{weights}: its SHA-256 is not the one recorded in {FINAL_FILE}; the file was changed")
    protocol = TrainingProtocol.from_dict(record["protocol"])
    net = compile_architecture(arch, int(record["num_classes"]), col_pool=protocol.col_pool, seed=0)
    network = Standardized.identity(net, stats_shape(arch.input_shape, arch.input_mode))
    try:
        network.load_state_dict(load_file(weights), strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{weights}: the weights do not fit the architecture of {ARCH_FILE}: "
                         f"{' '.join(str(exc).split())}") from None
    return network.to(device).eval()


def _saved_architecture(where: str, record: dict[str, Any]) -> Architecture:
    """``arch.txt`` parsed for the recorded input shape and grammar, checked against the recorded hash."""
    path = os.path.join(where, ARCH_FILE)
    with open(path, encoding="utf-8") as fh:
        arch = Architecture.from_string(fh.read().strip(), record["input_shape"], record["grammar"])
    if arch.hash != record.get("arch_hash"):
        raise ValueError(f"{path}: not the architecture recorded in {FINAL_FILE} (hash {arch.hash[:12]} "
                         f"!= {str(record.get('arch_hash'))[:12]})")
    return arch
