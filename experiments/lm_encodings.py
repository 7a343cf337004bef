"""Which string encoding should the LM surrogate read?  Kendall τ of ``LMSurrogate`` for each encoding of the
same networks, at a small, CPU-sized training set: the NAS-Bench-201 CIFAR-10 cells (default), or the evaluated
einspace networks of one task of an archive (``--task NAME``; ``--archive``, default the source archive shipped
with the package, opened read-only).

Encodings (``features.encodings.StringEncoder`` kinds, plus one written here):

* ``long``: the published ``arch_long`` string (every operation annotated with its output shape), through the
  model's WordPiece tokenizer;
* ``compact``: the compact string (``cell(nor_conv_3x3, none, ...)``) through WordPiece;
* ``tokens``: the grammar-aware tokens, added to the tokenizer as whole tokens (one id per operation);
* ``module``: the printed PyTorch module tree of the compiled network (``str(compile_architecture(arch))``,
  the published ``arch_pytorch`` column by its name); thousands of tokens, so it is cut at the model's limit.

Protocol: split ``s`` draws ``--n-train`` training networks and ``--n-test`` held-out networks (disjoint) with a
generator seeded by ``s`` from the 9,445 unique NB201 cells, or from the task's successfully trained networks
(failed trainings are left out of both parts: the study ranks trained networks); every encoding sees the same
networks, targets (validation accuracy, ECDF-normalised by the surrogate) and seed.  Model: the packaged
all-MiniLM-L6-v2 (or ``--lm-path``) cut to ``--num-layers`` layers, full fine-tuning, AdamW lr ``--lr``, batch
``--batch``, ``--epochs`` epochs.
Reported per encoding: τ-b between predictions and validation accuracy on the held-out networks (mean ± std over
splits), the mean number of tokens per string, the share of strings cut at the model's limit, and fit seconds.

    .venv/bin/python -m experiments.lm_encodings [--n-train 128] [--n-test 512] [--splits 2] \\
        [--encodings long,compact,tokens,module] [--out experiments/results/lm_encodings.md]
    .venv/bin/python -m experiments.lm_encodings --task gutenberg-mini --n-train 150 --n-test 145 ... \\
        --out experiments/results/lm_encodings_offline.md
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from data.archive import Archive
from data.tasks import get_task
from data.training import machine
from experiments.nb201_tau import write_text
from features.encodings import StringEncoder
from surrogates.metrics import kendall_tau
from surrogates.sources import SHIPPED_ARCHIVE

ENCODINGS = ("long", "compact", "tokens", "module")
NB201 = "nb201-cifar10"


def module_string(arch) -> str:
    """The printed PyTorch module tree of ``arch``'s compiled network (10 classes)."""
    from nas.compile import compile_architecture  # deferred: torch

    return str(compile_architecture(arch, 10, seed=0))


def encode(archs: Sequence, encoding: str) -> list[str]:
    """The strings the LM reads for ``encoding`` (``module`` built here, the others by ``StringEncoder``)."""
    if encoding == "module":
        return [module_string(a) for a in archs]
    encoder = StringEncoder(encoding)
    return [encoder.encode_one(a) for a in archs]


def load_networks(task: str, archive: str) -> tuple[list, np.ndarray]:
    """``(architectures, validation accuracies)``: every unique NB201 cell for ``nb201-cifar10``, else the
    successfully trained networks of ``task`` in ``archive`` (read-only; failures left out)."""
    if task == NB201:
        entries = list(get_task(NB201).all_cells())
        return [e.architecture() for e in entries], np.asarray([e.val_acc for e in entries], dtype=float)
    with Archive(archive, readonly=True) as store:
        archs, y = store.dataset(task)
    if not archs:
        raise ValueError(f"{archive}: no successful evaluation of task {task!r}")
    return archs, np.asarray(y, dtype=float)


def split(n_cells: int, n_train: int, n_test: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint training and held-out cell indices drawn with a generator seeded by ``seed``."""
    if n_train + n_test > n_cells:
        raise ValueError(f"n_train + n_test = {n_train + n_test} exceeds the {n_cells} networks")
    order = np.random.default_rng(seed).permutation(n_cells)
    return order[:n_train], order[n_train:n_train + n_test]


@dataclass
class Result:
    """One encoding's measurements over the splits."""

    taus: list[float] = field(default_factory=list)
    tokens: list[float] = field(default_factory=list)
    truncated: list[float] = field(default_factory=list)
    fit_seconds: list[float] = field(default_factory=list)


def run_one(archs: Sequence, y: np.ndarray, train: np.ndarray, test: np.ndarray, encoding: str, seed: int,
            args: argparse.Namespace, result: Result) -> None:
    """Fit an LM on the training cells in ``encoding`` and score it on the held-out cells."""
    from surrogates.lm import LMSurrogate  # deferred: transformers

    strings = encode([archs[i] for i in np.concatenate([train, test])], encoding)
    x_train, x_test = strings[:len(train)], strings[len(train):]
    # module strings are plain text: the token vocabulary is only for the grammar-token encoding
    model = LMSurrogate(encoding="compact" if encoding == "module" else encoding, grammar=archs[0].grammar.name,
                        epochs=args.epochs, lr=args.lr, batch_size=args.batch, num_layers=args.num_layers,
                        model_path=args.lm_path, random_state=seed, progress=False)
    t0 = time.perf_counter()
    model.fit(x_train, y[train])
    result.fit_seconds.append(time.perf_counter() - t0)
    result.taus.append(kendall_tau(y[test], model.predict(x_test)))
    ids = model.tokenizer_(x_train, add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
    result.tokens.append(float(np.mean([len(s) for s in ids])))
    result.truncated.append(float(model.truncation_rate_))
    print(f"{encoding} split {seed}: τ {result.taus[-1]:.3f}, {result.tokens[-1]:.0f} tokens, "
          f"{100 * result.truncated[-1]:.0f} % cut, fit {result.fit_seconds[-1]:.0f} s", flush=True)


def table(results: dict[str, Result], args: argparse.Namespace, threads: int, torch_version: str) -> str:
    """The Markdown report."""
    what = ("NB201 CIFAR-10" if args.task == NB201 else
            f"{args.task} (einspace networks of {os.path.basename(args.archive)}, failed trainings left out)")
    unit = "cells" if args.task == NB201 else "networks"
    model = "all-MiniLM-L6-v2" if args.lm_path is None else f"the model in {args.lm_path}"
    lines = [
        f"LM surrogate string encodings on {what}: {model} cut to {args.num_layers} layers, full "
        f"fine-tuning, {args.epochs} epochs, lr {args.lr:g}, batch {args.batch}, ECDF target; {args.n_train} "
        f"training {unit}, Kendall τ-b on {args.n_test} held-out {unit}, splits 0..{args.splits - 1}.",
        "",
        "| encoding | τ (mean ± std) | per split | tokens per string | cut at the limit | fit s |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        t = np.asarray(r.taus)
        lines.append(f"| {name} | {t.mean():.3f} ± {t.std():.3f} | {', '.join(f'{v:.3f}' for v in t)} | "
                     f"{np.mean(r.tokens):.0f} | {100 * np.mean(r.truncated):.0f} % | {np.mean(r.fit_seconds):.0f} |")
    source = "" if args.task == NB201 else f"--task {args.task} " + (
        "" if os.path.abspath(args.archive) == os.path.abspath(SHIPPED_ARCHIVE) else f"--archive {args.archive} ")
    command = ("`.venv/bin/python -m experiments.lm_encodings " + source +
               f"--n-train {args.n_train} --n-test {args.n_test} --splits {args.splits} "
               f"--encodings {','.join(results)} --epochs {args.epochs} --lr {args.lr:g} --batch {args.batch} "
               f"--num-layers {args.num_layers} --threads {threads}" +
               (f" --lm-path {args.lm_path}" if args.lm_path else "") + (f" --out {args.out}`" if args.out else "`"))
    lines += ["", f"Command: {command}", "", f"Machine: {machine()}, torch {torch_version}, {threads} threads.", ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default=NB201, help="nb201-cifar10 (default) or a task of --archive")
    ap.add_argument("--archive", default=str(SHIPPED_ARCHIVE),
                    help="the archive whose --task networks to use (read-only; default the shipped one)")
    ap.add_argument("--n-train", type=int, default=128)
    ap.add_argument("--n-test", type=int, default=512)
    ap.add_argument("--splits", type=int, default=2, help="random splits (seeds 0..splits-1)")
    ap.add_argument("--encodings", default=",".join(ENCODINGS), help=f"comma-separated, of {', '.join(ENCODINGS)}")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--num-layers", type=int, default=2, help="keep the first n encoder layers (of 6)")
    ap.add_argument("--lm-path", default=None, help="a local Hugging Face model folder (default: packaged MiniLM)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="also write the Markdown table here")
    args = ap.parse_args(argv)
    encodings = [e.strip() for e in args.encodings.split(",") if e.strip()]
    unknown = [e for e in encodings if e not in ENCODINGS]
    if unknown or not encodings:
        ap.error(f"unknown encoding(s) {unknown}; choose from {', '.join(ENCODINGS)}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(level=logging.ERROR)

    import torch  # deferred: torch

    torch.set_num_threads(args.threads)
    archs, y = load_networks(args.task, args.archive)
    results = {e: Result() for e in encodings}
    for seed in range(args.splits):
        train, test = split(len(y), args.n_train, args.n_test, seed)
        for encoding in encodings:
            run_one(archs, y, train, test, encoding, seed, args, results[encoding])
    text = table(results, args, args.threads, torch.__version__)
    print(text)
    if args.out:
        write_text(args.out, text)


if __name__ == "__main__":
    main()
