"""git's configuration file syntax, read the way git 2.39 reads it (`config.c`:
`git_parse_source`, `get_base_var`, `get_extended_base_var`, `get_value`, `parse_value`), so that
the git runner can name everything a repository's own config defines before git starts.

One job: bytes in, variables out (full names as git spells them: section and key lower-cased, the
subsection as written, except that the old `[section.sub]` form lower-cases it too). Whatever git
would refuse to read is refused here too (`ConfigSyntaxError`), and so is a NUL byte, which git
reads up to, so that a file is either read exactly as git reads it or not at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NEWLINE = ord("\n")
# git's own ctype (`sane_ctype`), ASCII only: not the C library's, and not Python's.
_SPACE = frozenset(b" \t\n\r")
_ALPHA = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_KEY = _ALPHA | frozenset(b"0123456789-")
_BOM = b"\xef\xbb\xbf"
_ESCAPES = {ord("t"): ord("\t"), ord("b"): ord("\b"), ord("n"): ord("\n")}
# Runs of a value's bytes that stand for themselves, outside and inside double quotes.
_PLAIN = re.compile(rb'[^\t\n\r "#;\\]+')
_QUOTED = re.compile(rb'[^\n"\\]+')


class ConfigSyntaxError(ValueError):
    """A file git would not read as configuration (`bad config line N`)."""


@dataclass(frozen=True)
class Variable:
    """One `name = value` line; `value` is None for a bare `name` (a boolean true)."""

    name: bytes
    value: bytes | None

    @property
    def section(self) -> bytes:
        return self.name.split(b".", 1)[0]

    @property
    def subsection(self) -> bytes | None:
        """What lies between the first and the last dot, as git's `parse_config_key` splits it."""
        first, last = self.name.find(b"."), self.name.rfind(b".")
        return None if first == last else self.name[first + 1 : last]

    @property
    def key(self) -> bytes:
        return self.name.rsplit(b".", 1)[-1]


def _lower(c: int) -> int:
    return c + 32 if 65 <= c <= 90 else c


class _Source:
    """`get_next_char` over a whole file: CRLF reads as LF (done once, up front: git does it as
    it reads, which comes to the same), and past the end every read is a final LF."""

    def __init__(self, data: bytes) -> None:
        self.text = data.replace(b"\r\n", b"\n")
        self.end = len(self.text)
        self.position = 0

    def next(self) -> int:
        if self.position >= self.end:
            return _NEWLINE
        c = self.text[self.position]
        self.position += 1
        return c

    def error(self) -> ConfigSyntaxError:
        line = self.text.count(b"\n", 0, self.position) + 1
        return ConfigSyntaxError(f"bad config line {line}")


def _extended_base(source: _Source, name: bytearray, c: int) -> None:
    """`[section "subsection"]`: anything but a newline, `\\x` standing for `x`."""
    while True:
        if c == _NEWLINE:
            raise source.error()
        c = source.next()
        if c not in _SPACE:
            break
    if c != ord('"'):
        raise source.error()
    name.append(ord("."))
    while True:
        c = source.next()
        if c == _NEWLINE:
            raise source.error()
        if c == ord('"'):
            break
        if c == ord("\\"):
            c = source.next()
            if c == _NEWLINE:
                raise source.error()
        name.append(c)
    if source.next() != ord("]"):
        raise source.error()


def _base(source: _Source) -> bytearray:
    """A section header after its `[`: `[section]`, `[section.sub]` or `[section "sub"]`."""
    name = bytearray()
    while True:
        if source.position >= source.end:
            raise source.error()
        c = source.next()
        if c == ord("]"):
            break
        if c in _SPACE:
            _extended_base(source, name, c)
            break
        if c not in _KEY and c != ord("."):
            raise source.error()
        name.append(_lower(c))
    if not name:
        raise source.error()
    return name


def _value(source: _Source) -> bytes:
    """`parse_value`: quotes, escapes, comments and `\\`-newline continuations."""
    text = source.text
    value = bytearray()
    quote = False
    spaces = 0
    while True:
        c = source.next()
        if c == _NEWLINE:
            if quote:
                raise source.error()
            return bytes(value)
        if c in _SPACE and not quote:
            if value:
                spaces += 1
            continue
        if not quote and c in b";#":
            # A comment runs to the end of the line, backslashes and quotes included.
            newline = text.find(b"\n", source.position)
            source.position = source.end if newline < 0 else newline
            continue
        value += b" " * spaces
        spaces = 0
        if c == ord("\\"):
            c = source.next()
            if c == _NEWLINE:
                continue
            if c in _ESCAPES:
                c = _ESCAPES[c]
            elif c not in b'\\"':
                raise source.error()
            value.append(c)
            continue
        if c == ord('"'):
            quote = not quote
            continue
        run = (_QUOTED if quote else _PLAIN).match(text, source.position - 1)
        if run is None:  # pragma: no cover - c itself always matches
            raise source.error()
        value += run.group()
        source.position = run.end()


def _variable(source: _Source, name: bytearray) -> Variable:
    """`get_value`: the rest of a variable's name, then nothing, or `=` and its value."""
    while True:
        c = source.next()
        if c not in _KEY:
            break
        name.append(_lower(c))
    while c in b" \t":
        c = source.next()
    if c == _NEWLINE:
        return Variable(bytes(name), None)
    if c != ord("="):
        raise source.error()
    return Variable(bytes(name), _value(source))


def parse(data: bytes) -> list[Variable]:
    """Every variable of a configuration file, in order (includes are not followed)."""
    if b"\0" in data:
        raise ConfigSyntaxError("a NUL byte")
    source = _Source(data)
    if source.text[:1] == _BOM[:1]:
        if not source.text.startswith(_BOM):
            raise source.error()  # a partial byte order mark
        source.position = len(_BOM)
    variables: list[Variable] = []
    section = bytearray()
    comment = False
    while True:
        if source.position >= source.end:
            return variables
        c = source.next()
        if c == _NEWLINE:
            comment = False
            continue
        if comment or c in _SPACE:
            continue
        if c in b"#;":
            comment = True
            continue
        if c == ord("["):
            section = _base(source) + b"."
            continue
        if c not in _ALPHA:
            raise source.error()
        variables.append(_variable(source, section + bytes([_lower(c)])))
