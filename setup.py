"""Build script: compiles the per-packet modules with mypyc when it can.

The compiled modules are the same plain Python source (mypyc turns type-annotated Python into a C
extension); they run several times faster. Without a C compiler, or with TCPFLOW_AUDIT_PURE=1 in the
environment, the package installs as pure Python and gives identical results, only slower
(`tcpflow-audit --version` says which build is installed). Everything else is in pyproject.toml.
"""

import importlib.util
import os
import shutil
import sys

from setuptools import setup


def compiled_module_sources() -> list[str]:
    """The list kept in tcpflow_audit/build.py, loaded by path (the package itself is not importable yet)."""
    spec = importlib.util.spec_from_file_location("_tcpflow_build", os.path.join("tcpflow_audit", "build.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.compiled_sources()


def compiled_extensions() -> list:
    if os.environ.get("TCPFLOW_AUDIT_PURE", "") not in ("", "0"):
        print("tcpflow-audit: TCPFLOW_AUDIT_PURE is set: pure Python build", file=sys.stderr)
        return []
    if shutil.which(os.environ.get("CC", "cc")) is None:
        print("tcpflow-audit: no C compiler found: pure Python build (slower)", file=sys.stderr)
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        print("tcpflow-audit: mypyc is not available: pure Python build (slower)", file=sys.stderr)
        return []
    try:
        # type errors elsewhere in the package (not compiled) must not stop the build: silent imports;
        # pyproject.toml's settings for `make lint` (unused ignores, bodies of unannotated functions)
        # do not change what mypyc compiles, so they do not stop the build either
        extensions = mypycify(
            [
                "--follow-imports=silent",
                "--ignore-missing-imports",
                "--no-warn-unused-ignores",
                "--no-check-untyped-defs",
                *compiled_module_sources(),
            ],
            opt_level="3",
        )
    except (Exception, SystemExit) as exc:  # mypyc exits on a type error it cannot compile through
        print(f"tcpflow-audit: mypyc failed ({exc!r}): pure Python build (slower)", file=sys.stderr)
        return []
    for extension in extensions:
        extension.optional = True  # a failed compile leaves the pure Python module in place
        # all compiled modules are one C file: let the compiler inline their small functions into each
        # other (byte reads, keys, sequence arithmetic), which it may not do for functions a shared
        # library exports unless told that no other library will interpose them
        extension.extra_compile_args.append("-fno-semantic-interposition")
    return extensions


setup(ext_modules=compiled_extensions())
