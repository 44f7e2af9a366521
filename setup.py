"""Build script: compiles the per-packet modules with mypyc when it can.

The compiled modules are the same plain Python source (mypyc turns type-annotated Python into a C
extension); they run about twice as fast. Without a C compiler, or with TCPFLOW_AUDIT_PURE=1 in the
environment, the package installs as pure Python and gives identical results, only slower
(`tcpflow-audit --version` says which build is installed). Everything else is in pyproject.toml.
"""

import os
import shutil
import sys

from setuptools import setup

# The modules every packet goes through: reading, decoding, the state machine and its tables...
COMPILED_MODULES = [
    "tcpflow_audit/capture.py",
    "tcpflow_audit/decode.py",
    "tcpflow_audit/errors.py",
    "tcpflow_audit/config.py",
    "tcpflow_audit/tcp_states.py",
    "tcpflow_audit/zeek_states.py",
    "tcpflow_audit/connection.py",
    "tcpflow_audit/rounding.py",
    "tcpflow_audit/timers.py",
    "tcpflow_audit/tracker.py",
    "tcpflow_audit/fastlane.py",
    # and the per-connection work: the detectors and the report rows run once for every connection
    "tcpflow_audit/report.py",
    "tcpflow_audit/detectors/__init__.py",
    "tcpflow_audit/detectors/rules.py",
]


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
        # pyproject.toml's lint setting for `mypy` that an ignore comment is still needed does not change
        # what mypyc compiles (an ignore needed in one build of the stubs may be unused in another)
        extensions = mypycify(["--follow-imports=silent", "--ignore-missing-imports", "--no-warn-unused-ignores",
                               *COMPILED_MODULES], opt_level="3")
    except (Exception, SystemExit) as exc:   # mypyc exits on a type error it cannot compile through
        print(f"tcpflow-audit: mypyc failed ({exc!r}): pure Python build (slower)", file=sys.stderr)
        return []
    for extension in extensions:
        extension.optional = True   # a failed compile leaves the pure Python module in place
    return extensions


setup(ext_modules=compiled_extensions())
