"""Detector thresholds: every number a detector compares against, with its default and the reason.

`Thresholds` is one flat dataclass whose fields are the `SETTINGS` of every kind module
(`detectors/kinds/`) and of the shared machinery (`base.SHARED_SETTINGS`): a kind declares its own
thresholds, with their defaults and reasons, and they appear here (and as `--threshold NAME=VALUE`,
and as keys of the `--config` TOML file) without being listed anywhere else.

`Thresholds()` gives the defaults; `Thresholds.from_toml(path)` reads overrides from a TOML file
(top-level keys and/or a `[thresholds]` table; with `engine_fields`, engine settings too) and rejects
unknown keys; `parse_setting("NAME=VALUE")` reads one from the command line (--threshold);
`checked_value` is the one rule both go through; `as_dict()` lists them all; `describe()` gives
(name, default, reason, kind) for each.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import MISSING, asdict, field, fields, make_dataclass, replace
from typing import TYPE_CHECKING, Any

from .base import SHARED_SETTINGS, Setting
from .kinds import MODULES
from .kinds.excess_time_wait import LINUX_EPHEMERAL_PORTS

__all__ = ["LINUX_EPHEMERAL_PORTS", "Thresholds", "SETTINGS_BY_KIND"]

# The order of the fields (as_dict, --show-config, error messages): a connection's life, from the
# handshake to the close and after; a kind not named here comes after these, in its ORDER.
_FIELD_ORDER = (
    "missing_third_ack",
    "syn_timeout",
    "handshake_reset",
    "syn_flood",
    "connection_refused",
    "stuck_close_wait",
    "excess_time_wait",
    "fin_retransmit",
    "rst_abort",
    "syn_during_time_wait",
    "zero_window_stall",
    "half_open_peer",
)

#: every threshold, by the kind that owns it ("" for the shared ones), in field order
SETTINGS_BY_KIND: tuple[tuple[str, Setting], ...] = (
    *(
        (m.KIND, s)
        for m in sorted(
            MODULES,
            key=lambda m: (_FIELD_ORDER.index(m.KIND) if m.KIND in _FIELD_ORDER else len(_FIELD_ORDER), m.ORDER),
        )
        for s in m.SETTINGS
    ),
    *(("", s) for s in SHARED_SETTINGS),
)


class _ThresholdMethods:
    """The methods of `Thresholds` (its fields are made from the settings of the kinds)."""

    __slots__ = ()

    @classmethod
    def from_toml(cls, path: str, engine_fields: Iterable[str] | None = None) -> Any:
        """Thresholds from a TOML file: top-level keys and/or a `[thresholds]` table.

        Unknown keys raise ValueError naming them. With `engine_fields` (the engine setting names),
        those keys (top level or in an `[engine]` table) are accepted too and the result is the
        pair `(thresholds, engine_settings_dict)`; without it, just the Thresholds.
        """
        with open(path, "rb") as f:
            data = tomllib.load(f)
        engine_names = set(engine_fields) if engine_fields is not None else None
        values: dict[str, Any] = {}
        engine: dict[str, Any] = {}
        unknown: list[str] = []
        for key, value in data.items():
            if key == "thresholds" and isinstance(value, dict):
                values.update(value)
            elif key == "engine" and isinstance(value, dict) and engine_names is not None:
                for name, setting in value.items():
                    if name in engine_names:
                        engine[name] = setting
                    else:
                        unknown.append("engine." + name)
            elif engine_names is not None and key in engine_names:
                engine[key] = value
            else:
                values[key] = value
        unknown += sorted(k for k in values if k not in _FIELDS)
        if unknown:
            raise ValueError("unknown setting(s): %s" % ", ".join(unknown))
        thresholds = cls.from_dict(values)
        return thresholds if engine_names is None else (thresholds, engine)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        return cls().updated(data)

    def updated(self, data: dict[str, Any]) -> Any:
        """A copy with the thresholds in `data` set, each checked by `checked_value`."""
        unknown = sorted(k for k in data if k not in _FIELDS)
        if unknown:
            raise ValueError("unknown threshold(s): %s (known: %s)" % (", ".join(unknown), ", ".join(_FIELDS)))
        values: dict[str, Any] = {name: self.checked_value(name, value) for name, value in data.items()}
        return replace(self, **values)  # type: ignore[type-var]

    @staticmethod
    def checked_value(name: str, value: Any) -> int | float:
        """`value` as threshold `name` holds it (int or float, as its default), or ValueError saying why not:
        not a number, not a whole number for a count, negative."""
        default = _FIELDS[name].default
        assert default is not MISSING
        if (
            isinstance(default, bool)
            or not isinstance(value, (int, float))
            or isinstance(value, bool)
            or value != value
        ):  # (NaN: every comparison with it is false, the detector would never fire)
            raise ValueError("threshold %s must be a number, got %r" % (name, value))
        if isinstance(default, int):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError("threshold %s must be an integer, got %r" % (name, value))
            value = int(value)
        else:
            value = float(value)
        if value < 0:
            raise ValueError("threshold %s must not be negative, got %r" % (name, value))
        return value

    @classmethod
    def parse_setting(cls, text: str) -> tuple[str, int | float]:
        """`NAME=VALUE` as the command line's --threshold gives it (dashes in NAME are taken as '_'):
        the name and its checked value, or ValueError naming what is wrong."""
        name, equals, value_text = text.partition("=")
        name = name.strip().replace("-", "_")
        if not equals or not name:
            raise ValueError("expected NAME=VALUE, got %r" % text)
        if name not in _FIELDS:
            raise ValueError("unknown threshold %r (known: %s)" % (name, ", ".join(_FIELDS)))
        value: int | float | str = value_text.strip()
        for kind in (int, float):
            try:
                value = kind(value_text)
                break
            except ValueError:
                pass
        return name, cls.checked_value(name, value)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @staticmethod
    def describe() -> list[tuple[str, float | int, str, str]]:
        """(name, default, reason, kind) of every threshold, in field order ("" kind: shared)."""
        return [(s.name, s.default, s.why, kind) for kind, s in SETTINGS_BY_KIND]


def _make() -> type:
    names = [s.name for _, s in SETTINGS_BY_KIND]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise RuntimeError("thresholds declared by two kinds: %s" % ", ".join(duplicates))
    return make_dataclass(
        "Thresholds",
        [
            (s.name, type(s.default), field(default=s.default, metadata={"why": s.why, "kind": kind}))
            for kind, s in SETTINGS_BY_KIND
        ],
        bases=(_ThresholdMethods,),
        slots=True,
        namespace={"__module__": __name__},
    )


if TYPE_CHECKING:

    class Thresholds(_ThresholdMethods):
        """Static view for the type checker: one attribute per setting (made at run time)."""

        def __init__(self, **values: Any) -> None: ...

        def __getattr__(self, name: str) -> Any: ...
else:
    Thresholds = _make()
    Thresholds.__doc__ = (
        "Every detector threshold (fields made from the kinds' SETTINGS: see "
        "Thresholds.describe() for each one's default and reason)."
    )

_FIELDS = {f.name: f for f in fields(Thresholds)}  # type: ignore[arg-type]
