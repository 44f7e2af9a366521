"""Expanding the command line's inputs into capture sources: files, directories, globs and '-'.

Directories are searched recursively for files whose first bytes are a capture or compression
magic number (so README files and the like are passed over); glob patterns are expanded.
The order given here does not matter: the pipeline orders files by their first packet.
"""

from __future__ import annotations

import glob
import os

from .names import shown

_MAGICS = (
    b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d",  # pcap us/ns
    b"\x34\xcd\xb2\xa1", b"\xa1\xb2\xcd\x34",                                          # modified pcap
    b"\x0a\x0d\x0d\x0a",                                                               # pcapng
    b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00",                                              # gzip, bzip2, xz
)


def looks_like_capture(path: str) -> bool:
    try:
        with open(path, "rb") as handle:
            head = handle.read(6)
    except OSError:
        return False
    return any(head.startswith(m) for m in _MAGICS)


def expand_sources(arguments: list[str]) -> tuple[list[str], list[str]]:
    """Returns (sources, notes): notes say which arguments matched nothing."""
    sources: list[str] = []
    notes: list[str] = []
    for argument in arguments:
        if argument == "-":
            sources.append("-")
        elif os.path.isdir(argument):
            found = []
            for root, dirs, files in os.walk(argument):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    path = os.path.join(root, name)
                    if not name.startswith(".") and looks_like_capture(path):
                        found.append(path)
            if not found:
                notes.append(f"{shown(argument)}: no capture files in this directory")
            sources.extend(found)
        elif os.path.exists(argument):
            sources.append(argument)
        elif glob.has_magic(argument):
            matches = sorted(p for p in glob.glob(argument, recursive=True) if os.path.isfile(p))
            if not matches:
                notes.append(f"{shown(argument)}: no file matches this pattern")
            sources.extend(matches)
        else:
            sources.append(argument)   # the reader reports it as unreadable, with its name
    return sources, notes
