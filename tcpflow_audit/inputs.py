"""Expanding the command line's inputs into capture sources: files, directories, globs and '-'.

In a directory (searched recursively, hidden directories left out) a file is a capture when its
name says so (`CAPTURE_NAME`: .pcap, .pcapng or .cap, rotated as x.pcap1 or x.pcap.1, optionally
compressed .gz, .bz2 or .xz) or its first bytes are a capture or compression magic number. A
capture is read whatever it holds, so an empty, zeroed or damaged one is an input error like any
file named on the command line; every other file (a README, a checksum list, a hidden file) is
passed over and counted. Glob patterns are expanded; a file named on the command line is always read.
The order given here does not matter: the pipeline orders files by their first packet.
"""

from __future__ import annotations

import glob
import os
import re
import stat
from dataclasses import dataclass, field

from .names import shown

_MAGICS = (
    b"\xd4\xc3\xb2\xa1",
    b"\xa1\xb2\xc3\xd4",
    b"\x4d\x3c\xb2\xa1",
    b"\xa1\xb2\x3c\x4d",  # pcap us/ns
    b"\x34\xcd\xb2\xa1",
    b"\xa1\xb2\xcd\x34",  # modified pcap
    b"\x0a\x0d\x0d\x0a",  # pcapng
    b"\x1f\x8b",
    b"BZh",
    b"\xfd7zXZ\x00",  # gzip, bzip2, xz
)

CAPTURE_NAME = re.compile(r"\.(?:pcap|pcapng|cap)\d*(?:\.\d+)?(?:\.(?:gz|bz2|xz))?\Z", re.IGNORECASE)
"""A file name that says capture: x.pcap, x.pcapng, x.cap; rotated by tcpdump -C (x.pcap1) or
logrotate (x.pcap.1); any of these compressed (x.pcap.gz, x.pcap.1.xz)."""


@dataclass(slots=True)
class Inputs:
    """What the arguments expand to."""

    sources: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # arguments that matched nothing, files passed over
    passed_over: list[str] = field(default_factory=list)  # files in directories that are not captures


def looks_like_capture(path: str) -> bool:
    try:
        with open(path, "rb") as handle:
            head = handle.read(6)
    except OSError:
        return False
    return any(head.startswith(m) for m in _MAGICS)


def _is_capture(path: str, name: str) -> bool:
    """Whether a file found in a directory is read: a capture by name (unless it is a FIFO, socket or
    device, which opening could block on) or a regular file that starts like one."""
    try:
        mode = os.stat(path).st_mode
    except OSError:  # a dangling link or a file gone since the listing: the reader reports it
        return CAPTURE_NAME.search(name) is not None
    if not stat.S_ISREG(mode):
        return False
    return CAPTURE_NAME.search(name) is not None or looks_like_capture(path)


def expand_inputs(arguments: list[str]) -> Inputs:
    inputs = Inputs()
    for argument in arguments:
        if argument == "-":
            inputs.sources.append("-")
        elif os.path.isdir(argument):
            found = []
            passed_over = 0
            for root, dirs, files in os.walk(argument):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    path = os.path.join(root, name)
                    if not name.startswith(".") and _is_capture(path, name):
                        found.append(path)
                    else:
                        inputs.passed_over.append(path)
                        passed_over += 1
            if not found:
                inputs.notes.append(f"{shown(argument)}: no capture files in this directory")
            if passed_over:
                inputs.notes.append(
                    f"{shown(argument)}: {passed_over} file{'s' if passed_over != 1 else ''} "
                    f"passed over (neither named nor made like a capture)"
                )
            inputs.sources.extend(found)
        elif os.path.exists(argument):
            inputs.sources.append(argument)
        elif glob.has_magic(argument):
            matches = sorted(p for p in glob.glob(argument, recursive=True) if os.path.isfile(p))
            if not matches:
                inputs.notes.append(f"{shown(argument)}: no file matches this pattern")
            inputs.sources.extend(matches)
        else:
            inputs.sources.append(argument)  # the reader reports it as unreadable, with its name
    return inputs
