"""The finding kinds: one module each, found here by name (adding a kind is adding a module).

Each module defines `KIND` (its name in reports), `ORDER` (where its tag goes in a flow's `anomalies`
list), `SETTINGS` (its thresholds: name, default, reason; they become fields of `Thresholds`) and
`DETECTOR`, the class `DetectorSet` instantiates with `(thresholds, context)`.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType


def _discover() -> list[ModuleType]:
    modules = [
        importlib.import_module(f"{__name__}.{info.name}")
        for info in pkgutil.iter_modules(__path__)
        if not info.name.startswith("_")
    ]
    return sorted(modules, key=lambda m: (m.ORDER, m.KIND))


MODULES: list[ModuleType] = _discover()
KINDS: tuple[str, ...] = tuple(m.KIND for m in MODULES)
