"""What several ``nas`` commands share: reading architectures, option conventions, deprecated spellings."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Sequence

from data.archive import Archive
from nas.architecture import Architecture, parse_shape
from nas.cells import from_cell_string
from nas.cli.options import positive_float, positive_int, seed_int
from nas.grammar import grammar_names
from nas.jsonsafe import read_json_object
from nas.seeds import SEEDS, get_seed

DEFAULT_SHAPE = "3x32x32"

PROTOCOLS_HELP = ("published (the paper's: 8 epochs, batch 256), reduced (CPU: 5 epochs on 2,000 examples, batch 32), "
                  "transferable (16 epochs, patience 8, final retrain 64 epochs), smoke, or a .json file")

#: Surrogate model names offered by ``nas surrogate fit --model`` and ``nas search --surrogate``: the names of
#: ``surrogates.registry`` (spelled out here so that building the parser imports no surrogate; a test keeps
#: the two equal).
SURROGATE_MODELS = ("rf", "xgb", "xgb_tuned", "ensemble", "lm", "transfer")
#: ``surrogates.lm.ENCODINGS`` and ``TARGETS`` (the LM's choices), spelled out for the same reason.
LM_ENCODINGS = ("long", "compact", "tokens")
LM_TARGETS = ("raw", "ecdf", "minmax")
#: The named sampling budgets of ``nas.search.budgets.BUDGETS``, spelled out for the same reason.
SAMPLING_BUDGETS = ("cpu", "default")


class DeprecatedAlias(argparse.Action):
    """An old spelling of an option: it still works for one release and says once, on stderr, what replaced it."""

    def __init__(self, option_strings: Sequence[str], dest: str, new: str = "", **kwargs: Any) -> None:
        self.new = new
        kwargs.setdefault("help", argparse.SUPPRESS)
        super().__init__(option_strings, dest, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(f"{parser.prog}: warning: {option_string} is deprecated here, use {self.new} "
              "(the old spelling will be removed in the next release)", file=sys.stderr)
        setattr(namespace, self.dest, values)


def deprecated_alias(p: argparse.ArgumentParser, old: str, new: str, dest: str, **kwargs: Any) -> None:
    """Accept ``old`` as a deprecated spelling of the option ``new`` (stored in ``dest``); ``kwargs`` as for
    ``add_argument`` (``type``, ``choices``)."""
    p.add_argument(old, dest=dest, action=DeprecatedAlias, new=new, **kwargs)


def add_task_args(p: argparse.ArgumentParser, required: bool = False, help: str = "task name or Unseen-NAS folder") -> None:
    """``--task`` and ``--task-seed`` (the generator seed of a generated task)."""
    p.add_argument("--task", required=required, help=help)
    p.add_argument("--task-seed", type=seed_int, default=0,
                   help="generator seed of a generated task (default %(default)s)")


def add_sampling_budget_arg(p: argparse.ArgumentParser) -> None:
    """``--sampling-budget``: the named size budget of sampled networks."""
    p.add_argument("--sampling-budget", choices=SAMPLING_BUDGETS, default="cpu",
                   help="size budgets of sampled networks: cpu (CPU-sized) or the grammar default (default %(default)s)")


def add_grammar_arg(p: argparse.ArgumentParser, default: str | None = "einspace", help: str | None = None) -> None:
    p.add_argument("--grammar", default=default, choices=grammar_names(), help=help)


def add_lm_args(p: argparse.ArgumentParser, deprecated: bool = False) -> None:
    """``--lm-encoding``, ``--lm-target``, ``--lm-lr``, ``--lm-epochs``, ``--lm-layers`` and ``--lm-path``:
    ``LMSurrogate`` parameters used when the surrogate is ``lm`` (``lm_params``); an option left out keeps the
    LM's default (the help names it; a test keeps the two equal).  ``deprecated`` also accepts the old spellings
    of ``nas surrogate`` (``--encoding``, ``--epochs``, ``--num-layers``)."""
    p.add_argument("--lm-encoding", default=None, choices=LM_ENCODINGS,
                   help="lm: input encoding: grammar tokens, the compact string or the published long string "
                   "(default tokens)")
    p.add_argument("--lm-target", default=None, choices=LM_TARGETS,
                   help="lm: target the LM regresses: ecdf (rank of the accuracy among the training "
                   "architectures), minmax or raw accuracy; predictions are on this scale (default ecdf)")
    p.add_argument("--lm-lr", type=positive_float, default=None, help="lm: AdamW learning rate (default 1e-4)")
    p.add_argument("--lm-epochs", type=positive_int, default=None, help="lm: fine-tuning epochs (default 10)")
    p.add_argument("--lm-layers", type=positive_int, default=None,
                   help="lm: keep the first N encoder layers (default all)")
    p.add_argument("--lm-path", default=None, help="lm: a local Hugging Face model folder (default: packaged MiniLM)")
    if deprecated:
        deprecated_alias(p, "--encoding", "--lm-encoding", "lm_encoding", choices=LM_ENCODINGS)
        deprecated_alias(p, "--epochs", "--lm-epochs", "lm_epochs", type=int)
        deprecated_alias(p, "--num-layers", "--lm-layers", "lm_layers", type=int)


def lm_params(args: argparse.Namespace, model: str | None) -> dict[str, Any]:
    """The ``LMSurrogate`` parameters given with ``add_lm_args`` options, when ``model`` is ``lm`` (none otherwise)."""
    if model != "lm":
        return {}
    given = (("encoding", args.lm_encoding), ("target", args.lm_target), ("lr", args.lm_lr),
             ("epochs", args.lm_epochs), ("num_layers", args.lm_layers), ("model_path", args.lm_path))
    return {k: v for k, v in given if v is not None}


SHAPE_HEADER = "# input_shape:"


def shape_text(shape: "str | tuple[int, ...]") -> str:
    """An input shape as ``CxHxW`` (or ``SxD``)."""
    return "x".join(map(str, parse_shape(shape)))


def split_shape_header(text: str) -> tuple[str, str | None]:
    """``(text without comment lines, the shape of a leading "# input_shape: ..." line or None)``."""
    shape, kept = None, []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            if stripped.startswith(SHAPE_HEADER) and shape is None:
                shape = shape_text(stripped[len(SHAPE_HEADER):].strip())
            continue
        kept.append(line)
    return "\n".join(kept), shape


def read_text(source: str | None) -> str:
    """An argument that is a string, a file name, or '-'/absent for standard input."""
    if source is None or source == "-":
        return sys.stdin.read()
    if os.path.isfile(source):
        with open(source, encoding="utf-8") as fh:
            return fh.read()
    return source


def read_architecture(text: str, input_shape: str | None, grammar: str) -> Architecture:
    """A seed name, a JSON line written by ``nas sample --json``, or an architecture string."""
    shape = input_shape or DEFAULT_SHAPE
    if text.strip().lower().replace("-", "_") in SEEDS:
        return get_seed(text.strip(), shape, grammar)
    stripped = text.strip()
    if stripped.startswith("{") and '"input_shape"' in stripped.split("\n", 1)[0]:
        data = json.loads(stripped.split("\n", 1)[0])
        if input_shape:
            data["input_shape"] = list(parse_shape(input_shape))
        return Architecture.from_json(data)
    return Architecture.from_string(stripped, shape, grammar)


def read_architectures(lines: Sequence[str], nb201_cells: bool, input_shape: str | None, grammar: str) -> list[Architecture]:
    """One architecture per line: NAS-Bench-201 cell strings, or anything ``read_architecture`` reads."""
    if nb201_cells:
        return [from_cell_string(line) for line in lines]
    return [read_architecture(line, input_shape, grammar) for line in lines]


def task_architecture(source: str | None, task: Any, grammar: str) -> Architecture:
    """The architecture argument read for ``task``: its input shape, its grammar, NB201 cell strings."""
    grammar = getattr(task, "grammar", None) or grammar
    text, _ = split_shape_header(read_text(source))  # a nas sample file: the task's shape is the one to build for
    if grammar == "nb201" and text.strip().startswith("|"):
        return from_cell_string(text.strip(), task.input_shape)
    shape = "x".join(map(str, task.input_shape))
    return read_architecture(text, shape, grammar)


def fit_transfer_surrogate(archive_path: str | None, model: str = "rf", features: str = "graf,zcp",
                           sources: str | None = None, exclude: Sequence[str] = (), min_source_tau: float | None = None,
                           normalisation: str = "minmax", protocol: str | None = None, seed: int = 0,
                           task: Any = None, option: str = "--archive", max_per_source: int | None = None,
                           lm_params: dict[str, Any] | None = None, size_bands: int = 1) -> Any:
    """A ``TransferSurrogate`` (an ``LMSurrogate`` for ``model="lm"``, with ``lm_params``) fitted on the source
    tasks of the archive ``archive_path`` (default: the shipped source archive; ``option`` is how the command
    names it in the error when neither exists): ``sources`` (comma-separated, or ``all``/None for every task in
    the archive) less ``exclude``, at most ``max_per_source`` rows each, their targets normalised within
    ``size_bands`` bands of parameter count; ``task`` is the target."""
    from surrogates.sources import open_source_archive  # deferred: building the parser imports no surrogate code
    from surrogates.workflows import fit_transfer  # deferred: scikit-learn, xgboost, transformers

    names = None if sources in (None, "", "all") else [s.strip() for s in sources.split(",") if s.strip()]
    with open_source_archive(archive_path, option) as archive:
        return fit_transfer(archive, model, features, names, exclude, min_source_tau, normalisation, protocol, seed,
                            task, max_per_source=max_per_source, lm_params=lm_params, size_bands=size_bands)


def write_run_ref(run_dir: str, archive_path: str, run: str, label: str, task: str, strategy: str,
                  seed: int | None = None, command: str | None = None) -> None:
    """``RUN_DIR/run.json``: where ``nas status``, ``nas compare`` and ``nas report`` find a search run (with
    its seed and the exact command line when known)."""
    os.makedirs(run_dir, exist_ok=True)
    ref = {"archive": os.path.relpath(archive_path, run_dir), "run": run, "label": label, "task": task,
           "strategy": strategy}
    if seed is not None:
        ref["seed"] = int(seed)
    if command:
        ref["command"] = command
    with open(os.path.join(run_dir, "run.json"), "w", encoding="utf-8") as fh:
        json.dump(ref, fh, indent=2)


def read_run_ref(path: str) -> tuple[str, str, str]:
    """``(archive, run name, label)`` of a run directory written by ``nas search`` or ``nas quickstart``; a
    ``run.json`` that is not what ``write_run_ref`` writes is a ``ValueError`` naming it."""
    ref = os.path.join(path, "run.json")
    info = read_json_object(ref, ref)
    for key in ("archive", "run", "label"):
        if not isinstance(info.get(key, ""), str) or (key != "label" and not info.get(key)):
            raise ValueError(f"{ref}: {key!r} must be a non-empty string, got {info.get(key)!r}")
    return os.path.join(path, info["archive"]), info["run"], info.get("label", os.path.basename(os.path.normpath(path)))
