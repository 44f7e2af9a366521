"""Which build of the per-packet modules is running: mypyc-compiled or pure Python.

setup.py compiles the modules every packet goes through (reading, decoding, the state machine)
with mypyc when a C compiler is available. Both builds run the same source and give identical
results; the compiled one is several times faster. In a development checkout the compiled
extension sits next to its source, and Python prefers it: after editing a source file without
rebuilding (`make venv`), the old compiled code would still run. `stale_modules()` finds that
case so the CLI can warn about it.
"""

from __future__ import annotations

import importlib
import os

# The modules mypyc compiles: everything every packet goes through (reading, decoding, the state
# machine and its tables), and the per-connection work (detectors, report rows). setup.py and the
# Makefile read this list (`python tcpflow_audit/build.py` prints their source paths).
_KINDS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "detectors", "kinds")
COMPILED_MODULES = (
    "capture",
    "decode",
    "errors",
    "config",
    "tcp_states",
    "zeek_states",
    "rounding",
    "connection",
    "timers",
    "tracker",
    "fastlane",
    "report",
    "sockets",
    "detectors",
    "detectors.base",
    # every finding kind (one module each: a new module is compiled without being listed)
    *sorted(
        "detectors.kinds." + name[:-3]
        for name in os.listdir(_KINDS_DIR)
        if name.endswith(".py") and not name.startswith("_")
    ),
)


def compiled_sources() -> list[str]:
    """The source file of each compiled module, relative to the project root."""
    paths = []
    for name in COMPILED_MODULES:
        path = "tcpflow_audit/" + name.replace(".", "/")
        paths.append(path + "/__init__.py" if name == "detectors" else path + ".py")
    return paths


def _module_file(name: str) -> str:
    return importlib.import_module(f"{__package__}.{name}").__file__ or ""


def is_compiled() -> bool:
    """True when the state machine runs as a compiled extension module."""
    return not _module_file("connection").endswith(".py")


def _in_source_checkout() -> bool:
    """True when the package runs from a source checkout (an editable install), not site-packages."""
    package_dir = os.path.dirname(os.path.abspath(__file__))
    return os.path.exists(os.path.join(os.path.dirname(package_dir), "pyproject.toml"))


def stale_modules() -> list[str]:
    """Compiled modules whose Python source is newer than the compiled file (edited, not rebuilt).

    Only in a source checkout: an installed wheel also ships the sources, with whatever file times
    the installer gave them, and nobody edits those.
    """
    if not _in_source_checkout():
        return []
    stale = []
    for name in COMPILED_MODULES:
        compiled = _module_file(name)
        if compiled.endswith(".py"):
            continue
        # .../connection.cpython-311-x86_64-linux-gnu.so -> .../connection.py
        source = os.path.join(os.path.dirname(compiled), os.path.basename(compiled).split(".", 1)[0] + ".py")
        try:
            if os.path.getmtime(source) > os.path.getmtime(compiled):
                stale.append(name)
        except OSError:
            continue  # an installed wheel ships no source next to the extension
    return stale


def describe() -> str:
    """One line for `--version` and the benchmark: which build this is."""
    if not is_compiled():
        return "pure Python"
    stale = stale_modules()
    if stale:
        return f"compiled with mypyc (STALE: {', '.join(stale)} edited since; rebuild with `make venv`)"
    return "compiled with mypyc"


if __name__ == "__main__":
    print(" ".join(compiled_sources()))
