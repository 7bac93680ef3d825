"""Benchmarks, one module per name: ``tbqkd bench NAME --json`` imports ``tbqkd.bench.NAME``.

Each module defines ``run(quick: bool = False) -> dict`` returning one JSON-serialisable object
with the field names its issue asks for, and a one-line module docstring shown by
``tbqkd bench --list``. Benchmarks measure speed; tests check correctness.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

__all__ = ["available", "run", "BenchParameterError"]


class BenchParameterError(ValueError):
    """A benchmark parameter it does not take, or a value out of its range."""


def available() -> dict[str, str]:
    """Return ``{name: first docstring line}`` for every benchmark module."""
    names = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        names[info.name] = (module.__doc__ or "").strip().splitlines()[0]
    return names


def run(name: str, *, quick: bool = False, params: dict | None = None) -> dict:
    """Run the benchmark ``name`` and return its result object.

    ``params`` are keyword arguments of the module's ``run``; a name it does not take raises
    :class:`BenchParameterError` before anything runs.
    """
    if name.startswith("_") or name not in {i.name for i in pkgutil.iter_modules(__path__)}:
        raise KeyError(name)
    module = importlib.import_module(f"{__name__}.{name}")
    params = params or {}
    accepted = inspect.signature(module.run).parameters
    unknown = sorted((set(params) - set(accepted)) | ({"quick"} & set(params)))
    if unknown:
        raise BenchParameterError(f"unknown parameter(s) {', '.join(unknown)}; "
                        f"{name} takes {', '.join(p for p in accepted if p != 'quick') or 'none'}")
    return module.run(quick=quick, **params)
