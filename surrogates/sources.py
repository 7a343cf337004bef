"""Where the source tasks of a transfer surrogate come from: an archive given by the user, else the source
archive shipped with the project (the offline suite's evaluated networks)."""

from __future__ import annotations

import os
from pathlib import Path

import data

#: The source archive shipped with the project, inside the ``data`` package.
SHIPPED_ARCHIVE = Path(data.__file__).resolve().parent / "archives" / "offline-tasks.sqlite"


def source_archive(path: "str | os.PathLike[str] | None" = None, option: str = "--archive") -> Path:
    """The archive of source evaluations to transfer from: ``path`` when given, else ``SHIPPED_ARCHIVE``;
    either must exist (a one-line error says which is missing and that ``option`` names another one)."""
    if path is not None:
        found = Path(path)
        if not found.is_file():
            raise FileNotFoundError(f"source archive {os.fspath(found)!r} does not exist")
        return found
    if not SHIPPED_ARCHIVE.is_file():
        raise FileNotFoundError(f"the shipped source archive ({SHIPPED_ARCHIVE}) is not in this version of "
                                f"surrogate-nas; pass an archive of evaluated source tasks with {option} A")
    return SHIPPED_ARCHIVE
