"""Kendall τ of the fine-tuned LM surrogate on NAS-Bench-201 CIFAR-10 (issue: "the LM surrogate's τ at
1,024 cells is measured and reported").

Same protocol as ``experiments.nb201_tau``: split ``s`` trains on ``n`` random cells of the 9,445 unique
cells (``split_indices(9445, n, s)``) and the score is Kendall τ-b between predictions and validation
accuracy on **all other** cells.  The model is ``surrogates.lm.LMSurrogate`` on the packaged
all-MiniLM-L6-v2 (22.7 M parameters, full fine-tuning), on one of the string encodings of each cell's
``nb201`` architecture:

* ``tokens`` (default): the grammar-aware tokens, added to the tokenizer as whole tokens
  (``cell ( nor_conv_3x3 , none , ... )``: 15 tokens per cell);
* ``compact``: the compact string through the model's WordPiece tokenizer;
* ``long``: the published ``arch_long`` string (shapes after every module).

Training: AdamW, warm-up 6 % then cosine decay, batch ``--batch`` (default 16), ``--epochs`` (default 10),
``--lr`` (default 1e-4: the published 1e-5 is for thousands of steps at batch 2; 10 epochs of 1,024 cells at
batch 16 are 640 steps), target ``ecdf`` (ranks in [0, 1]: the ~10 % "dead" cells at 10 % accuracy would
otherwise dominate the squared error).  Threads: ``torch.set_num_threads(--threads)``.

    .venv/bin/python -m experiments.nb201_lm_tau [--sizes 1024] [--splits 1] [--encoding tokens] \\
        [--out experiments/results/nb201_lm_tau.md]
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from typing import Sequence

import numpy as np

from data.tasks import get_task
from data.training import machine
from experiments.nb201_tau import split_indices, write_text
from surrogates.metrics import kendall_tau


def lm_tau(archs: Sequence, y: np.ndarray, n_train: int, seed: int, encoding: str = "tokens",
           epochs: int = 10, lr: float = 1e-4, batch_size: int = 16, num_layers: int | None = None,
           target: str = "ecdf") -> tuple[float, float, float]:
    """(τ on held-out cells, fit seconds, predict seconds) of an LM fine-tuned on split ``seed``."""
    from surrogates.lm import LMSurrogate  # deferred: transformers

    train, test = split_indices(len(y), n_train, seed)
    model = LMSurrogate(encoding=encoding, grammar="nb201", epochs=epochs, lr=lr, batch_size=batch_size,
                        num_layers=num_layers, target=target, random_state=seed, progress=False)
    t0 = time.perf_counter()
    model.fit([archs[i] for i in train], y[train])
    t1 = time.perf_counter()
    pred = model.predict([archs[i] for i in test])
    t2 = time.perf_counter()
    return kendall_tau(pred, y[test]), t1 - t0, t2 - t1


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1024", help="training-set sizes, comma-separated")
    ap.add_argument("--splits", type=int, default=1, help="random splits (seeds 0..splits-1)")
    ap.add_argument("--encoding", default="tokens", choices=("tokens", "compact", "long"))
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--num-layers", type=int, default=None, help="keep the first n encoder layers (default all 6)")
    ap.add_argument("--target", default="ecdf", choices=("raw", "ecdf", "minmax"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None, help="also write the Markdown table here")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(level=logging.WARNING)

    import torch  # deferred: torch


    torch.set_num_threads(args.threads)
    task = get_task("nb201-cifar10")
    entries = list(task.all_cells())
    archs = [e.architecture() for e in entries]
    y = np.asarray([e.val_acc for e in entries], dtype=float)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    rows = []
    for n in sizes:
        taus, fits, preds = [], [], []
        for seed in range(args.splits):
            tau, fit_s, pred_s = lm_tau(archs, y, n, seed, args.encoding, args.epochs, args.lr, args.batch,
                                        args.num_layers, args.target)
            taus.append(tau)
            fits.append(fit_s)
            preds.append(pred_s)
            print(f"nb201_lm_tau_n{n}_split{seed}: {tau:.4f} (fit {fit_s:.0f} s, predict {len(y) - n} cells "
                  f"{pred_s:.0f} s)", flush=True)
        rows.append((n, taus, float(np.mean(fits)), float(np.mean(preds))))
    layers = args.num_layers or 6
    lines = [
        f"LM surrogate (all-MiniLM-L6-v2, {layers} layers, full fine-tuning, `{args.encoding}` encoding, "
        f"{args.epochs} epochs, lr {args.lr:g}, batch {args.batch}, target {args.target}) on NB201 CIFAR-10: "
        f"Kendall τ on all held-out cells, splits 0..{args.splits - 1}.",
        "",
        "| n train | τ (mean ± std) | per split | fit s | predict s |",
        "|---|---|---|---|---|",
    ]
    for n, taus, fit_s, pred_s in rows:
        v = np.asarray(taus)
        lines.append(f"| {n} | {v.mean():.3f} ± {v.std():.3f} | {', '.join(f'{t:.3f}' for t in taus)} | "
                     f"{fit_s:.0f} | {pred_s:.0f} |")
    lines += ["", f"Machine: {machine()}, torch {torch.__version__}, {args.threads} threads.", ""]
    text = "\n".join(lines)
    print(text)
    if args.out:
        write_text(args.out, text)


if __name__ == "__main__":
    main()
