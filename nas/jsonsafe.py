"""One JSON sanitiser for everything the project writes (archives, run files, task metadata, saved surrogates)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

__all__ = ["jsonable", "read_json_object"]


def jsonable(value: Any, where: str = "value", nonfinite: Literal["null", "error"] = "null") -> Any:
    """A copy of ``value`` made of JSON types only.

    numpy scalars and arrays become Python numbers and lists, tuples become lists, mapping keys must be strings
    (ints are written as strings).  A non-finite float becomes ``None`` (``nonfinite="null"``) or is an error
    (``"error"``).  Anything else raises ``TypeError`` naming ``where`` (e.g. ``"metadata.classes[3]"``), so a bad
    value is reported where it sits rather than as a serialiser traceback.
    """
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        if math.isfinite(f):
            return f
        if nonfinite == "error":
            raise ValueError(f"{where} is {f}, which JSON cannot hold")
        return None
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist(), where, nonfinite)
    if isinstance(value, (list, tuple)):
        return [jsonable(v, f"{where}[{i}]", nonfinite) for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if isinstance(k, (int, np.integer)) and not isinstance(k, bool):
                k = str(int(k))
            if not isinstance(k, str):
                raise TypeError(f"{where} has a non-string key {k!r}")
            out[k] = jsonable(v, f"{where}.{k}", nonfinite)
        return out
    raise TypeError(f"{where} holds a {type(value).__name__}, which cannot be written as JSON")


def read_json_object(path: str, what: str) -> dict:
    """The JSON object in file ``path``; anything else (unreadable JSON, a list, a number) is a ``ValueError``
    that names ``what`` the file is meant to be (e.g. ``"protocol file x.json"``), for a one-line CLI error."""
    with open(path, encoding="utf-8") as fh:
        try:
            data = json.load(fh)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{what}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{what}: expected a JSON object, got {type(data).__name__}")
    return data
