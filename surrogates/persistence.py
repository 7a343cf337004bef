"""Saving and loading surrogates without pickle: one folder holding a JSON manifest plus safe model files.

``save_surrogate`` asks the surrogate to write itself (``Surrogate.save``); ``load_surrogate`` reads the kind
from the manifest and lets the class registered for it in ``surrogates.registry.KINDS`` read the folder
(``Surrogate.from_folder``).  The formats (``surrogates.folder``):

* XGBoost: its own JSON format (``model.json``);
* random forest: there is no safe file format, so the training matrix and targets are saved as
  ``features.csv`` (the feature names as header, then ``y``; full-precision floats, ``nan`` for missing
  values) and loading refits with the same parameters and ``random_state``;
* ensembles: every member in ``members/000``, ``members/001``, ...; transfer surrogates: the pooled model in
  ``base/`` and the normalised source rows in ``sources.csv``;
* LM surrogates: safetensors weights, the tokenizer files and the manifest (``surrogates.lm.load_lm``).

``save_surrogate`` is atomic: the surrogate is written to a temporary folder beside the target and renamed into
place once complete, so a save that fails or is killed leaves the previous surrogate (or nothing) at the target,
never a half-written folder.  A folder is published only if loading would accept its manifests.

Loading validates the manifest before building any model (parameters within ``folder.PARAM_RANGES``, check rows
present, no link leading outside the folder), then recomputes the recorded predictions of the stored rows,
which must agree within ``CHECK_TOLERANCE``: a refit that does not reproduce the saved model (another
scikit-learn version, say) is an error, not a silently different model.  Every error names the file, and only
files inside the folder are read.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from surrogates import folder
from surrogates.base import FeatureSurrogate, Surrogate
from surrogates.folder import CHECK_TOLERANCE, MANIFEST, SCHEMA_VERSION, PersistenceError
from surrogates.registry import KINDS

__all__ = ["CHECK_TOLERANCE", "MANIFEST", "SCHEMA_VERSION", "PersistenceError", "load_surrogate", "read_manifest",
           "save_surrogate"]

log = logging.getLogger(__name__)


def read_manifest(directory: "str | os.PathLike[str]") -> dict[str, Any]:
    """The parsed ``manifest.json`` of a saved surrogate (checked to be a JSON object with a known kind)."""
    return folder.read_manifest(directory, tuple(KINDS))


def save_surrogate(surrogate: Any, directory: "str | os.PathLike[str]") -> Path:
    """Save a fitted surrogate to ``directory`` atomically (created; a surrogate saved there before is
    replaced once the new one is complete, any other non-empty folder refused).  Returns the folder."""
    if not isinstance(surrogate, Surrogate):
        raise PersistenceError(f"cannot save a {type(surrogate).__name__}: not a surrogates.base.Surrogate")
    directory = Path(directory)
    with folder.staged_dir(directory) as stage:
        surrogate.save(stage)
        for path in sorted(stage.rglob(MANIFEST)):  # nested members included: publish only what loads
            _check_folder(path.parent, read_manifest(path.parent))
    log.info("saved %s to %s", type(surrogate).__name__, directory)
    return directory


def _check_folder(directory: Path, manifest: dict[str, Any]) -> None:
    """What loading checks before building a model: the manifest of a feature surrogate (``folder.check_manifest``)
    and, for every kind, no link out of the folder."""
    if issubclass(KINDS[manifest["kind"]], FeatureSurrogate):
        folder.check_manifest(directory, manifest)
    folder.check_links(directory)


def load_surrogate(directory: "str | os.PathLike[str]", task: Any = None) -> Surrogate:
    """Load a surrogate saved by ``save_surrogate``.  ``task`` (name, ``TaskRef`` or task object) replaces the
    recorded task, e.g. for a generated task with a non-default seed or a task read from a folder."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    _check_folder(directory, manifest)
    surrogate = KINDS[manifest["kind"]].from_folder(directory, manifest, task=task, load=load_surrogate)
    log.info("loaded %s from %s", type(surrogate).__name__, directory)
    return surrogate
