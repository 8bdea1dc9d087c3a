"""Lazy public names for package ``__init__`` modules (as scikit-image does with lazy_loader).

A package lists which names it offers from which modules; a module is imported only when
one of its names is first used. ``import cellsynth`` therefore stays fast and imports
neither torch nor dask, while ``cellsynth.synthesize_image`` works at once.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def attach(package: str, exports: Mapping[str, Sequence[str]],
           submodules: Sequence[str] = ()) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """``__getattr__``, ``__dir__`` and ``__all__`` for a package with lazy public names.

    Parameters
    ----------
    package
        The package's ``__name__``.
    exports
        Module name (absolute, or relative to ``package`` when it starts with a dot) ->
        the names it provides.
    submodules
        Submodules (relative names) that are imported when accessed as attributes.

    Examples
    --------
    In a package ``__init__.py``::

        __getattr__, __dir__, __all__ = attach(__name__, {".pipeline": ["simulate_sample"]})
    """
    where = {name: module for module, names in exports.items() for name in names}
    subs = set(submodules)
    public = sorted({*where, *subs})

    def __getattr__(name: str) -> Any:
        if name in where:
            value = getattr(importlib.import_module(where[name], package), name)
        elif name in subs:
            value = importlib.import_module(f"{package}.{name}")
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        setattr(sys.modules[package], name, value)  # later look-ups skip __getattr__
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *public})

    return __getattr__, __dir__, public
