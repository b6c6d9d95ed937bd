"""Caller-controlled text made safe for a log line: one line, printable, bounded.

Anything a caller sends (a token's unverified header or claims, a URL, a request's
context) may hold newlines or control characters that would forge log lines. Every
log call that includes such text passes it through ``printable`` first.
"""

from __future__ import annotations

__all__ = ["printable"]

_LIMIT = 200


def printable(value: object, limit: int = _LIMIT) -> str:
    """``value`` as one line of printable text, at most ``limit`` characters plus a marker.

    Non-printable characters (CR, LF, other controls, Unicode line and paragraph
    separators, ...) are written as Python escapes, so the text cannot end the log
    line. Backslashes are kept: escaping twice changes nothing (``printable`` of a
    message built with ``printable`` is the message).
    """
    text = value if isinstance(value, str) else str(value)
    escaped = "".join(_escape(c) for c in text[: limit + 1])
    if len(escaped) > limit or len(text) > limit:
        return escaped[:limit] + "...(truncated)"
    return escaped


_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(char: str) -> str:
    if char in _SHORT:
        return _SHORT[char]
    if char.isprintable():
        return char
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"
