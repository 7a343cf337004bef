"""One place that reads installed package versions (recorded with evaluations, runs and saved surrogates)."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

__all__ = ["software_version", "software_versions"]

PACKAGES = ("surrogate-nas", "numpy", "scipy", "scikit-learn", "xgboost", "xgboost-cpu", "torch", "transformers")


def software_version(package: str = "surrogate-nas") -> str:
    """The installed version of ``package`` (``"unknown"`` when it is not installed, e.g. a bare checkout)."""
    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


def software_versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """``{"python": ..., package: version}`` for each of ``packages`` that is installed."""
    out = {"python": platform.python_version()}
    for name in packages:
        v = software_version(name)
        if v != "unknown":
            out[name] = v
    return out
