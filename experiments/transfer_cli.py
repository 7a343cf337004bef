"""Leave-one-out transfer through the command line: for each task of a source archive, the user's path
``nas surrogate fit --transfer --task T`` (every other task is a source) then ``nas surrogate evaluate DIR --task T``
(Kendall τ on all of T's evaluations), beside T's within-task τ (``nas surrogate evaluate --task T`` without a
folder: a held-out random split), which says whether the task has signal at all.

    python -m experiments.transfer_cli --out experiments/results/transfer_cli_rf

runs on the source archive shipped with the package (``--archive`` for another) and writes ``tau.md`` and
``tau.json`` under ``--out``.  ``--model lm`` fine-tunes the LM surrogate on the pooled sources (the ``--lm-*``
options and ``--max-per-source`` are passed to ``nas surrogate fit``; ``--normalise ecdf`` as the published
leave-one-out BERT); ``--within-model rf`` measures the within-task τ with another, cheaper model.

A task "has signal" when its within-task τ reaches ``--signal-tau`` (default 0.2): no surrogate can rank a task
whose own held-out networks it cannot rank, so the headline mean is over those (the published leave-one-out
means: RF .455, XGBoost .45).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any, Sequence

from data.archive import Archive
from data.training import machine
from nas.versions import software_version
from surrogates.sources import SHIPPED_ARCHIVE

#: The LM options of ``nas surrogate`` this script passes through as given (``nas surrogate`` checks them).
LM_OPTIONS = ("--lm-encoding", "--lm-target", "--lm-lr", "--lm-epochs", "--lm-layers", "--lm-path")


def run_nas(args: Sequence[str]) -> str:
    """Run ``nas ARGS`` (this interpreter's package); its stdout, or ``RuntimeError`` with the end of stderr."""
    args = [str(a) for a in args]
    done = subprocess.run([sys.executable, "-m", "nas.cli", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return done.stdout


def nas_json(args: Sequence[str]) -> dict[str, Any]:
    """Run ``nas ARGS`` and parse the JSON object it prints on stdout."""
    text = run_nas(args)
    return json.loads(text[text.index("{"):]) if "{" in text else {}


def lm_flags(args: argparse.Namespace) -> list[str]:
    """The ``LM_OPTIONS`` given to this script, as ``nas surrogate`` takes them."""
    given = ((flag, getattr(args, flag[2:].replace("-", "_"))) for flag in LM_OPTIONS)
    return [str(v) for flag, value in given if value is not None for v in (flag, value)]


def task_row(archive: str, task: str, model: str, features: str, normalise: str, workdir: str,
             seed: int, screen: Sequence[str] = (), within_model: str | None = None,
             fit_flags: Sequence[str] = (), lm: Sequence[str] = ()) -> dict[str, Any]:
    """Within-task (with ``within_model``, default ``model``) and leave-one-out transfer τ of ``task`` through
    the CLI; ``fit_flags`` go to the transfer fit, ``lm`` (``--lm-*`` options) to every LM fit."""
    within_model = within_model or model
    common = ["--archive", archive, "--task", task, "--features", features, "--seed", str(seed)]
    start = time.perf_counter()
    within = nas_json(["surrogate", "evaluate", *common, "--model", within_model, "--test-fraction", "0.25",
                       *(lm if within_model == "lm" else ())])
    within_seconds = time.perf_counter() - start
    folder = os.path.join(workdir, f"transfer-{task}")
    run_nas(["surrogate", "fit", "--transfer", *common, "--model", model, "--normalise", normalise, *screen,
             *fit_flags, *(lm if model == "lm" else ()), "-o", folder])
    transfer = nas_json(["surrogate", "evaluate", folder, "--archive", archive, "--task", task])
    return {"task": task, "within_tau": within.get("kendall_tau"), "transfer_tau": transfer.get("kendall_tau"),
            "transfer_spearman": transfer.get("spearman_rho"), "n": transfer.get("n"),
            "seconds": round(time.perf_counter() - start, 1),
            "transfer_seconds": round(time.perf_counter() - start - within_seconds, 1)}


def summary(rows: list[dict[str, Any]], signal_tau: float) -> dict[str, Any]:
    with_signal = [r for r in rows if (r["within_tau"] or 0.0) >= signal_tau]
    taus = [r["transfer_tau"] for r in with_signal]
    return {"tasks_with_signal": [r["task"] for r in with_signal],
            "mean_transfer_tau_with_signal": sum(taus) / len(taus) if taus else None,
            "mean_transfer_tau_all": sum(r["transfer_tau"] for r in rows) / len(rows) if rows else None}


def markdown(rows: list[dict[str, Any]], summ: dict[str, Any], command: str, signal_tau: float,
             within_model: str | None = None) -> str:
    within = "within-task τ" + (f" ({within_model})" if within_model else "")
    lines = ["# Leave-one-out transfer through the CLI", "", f"Command: `{command}`", "",
             f"surrogate-nas {software_version()}; {machine()}", "",
             f"| target | {within} | signal | transfer τ (sources: every other task) | Spearman ρ | n | s |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        signal = "yes" if (r["within_tau"] or 0.0) >= signal_tau else "no"
        lines.append(f"| {r['task']} | {r['within_tau']:.3f} | {signal} | {r['transfer_tau']:.3f} | "
                     f"{r['transfer_spearman']:.3f} | {r['n']} | {r['seconds']:.0f} |")
    mean = summ["mean_transfer_tau_with_signal"]
    lines += ["", f"Mean transfer τ over the {len(summ['tasks_with_signal'])} tasks with signal (within-task τ ≥ "
              f"{signal_tau:g}): **{mean:.3f}** (all tasks: {summ['mean_transfer_tau_all']:.3f}). "
              "Published leave-one-out means: RF .455, XGBoost .45.", ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--archive", default=SHIPPED_ARCHIVE, help="source archive (default: the shipped one)")
    ap.add_argument("--tasks", default=None, help="comma-separated targets (default: every task of the archive)")
    ap.add_argument("--model", default="rf")
    ap.add_argument("--features", default="graf,zcp", help="(default %(default)s: what nas surrogate fit --transfer uses)")
    ap.add_argument("--normalise", default="minmax")
    ap.add_argument("--signal-tau", type=float, default=0.2)
    ap.add_argument("--min-source-tau", type=float, default=None,
                    help="passed to nas surrogate fit --transfer: only sources whose own half-vs-half τ reaches it")
    ap.add_argument("--within-model", default=None,
                    help="the model of the within-task τ that decides signal (default: --model)")
    ap.add_argument("--max-per-source", type=int, default=None,
                    help="passed to nas surrogate fit --transfer: at most N rows of each source (default: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    for flag in LM_OPTIONS:
        ap.add_argument(flag, default=None, help="passed to nas surrogate when the model is lm")
    args = ap.parse_args(argv)
    with Archive(args.archive, readonly=True) as archive:
        tasks = args.tasks.split(",") if args.tasks else sorted({t for t, _, _ in archive.tasks()})
    screen = ["--min-source-tau", str(args.min_source_tau)] if args.min_source_tau is not None else []
    fit_flags = ["--max-per-source", str(args.max_per_source)] if args.max_per_source is not None else []
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for task in tasks:
            rows.append(task_row(args.archive, task, args.model, args.features, args.normalise, workdir, args.seed,
                                 screen, args.within_model, fit_flags, lm_flags(args)))
            print(json.dumps(rows[-1]), flush=True)
    summ = summary(rows, args.signal_tau)
    command = "python -m experiments.transfer_cli " + " ".join(argv if argv is not None else sys.argv[1:])
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "tau.md"), "w") as f:
        f.write(markdown(rows, summ, command, args.signal_tau, args.within_model))
    with open(os.path.join(args.out, "tau.json"), "w") as f:
        json.dump({"command": command, "rows": rows, **summ}, f, indent=1)
    print(markdown(rows, summ, command, args.signal_tau, args.within_model))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
