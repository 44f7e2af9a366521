"""How a file name is shown to people: one escaped line of valid UTF-8, whatever bytes the name holds.

A file name can hold any byte but "/" and NUL: a newline in one would split an error line in two
(and a crafted name could forge a log line), a carriage return or ESC would redraw the terminal,
a bidi override (U+202E) would show the rest of the line reversed, and an undecodable byte (which
Python carries as a lone surrogate, PEP 383) is not valid UTF-8, so a JSON reader replaces it.

`shown` escapes those characters as Python's repr and `ls -b` do, and the backslash itself, so
that the escaped text can be read back unambiguously:

    newline, carriage return, tab      \\n  \\r  \\t
    other control characters (C0, DEL, C1) and undecodable bytes     \\xNN (the byte's value)
    bidi controls, line/paragraph separators, other surrogates       \\uNNNN
    backslash                          \\\\

Every other character is shown as it is: spaces, punctuation, and letters of any script.
Every human-readable line (error and warning lines, notes, the summary table) and summary.json
show names through this function; `InputProblem.path` and `RunStats.files` keep the names as given.
"""

from __future__ import annotations

import os
import unicodedata

__all__ = ["shown"]

# the Unicode characters that reorder the text around them (Bidi_Control=Yes)
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}
# categories escaped: control characters, surrogates, line and paragraph separators
_ESCAPED_CATEGORIES = frozenset(("Cc", "Cs", "Zl", "Zp"))


def _escape(char: str) -> str:
    code = ord(char)
    named = _NAMED.get(char)
    if named is not None:
        return named
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte, as os.fsdecode's surrogateescape carries it
        return f"\\x{code - 0xDC00:02x}"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


def _needs_escape(char: str) -> bool:
    return char in _NAMED or char in _BIDI_CONTROLS or unicodedata.category(char) in _ESCAPED_CATEGORIES


def shown(name: str | bytes | os.PathLike[str] | os.PathLike[bytes]) -> str:
    """The name as one line of text for a log, a terminal or JSON (see the module's docstring)."""
    text = os.fsdecode(name)
    if text.isprintable() and "\\" not in text:  # (nearly every name: nothing to escape)
        return text
    return "".join(_escape(char) if _needs_escape(char) else char for char in text)
